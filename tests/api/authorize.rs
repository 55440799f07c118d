//! The authorization endpoint with its login and consent pages: redirect URI checks that
//! come before everything else, PKCE, error redirects with `state` and `iss`, defaults for
//! omitted `scope` and `resource`, CSRF protection of the forms, and page hardening.

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::db_test;
use crate::helpers::*;

const STATE: &str = "xyz";
const WEB_REDIRECT_URI: &str = "https://client.example/cb";

/// The query of an authorization request as owned pairs, so that each case can change it.
#[derive(Clone, Debug)]
struct Query(Vec<(String, String)>);

impl Query {
    /// Returns a request that passes every check, for `RS1`, with state `STATE`.
    fn valid(client_id: &str, redirect_uri: &str, challenge: &str) -> Self {
        Self(
            [
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("state", STATE),
                ("resource", RS1),
            ]
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        )
    }

    /// Sets `name` to `value`, replacing every earlier value.
    fn set(self, name: &str, value: &str) -> Self {
        self.remove(name).add(name, value)
    }

    /// Appends `name=value`, keeping earlier values, to build repeated parameters.
    fn add(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    fn remove(mut self, name: &str) -> Self {
        self.0.retain(|(existing, _)| existing != name);
        self
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }
}

/// Registers a public native client for `redirect_uris` at `acme`.
async fn native_client(app: &TestApp, redirect_uris: &[&str]) -> TestClient {
    app.registered(
        TENANT,
        &json!({
            "client_name": "native test client",
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }),
    )
    .await
}

/// Returns `client` with `redirect_uri` as the URI that flows and exchanges use.
fn at_redirect_uri(client: &TestClient, redirect_uri: &str) -> TestClient {
    let mut moved = client.clone();
    moved.redirect_uri = redirect_uri.to_owned();
    moved
}

/// Asserts an HTML error page: a 4xx status and no `Location`. Returns the page.
async fn assert_error_page(response: Response, case: &str) -> String {
    let status = response.status();
    assert!(
        status.is_client_error(),
        "{case}: expected a 4xx error page, got {status}"
    );
    assert!(
        response.headers().get("location").is_none(),
        "{case}: an error page must not redirect, got Location {}",
        location(&response)
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "{case}: expected an HTML page, got {content_type:?}"
    );
    response.text().await.unwrap()
}

/// Asserts a redirect to `redirect_uri` that reports `error` with `state` and the issuer
/// in the query, and no code.
fn assert_error_redirect(
    response: &Response,
    redirect_uri: &str,
    error: &str,
    state: Option<&str>,
    issuer: &str,
    case: &str,
) {
    assert!(
        response.status().is_redirection(),
        "{case}: expected an error redirect, got {}",
        response.status()
    );
    let location = location(response);
    assert!(
        location.starts_with(&format!("{redirect_uri}?")),
        "{case}: redirect went to {location}, not to {redirect_uri}"
    );
    assert!(
        !location.contains('#'),
        "{case}: the error must travel in the query, not a fragment: {location}"
    );
    let params = query_params(&location);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{case}: wrong error in {location}"
    );
    assert!(
        params
            .get("error_description")
            .is_some_and(|text| !text.is_empty()),
        "{case}: missing error_description in {location}"
    );
    assert_eq!(
        params.get("state").map(String::as_str),
        state,
        "{case}: wrong state in {location}"
    );
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(issuer),
        "{case}: iss must equal the issuer in {location}"
    );
    assert!(
        !params.contains_key("code"),
        "{case}: an error redirect carried a code: {location}"
    );
}

/// Logs `browser` in through the authorization request `query` and returns the consent
/// page that follows.
async fn consent_page(browser: &Browser, query: &Query) -> String {
    let response = browser.authorize(&query.pairs()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "authorize should show the login page"
    );
    let login_page = response.text().await.unwrap();
    assert!(login_page.contains("name=\"password\""), "not a login page");
    let response = browser.login(&login_page, USER, PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "a correct login should show the consent page"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("name=\"decision\""), "not a consent page");
    page
}

/// Returns the value of the header `name`, or an empty string.
fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Returns every `Set-Cookie` header of a response.
fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect()
}

async fn unknown_client_gets_error_page(app: TestApp) {
    let client = app.public_client().await;
    let beta_client = app.public_client_at(OTHER_TENANT).await;
    let (_, challenge) = pkce();
    let attacker_uri = format!("{ATTACKER}/cb");
    let base = Query::valid("no-such-client", &attacker_uri, &challenge);
    let cases = [
        (
            base.clone(),
            "unknown client_id with an attacker redirect_uri",
        ),
        (
            base.clone().set("redirect_uri", REDIRECT_URI),
            "unknown client_id with a loopback redirect_uri",
        ),
        (base.clone().remove("client_id"), "missing client_id"),
        (
            base.clone()
                .set("client_id", &client.client_id)
                .add("client_id", "no-such-client"),
            "repeated client_id",
        ),
        (
            base.clone()
                .set("client_id", &beta_client.client_id)
                .set("redirect_uri", REDIRECT_URI),
            "a client of another tenant",
        ),
    ];
    for (query, case) in cases {
        let browser = Browser::new(&app, TENANT);
        let response = browser.authorize(&query.pairs()).await;
        assert!(
            set_cookies(&response).is_empty(),
            "{case}: no session should start for an unknown client"
        );
        let page = assert_error_page(response, case).await;
        assert!(
            !page.contains("attacker.example"),
            "{case}: the page must not offer the attacker URI as a link"
        );
    }

    assert_eq!(
        app.stored_clients(TENANT).await.len(),
        1,
        "the requests must not register a client"
    );
    assert_eq!(
        app.count_rows("authorization_requests").await,
        0,
        "no authorization request may be stored"
    );
    assert_eq!(
        app.count_rows("sessions").await,
        0,
        "no session may be stored"
    );
}
db_test!(unknown_client_gets_error_page);

async fn unmatched_redirect_uri_gets_error_page(app: TestApp) {
    let client = app.confidential_client().await;
    assert_eq!(client.redirect_uri, WEB_REDIRECT_URI);
    let (_, challenge) = pkce();
    let cases = [
        ("https://attacker.example/cb", "another host"),
        ("https://evilclient.example/cb", "host with a prefix"),
        ("https://x.client.example/cb", "subdomain"),
        (
            "https://client.example.attacker.example/cb",
            "registered host as a prefix of another host",
        ),
        ("https://client.example/cb/../../other", "dot segments"),
        ("https://client.example/cbx", "longer path"),
        ("https://client.example/cb/", "trailing slash"),
        ("https://client.example/cb?x=1", "added query"),
        ("https://client.example:443/cb", "explicit default port"),
        ("https://CLIENT.EXAMPLE/cb", "uppercase host"),
        ("https://client.example/CB", "uppercase path"),
        ("https://client.example/cb/..;/other", "..; segment after"),
        ("https://client.example/..;/cb", "..; segment before"),
        ("https://client.example/cb;jsessionid=abc", "path parameter"),
        (
            "https://client.example/cb/%2e%2e/other",
            "encoded dot segment",
        ),
        (
            "https://client.example/%2e%2e/cb",
            "encoded dot segment first",
        ),
        ("https://client.example/c%62", "percent-encoded letter"),
        ("http://client.example/cb", "downgrade to http"),
        ("https://client.example/cb ", "trailing space"),
        (
            "https://client.example@attacker.example/cb",
            "user information",
        ),
        ("//attacker.example/cb", "scheme-relative URI"),
        ("https://client.example/cb#frag", "fragment"),
    ];
    for (redirect_uri, case) in cases {
        let browser = Browser::new(&app, TENANT);
        let query = Query::valid(&client.client_id, redirect_uri, &challenge);
        let response = browser.authorize(&query.pairs()).await;
        let page = assert_error_page(response, case).await;
        assert!(
            page.contains("Invalid redirect URI"),
            "{case}: the page should name the redirect URI as the problem"
        );
    }
    assert_eq!(
        app.count_rows("authorization_requests").await,
        0,
        "a request with an unmatched redirect URI must store nothing"
    );

    let query = Query::valid(&client.client_id, WEB_REDIRECT_URI, &challenge);
    let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the registered URI itself should reach the login page"
    );
}
db_test!(unmatched_redirect_uri_gets_error_page);

async fn redirect_uri_checked_before_other_params(app: TestApp) {
    let client = app.confidential_client().await;
    let two_uris = app
        .registered(
            TENANT,
            &json!({
                "redirect_uris": [WEB_REDIRECT_URI, "https://client.example/other"],
                "token_endpoint_auth_method": "client_secret_basic",
            }),
        )
        .await;
    let (_, challenge) = pkce();
    let attacker_uri = format!("{ATTACKER}/cb");
    let bad = Query::valid(&client.client_id, &attacker_uri, &challenge);
    let cases = [
        (
            bad.clone()
                .remove("code_challenge")
                .remove("code_challenge_method"),
            "unmatched redirect_uri and no PKCE",
        ),
        (
            bad.clone().set("response_type", "token"),
            "unmatched redirect_uri and response_type=token",
        ),
        (
            bad.clone().remove("response_type"),
            "unmatched redirect_uri and no response_type",
        ),
        (
            bad.clone().set("scope", "bogus"),
            "unmatched redirect_uri and an unknown scope",
        ),
        (
            bad.clone().set("prompt", "none"),
            "unmatched redirect_uri and prompt=none",
        ),
        (
            bad.clone().add("resource", RS2),
            "unmatched redirect_uri and a repeated resource",
        ),
        (
            bad.clone().set("code_challenge_method", "plain"),
            "unmatched redirect_uri and the plain method",
        ),
        (
            Query::valid(&client.client_id, WEB_REDIRECT_URI, &challenge)
                .add("redirect_uri", &attacker_uri),
            "registered redirect_uri repeated with an attacker one",
        ),
        (
            Query::valid(&two_uris.client_id, WEB_REDIRECT_URI, &challenge)
                .remove("redirect_uri")
                .remove("code_challenge"),
            "no redirect_uri for a client with two, and no PKCE",
        ),
    ];
    for (query, case) in cases {
        let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
        assert_error_page(response, case).await;
    }

    // The same PKCE fault with the registered URI is reported to the client, so the pages
    // above come from the redirect URI check.
    let query = Query::valid(&client.client_id, WEB_REDIRECT_URI, &challenge)
        .remove("code_challenge")
        .remove("code_challenge_method");
    let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
    assert_error_redirect(
        &response,
        WEB_REDIRECT_URI,
        "invalid_request",
        Some(STATE),
        &app.issuer,
        "registered redirect_uri and no PKCE",
    );
}
db_test!(redirect_uri_checked_before_other_params);

async fn loopback_redirect_accepts_any_port(app: TestApp) {
    let cases = [
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53219/callback",
            "IPv4 loopback without a registered port",
        ),
        (
            "http://127.0.0.1:8000/callback",
            "http://127.0.0.1:40123/callback",
            "IPv4 loopback with another registered port",
        ),
        (
            "http://[::1]/callback",
            "http://[::1]:8080/callback",
            "IPv6 loopback",
        ),
        (
            "http://localhost/callback",
            "http://localhost:40123/callback",
            "localhost without a registered port",
        ),
        (
            "http://localhost:3000/callback",
            "http://localhost:40123/callback",
            "localhost with another registered port",
        ),
    ];
    for (registered, requested, case) in cases {
        let client = native_client(&app, &[registered]).await;
        let moved = at_redirect_uri(&client, requested);
        let (verifier, challenge) = pkce();
        let query = Query::valid(&client.client_id, requested, &challenge);
        let location = Browser::new(&app, TENANT)
            .authorize_and_approve(&query.pairs(), USER, PASSWORD)
            .await;
        assert!(
            location.starts_with(&format!("{requested}?")),
            "{case}: the code must go to exactly {requested}, got {location}"
        );
        let code = query_params(&location)
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("{case}: no code in {location}"));

        let response = app
            .token(
                &moved,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", requested),
                    ("code_verifier", &verifier),
                    ("resource", RS1),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{case}: the exchange with the requested redirect_uri should succeed"
        );
    }
}
db_test!(loopback_redirect_accepts_any_port);

async fn loopback_lookalikes_are_rejected(app: TestApp) {
    let ipv4 = native_client(&app, &["http://127.0.0.1/callback"]).await;
    let localhost = native_client(&app, &["http://localhost/callback"]).await;
    let (_, challenge) = pkce();
    let cases = [
        (
            &ipv4,
            "http://127.0.0.1.attacker.example/callback",
            "loopback address as a subdomain",
        ),
        (
            &ipv4,
            "http://127.0.0.1@attacker.example/callback",
            "loopback address as user information",
        ),
        (
            &ipv4,
            "http://127.0.0.1:8080@attacker.example/callback",
            "loopback address and port as user information",
        ),
        (
            &ipv4,
            "http://127.0.0.2/callback",
            "another loopback address",
        ),
        (
            &ipv4,
            "http://127.0.0.2:8080/callback",
            "another loopback address with a port",
        ),
        (
            &ipv4,
            "http://[::1]/callback",
            "IPv6 when IPv4 is registered",
        ),
        (
            &ipv4,
            "http://[::1]:8080/callback",
            "IPv6 with a port when IPv4 is registered",
        ),
        (
            &ipv4,
            "http://localhost:8080/callback",
            "localhost when the IP is registered",
        ),
        (
            &ipv4,
            "https://127.0.0.1:8080/callback",
            "https instead of http",
        ),
        (&ipv4, "https://127.0.0.1/callback", "https without a port"),
        (&ipv4, "http://127.0.0.1:8080/other", "another path"),
        (&ipv4, "http://127.0.0.1:8080/callback/", "trailing slash"),
        (&ipv4, "http://127.0.0.1:8080/callback?x=1", "added query"),
        (&ipv4, "http://127.0.0.1:0/callback", "port zero"),
        (
            &ipv4,
            "http://127.0.0.1:99999/callback",
            "port out of range",
        ),
        (&ipv4, "http://127.0.0.1:/callback", "empty port"),
        (
            &ipv4,
            "http://127.1:8080/callback",
            "short form of the address",
        ),
        (
            &ipv4,
            "http://2130706433:8080/callback",
            "address as an integer",
        ),
        (
            &localhost,
            "http://localhost.attacker.example:8080/callback",
            "localhost as a subdomain",
        ),
        (
            &localhost,
            "http://127.0.0.1:8080/callback",
            "IP address when localhost is registered",
        ),
    ];
    for (client, requested, case) in cases {
        let query = Query::valid(&client.client_id, requested, &challenge);
        let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
        assert_error_page(response, case).await;
    }
}
db_test!(loopback_lookalikes_are_rejected);

async fn loopback_port_needs_native_client(app: TestApp) {
    let web = app
        .registered(
            TENANT,
            &json!({
                "redirect_uris": ["http://127.0.0.1:8000/callback"],
                "token_endpoint_auth_method": "none",
                "application_type": "web",
            }),
        )
        .await;
    assert_eq!(web.registration["application_type"], "web");
    let (_, challenge) = pkce();

    let query = Query::valid(&web.client_id, "http://127.0.0.1:9000/callback", &challenge);
    let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
    assert_error_page(response, "another port for a web client").await;

    let query = Query::valid(&web.client_id, "http://127.0.0.1:8000/callback", &challenge);
    let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the registered port should reach the login page"
    );
}
db_test!(loopback_port_needs_native_client);

async fn remembered_consent_keeps_redirect_check(app: TestApp) {
    let client = app.public_client().await;
    let browser = Browser::new(&app, TENANT);
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let first = browser
        .authorize_and_approve(&query.pairs(), USER, PASSWORD)
        .await;
    assert!(query_params(&first).contains_key("code"));

    // With the consent on record the next request gets a code without any page.
    let response = browser.authorize(&query.pairs()).await;
    assert!(
        response.status().is_redirection(),
        "remembered consent should redirect at once, got {}",
        response.status()
    );
    assert!(query_params(&location(&response)).contains_key("code"));

    let attacker_uri = format!("{ATTACKER}/cb");
    let cases = [
        (attacker_uri.as_str(), "attacker URI"),
        ("http://127.0.0.2:5000/callback", "another loopback address"),
        ("http://127.0.0.1:5000/other", "another loopback path"),
        (
            "https://127.0.0.1/callback",
            "https on the loopback address",
        ),
    ];
    for (redirect_uri, case) in cases {
        let response = browser
            .authorize(&query.clone().set("redirect_uri", redirect_uri).pairs())
            .await;
        assert_error_page(response, case).await;
    }
}
db_test!(remembered_consent_keeps_redirect_check);

async fn fragment_redirect_uri_is_rejected(app: TestApp) {
    let response = app
        .register(&json!({
            "redirect_uris": ["https://client.example/cb#section"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    assert!(
        app.stored_clients(TENANT).await.is_empty(),
        "a rejected registration must store nothing"
    );

    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let cases = [
        ("http://127.0.0.1/callback#x", "fragment"),
        ("http://127.0.0.1/callback#", "empty fragment"),
        (
            "http://127.0.0.1:5000/callback#x",
            "fragment on another port",
        ),
        (
            "http://127.0.0.1:5000#/callback",
            "path inside the fragment",
        ),
    ];
    for (redirect_uri, case) in cases {
        let query = Query::valid(&client.client_id, redirect_uri, &challenge);
        let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
        assert_error_page(response, case).await;
    }
}
db_test!(fragment_redirect_uri_is_rejected);

async fn pkce_violations_redirect_invalid_request(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let base = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let cases = [
        (
            base.clone()
                .remove("code_challenge")
                .remove("code_challenge_method"),
            "no challenge and no method",
        ),
        (
            base.clone().remove("code_challenge"),
            "method S256 without a challenge",
        ),
        (base.clone().set("code_challenge", ""), "empty challenge"),
        (base.clone().set("code_challenge", " "), "blank challenge"),
        (
            base.clone().set("code_challenge_method", "plain"),
            "plain method",
        ),
        (
            base.clone().remove("code_challenge_method"),
            "missing method, which would mean plain",
        ),
        (
            base.clone().set("code_challenge_method", "s256"),
            "lowercase method",
        ),
        (
            base.clone().set("code_challenge_method", "S512"),
            "unknown method",
        ),
        (
            base.clone().set("code_challenge", "short"),
            "short challenge",
        ),
        (
            base.clone().set("code_challenge", &challenge[..42]),
            "challenge of 42 characters",
        ),
        (
            base.clone().set("code_challenge", &format!("{challenge}A")),
            "challenge of 44 characters",
        ),
        (
            base.clone()
                .set("code_challenge", &format!("{}+", &challenge[..42])),
            "challenge with a character outside base64url",
        ),
        (
            base.clone()
                .set("code_challenge", &format!("{}=", &challenge[..42])),
            "challenge with padding",
        ),
        (
            base.clone().add("code_challenge", &challenge),
            "repeated challenge",
        ),
    ];
    for (query, case) in cases {
        let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
        assert_error_redirect(
            &response,
            REDIRECT_URI,
            "invalid_request",
            Some(STATE),
            &app.issuer,
            case,
        );
    }

    // A percent-encoded space, written by hand because the form encoder would send `+`.
    let query = serde_urlencoded::to_string(base.clone().remove("code_challenge").pairs()).unwrap();
    let response = app
        .http
        .get(format!(
            "{}?{query}&code_challenge=%20",
            app.endpoint(TENANT, "/authorize")
        ))
        .send()
        .await
        .unwrap();
    assert_error_redirect(
        &response,
        REDIRECT_URI,
        "invalid_request",
        Some(STATE),
        &app.issuer,
        "challenge of %20",
    );

    assert_eq!(
        app.count_rows("authorization_requests").await,
        0,
        "a request without valid PKCE must store nothing"
    );
}
db_test!(pkce_violations_redirect_invalid_request);

async fn error_redirects_carry_state_and_iss(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let base = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let cases = [
        (
            base.clone().set("prompt", "none"),
            "login_required",
            "prompt=none without a session",
        ),
        (
            base.clone().set("scope", "bogus"),
            "invalid_scope",
            "unknown scope",
        ),
        (
            base.clone().set("scope", "mcp:tools bogus"),
            "invalid_scope",
            "one unknown scope among known ones",
        ),
        (
            base.clone()
                .set("resource", RS2)
                .set("scope", "mcp:resources"),
            "invalid_scope",
            "scope of another resource",
        ),
        (
            base.clone().set("resource", "https://unknown.example/mcp"),
            "invalid_target",
            "unknown resource",
        ),
        (
            base.clone().set("resource", BETA_RS),
            "invalid_target",
            "resource of another tenant",
        ),
        (
            base.clone()
                .set("resource", "https://mcp.example.com/mcp#x"),
            "invalid_target",
            "resource with a fragment",
        ),
        (
            base.clone().set("resource", "not a uri"),
            "invalid_target",
            "resource that is not a URI",
        ),
        (
            base.clone().add("resource", RS2),
            "invalid_target",
            "repeated resource",
        ),
        (
            base.clone().add("resource", RS1),
            "invalid_target",
            "resource repeated with the same value",
        ),
        (
            base.clone().remove("resource"),
            "invalid_target",
            "no resource while the tenant has several",
        ),
        (
            base.clone()
                .add("scope", "mcp:tools")
                .add("scope", "mcp:tools"),
            "invalid_request",
            "repeated scope",
        ),
        (
            base.clone().add("response_type", "code"),
            "invalid_request",
            "repeated response_type",
        ),
        (
            base.clone().add("code_challenge_method", "S256"),
            "invalid_request",
            "repeated code_challenge_method",
        ),
        (
            base.clone().add("prompt", "login").add("prompt", "login"),
            "invalid_request",
            "repeated prompt",
        ),
        (
            base.clone().add("state", "other"),
            "invalid_request",
            "repeated state",
        ),
        (
            base.clone().set("response_type", "token"),
            "unsupported_response_type",
            "implicit response type",
        ),
        (
            base.clone().set("response_type", "code id_token"),
            "unsupported_response_type",
            "hybrid response type",
        ),
        (
            base.clone().remove("response_type"),
            "invalid_request",
            "missing response_type",
        ),
        (
            base.clone().set("response_mode", "fragment"),
            "invalid_request",
            "fragment response mode",
        ),
        (
            base.clone().set("request", "eyJhbGciOiJub25lIn0.e30."),
            "invalid_request",
            "request object",
        ),
        (
            base.clone().set("prompt", "none login"),
            "invalid_request",
            "prompt=none combined with login",
        ),
    ];
    for (query, error, case) in cases {
        let response = Browser::new(&app, TENANT).authorize(&query.pairs()).await;
        assert_error_redirect(
            &response,
            REDIRECT_URI,
            error,
            Some(STATE),
            &app.issuer,
            case,
        );
    }

    let response = Browser::new(&app, TENANT)
        .authorize(&base.clone().remove("state").set("scope", "bogus").pairs())
        .await;
    assert_error_redirect(
        &response,
        REDIRECT_URI,
        "invalid_scope",
        None,
        &app.issuer,
        "unknown scope without state",
    );
}
db_test!(error_redirects_carry_state_and_iss);

async fn prompt_none_needs_session_and_consent(app: TestApp) {
    let client = app.public_client().await;
    let browser = Browser::new(&app, TENANT);
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);

    // Logged in, but the consent form was never submitted.
    consent_page(&browser, &query).await;
    let silent = query.clone().set("prompt", "none");
    let response = browser.authorize(&silent.pairs()).await;
    assert_error_redirect(
        &response,
        REDIRECT_URI,
        "consent_required",
        Some(STATE),
        &app.issuer,
        "prompt=none before consent",
    );

    let first = browser
        .authorize_and_approve(&query.pairs(), USER, PASSWORD)
        .await;
    assert!(query_params(&first).contains_key("code"));
    let response = browser.authorize(&silent.pairs()).await;
    assert!(
        response.status().is_redirection(),
        "prompt=none after consent should redirect"
    );
    let params = query_params(&location(&response));
    assert!(
        params.contains_key("code"),
        "prompt=none after consent should return a code"
    );
    assert_eq!(params.get("iss"), Some(&app.issuer));
}
db_test!(prompt_none_needs_session_and_consent);

async fn deny_redirects_access_denied(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);
    let page = consent_page(&browser, &query).await;

    let response = browser.consent(&page, "deny").await;
    assert_error_redirect(
        &response,
        REDIRECT_URI,
        "access_denied",
        Some(STATE),
        &app.issuer,
        "deny with state",
    );

    // Deny completes the request, so a later approval of the same form gets no code.
    let response = browser.consent(&page, "approve").await;
    assert_error_page(response, "approve after deny").await;
    assert_eq!(app.count_rows("authorization_codes").await, 0);
    assert_eq!(
        app.count_rows("consents").await,
        0,
        "a denied request must not be remembered as consent"
    );
}
db_test!(deny_redirects_access_denied);

async fn deny_without_state_redirects(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge).remove("state");
    let browser = Browser::new(&app, TENANT);
    let page = consent_page(&browser, &query).await;

    let response = browser.consent(&page, "deny").await;
    assert_error_redirect(
        &response,
        REDIRECT_URI,
        "access_denied",
        None,
        &app.issuer,
        "deny without state",
    );
}
db_test!(deny_without_state_redirects);

async fn success_redirect_carries_code_state_iss(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let state = "s 1&x=y/é";
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge).set("state", state);
    let browser = Browser::new(&app, TENANT);
    let page = consent_page(&browser, &query).await;
    let response = browser.consent(&page, "approve").await;
    let consented = location(&response);

    // The second request finds the consent on record and redirects at once.
    let response = browser.authorize(&query.pairs()).await;
    let remembered = location(&response);

    for (location, case) in [
        (consented, "after consent"),
        (remembered, "remembered consent"),
    ] {
        assert!(
            location.starts_with(&format!("{REDIRECT_URI}?")),
            "{case}: unexpected Location {location}"
        );
        assert!(
            !location.contains('#'),
            "{case}: the response must use the query, not a fragment: {location}"
        );
        let params = query_params(&location);
        let mut names: Vec<&str> = params.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["code", "iss", "state"], "{case}: {location}");
        assert!(
            params["code"].len() >= 43,
            "{case}: the code is too short to carry 256 bits"
        );
        assert_eq!(params["state"], state, "{case}: state must round-trip");
        assert_eq!(
            params["iss"], app.issuer,
            "{case}: iss must equal the issuer"
        );
    }
}
db_test!(success_redirect_carries_code_state_iss);

async fn omitted_scope_gets_resource_scopes(app: TestApp) {
    let client = app.public_client().await;
    let cases = [(RS1, "mcp:resources mcp:tools"), (RS2, "mcp:tools")];
    for (resource, expected_scope) in cases {
        let (verifier, challenge) = pkce();
        let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge)
            .set("resource", resource)
            .remove("scope");
        let location = Browser::new(&app, TENANT)
            .authorize_and_approve(&query.pairs(), USER, PASSWORD)
            .await;
        let code = query_params(&location)
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("{resource}: no code in {location}"));
        let response = app
            .token(
                &client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                    ("resource", resource),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{resource}: exchange failed"
        );
        let tokens = tokens(response).await;
        assert_eq!(
            tokens.body["scope"], expected_scope,
            "{resource}: token scope"
        );
        let (_, claims) = jwt_parts(&tokens.access_token);
        assert_eq!(claims["scope"], expected_scope, "{resource}: scope claim");
        assert_eq!(claims["aud"], resource, "{resource}: audience");
    }
}
db_test!(omitted_scope_gets_resource_scopes);

async fn single_resource_tenant_defaults_audience(app: TestApp) {
    let client = app.public_client_at(OTHER_TENANT).await;
    let (verifier, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge).remove("resource");
    let location = Browser::new(&app, OTHER_TENANT)
        .authorize_and_approve(&query.pairs(), USER, PASSWORD)
        .await;
    let params = query_params(&location);
    assert_eq!(params.get("iss"), Some(&app.issuer_of(OTHER_TENANT)));
    let code = params.get("code").expect("no code in the redirect");

    let response = app
        .token_at(
            OTHER_TENANT,
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "exchange failed");
    let tokens = tokens(response).await;
    let (_, claims) = jwt_parts(&tokens.access_token);
    assert_eq!(
        claims["aud"], BETA_RS,
        "the only resource should be the audience"
    );
    assert_eq!(claims["iss"], app.issuer_of(OTHER_TENANT));
    assert_eq!(claims["scope"], "mcp:tools");
}
db_test!(single_resource_tenant_defaults_audience);

async fn consent_cannot_be_skipped_by_params(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);
    consent_page(&browser, &query).await;

    let cases = [
        ("bypass_approval_prompt", "true"),
        ("approve", "true"),
        ("consent", "granted"),
        ("decision", "approve"),
        ("prompt", "consent_granted"),
        ("skip_consent", "1"),
    ];
    for (name, value) in cases {
        let case = format!("{name}={value}");
        let response = browser
            .authorize(&query.clone().set(name, value).pairs())
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{case}: the consent page should be shown"
        );
        assert!(
            response.headers().get("location").is_none(),
            "{case}: must not redirect"
        );
        let page = response.text().await.unwrap();
        assert!(
            page.contains("name=\"decision\""),
            "{case}: expected the consent page"
        );
    }

    // Before login the same parameters lead to the login page.
    let response = Browser::new(&app, TENANT)
        .authorize(&query.clone().set("bypass_approval_prompt", "true").pairs())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("name=\"password\""));

    assert_eq!(
        app.count_rows("authorization_codes").await,
        0,
        "no code may be issued without the user's approval"
    );
}
db_test!(consent_cannot_be_skipped_by_params);

/// A forged form post: the browser that sends it, its fields, and what the case shows.
type FormCase<'a> = (&'a Browser, Vec<(&'a str, &'a str)>, &'a str);

/// Posts a form to `path` of `acme` from `browser`.
async fn post_form(browser: &Browser, path: &str, form: &[(&str, &str)]) -> Response {
    browser
        .http
        .post(browser.endpoint(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn consent_form_requires_csrf_token(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let victim = Browser::new(&app, TENANT);
    let page = consent_page(&victim, &query).await;
    let request_id = hidden_field(&page, "request_id").unwrap();
    let csrf_token = hidden_field(&page, "csrf_token").unwrap();

    // A second browser with its own logged-in session and consent page.
    let attacker = Browser::new(&app, TENANT);
    let response = attacker.authorize(&query.pairs()).await;
    let login_page = response.text().await.unwrap();
    let response = attacker
        .login(&login_page, OTHER_USER, OTHER_PASSWORD)
        .await;
    let attacker_page = response.text().await.unwrap();
    let attacker_csrf = hidden_field(&attacker_page, "csrf_token").unwrap();
    let stranger = Browser::new(&app, TENANT);

    let cases: [FormCase; 5] = [
        (
            &victim,
            vec![("request_id", &request_id), ("decision", "approve")],
            "no csrf_token",
        ),
        (
            &victim,
            vec![
                ("request_id", &request_id),
                ("csrf_token", "forged-token"),
                ("decision", "approve"),
            ],
            "wrong csrf_token",
        ),
        (
            &victim,
            vec![
                ("request_id", &request_id),
                ("csrf_token", &attacker_csrf),
                ("decision", "approve"),
            ],
            "csrf_token of another session",
        ),
        (
            &stranger,
            vec![
                ("request_id", &request_id),
                ("csrf_token", &csrf_token),
                ("decision", "approve"),
            ],
            "the whole form from a browser without a session",
        ),
        (
            &attacker,
            vec![
                ("request_id", &request_id),
                ("csrf_token", &csrf_token),
                ("decision", "approve"),
            ],
            "the whole form from another logged-in browser",
        ),
    ];
    for (browser, form, case) in cases {
        let response = post_form(browser, "/consent", &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}");
        assert_error_page(response, case).await;
    }
    assert_eq!(app.count_rows("authorization_codes").await, 0);

    // The genuine form still works, so the rejections came from the CSRF checks.
    let response = victim.consent(&page, "approve").await;
    assert!(
        response.status().is_redirection(),
        "the genuine form should redirect"
    );
    assert!(query_params(&location(&response)).contains_key("code"));
}
db_test!(consent_form_requires_csrf_token);

async fn login_form_requires_csrf_token(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let victim = Browser::new(&app, TENANT);
    let login_page = victim.authorize(&query.pairs()).await.text().await.unwrap();
    let request_id = hidden_field(&login_page, "request_id").unwrap();
    let csrf_token = hidden_field(&login_page, "csrf_token").unwrap();
    let other = Browser::new(&app, TENANT);
    let other_page = other.authorize(&query.pairs()).await.text().await.unwrap();
    let other_csrf = hidden_field(&other_page, "csrf_token").unwrap();
    let stranger = Browser::new(&app, TENANT);

    let cases: [FormCase; 4] = [
        (
            &victim,
            vec![
                ("request_id", &request_id),
                ("username", USER),
                ("password", PASSWORD),
            ],
            "no csrf_token",
        ),
        (
            &victim,
            vec![
                ("request_id", &request_id),
                ("csrf_token", "forged-token"),
                ("username", USER),
                ("password", PASSWORD),
            ],
            "wrong csrf_token",
        ),
        (
            &victim,
            vec![
                ("request_id", &request_id),
                ("csrf_token", &other_csrf),
                ("username", USER),
                ("password", PASSWORD),
            ],
            "csrf_token of another session",
        ),
        (
            &stranger,
            vec![
                ("request_id", &request_id),
                ("csrf_token", &csrf_token),
                ("username", USER),
                ("password", PASSWORD),
            ],
            "the whole form from a browser without a session",
        ),
    ];
    for (browser, form, case) in cases {
        let response = post_form(browser, "/login", &form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}");
        assert!(
            set_cookies(&response).is_empty(),
            "{case}: a rejected login must not set a session cookie"
        );
        assert_error_page(response, case).await;
    }

    let response = victim.login(&login_page, USER, PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the genuine form should lead to the consent page"
    );
    assert!(response.text().await.unwrap().contains("name=\"decision\""));
}
db_test!(login_form_requires_csrf_token);

async fn orphan_form_posts_get_error_page(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let logged_in = Browser::new(&app, TENANT);
    let page = consent_page(&logged_in, &query).await;
    let csrf_token = hidden_field(&page, "csrf_token").unwrap();
    let fresh = Browser::new(&app, TENANT);

    let login_form = [
        ("request_id", "made-up-request"),
        ("csrf_token", csrf_token.as_str()),
        ("username", USER),
        ("password", PASSWORD),
    ];
    let consent_form = [
        ("request_id", "made-up-request"),
        ("csrf_token", csrf_token.as_str()),
        ("decision", "approve"),
    ];
    let cases = [
        (&fresh, "/login", &login_form[..], "login without a session"),
        (
            &logged_in,
            "/login",
            &login_form[..],
            "login with a session",
        ),
        (
            &fresh,
            "/consent",
            &consent_form[..],
            "consent without a session",
        ),
        (
            &logged_in,
            "/consent",
            &consent_form[..],
            "consent with a session",
        ),
    ];
    for (browser, path, form, case) in cases {
        let response = post_form(browser, path, form).await;
        assert_error_page(response, case).await;
    }

    // The genuine form posted to another tenant finds no request there either.
    let beta = Browser::new(&app, OTHER_TENANT);
    let response = beta
        .http
        .post(beta.endpoint("/consent"))
        .form(&[
            ("request_id", hidden_field(&page, "request_id").unwrap()),
            ("csrf_token", csrf_token.clone()),
            ("decision", "approve".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_error_page(response, "consent form posted to another tenant").await;

    assert_eq!(app.count_rows("authorization_codes").await, 0);
}
db_test!(orphan_form_posts_get_error_page);

async fn consent_submitted_twice_issues_one_code(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);

    let browser = Browser::new(&app, TENANT);
    let page = consent_page(&browser, &query).await;
    let first = browser.consent(&page, "approve").await;
    assert!(
        first.status().is_redirection(),
        "first submission should redirect"
    );
    assert!(query_params(&location(&first)).contains_key("code"));
    let second = browser.consent(&page, "approve").await;
    assert_error_page(second, "second submission").await;
    assert_eq!(app.count_rows("authorization_codes").await, 1);

    // With two concurrent submissions, one statement completes the request, so only one of
    // them gets a code.
    let other_client = native_client(&app, &[REDIRECT_URI]).await;
    let query = Query::valid(&other_client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);
    let page = consent_page(&browser, &query).await;
    let (left, right) = tokio::join!(
        browser.consent(&page, "approve"),
        browser.consent(&page, "approve")
    );
    let with_code = [left, right]
        .iter()
        .filter(|response| query_params(&location(response)).contains_key("code"))
        .count();
    assert_eq!(
        with_code, 1,
        "exactly one concurrent submission may get a code"
    );
    assert_eq!(app.count_rows("authorization_codes").await, 2);
}
db_test!(consent_submitted_twice_issues_one_code);

async fn wrong_password_shows_login_again(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);
    let mut page = browser
        .authorize(&query.pairs())
        .await
        .text()
        .await
        .unwrap();

    let cases = [
        (USER, "wrong-password", "wrong password"),
        (USER, "", "empty password"),
        (USER, &PASSWORD.to_uppercase(), "password in another case"),
        ("nobody", PASSWORD, "unknown user"),
        ("", PASSWORD, "empty username"),
        (OTHER_USER, PASSWORD, "another user's password"),
    ];
    for (username, password, case) in cases {
        let response = browser.login(&page, username, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert!(
            response.headers().get("location").is_none(),
            "{case}: a failed login must not redirect"
        );
        assert!(
            set_cookies(&response).is_empty(),
            "{case}: a failed login must not change the session"
        );
        page = response.text().await.unwrap();
        assert!(
            page.contains("The username or password is incorrect."),
            "{case}: the page should say why"
        );
        assert!(
            page.contains("name=\"password\""),
            "{case}: the login form should be shown again"
        );
        if !password.is_empty() {
            assert!(
                !page.contains(password),
                "{case}: the password must not be echoed"
            );
        }
    }
    assert_eq!(app.count_rows("authorization_codes").await, 0);

    let response = browser.login(&page, USER, PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the re-rendered form should still work"
    );
    assert!(response.text().await.unwrap().contains("name=\"decision\""));
}
db_test!(wrong_password_shows_login_again);

/// Asserts the attributes of the session cookie in `set_cookie`.
fn assert_session_cookie(set_cookie: &str, case: &str) {
    let attributes: Vec<String> = set_cookie
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase())
        .collect();
    assert!(
        attributes[0].starts_with("portcullis_session="),
        "{case}: not the session cookie: {set_cookie}"
    );
    for expected in ["httponly", "samesite=lax", "path=/t/acme"] {
        assert!(
            attributes.iter().any(|attribute| attribute == expected),
            "{case}: missing {expected} in {set_cookie}"
        );
    }
    assert!(
        !attributes.iter().any(|attribute| attribute == "secure"),
        "{case}: Secure must be off for an http public URL: {set_cookie}"
    );
}

async fn session_cookie_is_restricted(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);

    let response = browser.authorize(&query.pairs()).await;
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "authorize should start one session");
    assert_session_cookie(&cookies[0], "anonymous session");
    let anonymous = cookies[0].split(';').next().unwrap().to_owned();

    let page = response.text().await.unwrap();
    let response = browser.login(&page, USER, PASSWORD).await;
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 1, "login should replace the session");
    assert_session_cookie(&cookies[0], "logged-in session");
    assert_ne!(
        cookies[0].split(';').next().unwrap(),
        anonymous,
        "login must issue a new session id"
    );
}
db_test!(session_cookie_is_restricted);

async fn pages_escape_client_metadata(app: TestApp) {
    let client = app
        .registered(
            TENANT,
            &json!({
                "client_name": "<script>alert(1)</script>",
                "client_uri": "https://client.example/?q=\"><script>alert(2)</script>",
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
            }),
        )
        .await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);
    let login_page = browser
        .authorize(&query.pairs())
        .await
        .text()
        .await
        .unwrap();
    let response = browser.login(&login_page, USER, PASSWORD).await;
    let consent_page = response.text().await.unwrap();

    for (page, case) in [(&login_page, "login page"), (&consent_page, "consent page")] {
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{case}: client_name should be shown escaped"
        );
        assert!(
            !page.contains("<script>"),
            "{case}: no markup from client metadata may reach the page"
        );
    }
    assert!(
        consent_page.contains("&lt;script&gt;alert(2)"),
        "consent page: client_uri should be shown escaped"
    );
}
db_test!(pages_escape_client_metadata);

/// Asserts the headers that keep a page out of frames and caches.
fn assert_page_headers(response: &Response, case: &str) {
    assert_eq!(header(response, "x-frame-options"), "DENY", "{case}");
    assert!(
        header(response, "content-security-policy").contains("frame-ancestors 'none'"),
        "{case}: CSP must forbid framing"
    );
    assert!(
        header(response, "cache-control").contains("no-store"),
        "{case}: the page must not be cached"
    );
}

async fn pages_send_security_headers(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let query = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let browser = Browser::new(&app, TENANT);

    let response = browser.authorize(&query.pairs()).await;
    assert_page_headers(&response, "login page");
    let page = response.text().await.unwrap();
    let response = browser.login(&page, USER, "wrong-password").await;
    assert_page_headers(&response, "failed login page");
    let page = response.text().await.unwrap();
    let response = browser.login(&page, USER, PASSWORD).await;
    assert_page_headers(&response, "consent page");

    let response = browser
        .authorize(&query.clone().set("client_id", "no-such-client").pairs())
        .await;
    assert_page_headers(&response, "error page");
}
db_test!(pages_send_security_headers);

async fn hostile_requests_never_redirect(app: TestApp) {
    let client = app.public_client().await;
    let (_, challenge) = pkce();
    let valid = Query::valid(&client.client_id, REDIRECT_URI, &challenge);
    let authorize = app.endpoint(TENANT, "/authorize");
    let many_params: String = (0..100).map(|index| format!("p{index}=1&")).collect();
    let long_uri = format!("{REDIRECT_URI}/{}", "a".repeat(20_000));
    let long_query =
        serde_urlencoded::to_string(valid.clone().set("redirect_uri", &long_uri).pairs()).unwrap();
    let cases = [
        (app.http.get(&authorize), "no query at all"),
        (
            app.http.get(format!("{authorize}?{many_params}")),
            "100 parameters",
        ),
        (
            app.http.get(format!("{authorize}?{long_query}")),
            "redirect_uri of 20,000 characters",
        ),
        (
            app.http
                .get(format!("{authorize}?client_id=%ff%fe&redirect_uri=%ff")),
            "invalid UTF-8 in the query",
        ),
        (
            app.http.get(app.endpoint("nosuch", "/authorize")),
            "unknown tenant",
        ),
        (
            app.http
                .post(app.endpoint(TENANT, "/login"))
                .header("Content-Type", "text/plain")
                .body("request_id=x&csrf_token=y"),
            "login form as text/plain",
        ),
        (
            app.http
                .post(app.endpoint(TENANT, "/consent"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("request_id={}", "x".repeat(100_000))),
            "consent form of 100 KB",
        ),
        (
            app.http.post(app.endpoint(TENANT, "/consent")).form(&[
                ("request_id", "x"),
                ("request_id", "y"),
                ("csrf_token", "z"),
            ]),
            "repeated request_id",
        ),
        (
            app.http.get(app.endpoint(TENANT, "/consent")),
            "consent by GET",
        ),
    ];
    for (request, case) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(
            status.is_client_error(),
            "{case}: expected a 4xx status, got {status}"
        );
        assert!(
            response.headers().get("location").is_none(),
            "{case}: must not redirect"
        );
    }
    assert_eq!(app.count_rows("authorization_codes").await, 0);
}
db_test!(hostile_requests_never_redirect);
