//! Two `portcullis serve` processes on one PostgreSQL database, as behind a load balancer.
//! These tests need PostgreSQL and print a notice without `PORTCULLIS_TEST_POSTGRES_URL`.

use std::sync::Arc;

use josekit::jwk::JwkSet;
use josekit::jws::ES256;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::helpers::*;
use crate::process::{Server, Workspace};

const CONCURRENCY: usize = 64;

/// Public URL both instances serve under, as behind one load balancer. Only its text
/// matters: tests call each instance at its own address.
const SHARED_PUBLIC_URL: &str = "http://127.0.0.1:9";

/// Starts two servers on a fresh PostgreSQL database at the same moment, so their
/// migrations race, then seeds tenant `acme` through the admin commands.
async fn two_instances() -> Option<(TestDatabase, Workspace, Server, Server)> {
    let (database, url) = fresh_database(Db::Postgres).await?;
    let workspace = Workspace::with_database(&url);
    let shared = [("PORTCULLIS_PUBLIC_URL", SHARED_PUBLIC_URL)];
    let (first, second) = tokio::join!(workspace.serve(&shared), workspace.serve(&shared));
    workspace.run_ok(&["tenant", "create", TENANT], "");
    workspace.run_ok(
        &[
            "resource",
            "add",
            "--tenant",
            TENANT,
            RS1,
            "--scopes",
            "mcp:tools",
        ],
        "",
    );
    workspace.run_ok(
        &["user", "add", "--tenant", TENANT, USER],
        &format!("{PASSWORD}\n"),
    );
    Some((database, workspace, first, second))
}

async fn register(address: &str) -> (String, String) {
    let registration: Value = reqwest::Client::new()
        .post(format!("{address}/t/{TENANT}/register"))
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        registration["client_id"].as_str().unwrap().to_owned(),
        registration.to_string(),
    )
}

/// Logs in through `address` and returns a code and its verifier.
async fn code_at(address: &str, client_id: &str) -> (String, String) {
    let browser = Browser::with_address(address, TENANT);
    let (verifier, challenge) = pkce();
    let location = browser
        .authorize_and_approve(
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT_URI),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", RS1),
            ],
            USER,
            PASSWORD,
        )
        .await;
    (query_params(&location)["code"].clone(), verifier)
}

/// Sends `CONCURRENCY` copies of one token request, alternating between the two servers,
/// released together by a barrier; returns the statuses.
async fn race(addresses: [&str; 2], form: Vec<(&'static str, String)>) -> Vec<StatusCode> {
    let barrier = Arc::new(Barrier::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for index in 0..CONCURRENCY {
        let url = format!("{}/t/{TENANT}/token", addresses[index % 2]);
        let form = form.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            barrier.wait().await;
            client.post(url).form(&form).send().await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn assert_single_success(statuses: &[StatusCode], what: &str) {
    let successes = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    let server_errors = statuses
        .iter()
        .filter(|status| status.is_server_error())
        .count();
    assert_eq!(server_errors, 0, "{what}: server errors in {statuses:?}");
    assert_eq!(successes, 1, "{what}: expected one success in {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::OK || *status == StatusCode::BAD_REQUEST),
        "{what}: unexpected statuses {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_share_single_use_codes() {
    let Some((_database, _workspace, first, second)) = two_instances().await else {
        return;
    };
    let (client_id, _) = register(&first.address).await;
    let (code, verifier) = code_at(&first.address, &client_id).await;
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", REDIRECT_URI.to_owned()),
        ("code_verifier", verifier),
        ("client_id", client_id),
    ];
    let statuses = race([&first.address, &second.address], form).await;
    assert_single_success(&statuses, "code redeemed on two instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_share_refresh_rotation() {
    let Some((_database, _workspace, first, second)) = two_instances().await else {
        return;
    };
    let (client_id, _) = register(&second.address).await;
    let (code, verifier) = code_at(&second.address, &client_id).await;
    let tokens: Value = reqwest::Client::new()
        .post(format!("{}/t/{TENANT}/token", first.address))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        (
            "refresh_token",
            tokens["refresh_token"].as_str().unwrap().to_owned(),
        ),
        ("client_id", client_id),
    ];
    let statuses = race([&first.address, &second.address], form).await;
    assert_single_success(&statuses, "refresh token presented to two instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_verify_each_others_tokens() {
    let Some((_database, workspace, first, second)) = two_instances().await else {
        return;
    };
    let added = workspace.run_ok(
        &[
            "client",
            "add",
            "--tenant",
            TENANT,
            "--grant-type",
            "client_credentials",
            "--name",
            "machine",
        ],
        "",
    );
    let field = |name: &str| {
        added
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let (client_id, secret) = (field("client_id"), field("client_secret"));
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/t/{TENANT}/token", first.address))
        .header("Authorization", basic(&client_id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap();

    let jwks = http
        .get(format!("{}/t/{TENANT}/jwks.json", second.address))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let jwks = JwkSet::from_bytes(&jwks).unwrap();
    let (header, _) = jwt_parts(access_token);
    let key = jwks.get(header["kid"].as_str().unwrap());
    assert_eq!(
        key.len(),
        1,
        "the second instance does not publish the signing key"
    );
    let verifier = ES256.verifier_from_jwk(key[0]).unwrap();
    josekit::jwt::decode_with_verifier(access_token, &verifier)
        .expect("the signature does not verify with the other instance's JWKS");

    let introspection: Value = http
        .post(format!("{}/t/{TENANT}/introspect", second.address))
        .header("Authorization", basic(&client_id, &secret))
        .form(&[("token", access_token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        introspection["active"], true,
        "the second instance rejects the first's token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_instances_migrate_once() {
    let Some((_database, workspace, first, second)) = two_instances().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&workspace.database_url)
        .await
        .unwrap();
    let applied: Vec<(i64, i64)> =
        sqlx::query_as("SELECT version, COUNT(*) FROM _sqlx_migrations GROUP BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "not every migration was applied");
    assert!(
        applied.iter().all(|(_, count)| *count == 1),
        "a migration was applied twice: {applied:?}"
    );
    let tenants: Vec<(String,)> = sqlx::query_as("SELECT slug FROM tenants WHERE slug = 'default'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        tenants.len(),
        1,
        "the default tenant was created twice or not at all"
    );
    for server in [first, second] {
        let (_, log) = server.stop();
        assert!(
            !log.contains("ERROR"),
            "an instance logged an error while starting: {log}"
        );
    }
}
