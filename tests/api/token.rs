//! The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6), revocation (RFC 7009),
//! introspection (RFC 7662), and discovery: metadata (RFC 8414) and JWKS (RFC 7517).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use josekit::jwk::Jwk;
use josekit::jws::{ES256, HS256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::db_test;
use crate::helpers::*;

/// Number of requests fired at once in the race tests.
const RACERS: usize = 64;

// ---------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------

/// Runs the browser flow `count` times in one browser and returns each code with its
/// verifier. The first run logs in and approves, and later runs reuse the session and the
/// remembered consent.
async fn codes_for(app: &TestApp, client: &TestClient, count: usize) -> Vec<(String, String)> {
    let browser = Browser::new(app, TENANT);
    let mut codes = Vec::with_capacity(count);
    for _ in 0..count {
        codes.push(code_from(&browser, client).await);
    }
    codes
}

/// Returns `revoked_reason` of every refresh-token family of `client_id`, read with plain
/// SQL the way an operator would.
async fn revoked_reasons(app: &TestApp, client_id: &str) -> Vec<Option<String>> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url)
        .await
        .expect("connecting to the test database failed");
    let rows = sqlx::query(
        "SELECT revoked_reason FROM refresh_token_families WHERE client_id = $1 \
         ORDER BY created_at",
    )
    .bind(client_id)
    .fetch_all(&pool)
    .await
    .expect("reading refresh_token_families failed");
    pool.close().await;
    rows.iter()
        .map(|row| row.try_get("revoked_reason").unwrap())
        .collect()
}

/// POSTs `body` as-is to `path` of `acme`.
async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> Response {
    let mut request = app.http.post(app.endpoint(TENANT, path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    request.send().await.expect("POST failed")
}

/// Introspects `token` as `client` and returns the status and body.
async fn introspect_as(app: &TestApp, client: &TestClient, token: &str) -> (StatusCode, Value) {
    let response = app
        .client_post(TENANT, "/introspect", client, &[("token", token)])
        .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts that introspection reports `token` inactive with no other member.
async fn assert_inactive(app: &TestApp, token: &str, case: &str) {
    let body = app.introspect(token).await;
    assert_eq!(body, json!({"active": false}), "{case}");
}

async fn assert_active(app: &TestApp, token: &str, case: &str) {
    let body = app.introspect(token).await;
    assert_eq!(body["active"], true, "{case}: {body}");
}

async fn revoke_as(app: &TestApp, client: &TestClient, token: &str) -> Response {
    app.client_post(TENANT, "/revoke", client, &[("token", token)])
        .await
}

/// Fires `RACERS` identical token requests at once, each from its own HTTP client (so on
/// its own connection) and released by a shared start barrier, and returns every status
/// with its body.
///
/// The connections are not opened before the barrier: under load, an idle connection can
/// reach the server's keep-alive timeout while the slowest racer is still connecting.
async fn race_token_requests(app: &TestApp, form: Vec<(String, String)>) -> Vec<(u16, Value)> {
    let barrier = Arc::new(Barrier::new(RACERS));
    let form = Arc::new(form);
    let mut tasks = Vec::with_capacity(RACERS);
    for _ in 0..RACERS {
        let barrier = Arc::clone(&barrier);
        let form = Arc::clone(&form);
        let http = plain_client();
        let token = app.endpoint(TENANT, "/token");
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = http
                .post(token)
                .form(form.as_slice())
                .send()
                .await
                .expect("token request failed");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut outcomes = Vec::with_capacity(RACERS);
    for task in tasks {
        outcomes.push(task.await.expect("racing task panicked"));
    }
    outcomes
}

/// Splits race outcomes into successes, `invalid_grant` failures and everything else.
fn tally(outcomes: &[(u16, Value)]) -> (Vec<&Value>, usize, Vec<&(u16, Value)>) {
    let successes = outcomes
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    let invalid_grant = outcomes
        .iter()
        .filter(|(status, body)| *status == 400 && body["error"] == "invalid_grant")
        .count();
    let other = outcomes
        .iter()
        .filter(|(status, body)| {
            *status != 200 && !(*status == 400 && body["error"] == "invalid_grant")
        })
        .collect();
    (successes, invalid_grant, other)
}

fn owned_form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// Percent-encodes every byte, so the server must form-decode to recover the value.
fn percent_encode_all(value: &str) -> String {
    value.bytes().map(|byte| format!("%{byte:02X}")).collect()
}

async fn jwks_of(app: &TestApp, tenant: &str) -> Value {
    let response = app
        .http
        .get(app.endpoint(tenant, "/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "JWKS request failed");
    response.json().await.expect("JWKS is not JSON")
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("JWKS has no keys array")
        .iter()
        .map(|key| key["kid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Replaces the last base64url character of `token` by the one whose 6-bit value differs
/// in the bits of `mask`. An ES256 signature is 64 bytes, so the last of its 86 characters
/// carries 2 signature bits (mask `0b110000`) and 4 bits that must be zero.
fn flip_last_character(token: &str, mask: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (rest, last) = token.split_at(token.len() - 1);
    let value = ALPHABET
        .iter()
        .position(|&byte| byte == last.as_bytes()[0])
        .expect("the token does not end in a base64url character") as u8;
    format!("{rest}{}", ALPHABET[usize::from(value ^ mask)] as char)
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

// ---------------------------------------------------------------------------------------
// Single use under concurrency and replay
// ---------------------------------------------------------------------------------------

async fn concurrent_code_redemption_succeeds_once(app: TestApp) {
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client).await;
    let form = owned_form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &client.redirect_uri),
        ("code_verifier", &verifier),
        ("resource", RS1),
        ("client_id", &client.client_id),
    ]);

    let outcomes = race_token_requests(&app, form).await;
    let (successes, invalid_grant, other) = tally(&outcomes);

    assert_eq!(successes.len(), 1, "exactly one redemption must succeed");
    assert_eq!(
        invalid_grant,
        RACERS - 1,
        "every other redemption must fail"
    );
    assert!(other.is_empty(), "unexpected outcomes: {other:?}");

    // The losers presented a used code, and a used code revokes what it issued.
    let winner = successes[0];
    let refresh_token = winner["refresh_token"].as_str().unwrap();
    let response = app.refresh(&client, refresh_token).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_inactive(
        &app,
        winner["access_token"].as_str().unwrap(),
        "access token of a code presented again",
    )
    .await;
    assert_eq!(
        revoked_reasons(&app, &client.client_id).await,
        [Some("authorization_code_reuse".to_owned())]
    );
}
db_test!(concurrent_code_redemption_succeeds_once);

async fn concurrent_refresh_rotates_once(app: TestApp) {
    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let refresh_token = tokens.refresh_token.clone().unwrap();
    let form = owned_form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token),
        ("client_id", &client.client_id),
    ]);

    let outcomes = race_token_requests(&app, form).await;
    let (successes, invalid_grant, other) = tally(&outcomes);

    assert_eq!(successes.len(), 1, "exactly one refresh must succeed");
    assert_eq!(invalid_grant, RACERS - 1, "every other refresh must fail");
    assert!(other.is_empty(), "unexpected outcomes: {other:?}");

    // Each loser presented a token that had just been rotated, which is reuse: the family
    // is revoked, so no refresh token of the lineage works afterwards.
    let successor = successes[0]["refresh_token"].as_str().unwrap();
    let response = app.refresh(&client, successor).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = app.refresh(&client, &refresh_token).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_inactive(
        &app,
        successes[0]["access_token"].as_str().unwrap(),
        "access token of the winning refresh",
    )
    .await;
    assert_eq!(
        revoked_reasons(&app, &client.client_id).await,
        [Some("refresh_token_reuse".to_owned())]
    );
}
db_test!(concurrent_refresh_rotates_once);

async fn code_replay_revokes_issued_tokens(app: TestApp) {
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client).await;
    let first = app.exchange(&client, &code, &verifier).await;
    assert_active(&app, &first.access_token, "access token before the replay").await;

    let replay = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", &verifier),
                ("resource", RS1),
            ],
        )
        .await;
    assert_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let response = app
        .refresh(&client, first.refresh_token.as_deref().unwrap())
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_inactive(&app, &first.access_token, "access token of a replayed code").await;
    assert_eq!(
        revoked_reasons(&app, &client.client_id).await,
        [Some("authorization_code_reuse".to_owned())]
    );
}
db_test!(code_replay_revokes_issued_tokens);

async fn refresh_reuse_revokes_family(app: TestApp) {
    let client = app.public_client().await;
    let first = app.tokens_for(&client).await;
    let rt0 = first.refresh_token.clone().unwrap();

    let response = app.refresh(&client, &rt0).await;
    assert_eq!(response.status(), StatusCode::OK, "first refresh failed");
    let second = tokens(response).await;
    let rt1 = second.refresh_token.clone().unwrap();
    assert_ne!(rt0, rt1, "a refresh must rotate the refresh token");
    let (_, claims) = jwt_parts(&second.access_token);
    assert_eq!(claims["aud"], RS1, "a refreshed token keeps the audience");
    assert_active(&app, &second.access_token, "access token from the refresh").await;

    let reuse = app.refresh(&client, &rt0).await;
    assert_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let response = app.refresh(&client, &rt1).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_inactive(&app, &second.access_token, "access token from the refresh").await;
    assert_inactive(&app, &first.access_token, "access token from the code").await;
    assert_eq!(
        revoked_reasons(&app, &client.client_id).await,
        [Some("refresh_token_reuse".to_owned())]
    );
}
db_test!(refresh_reuse_revokes_family);

async fn refresh_narrows_scope_not_grant(app: TestApp) {
    let client = app.public_client().await;
    let granted = app.tokens_for(&client).await;
    let rt0 = granted.refresh_token.unwrap();

    let rejected = [
        (
            vec![("scope", "mcp:tools admin")],
            "invalid_scope",
            "scope beyond the original grant",
        ),
        (
            vec![("resource", RS2)],
            "invalid_target",
            "resource other than the grant's",
        ),
        (
            vec![("resource", "https://unknown.example/mcp")],
            "invalid_target",
            "unregistered resource",
        ),
    ];
    for (extra, error, case) in rejected {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", &rt0)];
        form.extend(extra);
        let response = app.token(&client, &form).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{case}: {body}");
    }

    // A rejected refresh leaves the token usable.
    let response = app
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt0),
                ("scope", "mcp:tools"),
                ("resource", RS1),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "narrowing refresh failed"
    );
    let narrowed = tokens(response).await;
    assert_eq!(narrowed.body["scope"], "mcp:tools");
    let (_, claims) = jwt_parts(&narrowed.access_token);
    assert_eq!(claims["scope"], "mcp:tools");

    // The successor keeps the original scope, so it can widen back to it.
    let response = app
        .refresh(&client, narrowed.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK, "second refresh failed");
    let widened = tokens(response).await;
    let (_, claims) = jwt_parts(&widened.access_token);
    let mut scopes: Vec<&str> = claims["scope"].as_str().unwrap().split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["mcp:resources", "mcp:tools"]);
}
db_test!(refresh_narrows_scope_not_grant);

// ---------------------------------------------------------------------------------------
// Binding of codes and refresh tokens to their client, PKCE, redirect URI and resource
// ---------------------------------------------------------------------------------------

async fn code_redeems_only_for_its_client(app: TestApp) {
    let client_a = app.confidential_client().await;
    let client_b = app.confidential_client().await;
    let (code, verifier) = app.code_for(&client_a).await;
    let response = app
        .token(
            &client_b,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &client_a.redirect_uri),
                ("code_verifier", &verifier),
                ("resource", RS1),
            ],
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let public_a = app.public_client().await;
    let public_b = app.public_client().await;
    let (code, verifier) = app.code_for(&public_a).await;
    let response = app
        .token(
            &public_b,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &public_a.redirect_uri),
                ("code_verifier", &verifier),
                ("resource", RS1),
            ],
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}
db_test!(code_redeems_only_for_its_client);

async fn refresh_token_bound_to_client(app: TestApp) {
    let client_a = app.confidential_client().await;
    let client_b = app.confidential_client().await;
    let tokens_a = app.tokens_for(&client_a).await;
    let rt_a = tokens_a.refresh_token.unwrap();

    let response = app.refresh(&client_b, &rt_a).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let public_b = app.public_client().await;
    let response = app.refresh(&public_b, &rt_a).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let response = app.refresh(&client_a, &rt_a).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the rightful client must still refresh after another client presented its token"
    );
    assert_eq!(revoked_reasons(&app, &client_a.client_id).await, [None]);
}
db_test!(refresh_token_bound_to_client);

/// Redeems `code` for `client`, sending `verifier` only when given.
async fn exchange_with_verifier(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    verifier: Option<&str>,
) -> Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("resource", RS1),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    app.token(client, &form).await
}

async fn confidential_client_must_prove_pkce(app: TestApp) {
    let client = app.confidential_client().await;
    let codes = codes_for(&app, &client, 3).await;
    let (code, _) = &codes[0];
    let response = exchange_with_verifier(&app, &client, code, None).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let (code, verifier) = &codes[1];
    let (wrong_verifier, _) = pkce();
    let response = exchange_with_verifier(&app, &client, code, Some(&wrong_verifier)).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // A wrong verifier uses the code up, so guessing gets one try.
    let response = exchange_with_verifier(&app, &client, code, Some(verifier)).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let (code, verifier) = &codes[2];
    let response = exchange_with_verifier(&app, &client, code, Some(verifier)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the right verifier failed"
    );
}
db_test!(confidential_client_must_prove_pkce);

async fn malformed_code_verifier_is_rejected(app: TestApp) {
    let client = app.public_client().await;
    let cases = [
        ("a".repeat(42), "42 characters, one too short"),
        ("a".repeat(129), "129 characters, one too long"),
        (format!("{}!", "a".repeat(43)), "exclamation mark"),
        (format!("{} ", "a".repeat(43)), "trailing space"),
        (format!("{}+", "a".repeat(43)), "plus sign"),
        (format!("{}é", "a".repeat(43)), "non-ASCII letter"),
        (format!("{}%00", "a".repeat(43)), "percent sign"),
    ];
    let codes = codes_for(&app, &client, cases.len()).await;
    for ((verifier, case), (code, _)) in cases.iter().zip(&codes) {
        let response = app
            .token(
                &client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &client.redirect_uri),
                    ("code_verifier", verifier),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
    }
}
db_test!(malformed_code_verifier_is_rejected);

async fn redirect_uri_must_match_code(app: TestApp) {
    let client = app.public_client().await;
    let cases = [
        (
            "http://127.0.0.1:5555/callback",
            "loopback with another port",
        ),
        ("http://127.0.0.1/callback/", "trailing slash"),
        ("http://127.0.0.1/other", "other path"),
        ("https://127.0.0.1/callback", "https instead of http"),
        (
            "http://localhost/callback",
            "localhost instead of 127.0.0.1",
        ),
        ("https://attacker.example/callback", "other host"),
    ];
    let codes = codes_for(&app, &client, cases.len()).await;
    for ((redirect_uri, case), (code, verifier)) in cases.iter().zip(&codes) {
        let response = app
            .token(
                &client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
    }
}
db_test!(redirect_uri_must_match_code);

async fn resource_must_match_code(app: TestApp) {
    let client = app.public_client().await;
    let cases: [(&[&str], &str); 4] = [
        (&[RS2], "another registered resource"),
        (&["https://unknown.example/mcp"], "unregistered resource"),
        (
            &["https://mcp.example.com/mcp/"],
            "resource with a trailing slash",
        ),
        (&[RS1, RS2], "two resources"),
    ];
    let codes = codes_for(&app, &client, cases.len()).await;
    for ((resources, case), (code, verifier)) in cases.iter().zip(&codes) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        form.extend(resources.iter().map(|resource| ("resource", *resource)));
        let response = app.token(&client, &form).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_target", "{case}: {body}");
    }
}
db_test!(resource_must_match_code);

async fn expired_code_is_rejected(app: TestApp) {
    let app = spawn_app_with(app.db, |settings| settings.lifetimes.code = 1)
        .await
        .expect("the database of the first app is available");
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let response = app.redeem(&client, &code, &verifier).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}
db_test!(expired_code_is_rejected);

// ---------------------------------------------------------------------------------------
// Client authentication
// ---------------------------------------------------------------------------------------

async fn client_authentication_methods_enforced(app: TestApp) {
    let basic_client = app.confidential_client().await;
    let post_client = app
        .confidential_client_at(TENANT, "client_secret_post")
        .await;
    let public = app.public_client().await;
    let basic_id = basic_client.client_id.as_str();
    let basic_secret = basic_client.client_secret.clone().unwrap();
    let post_id = post_client.client_id.as_str();
    let post_secret = post_client.client_secret.clone().unwrap();
    let public_id = public.client_id.as_str();

    let encoded_header = |scheme: &str, id: &str, secret: &str| {
        let credentials = format!("{}:{}", percent_encode_all(id), percent_encode_all(secret));
        format!("{scheme} {}", STANDARD.encode(credentials))
    };
    let raw_header = |value: &str| format!("Basic {}", STANDARD.encode(value));

    struct Case {
        name: &'static str,
        authorization: Option<String>,
        credentials: Vec<(&'static str, String)>,
        status: StatusCode,
        error: Option<&'static str>,
    }
    let case = |name, authorization, credentials: &[(&'static str, &str)], status, error| Case {
        name,
        authorization,
        credentials: credentials
            .iter()
            .map(|(key, value)| (*key, (*value).to_owned()))
            .collect(),
        status,
        error,
    };
    let cases = [
        case(
            "lowercase basic scheme with every byte percent-encoded",
            Some(encoded_header("basic", basic_id, &basic_secret)),
            &[],
            StatusCode::OK,
            None,
        ),
        case(
            "uppercase BASIC scheme",
            Some(basic(basic_id, &basic_secret).replacen("Basic", "BASIC", 1)),
            &[],
            StatusCode::OK,
            None,
        ),
        case(
            "basic header with the same client_id in the body",
            Some(basic(basic_id, &basic_secret)),
            &[("client_id", basic_id)],
            StatusCode::OK,
            None,
        ),
        case(
            "client_secret_post",
            None,
            &[("client_id", post_id), ("client_secret", &post_secret)],
            StatusCode::OK,
            None,
        ),
        case(
            "wrong secret in the basic header",
            Some(basic(basic_id, "wrong-secret")),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "wrong secret in the body",
            None,
            &[("client_id", post_id), ("client_secret", "wrong-secret")],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "empty secret in the basic header",
            Some(basic(basic_id, "")),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "secret of another client",
            Some(basic(basic_id, &post_secret)),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "basic client authenticating in the body",
            None,
            &[("client_id", basic_id), ("client_secret", &basic_secret)],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "post client authenticating with a basic header",
            Some(basic(post_id, &post_secret)),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "confidential client sending only its client_id",
            None,
            &[("client_id", basic_id)],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "basic header and client_secret in the body",
            Some(basic(basic_id, &basic_secret)),
            &[("client_secret", &basic_secret)],
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
        ),
        case(
            "basic header and another client_id in the body",
            Some(basic(basic_id, &basic_secret)),
            &[("client_id", post_id)],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "public client sending a secret in the body",
            None,
            &[("client_id", public_id), ("client_secret", "made-up")],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "public client sending a basic header",
            Some(basic(public_id, "made-up")),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "unknown client in the basic header",
            Some(basic("no-such-client", "secret")),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "unknown client_id in the body",
            None,
            &[("client_id", "no-such-client")],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "no client authentication",
            None,
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "Bearer scheme",
            Some(format!("Bearer {basic_secret}")),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "basic header that is not base64",
            Some("Basic !!!not-base64!!!".to_owned()),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "basic header without a colon",
            Some(raw_header(basic_id)),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "basic header with an empty client id",
            Some(raw_header(&format!(":{basic_secret}"))),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        case(
            "scheme without credentials",
            Some("Basic".to_owned()),
            &[],
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
    ];

    for case in cases {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("resource", RS1.to_owned()),
        ];
        form.extend(case.credentials);
        let response = post_token(&app, case.authorization.as_deref(), &form).await;
        let name = case.name;
        assert_eq!(response.status(), case.status, "{name}");
        if response.status() == StatusCode::UNAUTHORIZED {
            assert!(
                response.headers().contains_key("www-authenticate"),
                "{name}: 401 without WWW-Authenticate"
            );
        }
        let body: Value = response.json().await.unwrap();
        match case.error {
            Some(error) => {
                assert_eq!(body["error"], error, "{name}: {body}");
                assert!(body.get("access_token").is_none(), "{name}: {body}");
            }
            None => assert!(body["access_token"].is_string(), "{name}: {body}"),
        }
    }

    // A client's registered method is named only to a caller that presented its secret.
    let probes = [
        (
            None,
            vec![("client_id", basic_id), ("client_secret", "wrong-secret")],
        ),
        (Some(basic(post_id, "wrong-secret")), vec![]),
        (None, vec![("client_id", basic_id)]),
    ];
    for (authorization, credentials) in probes {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", RS1)];
        form.extend(credentials);
        let response = post_token(&app, authorization.as_deref(), &form).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        let description = body["error_description"].as_str().unwrap();
        assert!(
            !description.contains("client_secret_"),
            "{form:?} learned the method: {description}"
        );
    }
}
db_test!(client_authentication_methods_enforced);

/// Posts `form` to the token endpoint of `acme`, with an `Authorization` header if given.
async fn post_token<V: serde::Serialize>(
    app: &TestApp,
    authorization: Option<&str>,
    form: &[(&str, V)],
) -> reqwest::Response {
    let mut request = app.http.post(app.endpoint(TENANT, "/token")).form(form);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    request.send().await.unwrap()
}

// ---------------------------------------------------------------------------------------
// Client credentials grant
// ---------------------------------------------------------------------------------------

async fn client_credentials_token_names_client(app: TestApp) {
    let client = app.confidential_client().await;
    let response = app
        .token(
            &client,
            &[("grant_type", "client_credentials"), ("resource", RS2)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = tokens(response).await;
    assert!(
        tokens.refresh_token.is_none(),
        "client_credentials must not issue a refresh token: {}",
        tokens.body
    );
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["scope"], "mcp:tools");
    let (header, claims) = jwt_parts(&tokens.access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["aud"], RS2);
    assert_eq!(claims["sub"], client.client_id.as_str());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["iss"], app.issuer);

    let body = app.introspect(&tokens.access_token).await;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["sub"], client.client_id.as_str(), "{body}");

    // The token lives only as long as its client.
    let registration_token = client.registration["registration_access_token"]
        .as_str()
        .unwrap();
    let deleted = app
        .http
        .delete(app.endpoint(TENANT, &format!("/register/{}", client.client_id)))
        .bearer_auth(registration_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_inactive(&app, &tokens.access_token, "token of a deleted client").await;
}
db_test!(client_credentials_token_names_client);

async fn client_credentials_rejects_bad_requests(app: TestApp) {
    let confidential = app.confidential_client().await;
    let public = app.public_client().await;
    let code_only = app
        .registered(
            TENANT,
            &json!({
                "redirect_uris": ["https://client.example/cb"],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }),
        )
        .await;

    // Client, extra parameters, expected error, case.
    type Case<'a> = (&'a TestClient, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 9] = [
        (
            &public,
            &[("resource", RS1)],
            "unauthorized_client",
            "public client",
        ),
        (
            &code_only,
            &[("resource", RS1)],
            "unauthorized_client",
            "client not registered for the grant",
        ),
        (
            &confidential,
            &[("resource", RS1), ("scope", "admin")],
            "invalid_scope",
            "scope no resource has",
        ),
        (
            &confidential,
            &[("resource", RS2), ("scope", "mcp:resources")],
            "invalid_scope",
            "scope of another resource",
        ),
        (
            &confidential,
            &[("scope", "mcp:tools")],
            "invalid_target",
            "no resource while the tenant has several",
        ),
        (
            &confidential,
            &[("resource", "https://unknown.example/mcp")],
            "invalid_target",
            "unregistered resource",
        ),
        (
            &confidential,
            &[("resource", "https://mcp.example.com/mcp#frag")],
            "invalid_target",
            "resource with a fragment",
        ),
        (
            &confidential,
            &[("resource", RS1), ("resource", RS2)],
            "invalid_target",
            "two resources",
        ),
        (
            &confidential,
            &[("resource", BETA_RS)],
            "invalid_target",
            "resource of another tenant",
        ),
    ];
    for (client, extra, error, case) in cases {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let response = app.token(client, &form).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{case}: {body}");
        assert!(body["error_description"].is_string(), "{case}: {body}");
    }
}
db_test!(client_credentials_rejects_bad_requests);

async fn single_resource_tenant_defaults_audience(app: TestApp) {
    let client = app
        .confidential_client_at(OTHER_TENANT, "client_secret_basic")
        .await;
    let response = app
        .token_at(
            OTHER_TENANT,
            &client,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = tokens(response).await;
    let (_, claims) = jwt_parts(&tokens.access_token);
    assert_eq!(claims["aud"], BETA_RS);
    assert_eq!(claims["iss"], app.issuer_of(OTHER_TENANT));
}
db_test!(single_resource_tenant_defaults_audience);

// ---------------------------------------------------------------------------------------
// Request syntax at the token endpoint
// ---------------------------------------------------------------------------------------

async fn token_response_is_not_cacheable(app: TestApp) {
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client).await;
    let response = app.redeem(&client, &code, &verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].is_string(), "{body}");

    let failed = app
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "unknown"),
            ],
        )
        .await;
    assert_eq!(failed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(failed.headers()["cache-control"], "no-store");
}
db_test!(token_response_is_not_cacheable);

async fn malformed_token_requests_get_oauth_errors(app: TestApp) {
    let public = app.public_client().await;
    let id = public.client_id.as_str();
    let form = "application/x-www-form-urlencoded";
    let many_parameters: String = (0..65).map(|index| format!("p{index}=1&")).collect();
    let huge = format!(
        "grant_type=client_credentials&client_id={id}&padding={}",
        "a".repeat(70 * 1024)
    );
    let long_code = format!(
        "grant_type=authorization_code&client_id={id}&code_verifier={}&code={}",
        "a".repeat(43),
        "c".repeat(60 * 1024)
    );

    // Case, Content-Type, body, expected status and error.
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "grant_type twice",
            Some(form),
            format!("grant_type=refresh_token&grant_type=refresh_token&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "code twice",
            Some(form),
            format!("grant_type=authorization_code&code=a&code=b&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "client_id twice",
            Some(form),
            format!("grant_type=refresh_token&refresh_token=r&client_id={id}&client_id={id}")
                .into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type twice beside two resources",
            Some(form),
            format!(
                "grant_type=client_credentials&grant_type=client_credentials&client_id={id}\
                 &resource={RS1}&resource={RS2}"
            )
            .into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "code twice beside two resources",
            Some(form),
            format!(
                "grant_type=authorization_code&code=a&code=b&client_id={id}\
                 &resource={RS1}&resource={RS2}"
            )
            .into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type password",
            Some(form),
            format!("grant_type=password&username=alice&password=x&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "grant_type implicit",
            Some(form),
            format!("grant_type=implicit&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "grant_type device code",
            Some(form),
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id={id}"
            )
            .into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "grant_type in upper case",
            Some(form),
            format!("grant_type=AUTHORIZATION_CODE&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "grant_type of invalid UTF-8",
            Some(form),
            format!("grant_type=%FF%FE&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type with a NUL byte",
            Some(form),
            format!("grant_type=client_credentials%00&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "no grant_type",
            Some(form),
            format!("client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "JSON body",
            Some("application/json"),
            json!({"grant_type": "client_credentials", "client_id": id})
                .to_string()
                .into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "no Content-Type",
            None,
            format!("grant_type=client_credentials&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "text/plain body",
            Some("text/plain"),
            format!("grant_type=client_credentials&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "multipart body",
            Some("multipart/form-data; boundary=x"),
            b"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "empty body",
            Some(form),
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "binary bytes",
            Some(form),
            vec![0xFF, 0xFE, 0x00, 0x80, 0xC3, 0x28, 0x01, 0x7F, 0xF0, 0x9F],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "body larger than 64 KiB",
            Some(form),
            huge.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "parameter without '='",
            Some(form),
            b"grant_type".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "only separators",
            Some(form),
            b"&&&===&=&".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "broken percent escapes",
            Some(form),
            b"%zz=%&grant_type%=%%".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "more than 64 parameters",
            Some(form),
            format!("{many_parameters}grant_type=client_credentials&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "authorization_code without code",
            Some(form),
            format!("grant_type=authorization_code&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "refresh_token without refresh_token",
            Some(form),
            format!("grant_type=refresh_token&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "refresh_token with an empty refresh_token",
            Some(form),
            format!("grant_type=refresh_token&refresh_token=&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown code of 60 KiB",
            Some(form),
            long_code.into(),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "refresh token with NUL and control bytes",
            Some(form),
            format!("grant_type=refresh_token&refresh_token=%00%01%02&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown refresh token",
            Some(form),
            format!("grant_type=refresh_token&refresh_token=%01%02unknown&client_id={id}").into(),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
    ];

    for (case, content_type, body, status, error) in cases {
        let response = post_raw(&app, "/token", content_type, None, body).await;
        assert!(
            !response.status().is_server_error(),
            "{case}: server error {}",
            response.status()
        );
        assert_eq!(response.status(), status, "{case}");
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{case}"
        );
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{case}: error body is not JSON"));
        assert_eq!(body["error"], error, "{case}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{case}: no error_description in {body}"
        );
    }
}
db_test!(malformed_token_requests_get_oauth_errors);

async fn form_with_charset_is_accepted(app: TestApp) {
    let client = app.confidential_client().await;
    let authorization = basic(&client.client_id, client.client_secret.as_deref().unwrap());
    let body = format!("grant_type=client_credentials&resource={RS1}");
    let response = post_raw(
        &app,
        "/token",
        Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        Some(&authorization),
        body.into(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}
db_test!(form_with_charset_is_accepted);

// ---------------------------------------------------------------------------------------
// Access token format
// ---------------------------------------------------------------------------------------

async fn access_token_follows_jwt_profile(app: TestApp) {
    let client = app.public_client().await;
    let browser = Browser::new(&app, TENANT);
    let (verifier, challenge) = pkce();
    let location = browser
        .authorize_and_approve(
            &[
                ("response_type", "code"),
                ("client_id", &client.client_id),
                ("redirect_uri", &client.redirect_uri),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "s1"),
                ("resource", RS1),
                ("scope", "mcp:tools"),
            ],
            USER,
            PASSWORD,
        )
        .await;
    let params = query_params(&location);
    let tokens = app.exchange(&client, &params["code"], &verifier).await;
    let (header, claims) = jwt_parts(&tokens.access_token);

    let metadata: Value = app
        .get("/.well-known/oauth-authorization-server/t/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], app.issuer, "issuer in the metadata");
    assert_eq!(claims["iss"], app.issuer, "iss in the access token");
    assert_eq!(
        params["iss"], app.issuer,
        "iss in the authorization response"
    );

    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().expect("no kid in the header");
    let jwks = jwks_of(&app, TENANT).await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid)
        .expect("the token's kid is not in the JWKS");
    let public = Jwk::from_map(key.as_object().unwrap().clone()).unwrap();
    let verifier = ES256.verifier_from_jwk(&public).unwrap();
    jwt::decode_with_verifier(&tokens.access_token, &verifier)
        .expect("the signature does not verify with the published key");

    assert_eq!(claims["sub"], USER);
    assert_eq!(
        claims["aud"], RS1,
        "aud must be the requested resource itself"
    );
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["scope"], "mcp:tools");
    assert_eq!(tokens.body["scope"], "mcp:tools");
    let issued_at = claims["iat"]
        .as_i64()
        .expect("iat is missing or not an integer");
    let expires_at = claims["exp"]
        .as_i64()
        .expect("exp is missing or not an integer");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((issued_at - now).abs() <= 60, "iat {issued_at} is not now");
    assert_eq!(
        tokens.body["expires_in"].as_i64(),
        Some(expires_at - issued_at),
        "expires_in must equal exp - iat"
    );
    assert!(
        claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()),
        "no jti"
    );

    let response = app
        .refresh(&client, tokens.refresh_token.as_deref().unwrap())
        .await;
    let refreshed = crate::helpers::tokens(response).await;
    let (_, refreshed_claims) = jwt_parts(&refreshed.access_token);
    assert_ne!(
        refreshed_claims["jti"], claims["jti"],
        "every token needs its own jti"
    );
    assert_eq!(refreshed_claims["iss"], app.issuer);
}
db_test!(access_token_follows_jwt_profile);

// ---------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------

async fn introspection_describes_active_token(app: TestApp) {
    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let resource_server = app.confidential_client().await;
    let (status, body) = introspect_as(&app, &resource_server, &tokens.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], client.client_id.as_str(), "{body}");
    assert_eq!(body["sub"], USER, "{body}");
    assert_eq!(body["aud"], RS1, "{body}");
    assert_eq!(body["iss"], app.issuer, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let mut scopes: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["mcp:resources", "mcp:tools"], "{body}");
    let (_, claims) = jwt_parts(&tokens.access_token);
    for claim in ["exp", "iat", "jti"] {
        assert_eq!(body[claim], claims[claim], "{claim} differs: {body}");
    }

    let response = app
        .client_post(TENANT, "/introspect", &resource_server, &[("token", "x")])
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
}
db_test!(introspection_describes_active_token);

async fn tampered_access_tokens_are_inactive(app: TestApp) {
    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let token = tokens.access_token.as_str();
    let (header, claims) = jwt_parts(token);
    let kid = header["kid"].as_str().unwrap();
    let segments: Vec<&str> = token.split('.').collect();
    let (signed_part, signature) = token.rsplit_once('.').unwrap();

    let mut forged_claims = claims.clone();
    forged_claims["sub"] = json!("mallory");
    let forged_payload = format!(
        "{}.{}.{signature}",
        segments[0],
        encode_json(&forged_claims)
    );

    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": kid});
    let alg_none = format!("{}.{}.", encode_json(&none_header), segments[1]);
    let no_alg_header = json!({"typ": "at+jwt", "kid": kid});
    let alg_missing = format!(
        "{}.{}.{signature}",
        encode_json(&no_alg_header),
        segments[1]
    );

    // HS256 keyed with the published public key: the classic algorithm confusion.
    let jwks = jwks_of(&app, TENANT).await;
    let public_key = jwks["keys"][0].to_string();
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    let mut hs_header = JwsHeader::new();
    hs_header.set_token_type("at+jwt");
    hs_header.set_key_id(kid);
    let hs_signer = HS256.signer_from_bytes(public_key.as_bytes()).unwrap();
    let hs256 = jwt::encode_with_signer(&payload, &hs_header, &hs_signer).unwrap();

    // A well-formed ES256 token signed by a key the tenant never published.
    let stranger = ES256.generate_key_pair().unwrap();
    let stranger_signer = ES256
        .signer_from_jwk(&stranger.to_jwk_private_key())
        .unwrap();
    let mut unknown_kid_header = JwsHeader::new();
    unknown_kid_header.set_token_type("at+jwt");
    unknown_kid_header.set_key_id("unknown-kid");
    let unknown_kid =
        jwt::encode_with_signer(&payload, &unknown_kid_header, &stranger_signer).unwrap();
    let mut stolen_kid_header = JwsHeader::new();
    stolen_kid_header.set_token_type("at+jwt");
    stolen_kid_header.set_key_id(kid);
    let stolen_kid =
        jwt::encode_with_signer(&payload, &stolen_kid_header, &stranger_signer).unwrap();

    let half = &token[..token.len() / 2];
    let cases: Vec<(String, &str)> = vec![
        (
            token[..token.len() - 1].to_owned(),
            "last character removed",
        ),
        (token[..80].to_owned(), "first 80 characters"),
        (half.to_owned(), "first half"),
        (format!("{token}x"), "character appended"),
        (
            flip_last_character(token, 0b10_0000),
            "last character changed in a signature bit",
        ),
        (
            flip_last_character(token, 0b00_0001),
            "last character changed in a bit past the 64-byte signature",
        ),
        (format!("{signed_part}."), "signature removed"),
        (format!("{token}.{signature}"), "extra segment"),
        (forged_payload, "payload changed, signature kept"),
        (alg_none, "alg none with an empty signature"),
        (alg_missing, "alg missing"),
        (hs256, "alg HS256 keyed with the public key"),
        (unknown_kid, "kid unknown"),
        (stolen_kid, "kid of the tenant, signed by another key"),
        (token.replace('.', ""), "dots removed"),
        (token.to_uppercase(), "upper-cased"),
    ];
    for (variant, case) in &cases {
        assert_ne!(variant, token, "{case}: the variant equals the token");
        assert_inactive(&app, variant, case).await;
    }
    assert_active(&app, token, "the untampered token").await;
}
db_test!(tampered_access_tokens_are_inactive);

async fn tampered_refresh_tokens_are_inactive(app: TestApp) {
    let client = app.confidential_client().await;
    let tokens = app.tokens_for(&client).await;
    let token = tokens.refresh_token.unwrap();
    let cases = [
        (
            token[..token.len() - 1].to_owned(),
            "last character removed",
        ),
        (token[..token.len() / 2].to_owned(), "first half"),
        (format!("{token}x"), "character appended"),
        (
            flip_last_character(&token, 0b00_0001),
            "last character changed",
        ),
        (format!(" {token}"), "leading space"),
    ];
    for (variant, case) in &cases {
        let (status, body) = introspect_as(&app, &client, variant).await;
        assert_eq!(status, StatusCode::OK, "{case}");
        assert_eq!(body, json!({"active": false}), "{case}");
    }
    let (_, body) = introspect_as(&app, &client, &token).await;
    assert_eq!(body["active"], true, "the untampered token: {body}");
}
db_test!(tampered_refresh_tokens_are_inactive);

async fn refresh_token_introspection_needs_owner(app: TestApp) {
    let owner = app.confidential_client().await;
    let stranger = app.confidential_client().await;
    let tokens = app.tokens_for(&owner).await;
    let refresh_token = tokens.refresh_token.unwrap();

    let (status, body) = introspect_as(&app, &owner, &refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], owner.client_id.as_str(), "{body}");
    assert_eq!(body["sub"], USER, "{body}");
    assert_eq!(body["aud"], RS1, "{body}");

    let (status, body) = introspect_as(&app, &stranger, &refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"active": false}),
        "another client's refresh token"
    );

    // Introspecting a rotated token reports it inactive without counting as reuse.
    let response = app.refresh(&owner, &refresh_token).await;
    let rotated = crate::helpers::tokens(response).await;
    let (_, body) = introspect_as(&app, &owner, &refresh_token).await;
    assert_eq!(body, json!({"active": false}), "a rotated refresh token");
    let response = app
        .refresh(&owner, rotated.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "introspection revoked the family"
    );
}
db_test!(refresh_token_introspection_needs_owner);

async fn introspection_requires_confidential_client(app: TestApp) {
    let public = app.public_client().await;
    let confidential = app.confidential_client().await;
    let tokens = app.tokens_for(&public).await;
    let token = tokens.access_token.as_str();
    let secret = confidential.client_secret.as_deref().unwrap();

    // Case, form, Authorization header, expected status and error.
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<String>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "public client",
            vec![("token", token), ("client_id", &public.client_id)],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "no client authentication",
            vec![("token", token)],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "wrong secret",
            vec![("token", token)],
            Some(basic(&confidential.client_id, "wrong")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "missing token",
            vec![],
            Some(basic(&confidential.client_id, secret)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "token twice",
            vec![("token", token), ("token", token)],
            Some(basic(&confidential.client_id, secret)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (case, form, authorization, status, error) in cases {
        let body = serde_urlencoded::to_string(&form).unwrap();
        let response = post_raw(
            &app,
            "/introspect",
            Some("application/x-www-form-urlencoded"),
            authorization.as_deref(),
            body.into(),
        )
        .await;
        assert_eq!(response.status(), status, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{case}: {body}");
        assert!(body.get("active").is_none(), "{case}: {body}");
    }
}
db_test!(introspection_requires_confidential_client);

// ---------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------

async fn revoking_refresh_token_ends_family(app: TestApp) {
    let client = app.public_client().await;
    let first = app.tokens_for(&client).await;
    let response = app
        .refresh(&client, first.refresh_token.as_deref().unwrap())
        .await;
    let second = tokens(response).await;
    let live = second.refresh_token.clone().unwrap();

    let response = revoke_as(&app, &client, &live).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");

    let response = app.refresh(&client, &live).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_inactive(&app, &first.access_token, "access token from the code").await;
    assert_inactive(&app, &second.access_token, "access token from the refresh").await;

    // Revoking again changes nothing and still succeeds.
    let response = revoke_as(&app, &client, &live).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        revoked_reasons(&app, &client.client_id).await,
        [Some("revoked_by_client".to_owned())]
    );
}
db_test!(revoking_refresh_token_ends_family);

async fn revoking_access_token_deactivates_it(app: TestApp) {
    let client = app.confidential_client().await;
    let tokens = app.tokens_for(&client).await;
    assert_active(&app, &tokens.access_token, "before revocation").await;

    let response = revoke_as(&app, &client, &tokens.access_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_inactive(&app, &tokens.access_token, "revoked access token").await;

    // Revoking one access token leaves the grant: the refresh token still works.
    let response = app
        .refresh(&client, tokens.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed = crate::helpers::tokens(response).await;
    assert_active(
        &app,
        &refreshed.access_token,
        "access token after the refresh",
    )
    .await;
}
db_test!(revoking_access_token_deactivates_it);

async fn other_client_cannot_revoke_tokens(app: TestApp) {
    let owner = app.confidential_client().await;
    let stranger = app.confidential_client().await;
    let tokens = app.tokens_for(&owner).await;
    let refresh_token = tokens.refresh_token.clone().unwrap();

    for (token, case) in [
        (refresh_token.as_str(), "refresh token"),
        (tokens.access_token.as_str(), "access token"),
    ] {
        let response = revoke_as(&app, &stranger, token).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
    }

    assert_active(
        &app,
        &tokens.access_token,
        "access token after the stranger's request",
    )
    .await;
    let response = app.refresh(&owner, &refresh_token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the owner's refresh token must survive another client's revocation request"
    );
    assert_eq!(revoked_reasons(&app, &owner.client_id).await, [None]);
}
db_test!(other_client_cannot_revoke_tokens);

async fn revocation_request_errors(app: TestApp) {
    let client = app.confidential_client().await;
    let secret = client.client_secret.clone().unwrap();
    let authorization = basic(&client.client_id, &secret);
    let form = Some("application/x-www-form-urlencoded");
    // Case, Content-Type, Authorization header, body, expected status and error.
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        StatusCode,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown token",
            form,
            Some(&authorization),
            "token=never-issued",
            StatusCode::OK,
            None,
        ),
        (
            "unknown token with a type hint",
            form,
            Some(&authorization),
            "token=never-issued&token_type_hint=refresh_token",
            StatusCode::OK,
            None,
        ),
        (
            "JWT-shaped garbage",
            form,
            Some(&authorization),
            "token=a.b.c",
            StatusCode::OK,
            None,
        ),
        (
            "missing token",
            form,
            Some(&authorization),
            "",
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
        ),
        (
            "token twice",
            form,
            Some(&authorization),
            "token=a&token=b",
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
        ),
        (
            "no client authentication",
            form,
            None,
            "token=never-issued",
            StatusCode::UNAUTHORIZED,
            Some("invalid_client"),
        ),
        (
            "JSON body",
            Some("application/json"),
            Some(&authorization),
            r#"{"token":"x"}"#,
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
        ),
    ];
    for (case, content_type, authorization, body, status, error) in cases {
        let response = post_raw(&app, "/revoke", content_type, authorization, body.into()).await;
        assert_eq!(response.status(), status, "{case}");
        if let Some(error) = error {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], error, "{case}: {body}");
        }
    }
}
db_test!(revocation_request_errors);

// ---------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------

async fn metadata_served_at_every_discovery_url(app: TestApp) {
    let urls = [
        "/.well-known/oauth-authorization-server/t/acme",
        "/.well-known/openid-configuration/t/acme",
        "/t/acme/.well-known/openid-configuration",
        "/t/acme/.well-known/oauth-authorization-server",
    ];
    let issuer = app.issuer.as_str();
    for url in urls {
        let response = app.get(url).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{url}"
        );
        let metadata: Value = response.json().await.unwrap();
        assert_eq!(metadata["issuer"], issuer, "{url}");
        for endpoint in [
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
            "jwks_uri",
            "revocation_endpoint",
            "introspection_endpoint",
        ] {
            let value = metadata[endpoint].as_str().unwrap_or_default();
            assert!(
                value.starts_with(&format!("{issuer}/")),
                "{url}: {endpoint} {value:?} is not under the issuer"
            );
        }
        assert_eq!(
            metadata["code_challenge_methods_supported"],
            json!(["S256"]),
            "{url}"
        );
        assert_eq!(
            metadata["authorization_response_iss_parameter_supported"], true,
            "{url}"
        );
        assert_eq!(
            metadata["response_types_supported"],
            json!(["code"]),
            "{url}"
        );
        let grants = metadata["grant_types_supported"].as_array().unwrap();
        for grant in ["authorization_code", "refresh_token"] {
            assert!(grants.contains(&json!(grant)), "{url}: {grant} missing");
        }
        let introspection_methods = metadata["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(
            !introspection_methods.contains(&json!("none")),
            "{url}: introspection cannot accept public clients"
        );
    }

    // The token endpoint listed in the metadata serves token requests.
    let metadata: Value = app.get(urls[0]).await.json().await.unwrap();
    let response = app
        .http
        .post(metadata["token_endpoint"].as_str().unwrap())
        .form(&[("grant_type", "bogus")])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}
db_test!(metadata_served_at_every_discovery_url);

async fn metadata_stays_within_its_tenant(app: TestApp) {
    let beta_issuer = app.issuer_of(OTHER_TENANT);
    for url in [
        "/.well-known/oauth-authorization-server/t/beta",
        "/t/beta/.well-known/openid-configuration",
    ] {
        let metadata: Value = app.get(url).await.json().await.unwrap();
        assert_eq!(metadata["issuer"], beta_issuer.as_str(), "{url}");
    }

    let cases = [
        (
            "/.well-known/oauth-authorization-server/t/acme/t/beta",
            "beta appended to acme",
        ),
        (
            "/t/acme/.well-known/oauth-authorization-server/t/beta",
            "beta inserted under acme",
        ),
        (
            "/t/acme/t/beta/.well-known/openid-configuration",
            "beta nested in acme",
        ),
        (
            "/.well-known/oauth-authorization-server/t/nosuch",
            "unknown tenant, inserted",
        ),
        (
            "/.well-known/openid-configuration/t/nosuch",
            "unknown tenant, OpenID inserted",
        ),
        (
            "/t/nosuch/.well-known/oauth-authorization-server",
            "unknown tenant, appended",
        ),
        (
            "/t/nosuch/.well-known/openid-configuration",
            "unknown tenant, OpenID appended",
        ),
        (
            "/.well-known/oauth-authorization-server/t/ACME",
            "tenant name in upper case",
        ),
        (
            "/.well-known/oauth-authorization-server/t/acme%2F..",
            "encoded traversal",
        ),
        ("/.well-known/oauth-authorization-server", "no tenant"),
        ("/.well-known/oauth-authorization-server/t/", "empty tenant"),
    ];
    for (url, case) in cases {
        let response = app.get(url).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{case}: {url}");
    }
}
db_test!(metadata_stays_within_its_tenant);

async fn jwks_publishes_only_public_keys(app: TestApp) {
    let jwks = jwks_of(&app, TENANT).await;
    let keys = jwks["keys"].as_array().expect("no keys array");
    assert!(!keys.is_empty(), "the JWKS has no keys");
    for key in keys {
        assert!(
            key["kid"].as_str().is_some_and(|kid| !kid.is_empty()),
            "key without kid: {key}"
        );
        assert_eq!(key["alg"], "ES256", "{key}");
        assert_eq!(key["kty"], "EC", "{key}");
        assert_eq!(key["crv"], "P-256", "{key}");
        assert_eq!(key["use"], "sig", "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} in {key}"
            );
        }
    }

    let metadata: Value = app
        .get("/.well-known/oauth-authorization-server/t/acme")
        .await
        .json()
        .await
        .unwrap();
    let listed: Value = app
        .http
        .get(metadata["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        kids(&listed),
        kids(&jwks),
        "jwks_uri serves another key set"
    );
}
db_test!(jwks_publishes_only_public_keys);

async fn token_request_repeats_named_redirect_uri(app: TestApp) {
    let client = app.public_client().await;
    let (code, verifier) = app.code_for(&client).await;
    let without = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    let body = assert_error(without, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri is required")
    );

    // A request that relied on the only registered URI may leave it out at the token endpoint.
    let browser = Browser::new(&app, TENANT);
    let (verifier, challenge) = pkce();
    let location = browser
        .authorize_and_approve(
            &[
                ("response_type", "code"),
                ("client_id", &client.client_id),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", RS1),
            ],
            USER,
            PASSWORD,
        )
        .await;
    assert!(
        location.starts_with(REDIRECT_URI),
        "the code went to {location}"
    );
    let code = query_params(&location)["code"].clone();
    let response = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
db_test!(token_request_repeats_named_redirect_uri);
