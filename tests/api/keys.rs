//! Signing-key rotation as resource servers see it through JWKS, algorithms per tenant,
//! and master keys.

use std::time::Duration;

use portcullis::admin;
use portcullis::keys::rotation::Rotation;
use portcullis::keys::{SigningAlgorithm, VerifierSet};
use portcullis::tenant::TenantSlug;
use reqwest::StatusCode;
use serde_json::Value;

use crate::db_test;
use crate::helpers::*;
use crate::process::Workspace;

const LEAD: i64 = 2;
const SKEW: i64 = 1;
const ACCESS_TTL: i64 = 6;

fn now() -> i64 {
    portcullis::clock::now()
}

async fn short_rotation_app(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |settings| {
        settings.key_timing.publish_lead = LEAD;
        settings.key_timing.clock_skew = SKEW;
        settings.key_timing.rotation_period = 3600;
        settings.lifetimes.access_token = ACCESS_TTL;
    })
    .await
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .get(&format!("/t/{TENANT}/jwks.json"))
        .await
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

async fn machine_token(app: &TestApp, client: &TestClient) -> String {
    let response = app
        .token(
            client,
            &[("grant_type", "client_credentials"), ("resource", RS1)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    tokens(response).await.access_token
}

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().unwrap().to_owned()
}

async fn forced_rotation_publishes_before_signing(app: TestApp) {
    let client = app.confidential_client().await;
    let old_token = machine_token(&app, &client).await;
    let old_kid = kid_of(&old_token);

    let tenant_id = app.store.tenant_id_by_slug(TENANT).await.unwrap().unwrap();
    let rotation = Rotation::new(
        app.store.clone(),
        std::sync::Arc::new(test_master_keys()),
        key_timing(),
        ACCESS_TTL,
    );
    let upcoming = rotation
        .create_upcoming(&tenant_id, None, now())
        .await
        .unwrap()
        .expect("no upcoming key was created");
    let created_at = upcoming.created_at;
    assert!(
        rotation
            .create_upcoming(&tenant_id, None, now())
            .await
            .unwrap()
            .is_none(),
        "a second upcoming key was created"
    );

    // The new key is in JWKS before any token carries it, for at least the lead time.
    let mut first_published = None;
    let mut first_signed = None;
    let mut last_old_token = old_token.clone();
    for _ in 0..100 {
        if first_published.is_none() && jwks_kids(&app).await.contains(&upcoming.kid) {
            first_published = Some(now());
        }
        let token = machine_token(&app, &client).await;
        if kid_of(&token) == old_kid {
            last_old_token = token;
        } else if kid_of(&token) == upcoming.kid {
            first_signed = Some(now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_published = first_published.expect("the new key never appeared in JWKS");
    let first_signed = first_signed.expect("the new key never signed");
    assert!(
        first_signed >= created_at + LEAD,
        "the key signed {}s after creation, before the lead time",
        first_signed - created_at
    );
    assert!(
        first_published <= first_signed,
        "a token carried the key before JWKS did"
    );

    // Tokens signed by the retired key stay valid until they expire.
    let info = app.introspect(&last_old_token).await;
    assert_eq!(
        info["active"], true,
        "a token signed before the rotation stopped verifying"
    );
    assert!(
        jwks_kids(&app).await.contains(&old_kid),
        "the retired key left JWKS while its tokens live"
    );

    // After the longest token lifetime plus skew and cache time, the retired key is gone.
    let mut removed = false;
    for _ in 0..100 {
        if !jwks_kids(&app).await.contains(&old_kid) {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(removed, "the retired key was never removed from JWKS");
    let gone_at = now();
    assert!(
        gone_at >= first_signed + ACCESS_TTL + SKEW,
        "the retired key left JWKS before its tokens expired"
    );
    let states: Vec<(String, String)> = app
        .store
        .all_signing_keys(&tenant_id)
        .await
        .unwrap()
        .into_iter()
        .map(|key| (key.kid, key.state))
        .collect();
    assert!(
        states.contains(&(old_kid.clone(), "removed".to_owned())),
        "states: {states:?}"
    );
    assert!(
        states.contains(&(upcoming.kid.clone(), "current".to_owned())),
        "states: {states:?}"
    );
}

fn key_timing() -> portcullis::config::KeyTiming {
    portcullis::config::KeyTiming {
        rotation_period: 3600,
        publish_lead: LEAD,
        clock_skew: SKEW,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_rotation_publishes_before_signing_sqlite() {
    forced_rotation_publishes_before_signing(short_rotation_app(Db::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_rotation_publishes_before_signing_postgres() {
    if let Some(app) = short_rotation_app(Db::Postgres).await {
        forced_rotation_publishes_before_signing(app).await;
    }
}

async fn jwks_supports_conditional_get(app: TestApp) {
    let url = app.endpoint(TENANT, "/jwks.json");
    let response = app.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let cache_control = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age: i64 = cache_control
        .split("max-age=")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age > 0 && max_age <= 3600,
        "max-age {max_age} exceeds the publish lead time"
    );
    let jwks: Value = response.json().await.unwrap();
    for key in jwks["keys"].as_array().unwrap() {
        assert!(
            key.get("d").is_none() && key.get("p").is_none(),
            "JWKS exposes private material: {key}"
        );
        assert_eq!(key["alg"], "ES256");
    }

    let revalidated = app
        .http
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.headers()["etag"].to_str().unwrap(), etag);
    let stale = app
        .http
        .get(&url)
        .header("If-None-Match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}
db_test!(jwks_supports_conditional_get);

async fn tenants_sign_with_chosen_algorithm(app: TestApp) {
    for (name, algorithm) in [
        ("ed", SigningAlgorithm::EdDsa),
        ("rsa", SigningAlgorithm::Rs256),
    ] {
        let tenant_id = admin::create_tenant(
            &app.store,
            &test_master_keys(),
            &TenantSlug::parse(name).unwrap(),
            algorithm,
        )
        .await
        .unwrap();
        admin::add_resource(&app.store, &tenant_id, RS1, "mcp:tools")
            .await
            .unwrap();
        let client = app
            .confidential_client_at(name, "client_secret_basic")
            .await;
        let response = app
            .token_at(name, &client, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{name}: token request failed"
        );
        let token = tokens(response).await.access_token;
        let (header, _) = jwt_parts(&token);
        assert_eq!(header["alg"], algorithm.name(), "{name}: token alg");

        let jwks = app
            .get(&format!("/t/{name}/jwks.json"))
            .await
            .bytes()
            .await
            .unwrap();
        let verifiers = VerifierSet::from_jwks(&jwks, 60).unwrap();
        verifiers
            .verify_for(&token, &app.issuer_of(name), RS1, now())
            .unwrap_or_else(|error| {
                panic!("{name}: the token does not verify against JWKS: {error}")
            });
        let metadata: Value = app
            .get(&format!("/.well-known/oauth-authorization-server/t/{name}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            metadata["access_token_signing_alg_values_supported"],
            serde_json::json!([algorithm.name()])
        );
    }
}
db_test!(tenants_sign_with_chosen_algorithm);

/// Registers a client_credentials client at tenant `acme` of `address`; returns its id and
/// secret.
async fn machine_client(address: &str) -> (String, String) {
    let registration: Value = reqwest::Client::new()
        .post(format!("{address}/t/acme/register"))
        .json(&serde_json::json!({"grant_types": ["client_credentials"], "response_types": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        registration["client_id"].as_str().unwrap().to_owned(),
        registration["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn post_as(
    address: &str,
    path: &str,
    (id, secret): &(String, String),
    form: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{address}/t/acme{path}"))
        .header("Authorization", basic(id, secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_rotation_keeps_keys_usable() {
    let old_key = portcullis::keys::sealing::MasterKey::generate();
    let new_key = portcullis::keys::sealing::MasterKey::generate();
    let workspace = Workspace::new();
    // One public URL for both starts, so the issuer of the early token stays the same.
    let public_url = ("PORTCULLIS_PUBLIC_URL", "http://127.0.0.1:9");
    let with_old = [("PORTCULLIS_MASTER_KEY", old_key.as_str()), public_url];
    workspace.run_with_ok(
        &["tenant", "create", "acme", "--algorithm", "EdDSA"],
        &with_old,
    );
    workspace.run_ok(
        &[
            "resource",
            "add",
            "--tenant",
            "acme",
            RS1,
            "--scopes",
            "mcp:tools",
        ],
        "",
    );
    let server = workspace.serve(&with_old).await;
    let client = machine_client(&server.address).await;
    let response = post_as(
        &server.address,
        "/token",
        &client,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let old_token = tokens(response).await.access_token;
    let jwks_before = reqwest::get(format!("{}/t/acme/jwks.json", server.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.stop();

    let both = [
        ("PORTCULLIS_MASTER_KEY", new_key.as_str()),
        ("PORTCULLIS_PREVIOUS_MASTER_KEYS", old_key.as_str()),
    ];
    let output = workspace.run_with_ok(&["master-key", "rotate"], &both);
    assert!(
        output.contains("Re-sealed 1 signing keys"),
        "unexpected rotate output: {output}"
    );
    assert!(
        output.contains("0 keys remain"),
        "unexpected rotate output: {output}"
    );

    let with_new = [("PORTCULLIS_MASTER_KEY", new_key.as_str()), public_url];
    let server = workspace.serve(&with_new).await;
    let jwks_after = reqwest::get(format!("{}/t/acme/jwks.json", server.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        jwks_before, jwks_after,
        "the keys changed when the master key did"
    );
    let introspection: Value = post_as(
        &server.address,
        "/introspect",
        &client,
        &[("token", &old_token)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        introspection["active"], true,
        "a token from before the master-key change stopped verifying"
    );
    let response = post_as(
        &server.address,
        "/token",
        &client,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the re-sealed key no longer signs"
    );
    server.stop();

    let wrong = portcullis::keys::sealing::MasterKey::generate();
    let failed = workspace.run_with(
        &["serve"],
        &[
            ("PORTCULLIS_MASTER_KEY", wrong.as_str()),
            ("PORTCULLIS_BIND", "127.0.0.1:0"),
        ],
    );
    assert!(
        !failed.status.success(),
        "the server started with a wrong master key"
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("was sealed with master key mk-"),
        "the error does not explain the master key: {stderr}"
    );
    assert!(
        stderr.contains("PORTCULLIS_MASTER_KEY"),
        "the error does not name the setting: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_master_key_file_is_private() {
    let workspace = Workspace::new();
    let server = workspace.serve(&[]).await;
    let (_, log) = server.stop();
    assert!(
        log.contains("generated a master key file"),
        "no warning about the generated key: {log}"
    );
    let path = workspace.path().join("portcullis.master-key");
    let metadata = std::fs::metadata(&path).expect("no master key file next to the database");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o600,
        "the master key file is readable by others"
    );
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(!log.contains(key.trim()), "the master key reached the log");

    // A second start reuses the file, so the sealed keys still open.
    let again = workspace.serve(&[]).await;
    again.stop();

    let production = workspace.run_with(
        &["serve"],
        &[
            ("PORTCULLIS_PRODUCTION", "true"),
            ("PORTCULLIS_PUBLIC_URL", "https://auth.example.com"),
        ],
    );
    assert!(
        !production.status.success(),
        "production started without an explicit master key"
    );
    assert!(String::from_utf8_lossy(&production.stderr).contains("PORTCULLIS_MASTER_KEY"));
}
