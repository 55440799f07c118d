//! Dynamic client registration (RFC 7591) and client configuration (RFC 7592): issued
//! credentials, metadata validation, size and rate limits, and the management endpoint's
//! access checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::*;

const WEB_REDIRECT_URI: &str = "https://client.example/cb";

/// Returns the current time in epoch seconds.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Returns a public client's registration body for `redirect_uris`, in the shape MCP
/// clients send: no `application_type`.
fn public_body(redirect_uris: &[&str]) -> Value {
    json!({
        "client_name": "mcp client",
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

/// Sends a client configuration request (RFC 7592) to `url` with an optional bearer
/// token and JSON body.
async fn manage(
    app: &TestApp,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = app.http.request(method, url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request
        .send()
        .await
        .expect("client configuration request failed")
}

/// Returns the `registration_client_uri` and `registration_access_token` of `client`.
fn management(client: &TestClient) -> (String, String) {
    (
        client.registration["registration_client_uri"]
            .as_str()
            .expect("no registration_client_uri")
            .to_owned(),
        client.registration["registration_access_token"]
            .as_str()
            .expect("no registration_access_token")
            .to_owned(),
    )
}

/// Asserts a 400 JSON error whose code is `code`, with `case` in every message.
async fn assert_rejected(response: Response, code: &str, case: &str) {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: body {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{case}: error body is not JSON: {text}"));
    assert_eq!(body["error"], code, "{case}: body {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "{case}: missing error_description in {body}"
    );
}

/// Asserts the 401 `invalid_token` response to a failed registration access token check,
/// and returns its body.
async fn assert_invalid_token(response: Response, case: &str) -> Value {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("invalid_token"),
        "{case}: WWW-Authenticate was {challenge:?}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{case}: body {body}");
    body
}

/// A loopback listener that counts the connections it accepts, to show that the server
/// never fetches a URI.
struct Canary {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Canary {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self {
            port,
            connections,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits briefly for any late connection, stops listening and returns the count.
    async fn finish(self) -> usize {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.task.abort();
        self.connections.load(Ordering::SeqCst)
    }
}

async fn confidential_registration_returns_credentials(app: TestApp) {
    let cases = [
        (Some("client_secret_basic"), "client_secret_basic"),
        (Some("client_secret_post"), "client_secret_post"),
        (None, "client_secret_basic"),
    ];
    for (requested_method, expected_method) in cases {
        let case = format!("requested {requested_method:?}");
        let mut body = json!({
            "client_name": "confidential client",
            "redirect_uris": [WEB_REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        });
        if let Some(method) = requested_method {
            body["token_endpoint_auth_method"] = method.into();
        }
        let before = now();
        let response = app.register(&body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{case}");
        assert!(
            response
                .headers()
                .get("cache-control")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.contains("no-store")),
            "{case}: credentials must not be cached"
        );
        let registration: Value = response.json().await.unwrap();
        let client_id = registration["client_id"].as_str().expect("no client_id");
        assert!(!client_id.is_empty(), "{case}: empty client_id");
        let issued_at = registration["client_id_issued_at"]
            .as_i64()
            .expect("client_id_issued_at must be a number");
        assert!(
            (before - 5..=now() + 5).contains(&issued_at),
            "{case}: client_id_issued_at {issued_at} is not the current time"
        );
        let secret = registration["client_secret"]
            .as_str()
            .expect("a confidential client needs a client_secret");
        assert!(secret.len() >= 43, "{case}: the secret is too short");
        assert_eq!(
            registration["client_secret_expires_at"], 0,
            "{case}: a secret that never expires has client_secret_expires_at 0"
        );
        assert_eq!(registration["token_endpoint_auth_method"], expected_method);
        let token = registration["registration_access_token"]
            .as_str()
            .expect("no registration_access_token");
        assert!(token.len() >= 43, "{case}: the access token is too short");
        assert_eq!(
            registration["registration_client_uri"],
            format!("{}/register/{client_id}", app.issuer),
            "{case}"
        );
        assert_eq!(registration["redirect_uris"], json!([WEB_REDIRECT_URI]));
        assert_eq!(registration["client_name"], "confidential client");

        let stored = app
            .stored_clients(TENANT)
            .await
            .into_iter()
            .find(|record| record.client_id == client_id)
            .expect("the client was not stored");
        assert!(
            stored
                .client_secret_hash
                .as_deref()
                .is_some_and(|hash| hash != secret),
            "{case}: the secret must be stored as a digest"
        );
        assert!(
            stored
                .registration_access_token_hash
                .as_deref()
                .is_some_and(|hash| hash != token),
            "{case}: the access token must be stored as a digest"
        );

        let client = TestClient {
            client_id: client_id.to_owned(),
            client_secret: Some(secret.to_owned()),
            redirect_uri: WEB_REDIRECT_URI.to_owned(),
            registration: registration.clone(),
        };
        let response = app
            .token(
                &client,
                &[("grant_type", "client_credentials"), ("resource", RS1)],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{case}: the issued secret should authenticate the client"
        );
    }
}
db_test!(confidential_registration_returns_credentials);

async fn public_registration_omits_secret(app: TestApp) {
    let response = app.register(&public_body(&[REDIRECT_URI])).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registration: Value = response.json().await.unwrap();
    assert!(registration["client_id"].is_string());
    assert!(registration["client_id_issued_at"].is_i64());
    assert!(
        registration.get("client_secret").is_none(),
        "a public client must get no secret: {registration}"
    );
    assert!(
        registration.get("client_secret_expires_at").is_none(),
        "a public client has no secret to expire: {registration}"
    );
    assert_eq!(registration["token_endpoint_auth_method"], "none");
    assert!(registration["registration_access_token"].is_string());
    assert!(registration["registration_client_uri"].is_string());
    let stored = app.stored_clients(TENANT).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].client_secret_hash.is_none());
}
db_test!(public_registration_omits_secret);

async fn configuration_read_omits_secret(app: TestApp) {
    let client = app.confidential_client().await;
    let (uri, token) = management(&client);

    let response = manage(&app, Method::GET, &uri, Some(&token), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("no-store"))
    );
    let configuration: Value = response.json().await.unwrap();
    assert_eq!(configuration["client_id"], client.client_id.as_str());
    assert_eq!(
        configuration["client_id_issued_at"],
        client.registration["client_id_issued_at"]
    );
    assert_eq!(configuration["client_secret_expires_at"], 0);
    assert_eq!(configuration["registration_client_uri"], uri.as_str());
    for field in [
        "redirect_uris",
        "client_name",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "application_type",
    ] {
        assert_eq!(
            configuration[field], client.registration[field],
            "{field} should read back as registered"
        );
    }
    assert!(
        configuration.get("client_secret").is_none(),
        "the secret must never be returned after registration: {configuration}"
    );
    assert!(
        configuration.get("registration_access_token").is_none(),
        "the access token must not be returned again: {configuration}"
    );

    let response = app
        .http
        .get(&uri)
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the Bearer scheme name is case-insensitive"
    );
}
db_test!(configuration_read_omits_secret);

async fn configuration_update_replaces_metadata(app: TestApp) {
    let client = app.public_client().await;
    let (uri, token) = management(&client);
    let new_redirect = "http://127.0.0.1/new-callback";
    let mut body = public_body(&[new_redirect]);
    body["client_id"] = client.client_id.clone().into();
    body["client_name"] = "renamed client".into();

    let response = manage(&app, Method::PUT, &uri, Some(&token), Some(&body)).await;
    assert_eq!(response.status(), StatusCode::OK, "update failed");
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["client_name"], "renamed client");
    assert_eq!(updated["redirect_uris"], json!([new_redirect]));
    assert_eq!(updated["client_id"], client.client_id.as_str());

    let response = manage(&app, Method::GET, &uri, Some(&token), None).await;
    let read: Value = response.json().await.unwrap();
    assert_eq!(read["client_name"], "renamed client");
    assert_eq!(read["redirect_uris"], json!([new_redirect]));

    // The update removes the old redirect URI and allows the new one.
    let (_, challenge) = pkce();
    let request = |redirect_uri: &str| {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", client.client_id.clone()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("resource", RS1.to_owned()),
        ]
    };
    let browser = Browser::new(&app, TENANT);
    let old = request(REDIRECT_URI);
    let response = browser
        .authorize(
            &old.iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    let new = request(new_redirect);
    let response = browser
        .authorize(
            &new.iter()
                .map(|(n, v)| (*n, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the new redirect URI should reach the login page"
    );

    // A confidential client may repeat its current secret in the body.
    let confidential = app.confidential_client().await;
    let (uri, token) = management(&confidential);
    let mut body = confidential.registration.clone();
    for issued in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
    ] {
        body.as_object_mut().unwrap().remove(issued);
    }
    body["client_name"] = "renamed confidential client".into();
    let response = manage(&app, Method::PUT, &uri, Some(&token), Some(&body)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "an update carrying the current secret should succeed"
    );
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["client_name"], "renamed confidential client");
    assert!(updated.get("client_secret").is_none());
}
db_test!(configuration_update_replaces_metadata);

async fn invalid_configuration_updates_are_rejected(app: TestApp) {
    let client = app.confidential_client().await;
    let other = app.confidential_client().await;
    let (uri, token) = management(&client);
    let valid = json!({
        "client_id": client.client_id,
        "client_name": "renamed client",
        "redirect_uris": [WEB_REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    });
    let changed = |name: &str, value: Value| {
        let mut body = valid.clone();
        body[name] = value;
        body
    };
    let mut without_id = valid.clone();
    without_id.as_object_mut().unwrap().remove("client_id");
    let cases = [
        (without_id, "invalid_client_metadata", "no client_id"),
        (
            changed("client_id", other.client_id.clone().into()),
            "invalid_client_metadata",
            "another client's id",
        ),
        (
            changed("registration_access_token", token.clone().into()),
            "invalid_client_metadata",
            "registration_access_token in the body",
        ),
        (
            changed("registration_client_uri", uri.clone().into()),
            "invalid_client_metadata",
            "registration_client_uri in the body",
        ),
        (
            changed("client_id_issued_at", json!(0)),
            "invalid_client_metadata",
            "client_id_issued_at in the body",
        ),
        (
            changed("client_secret_expires_at", json!(0)),
            "invalid_client_metadata",
            "client_secret_expires_at in the body",
        ),
        (
            changed("client_secret", "wrong-secret".into()),
            "invalid_client_metadata",
            "a wrong client_secret",
        ),
        (
            changed("client_secret", other.client_secret.clone().unwrap().into()),
            "invalid_client_metadata",
            "another client's secret",
        ),
        (
            {
                let mut body = changed("token_endpoint_auth_method", "none".into());
                body["grant_types"] = json!(["authorization_code"]);
                body
            },
            "invalid_client_metadata",
            "switch to a public client",
        ),
        (
            changed("redirect_uris", json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
            "script redirect URI",
        ),
        (
            changed("jwks_uri", "https://client.example/jwks.json".into()),
            "invalid_client_metadata",
            "jwks_uri",
        ),
    ];
    for (body, code, case) in cases {
        let response = manage(&app, Method::PUT, &uri, Some(&token), Some(&body)).await;
        assert_rejected(response, code, case).await;
        let read: Value = manage(&app, Method::GET, &uri, Some(&token), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            read["client_name"], "confidential test client",
            "{case}: a rejected update must change nothing"
        );
    }
}
db_test!(invalid_configuration_updates_are_rejected);

async fn deleted_client_is_unusable(app: TestApp) {
    let client = app.confidential_client().await;
    let (uri, token) = management(&client);
    let tokens = app.tokens_for(&client).await;
    let (code, verifier) = app.code_for(&client).await;

    let response = manage(&app, Method::DELETE, &uri, Some(&token), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        app.stored_clients(TENANT).await.is_empty(),
        "the client must be gone from the store"
    );

    let response = manage(&app, Method::GET, &uri, Some(&token), None).await;
    assert_invalid_token(response, "read after delete").await;
    let response = manage(&app, Method::DELETE, &uri, Some(&token), None).await;
    assert_invalid_token(response, "second delete").await;

    let (_, challenge) = pkce();
    let response = Browser::new(&app, TENANT)
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", WEB_REDIRECT_URI),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", RS1),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    assert!(
        response.text().await.unwrap().contains("Unknown client"),
        "the authorize page should say the client is unknown"
    );

    let response = app
        .token(
            &client,
            &[("grant_type", "client_credentials"), ("resource", RS1)],
        )
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let response = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", WEB_REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let response = app
        .refresh(&client, tokens.refresh_token.as_deref().unwrap())
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}
db_test!(deleted_client_is_unusable);

async fn registration_token_is_checked(app: TestApp) {
    let client = app.confidential_client().await;
    let other = app.confidential_client().await;
    let (uri, token) = management(&client);
    let (_, other_token) = management(&other);
    let unknown_uri = format!("{}/register/no-such-client", app.issuer);
    let beta_uri = format!(
        "{}/register/{}",
        app.issuer_of(OTHER_TENANT),
        client.client_id
    );
    let mut update = client.registration.clone();
    for issued in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
        "client_secret",
    ] {
        update.as_object_mut().unwrap().remove(issued);
    }
    update["client_name"] = "taken over".into();

    let cases: [(&str, Option<&str>, &str); 5] = [
        (&uri, None, "no token"),
        (&uri, Some("wrong-token"), "wrong token"),
        (&uri, Some(&other_token), "another client's token"),
        (&unknown_uri, Some(&token), "unknown client id"),
        (
            &beta_uri,
            Some(&token),
            "the client's path at another tenant",
        ),
    ];
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for (target, bearer, case) in cases {
            let case = format!("{method} with {case}");
            let body = (method == Method::PUT).then_some(&update);
            let response = manage(&app, method.clone(), target, bearer, body).await;
            assert_invalid_token(response, &case).await;
        }
        let response = app
            .http
            .request(method.clone(), &uri)
            .header("Authorization", basic(&client.client_id, &token))
            .send()
            .await
            .unwrap();
        assert_invalid_token(response, &format!("{method} with Basic credentials")).await;
    }

    // An unknown client and a wrong token look the same, so nothing reveals which exist.
    let unknown = assert_invalid_token(
        manage(&app, Method::GET, &unknown_uri, Some("wrong-token"), None).await,
        "unknown client",
    )
    .await;
    let wrong = assert_invalid_token(
        manage(&app, Method::GET, &uri, Some("wrong-token"), None).await,
        "wrong token",
    )
    .await;
    assert_eq!(unknown, wrong, "the two failures must be indistinguishable");

    let response = manage(&app, Method::GET, &uri, Some(&token), None).await;
    assert_eq!(response.status(), StatusCode::OK, "the client must survive");
    let read: Value = response.json().await.unwrap();
    assert_eq!(read["client_name"], "confidential test client");
    assert_eq!(app.stored_clients(TENANT).await.len(), 2);
}
db_test!(registration_token_is_checked);

async fn dangerous_redirect_uris_are_rejected(app: TestApp) {
    let cases = [
        ("javascript:alert(1)", "javascript scheme"),
        ("JavaScript:alert(1)", "mixed-case javascript scheme"),
        (" javascript:alert(1)", "leading space"),
        ("java\tscript:alert(1)", "tab inside the scheme"),
        ("javascript\n:alert(1)", "newline before the colon"),
        ("\u{0}javascript:alert(1)", "leading NUL"),
        (
            "javascript://client.example/%0aalert(1)",
            "javascript with an authority",
        ),
        ("data:text/html,<script>alert(1)</script>", "data scheme"),
        ("vbscript:msgbox(1)", "vbscript scheme"),
        ("file:///etc/passwd", "file scheme"),
        ("ftp://client.example/cb", "ftp scheme"),
        ("http://client.example/cb", "plain http on a public host"),
        ("http://10.0.0.1/cb", "plain http on a private address"),
        ("https://client.example/cb#frag", "fragment"),
        ("https://client.example/cb#", "empty fragment"),
        ("https://user@client.example/cb", "user information"),
        (
            "http://127.0.0.1@attacker.example/cb",
            "loopback as user information",
        ),
        ("HTTPS://client.example/cb", "uppercase scheme"),
        ("/cb", "relative reference"),
        ("custom:/cb", "private-use scheme without a domain"),
        ("https://", "no host"),
        ("", "empty string"),
    ];
    for application_type in ["web", "native"] {
        for (uri, case) in cases {
            let case = format!("{application_type} client, {case} ({uri:?})");
            let mut body = public_body(&[uri]);
            body["application_type"] = application_type.into();
            let response = app.register(&body).await;
            assert_rejected(response, "invalid_redirect_uri", &case).await;

            let mut body = public_body(&[WEB_REDIRECT_URI, uri]);
            body["application_type"] = application_type.into();
            let response = app.register(&body).await;
            assert_rejected(
                response,
                "invalid_redirect_uri",
                &format!("{case} after a valid URI"),
            )
            .await;
        }
    }
    assert!(
        app.stored_clients(TENANT).await.is_empty(),
        "rejected registrations must store nothing"
    );
}
db_test!(dangerous_redirect_uris_are_rejected);

async fn safe_redirect_uris_are_accepted(app: TestApp) {
    let cases = [
        (WEB_REDIRECT_URI, None, "web"),
        ("http://127.0.0.1/cb", None, "native"),
        ("http://[::1]/cb", None, "native"),
        ("http://localhost:53682/callback", None, "native"),
        ("com.example.app:/cb", Some("native"), "native"),
        ("https://client.example/cb?tenant=1", None, "web"),
    ];
    for (uri, application_type, expected_type) in cases {
        let mut body = public_body(&[uri]);
        if let Some(application_type) = application_type {
            body["application_type"] = application_type.into();
        }
        let response = app.register(&body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{uri} should be accepted"
        );
        let registration: Value = response.json().await.unwrap();
        assert_eq!(registration["redirect_uris"], json!([uri]), "{uri}");
        assert_eq!(registration["application_type"], expected_type, "{uri}");
    }
    assert_eq!(app.stored_clients(TENANT).await.len(), cases.len());
}
db_test!(safe_redirect_uris_are_accepted);

async fn registration_metadata_is_validated(app: TestApp) {
    let base = public_body(&[REDIRECT_URI]);
    let changed = |name: &str, value: Value| {
        let mut body = base.clone();
        body[name] = value;
        body
    };
    let cases = [
        (
            changed("token_endpoint_auth_method", "private_key_jwt".into()),
            "invalid_client_metadata",
            "unsupported auth method",
        ),
        (
            changed("grant_types", json!(["implicit"])),
            "invalid_client_metadata",
            "implicit grant",
        ),
        (
            changed("grant_types", json!(["password"])),
            "invalid_client_metadata",
            "password grant",
        ),
        (
            changed("response_types", json!(["token"])),
            "invalid_client_metadata",
            "token response type",
        ),
        (
            changed("grant_types", json!(["client_credentials"])),
            "invalid_client_metadata",
            "client_credentials for a public client",
        ),
        (
            changed("application_type", "desktop".into()),
            "invalid_client_metadata",
            "unknown application_type",
        ),
        (
            changed("client_name", "x".repeat(201).into()),
            "invalid_client_metadata",
            "client_name over 200 characters",
        ),
        (
            changed("client_name", "name\u{7}with a bell".into()),
            "invalid_client_metadata",
            "control character in client_name",
        ),
        (
            changed("client_name", json!(42)),
            "invalid_client_metadata",
            "client_name that is not a string",
        ),
        (
            changed("logo_uri", "javascript:alert(1)".into()),
            "invalid_client_metadata",
            "script logo_uri",
        ),
        (
            changed("client_uri", "data:text/html,x".into()),
            "invalid_client_metadata",
            "data client_uri",
        ),
        (
            changed("tos_uri", "http://client.example/tos".into()),
            "invalid_client_metadata",
            "plain http tos_uri",
        ),
        (
            changed("scope", "mcp:tools\"".into()),
            "invalid_client_metadata",
            "malformed scope",
        ),
        (
            changed("contacts", json!(vec!["a@example.com"; 11])),
            "invalid_client_metadata",
            "more than ten contacts",
        ),
        (
            changed("redirect_uris", json!([])),
            "invalid_redirect_uri",
            "no redirect URI for the code grant",
        ),
        (
            changed("redirect_uris", "https://client.example/cb".into()),
            "invalid_client_metadata",
            "redirect_uris that is not a list",
        ),
        (
            changed("redirect_uris", json!([42])),
            "invalid_client_metadata",
            "redirect_uris with a number",
        ),
        (
            {
                let mut body = changed("redirect_uris", json!(["com.example.app:/cb"]));
                body["application_type"] = "web".into();
                body
            },
            "invalid_redirect_uri",
            "private-use scheme for a web client",
        ),
        (
            changed("software_statement", "eyJhbGciOiJub25lIn0.e30.".into()),
            "invalid_software_statement",
            "software statement",
        ),
    ];
    for (body, code, case) in cases {
        let response = app.register(&body).await;
        assert_rejected(response, code, case).await;
    }
    assert!(
        app.stored_clients(TENANT).await.is_empty(),
        "rejected registrations must store nothing"
    );
}
db_test!(registration_metadata_is_validated);

async fn key_material_is_rejected(app: TestApp) {
    let canary = Canary::start().await;
    let jwks_uri = canary.url("/jwks.json");
    let cases = [
        ("jwks_uri", json!(jwks_uri), "jwks_uri"),
        ("jwks", json!({"keys": []}), "jwks"),
    ];
    for (name, value, case) in cases {
        let mut body = public_body(&[REDIRECT_URI]);
        body[name] = value;
        let response = app.register(&body).await;
        assert_rejected(response, "invalid_client_metadata", case).await;
    }
    assert!(app.stored_clients(TENANT).await.is_empty());
    assert_eq!(
        canary.finish().await,
        0,
        "the server must not fetch a jwks_uri"
    );
}
db_test!(key_material_is_rejected);

async fn scope_is_trimmed_to_tenant_scopes(app: TestApp) {
    let mut body = public_body(&[REDIRECT_URI]);
    body["scope"] = "admin tenant:manage mcp:tools".into();
    let client = app.registered(TENANT, &body).await;
    assert_eq!(client.registration["scope"], "mcp:tools");
    let (uri, token) = management(&client);
    let read: Value = manage(&app, Method::GET, &uri, Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["scope"], "mcp:tools",
        "the stored scope is the trimmed one"
    );

    let (verifier, challenge) = pkce();
    let request = |scope: Option<&'static str>| {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
            ("resource", RS1),
        ];
        if let Some(scope) = scope {
            pairs.push(("scope", scope));
        }
        pairs
    };
    for scope in ["admin", "tenant:manage", "mcp:tools admin", "mcp:resources"] {
        let response = Browser::new(&app, TENANT)
            .authorize(&request(Some(scope)))
            .await;
        assert!(response.status().is_redirection(), "scope {scope:?}");
        let params = query_params(&location(&response));
        assert_eq!(
            params.get("error").map(String::as_str),
            Some("invalid_scope"),
            "scope {scope:?} is outside what the client registered"
        );
        assert_eq!(params.get("state").map(String::as_str), Some("xyz"));
        assert_eq!(params.get("iss"), Some(&app.issuer));
    }

    let location = Browser::new(&app, TENANT)
        .authorize_and_approve(&request(None), USER, PASSWORD)
        .await;
    let code = query_params(&location)
        .get("code")
        .cloned()
        .expect("no code in the redirect");
    let tokens = app.exchange(&client, &code, &verifier).await;
    assert_eq!(
        tokens.body["scope"], "mcp:tools",
        "without a requested scope the client gets what it registered"
    );
}
db_test!(scope_is_trimmed_to_tenant_scopes);

async fn oversized_registrations_are_rejected(app: TestApp) {
    let many_uris: Vec<String> = (0..1000)
        .map(|index| format!("https://client.example/cb{index}"))
        .collect();
    let over_limit: Vec<String> = (0..21)
        .map(|index| format!("https://client.example/cb{index}"))
        .collect();
    let long_uri = format!("https://client.example/{}", "a".repeat(10_000));
    let changed = |name: &str, value: Value| {
        let mut body = public_body(&[REDIRECT_URI]);
        body[name] = value;
        body
    };
    let cases = [
        (
            changed("client_name", "x".repeat(1 << 20).into()),
            "1 MiB body",
        ),
        (
            changed("redirect_uris", json!(many_uris)),
            "1000 redirect URIs",
        ),
        (
            changed("redirect_uris", json!(over_limit)),
            "21 redirect URIs",
        ),
        (
            changed("redirect_uris", json!([long_uri])),
            "one redirect URI of 10,000 characters",
        ),
        (
            changed("contacts", json!(["x".repeat(300)])),
            "contact of 300 characters",
        ),
    ];
    for (body, case) in cases {
        let response = app.register(&body).await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{case}: expected 400 or 413, got {status}"
        );
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            ["invalid_client_metadata", "invalid_redirect_uri"]
                .contains(&body["error"].as_str().unwrap_or_default()),
            "{case}: unexpected body {body}"
        );
    }
    assert!(
        app.stored_clients(TENANT).await.is_empty(),
        "rejected registrations must store nothing"
    );
}
db_test!(oversized_registrations_are_rejected);

async fn malformed_bodies_are_rejected(app: TestApp) {
    let valid = public_body(&[REDIRECT_URI]).to_string();
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_object = format!(
        "{{\"redirect_uris\":{}\"x\"{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: [(Option<&str>, Vec<u8>, &str); 10] = [
        (Some("text/plain"), valid.clone().into_bytes(), "text/plain"),
        (None, valid.clone().into_bytes(), "no Content-Type"),
        (
            Some("application/x-www-form-urlencoded"),
            b"redirect_uris=https://client.example/cb".to_vec(),
            "form body",
        ),
        (
            Some("application/json"),
            valid.as_bytes()[..valid.len() / 2].to_vec(),
            "truncated JSON",
        ),
        (
            Some("application/json"),
            nested.into_bytes(),
            "arrays nested 10,000 levels",
        ),
        (
            Some("application/json"),
            nested_object.into_bytes(),
            "redirect_uris nested 10,000 levels",
        ),
        (
            Some("application/json"),
            b"[]".to_vec(),
            "array instead of an object",
        ),
        (
            Some("application/json"),
            b"\"https://client.example/cb\"".to_vec(),
            "string instead of an object",
        ),
        (Some("application/json"), Vec::new(), "empty body"),
        (
            Some("application/json"),
            b"{\"client_name\":\"\xff\xfe\"}".to_vec(),
            "invalid UTF-8",
        ),
    ];
    for (content_type, body, case) in cases {
        let mut request = app.http.post(app.endpoint(TENANT, "/register")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_rejected(response, "invalid_client_metadata", case).await;
    }
    assert!(
        app.stored_clients(TENANT).await.is_empty(),
        "rejected registrations must store nothing"
    );
}
db_test!(malformed_bodies_are_rejected);

async fn registration_rate_limit_returns_429(app: TestApp) {
    let limited = spawn_app_with(app.db, |settings| {
        settings.registration_rate_limit_per_minute = 5
    })
    .await
    .expect("starting the rate-limited server failed");
    for attempt in 1..=5 {
        let response = limited.register(&public_body(&[REDIRECT_URI])).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registration {attempt} of 5 is within the limit"
        );
    }
    let response = limited.register(&public_body(&[REDIRECT_URI])).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .expect("a 429 needs a numeric Retry-After");
    assert!(retry_after > 0, "Retry-After must be positive");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].is_string(),
        "the 429 needs an OAuth error body"
    );
    assert_eq!(
        limited.stored_clients(TENANT).await.len(),
        5,
        "the rejected registration must store nothing"
    );
}
db_test!(registration_rate_limit_returns_429);

async fn loopback_only_client_becomes_native(app: TestApp) {
    let cases = [
        (
            "http://localhost:53682/callback",
            "http://localhost:40123/callback",
        ),
        (
            "http://127.0.0.1:53682/callback",
            "http://127.0.0.1:40123/callback",
        ),
    ];
    for (registered, requested) in cases {
        let response = app.register(&public_body(&[registered])).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{registered}");
        let registration: Value = response.json().await.unwrap();
        assert_eq!(
            registration["application_type"], "native",
            "{registered}: loopback-only redirect URIs make a native client"
        );
        let client = TestClient {
            client_id: registration["client_id"].as_str().unwrap().to_owned(),
            client_secret: None,
            redirect_uri: requested.to_owned(),
            registration,
        };
        let (code, verifier) = app.code_for(&client).await;
        app.exchange(&client, &code, &verifier).await;
    }

    // With an https URI as well the client is a web client, and ports must match.
    let mixed = app
        .registered(
            TENANT,
            &public_body(&[WEB_REDIRECT_URI, "http://127.0.0.1:53682/callback"]),
        )
        .await;
    assert_eq!(mixed.registration["application_type"], "web");
    let (_, challenge) = pkce();
    let response = Browser::new(&app, TENANT)
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &mixed.client_id),
            ("redirect_uri", "http://127.0.0.1:40123/callback"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", RS1),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}
db_test!(loopback_only_client_becomes_native);

async fn registered_uris_are_never_fetched(app: TestApp) {
    let canary = Canary::start().await;
    let mut body = public_body(&[REDIRECT_URI]);
    body["logo_uri"] = canary.url("/logo.png").into();
    body["client_uri"] = canary.url("/").into();
    body["tos_uri"] = canary.url("/tos").into();
    body["policy_uri"] = canary.url("/policy").into();
    let client = app.registered(TENANT, &body).await;
    assert_eq!(client.registration["logo_uri"], canary.url("/logo.png"));

    let (_, challenge) = pkce();
    let browser = Browser::new(&app, TENANT);
    let response = browser
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", RS1),
        ])
        .await;
    let login_page = response.text().await.unwrap();
    let response = browser.login(&login_page, USER, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response
        .headers()
        .get("content-security-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'"),
        "a browser must not load client images either: {csp}"
    );
    let consent_page = response.text().await.unwrap();
    assert!(
        consent_page.contains("name=\"decision\""),
        "not a consent page"
    );

    assert_eq!(
        canary.finish().await,
        0,
        "the server must not fetch registered URIs"
    );
}
db_test!(registered_uris_are_never_fetched);

async fn unknown_tenant_has_no_registration(app: TestApp) {
    let response = app
        .register_at("nosuch", &public_body(&[REDIRECT_URI]))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(app.stored_clients(TENANT).await.is_empty());
}
db_test!(unknown_tenant_has_no_registration);
