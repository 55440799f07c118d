//! Defences found by attacking a running server: NUL bytes, forced consent after login,
//! CORS and unsupported methods, login throttling, slow bodies and wrong master keys.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::db_test;
use crate::helpers::*;
use crate::process::Workspace;

async fn nul_bytes_never_reach_database(app: TestApp) {
    let client = app.public_client().await;
    let cases = [
        (
            format!("/t/{TENANT}/authorize?client_id=%00&redirect_uri=x"),
            "GET",
        ),
        (
            format!(
                "/t/{TENANT}/authorize?client_id={}&state=%00",
                client.client_id
            ),
            "GET",
        ),
        (format!("/t/{TENANT}/register/a%00b"), "GET"),
    ];
    for (path, method) in cases {
        let response = app
            .http
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth("x")
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{path} answered {}",
            response.status()
        );
    }
    for form in [
        vec![("grant_type", "client_credentials"), ("client_id", "\0")],
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "a\0b"),
            ("client_id", "x"),
        ],
    ] {
        let response = app.post_form_at(TENANT, "/token", &form, None).await;
        assert!(
            response.status().is_client_error(),
            "token with NUL answered {}",
            response.status()
        );
    }
    let response = app
        .post_form_at(
            TENANT,
            "/token",
            &[("grant_type", "client_credentials")],
            Some(("a\0b", "secret")),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "Basic credentials with NUL"
    );
    let response = app
        .post_form_at(
            TENANT,
            "/revoke",
            &[("token", "x"), ("client_id", "\0")],
            None,
        )
        .await;
    assert!(
        response.status().is_client_error(),
        "revoke with NUL answered {}",
        response.status()
    );
}
db_test!(nul_bytes_never_reach_database);

async fn prompt_consent_survives_login(app: TestApp) {
    let client = app.public_client().await;
    // Consent on record from an earlier flow.
    app.code_for(&client).await;

    let browser = Browser::new(&app, TENANT);
    let (_, challenge) = pkce();
    let page = browser
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", RS1),
            ("prompt", "consent"),
        ])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"password\""),
        "expected the login page"
    );
    let after_login = browser.login(&page, USER, PASSWORD).await;
    assert_eq!(
        after_login.status(),
        StatusCode::OK,
        "prompt=consent skipped the consent page after login"
    );
    assert!(
        after_login
            .text()
            .await
            .unwrap()
            .contains("value=\"approve\"")
    );
}
db_test!(prompt_consent_survives_login);

async fn cors_and_methods_answer_properly(app: TestApp) {
    let token = app.endpoint(TENANT, "/token");
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, &token)
        .header("Origin", "http://localhost:6274")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(
        preflight.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );

    let metadata = app
        .get(&format!(
            "/.well-known/oauth-authorization-server/t/{TENANT}"
        ))
        .await;
    assert_eq!(metadata.headers()["access-control-allow-origin"], "*");
    let page = app.get(&format!("/t/{TENANT}/authorize")).await;
    assert!(
        !page.headers().contains_key("access-control-allow-origin"),
        "the authorization page allows other origins"
    );

    let wrong_method = app.http.get(&token).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let unknown = app.get("/nowhere").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    let jwks = app.endpoint(TENANT, "/jwks.json");
    let etag = app.http.get(&jwks).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let weak = app
        .http
        .get(&jwks)
        .header("If-None-Match", format!("W/{etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        weak.status(),
        StatusCode::NOT_MODIFIED,
        "a weak entity tag did not match"
    );
}
db_test!(cors_and_methods_answer_properly);

async fn failed_logins_are_throttled(app: TestApp) {
    let client = app.public_client().await;
    let browser = Browser::new(&app, TENANT);
    let (_, challenge) = pkce();
    let mut page = browser
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", RS1),
        ])
        .await
        .text()
        .await
        .unwrap();
    for attempt in 0..10 {
        let response = browser.login(&page, USER, "wrong-password").await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
        page = response.text().await.unwrap();
    }
    let blocked = browser.login(&page, USER, PASSWORD).await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the right password after ten failures was not throttled"
    );
    assert!(
        blocked
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-in attempts")
    );

    // Another user is not affected.
    let other = Browser::new(&app, TENANT);
    let location = other
        .authorize_and_approve(
            &[
                ("response_type", "code"),
                ("client_id", &client.client_id),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", RS1),
            ],
            OTHER_USER,
            OTHER_PASSWORD,
        )
        .await;
    assert!(query_params(&location).contains_key("code"));
}
db_test!(failed_logins_are_throttled);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_body_times_out() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "POST /t/{TENANT}/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            // Drip one byte every two seconds while no response has arrived.
            tokio::select! {
                read = stream.read(&mut answer) => return read.unwrap(),
                () = tokio::time::sleep(Duration::from_secs(2)) => {
                    if stream.write_all(b"x").await.is_err() {
                        return 0;
                    }
                }
            }
        }
    })
    .await
    .expect("the server held the dripping request for 20 seconds");
    let text = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 400"),
        "unexpected answer: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A client may open a connection and send its first request seconds later. The server
/// must respond to that request, not close the connection with a 408 in the meantime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_new_connection_still_served() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let request = format!(
        "GET /t/{TENANT}/.well-known/oauth-authorization-server HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no response within 10 seconds")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "unexpected answer: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_refuse_wrong_master_key() {
    let workspace = Workspace::new();
    let key = portcullis::keys::sealing::MasterKey::generate();
    workspace.run_with_ok(
        &["tenant", "create", "acme"],
        &[("PORTCULLIS_MASTER_KEY", &key)],
    );
    let wrong = portcullis::keys::sealing::MasterKey::generate();
    for args in [
        vec!["keys", "rotate", "--tenant", "acme"],
        vec!["tenant", "create", "beta"],
    ] {
        let output = workspace.run_with(&args, &[("PORTCULLIS_MASTER_KEY", &wrong)]);
        assert!(
            !output.status.success(),
            "{args:?} ran with a wrong master key"
        );
        assert!(String::from_utf8_lossy(&output.stderr).contains("was sealed with master key"));
    }
    let keys = workspace.run_with_ok(
        &["keys", "list", "--tenant", "acme"],
        &[("PORTCULLIS_MASTER_KEY", &key)],
    );
    assert_eq!(
        keys.lines().count(),
        2,
        "a key was added with the wrong master key: {keys}"
    );
    let tenants = workspace.run_ok(&["tenant", "list"], "");
    assert!(
        !tenants.contains("beta"),
        "a tenant was created with the wrong master key"
    );
}

#[test]
fn admin_rejects_bad_passwords_and_resources() {
    let workspace = Workspace::new();
    workspace.run_ok(&["tenant", "create", "acme"], "");
    for (stdin, case) in [
        ("", "no input"),
        ("            \n", "only spaces"),
        (&format!("{}\n", "x".repeat(2000)), "too long"),
    ] {
        let output = workspace.run(&["user", "add", "--tenant", "acme", "carol"], stdin);
        assert!(
            !output.status.success(),
            "{case} was accepted as a password"
        );
    }
    let output = workspace.run(
        &[
            "resource",
            "add",
            "--tenant",
            "acme",
            "HTTP://EXAMPLE.com/mcp",
        ],
        "",
    );
    assert!(
        !output.status.success(),
        "a resource with an uppercase host was accepted"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("http://example.com"));
}
