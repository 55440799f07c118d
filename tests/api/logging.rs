//! No secret reaches the log: a whole session against the real binary at debug level, then
//! the log is searched for every secret the session handled.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Browser, basic, hidden_field, location, pkce, query_params};
use crate::process::Workspace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_contains_no_secret() {
    let workspace = Workspace::new();
    workspace.run_ok(&["tenant", "create", "acme"], "");
    workspace.run_ok(
        &[
            "resource",
            "add",
            "--tenant",
            "acme",
            "https://mcp.example.com/mcp",
            "--scopes",
            "mcp:tools",
        ],
        "",
    );
    let password = "carol-password-secret-1";
    workspace.run_ok(
        &["user", "add", "--tenant", "acme", "carol"],
        &format!("{password}\n"),
    );
    let server = workspace.serve(&[("PORTCULLIS_LOG", "debug")]).await;
    let issuer = format!("{}/t/acme", server.address);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut secrets: Vec<(String, String)> = vec![("password".into(), password.into())];

    let registration: Value = http
        .post(format!("{issuer}/register"))
        .json(&json!({
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registration["client_id"].as_str().unwrap().to_owned();
    let client_secret = registration["client_secret"].as_str().unwrap().to_owned();
    secrets.push(("client secret".into(), client_secret.clone()));
    secrets.push((
        "registration access token".into(),
        registration["registration_access_token"]
            .as_str()
            .unwrap()
            .into(),
    ));

    // A failed login, then the whole browser flow.
    let browser = Browser::with_address(&server.address, "acme");
    let (verifier, challenge) = pkce();
    secrets.push(("code verifier".into(), verifier.clone()));
    let authorize = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1:4000/callback"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "log-state"),
    ];
    let page = browser.authorize(&authorize).await.text().await.unwrap();
    secrets.push((
        "csrf token".into(),
        hidden_field(&page, "csrf_token").unwrap(),
    ));
    let failed = browser.login(&page, "carol", "wrong-password-secret").await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    secrets.push(("wrong password".into(), "wrong-password-secret".into()));
    let page = failed.text().await.unwrap();
    let consent = browser.login(&page, "carol", password).await;
    for cookie in consent.cookies() {
        secrets.push(("session cookie".into(), cookie.value().to_owned()));
    }
    let page = consent.text().await.unwrap();
    let redirect = location(&browser.consent(&page, "approve").await);
    let code = query_params(&redirect)
        .get("code")
        .cloned()
        .expect("no code");
    secrets.push(("code".into(), code.clone()));

    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{issuer}/token");
        let authorization = basic(&client_id, &client_secret);
        async move {
            http.post(url)
                .header("Authorization", authorization)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let tokens: Value = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", "http://127.0.0.1:4000/callback".into()),
        ("code_verifier", verifier.clone()),
    ])
    .await
    .json()
    .await
    .unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push((
        "access token".into(),
        tokens["access_token"].as_str().unwrap().into(),
    ));
    secrets.push(("refresh token".into(), refresh_token.clone()));
    let rotated: Value = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token.clone()),
    ])
    .await
    .json()
    .await
    .unwrap();
    secrets.push((
        "rotated refresh token".into(),
        rotated["refresh_token"].as_str().unwrap().into(),
    ));
    let reuse = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token),
    ])
    .await;
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    let replay = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("code_verifier", verifier),
    ])
    .await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let credentials: Value = token(vec![("grant_type", "client_credentials".into())])
        .await
        .json()
        .await
        .unwrap();
    let machine_token = credentials["access_token"].as_str().unwrap().to_owned();
    secrets.push(("client credentials token".into(), machine_token.clone()));
    for path in ["/introspect", "/revoke"] {
        let response = http
            .post(format!("{issuer}{path}"))
            .header("Authorization", basic(&client_id, &client_secret))
            .form(&[("token", machine_token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let (_, log) = server.stop();
    assert!(
        log.contains("login"),
        "the log has no login events, so it was not captured: {log}"
    );
    assert!(
        log.contains("refresh-token family revoked"),
        "the reuse was not logged"
    );
    assert!(
        log.contains("authorization code reused; the tokens issued from it are revoked"),
        "the code replay was not logged"
    );
    for (what, secret) in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains the {what}"
        );
    }
}
