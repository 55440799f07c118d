//! Tenant isolation: a code, token, client, registration token, user or session of tenant
//! `acme` is worthless at tenant `beta`, and names of tenants that do not exist get 404.

use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::*;

/// Redeems `code` at `tenant` as `client` without a `resource`, so only the code decides.
async fn redeem_at(
    app: &TestApp,
    tenant: &str,
    client: &TestClient,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> reqwest::Response {
    app.token_at(
        tenant,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh_at(
    app: &TestApp,
    tenant: &str,
    client: &TestClient,
    refresh_token: &str,
) -> reqwest::Response {
    app.token_at(
        tenant,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn introspect_at(app: &TestApp, tenant: &str, client: &TestClient, token: &str) -> Value {
    let response = app
        .client_post(tenant, "/introspect", client, &[("token", token)])
        .await;
    assert_eq!(response.status(), StatusCode::OK, "introspection failed");
    response.json().await.unwrap()
}

async fn kids_at(app: &TestApp, tenant: &str) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.endpoint(tenant, "/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Returns authorization request parameters for `client` and `resource` with a fresh
/// PKCE challenge.
fn authorization_params(client: &TestClient, resource: &str) -> Vec<(String, String)> {
    let (_, challenge) = pkce();
    [
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
        ("resource", resource),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect()
}

fn borrowed(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

async fn code_worthless_at_other_tenant(app: TestApp) {
    let acme_client = app.confidential_client().await;
    let beta_client = app
        .confidential_client_at(OTHER_TENANT, "client_secret_basic")
        .await;
    let (code, verifier) = app.code_for(&acme_client).await;
    let redirect_uri = acme_client.redirect_uri.as_str();

    let response = redeem_at(
        &app,
        OTHER_TENANT,
        &beta_client,
        &code,
        &verifier,
        redirect_uri,
    )
    .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let response = redeem_at(
        &app,
        OTHER_TENANT,
        &acme_client,
        &code,
        &verifier,
        redirect_uri,
    )
    .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // The attempts at beta neither used up nor revoked the code at acme.
    let response = redeem_at(&app, TENANT, &acme_client, &code, &verifier, redirect_uri).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the code no longer works at its own tenant"
    );

    let acme_public = app.public_client().await;
    let (code, verifier) = app.code_for(&acme_public).await;
    let redirect_uri = acme_public.redirect_uri.as_str();
    let response = redeem_at(
        &app,
        OTHER_TENANT,
        &acme_public,
        &code,
        &verifier,
        redirect_uri,
    )
    .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let beta_public = app.public_client_at(OTHER_TENANT).await;
    let response = redeem_at(
        &app,
        OTHER_TENANT,
        &beta_public,
        &code,
        &verifier,
        redirect_uri,
    )
    .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = redeem_at(&app, TENANT, &acme_public, &code, &verifier, redirect_uri).await;
    assert_eq!(response.status(), StatusCode::OK, "public client's code");
}
db_test!(code_worthless_at_other_tenant);

async fn refresh_token_worthless_at_other_tenant(app: TestApp) {
    let acme_client = app.confidential_client().await;
    let beta_client = app
        .confidential_client_at(OTHER_TENANT, "client_secret_basic")
        .await;
    let tokens = app.tokens_for(&acme_client).await;
    let refresh_token = tokens.refresh_token.unwrap();

    let response = refresh_at(&app, OTHER_TENANT, &beta_client, &refresh_token).await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = refresh_at(&app, OTHER_TENANT, &acme_client, &refresh_token).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let body = introspect_at(&app, OTHER_TENANT, &beta_client, &refresh_token).await;
    assert_eq!(body, json!({"active": false}), "introspected at beta");

    // Presenting it at beta neither rotated it nor revoked its family at acme.
    let response = refresh_at(&app, TENANT, &acme_client, &refresh_token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the refresh token no longer works at its own tenant"
    );
}
db_test!(refresh_token_worthless_at_other_tenant);

async fn access_token_inactive_at_other_tenant(app: TestApp) {
    let acme_client = app.confidential_client().await;
    let beta_client = app
        .confidential_client_at(OTHER_TENANT, "client_secret_basic")
        .await;
    let acme_tokens = app.tokens_for(&acme_client).await;
    let response = app
        .token_at(
            OTHER_TENANT,
            &beta_client,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let beta_token = tokens(response).await.access_token;

    let body = introspect_at(&app, OTHER_TENANT, &beta_client, &acme_tokens.access_token).await;
    assert_eq!(body, json!({"active": false}), "acme token at beta");
    let body = introspect_at(&app, TENANT, &acme_client, &beta_token).await;
    assert_eq!(body, json!({"active": false}), "beta token at acme");
    let body = introspect_at(&app, OTHER_TENANT, &beta_client, &beta_token).await;
    assert_eq!(body["active"], true, "beta token at beta: {body}");

    // A beta client revoking acme's tokens at beta changes nothing at acme.
    let refresh_token = acme_tokens.refresh_token.clone().unwrap();
    for (token, case) in [
        (acme_tokens.access_token.as_str(), "access token"),
        (refresh_token.as_str(), "refresh token"),
    ] {
        let response = app
            .client_post(OTHER_TENANT, "/revoke", &beta_client, &[("token", token)])
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
    }
    let body = introspect_at(&app, TENANT, &acme_client, &acme_tokens.access_token).await;
    assert_eq!(
        body["active"], true,
        "acme token after beta's revocation: {body}"
    );
    let response = refresh_at(&app, TENANT, &acme_client, &refresh_token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "acme refresh after beta's revocation"
    );
}
db_test!(access_token_inactive_at_other_tenant);

async fn tenants_sign_with_separate_keys(app: TestApp) {
    let acme_kids = kids_at(&app, TENANT).await;
    let beta_kids = kids_at(&app, OTHER_TENANT).await;
    assert!(!acme_kids.is_empty(), "acme publishes no key");
    assert!(!beta_kids.is_empty(), "beta publishes no key");
    for kid in &acme_kids {
        assert!(
            !beta_kids.contains(kid),
            "kid {kid} is published by both tenants"
        );
    }

    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let (header, claims) = jwt_parts(&tokens.access_token);
    let kid = header["kid"].as_str().unwrap().to_owned();
    assert!(
        acme_kids.contains(&kid),
        "acme token signed by a key acme does not publish"
    );
    assert_eq!(claims["iss"], app.issuer);
}
db_test!(tenants_sign_with_separate_keys);

async fn client_unknown_at_other_tenant(app: TestApp) {
    let acme_public = app.public_client().await;
    let acme_confidential = app.confidential_client().await;

    let browser = Browser::new(&app, OTHER_TENANT);
    for (client, resource, case) in [
        (&acme_public, BETA_RS, "public client, beta resource"),
        (&acme_public, RS1, "public client, acme resource"),
        (&acme_confidential, BETA_RS, "confidential client"),
    ] {
        let params = authorization_params(client, resource);
        let response = browser.authorize(&borrowed(&params)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert!(
            response.headers().get("location").is_none(),
            "{case}: redirected to {}",
            location(&response)
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("Unknown client"), "{case}: {page}");
    }

    let secret = acme_confidential.client_secret.as_deref().unwrap();
    for path in ["/token", "/introspect", "/revoke"] {
        let response = app
            .post_form_at(
                OTHER_TENANT,
                path,
                &[("grant_type", "client_credentials"), ("token", "anything")],
                Some((&acme_confidential.client_id, secret)),
            )
            .await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}
db_test!(client_unknown_at_other_tenant);

async fn registration_token_bound_to_tenant(app: TestApp) {
    let acme_client = app.confidential_client().await;
    let beta_client = app.public_client_at(OTHER_TENANT).await;
    let token = acme_client.registration["registration_access_token"]
        .as_str()
        .expect("no registration_access_token")
        .to_owned();
    let update = json!({
        "client_id": acme_client.client_id,
        "redirect_uris": ["https://attacker.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    });

    let cases = [
        (
            Method::GET,
            &acme_client.client_id,
            "read acme client at beta",
        ),
        (
            Method::PUT,
            &acme_client.client_id,
            "update acme client at beta",
        ),
        (
            Method::DELETE,
            &acme_client.client_id,
            "delete acme client at beta",
        ),
        (Method::GET, &beta_client.client_id, "read a beta client"),
        (
            Method::DELETE,
            &beta_client.client_id,
            "delete a beta client",
        ),
    ];
    for (method, client_id, case) in cases {
        let url = app.endpoint(OTHER_TENANT, &format!("/register/{client_id}"));
        let mut request = app.http.request(method.clone(), url).bearer_auth(&token);
        if method == Method::PUT {
            request = request.json(&update);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    }

    let response = app
        .http
        .get(app.endpoint(TENANT, &format!("/register/{}", acme_client.client_id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the token at its own tenant"
    );
    let configuration: Value = response.json().await.unwrap();
    assert_eq!(
        configuration["redirect_uris"],
        json!(["https://client.example/cb"]),
        "the client changed"
    );
    let response = app
        .http
        .get(app.endpoint(
            OTHER_TENANT,
            &format!("/register/{}", beta_client.client_id),
        ))
        .bearer_auth(
            beta_client.registration["registration_access_token"]
                .as_str()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the beta client was deleted"
    );
}
db_test!(registration_token_bound_to_tenant);

async fn user_cannot_log_in_elsewhere(app: TestApp) {
    let beta_client = app.public_client_at(OTHER_TENANT).await;
    let browser = Browser::new(&app, OTHER_TENANT);
    let params = authorization_params(&beta_client, BETA_RS);

    let response = browser.authorize(&borrowed(&params)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "no login page: {page}");

    let response = browser.login(&page, OTHER_USER, OTHER_PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a user of acme logged in at beta"
    );
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(
        page.contains("name=\"password\""),
        "no login form after the failure"
    );

    // The same page accepts a user of beta, so the failure above is the tenant boundary.
    let response = browser.login(&page, USER, PASSWORD).await;
    assert!(
        response.status() == StatusCode::OK || response.status().is_redirection(),
        "a beta user could not log in at beta: {}",
        response.status()
    );
}
db_test!(user_cannot_log_in_elsewhere);

async fn session_cookie_bound_to_tenant(app: TestApp) {
    let jar = Arc::new(Jar::default());
    let mut browser = Browser::new(&app, TENANT);
    browser.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(Arc::clone(&jar))
        .build()
        .unwrap();
    let acme_client = app.public_client().await;
    let params = authorization_params(&acme_client, RS1);
    browser
        .authorize_and_approve(&borrowed(&params), USER, PASSWORD)
        .await;
    let acme_url = Url::parse(&app.endpoint(TENANT, "/authorize")).unwrap();
    let cookie = jar
        .cookies(&acme_url)
        .expect("no session cookie at acme")
        .to_str()
        .unwrap()
        .to_owned();

    // The cookie carries the acme login: acme redirects with a code straight away.
    let http = plain_client();
    let query = serde_urlencoded::to_string(authorization_params(&acme_client, RS1)).unwrap();
    let response = http
        .get(format!("{}?{query}", app.endpoint(TENANT, "/authorize")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "the session is not logged in"
    );
    assert!(query_params(&location(&response)).contains_key("code"));

    // Sent to beta on purpose, the same cookie does not log the user in.
    let beta_client = app.public_client_at(OTHER_TENANT).await;
    let query = serde_urlencoded::to_string(authorization_params(&beta_client, BETA_RS)).unwrap();
    let response = http
        .get(format!(
            "{}?{query}",
            app.endpoint(OTHER_TENANT, "/authorize")
        ))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "beta answered the acme session"
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("name=\"password\""),
        "beta skipped its login page for an acme session"
    );
}
db_test!(session_cookie_bound_to_tenant);

/// A request's `Content-Type` and body.
type ContentAndBody = (&'static str, &'static str);

async fn unknown_tenant_endpoints_not_found(app: TestApp) {
    let long_name = "a".repeat(64);
    let tenants = [
        "nosuch",
        "ACME",
        "-acme",
        "a_b",
        long_name.as_str(),
        "acme%2Fbeta",
    ];
    let form = "grant_type=client_credentials&client_id=x&token=y";
    let requests: [(Method, &str, Option<ContentAndBody>); 13] = [
        (Method::GET, "/.well-known/oauth-authorization-server", None),
        (Method::GET, "/.well-known/openid-configuration", None),
        (Method::GET, "/jwks.json", None),
        (
            Method::GET,
            "/authorize?response_type=code&client_id=x&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback",
            None,
        ),
        (
            Method::POST,
            "/login",
            Some(("application/x-www-form-urlencoded", "request_id=x")),
        ),
        (
            Method::POST,
            "/consent",
            Some(("application/x-www-form-urlencoded", "request_id=x")),
        ),
        (
            Method::POST,
            "/token",
            Some(("application/x-www-form-urlencoded", form)),
        ),
        (
            Method::POST,
            "/revoke",
            Some(("application/x-www-form-urlencoded", form)),
        ),
        (
            Method::POST,
            "/introspect",
            Some(("application/x-www-form-urlencoded", form)),
        ),
        (
            Method::POST,
            "/register",
            Some((
                "application/json",
                r#"{"redirect_uris":["https://client.example/cb"]}"#,
            )),
        ),
        (Method::GET, "/register/x", None),
        (Method::PUT, "/register/x", Some(("application/json", "{}"))),
        (Method::DELETE, "/register/x", None),
    ];
    for tenant in tenants {
        let inserted = app.url(&format!(
            "/.well-known/oauth-authorization-server/t/{tenant}"
        ));
        let response = app.http.get(&inserted).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{inserted}");

        for (method, path, body) in &requests {
            let url = app.url(&format!("/t/{tenant}{path}"));
            let mut request = app
                .http
                .request(method.clone(), &url)
                .header("Authorization", "Bearer x");
            if let Some((content_type, body)) = body {
                request = request
                    .header("Content-Type", *content_type)
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {url}");
        }
    }
}
db_test!(unknown_tenant_endpoints_not_found);
