//! Soak: continuous token issuance against two server processes on one database while keys
//! rotate every few seconds, checked by a resource server that caches JWKS exactly as long
//! as `Cache-Control` allows and never refetches early. Every token must verify.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis::keys::VerifierSet;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::helpers::*;
use crate::process::{Server, Workspace};

const ROTATION_PERIOD: i64 = 6;
const SOAK: Duration = Duration::from_secs(27);
const ISSUERS: usize = 4;
const PUBLIC_URL: &str = "http://127.0.0.1:9";

/// A resource server's view of the issuer's keys: fetched JWKS kept for `max-age`.
struct CachingVerifier {
    http: reqwest::Client,
    addresses: [String; 2],
    cached: Mutex<Option<(Arc<VerifierSet>, Instant, Duration)>>,
    fetches: AtomicUsize,
}

impl CachingVerifier {
    async fn verifiers(&self) -> Arc<VerifierSet> {
        let mut cached = self.cached.lock().await;
        if let Some((verifiers, fetched, max_age)) = cached.as_ref()
            && fetched.elapsed() < *max_age
        {
            return Arc::clone(verifiers);
        }
        // Like a load balancer, alternate between the instances.
        let fetch = self.fetches.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/t/{TENANT}/jwks.json", self.addresses[fetch % 2]);
        let fetched = Instant::now();
        let response = self.http.get(url).send().await.unwrap();
        let cache_control = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        let max_age: u64 = cache_control
            .split("max-age=")
            .nth(1)
            .and_then(|age| age.parse().ok())
            .expect("no max-age");
        let verifiers =
            Arc::new(VerifierSet::from_jwks(&response.bytes().await.unwrap(), 1).unwrap());
        *cached = Some((
            Arc::clone(&verifiers),
            fetched,
            Duration::from_secs(max_age),
        ));
        verifiers
    }
}

async fn start(url: &str) -> (Workspace, Server, Server, (String, String)) {
    let workspace = Workspace::with_database(url);
    let settings = [
        ("PORTCULLIS_PUBLIC_URL", PUBLIC_URL),
        ("PORTCULLIS_MASTER_KEY", TEST_MASTER_KEY),
        ("PORTCULLIS_KEY_ROTATION_PERIOD_SECS", "6"),
        ("PORTCULLIS_KEY_PUBLISH_LEAD_SECS", "2"),
        ("PORTCULLIS_CLOCK_SKEW_SECS", "1"),
        ("PORTCULLIS_ACCESS_TOKEN_TTL_SECS", "3"),
    ];
    workspace.run_with_ok(&["tenant", "create", TENANT], &settings);
    workspace.run_with_ok(
        &[
            "resource",
            "add",
            "--tenant",
            TENANT,
            RS1,
            "--scopes",
            "mcp:tools",
        ],
        &settings,
    );
    let added = workspace.run_with_ok(
        &[
            "client",
            "add",
            "--tenant",
            TENANT,
            "--grant-type",
            "client_credentials",
            "--name",
            "soak",
        ],
        &settings,
    );
    let field = |name: &str| {
        added
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let credentials = (field("client_id"), field("client_secret"));
    let (first, second) = tokio::join!(workspace.serve(&settings), workspace.serve(&settings));
    (workspace, first, second, credentials)
}

async fn soak(db: Db) {
    let Some((_database, url)) = fresh_database(db).await else {
        return;
    };
    let (workspace, first, second, (client_id, secret)) = start(&url).await;
    let addresses = [first.address.clone(), second.address.clone()];
    let verifier = Arc::new(CachingVerifier {
        http: reqwest::Client::new(),
        addresses: addresses.clone(),
        cached: Mutex::new(None),
        fetches: AtomicUsize::new(0),
    });
    let issued = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let kids = Arc::new(Mutex::new(std::collections::BTreeSet::<String>::new()));
    let last_issued = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let issuance_started = portcullis::clock::now();

    let mut tasks = Vec::new();
    for worker in 0..ISSUERS {
        let (verifier, issued, failures, kids, last_issued) = (
            Arc::clone(&verifier),
            Arc::clone(&issued),
            Arc::clone(&failures),
            Arc::clone(&kids),
            Arc::clone(&last_issued),
        );
        let (address, client_id, secret) = (
            addresses[worker % 2].clone(),
            client_id.clone(),
            secret.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while started.elapsed() < SOAK {
                let response = http
                    .post(format!("{address}/t/{TENANT}/token"))
                    .header("Authorization", basic(&client_id, &secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                if response.status() != StatusCode::OK {
                    failures
                        .lock()
                        .await
                        .push(format!("token request answered {}", response.status()));
                    continue;
                }
                let body: Value = response.json().await.unwrap();
                let token = body["access_token"].as_str().unwrap().to_owned();
                issued.fetch_add(1, Ordering::Relaxed);
                last_issued.fetch_max(portcullis::clock::now(), Ordering::Relaxed);
                kids.lock()
                    .await
                    .insert(jwt_parts(&token).0["kid"].as_str().unwrap().to_owned());
                let verifiers = verifier.verifiers().await;
                let now = portcullis::clock::now();
                if let Err(error) =
                    verifiers.verify_for(&token, &format!("{PUBLIC_URL}/t/{TENANT}"), RS1, now)
                {
                    failures
                        .lock()
                        .await
                        .push(format!("verification failed: {error}"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    first.stop();
    second.stop();

    let activations = activations(db, &workspace.database_url).await;
    let issued = issued.load(Ordering::Relaxed);
    let failures = failures.lock().await.clone();
    let kids = kids.lock().await.clone();
    println!(
        "soak on {db:?}: {issued} tokens issued, {} rotations, {} signing keys seen, {} JWKS fetches, {} failures",
        activations.len(),
        kids.len(),
        verifier.fetches.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "verification failures: {:?}",
        &failures[..failures.len().min(10)]
    );
    assert!(
        activations.len() >= 3,
        "only {} rotations happened in the soak",
        activations.len()
    );
    assert!(issued > 100, "the soak issued only {issued} tokens");
    // A key activated while tokens were issued must sign some of them. Instances load keys
    // again within a second, and a key is stamped before its activation commits, so a key
    // activated in the last seconds of issuance may not have signed.
    let checked_until = last_issued.load(Ordering::Relaxed) - 4;
    let signing: Vec<&(i64, String)> = activations
        .iter()
        .filter(|(time, _)| (issuance_started..=checked_until).contains(time))
        .collect();
    assert!(
        signing.len() >= 2,
        "fewer than two rotations fell between {issuance_started} and {checked_until}: {activations:?}"
    );
    for (time, kid) in signing {
        assert!(
            kids.contains(kid),
            "key {kid}, activated at {time}, signed no token; seen: {kids:?}"
        );
    }
    let times: Vec<i64> = activations.iter().map(|(time, _)| *time).collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= ROTATION_PERIOD - 1,
            "two rotations {}s apart with a period of {ROTATION_PERIOD}s: {times:?}",
            pair[1] - pair[0]
        );
    }
}

/// Returns the time and key id of every key activation, from the audit table, in order.
async fn activations(db: Db, url: &str) -> Vec<(i64, String)> {
    let query = "SELECT occurred_at, detail FROM audit_events WHERE event = 'key_activated' \
                 ORDER BY occurred_at";
    let rows: Vec<(i64, String)> = match db {
        Db::Sqlite => sqlx::query_as(query)
            .fetch_all(&sqlx::SqlitePool::connect(url).await.unwrap())
            .await
            .unwrap(),
        Db::Postgres => sqlx::query_as(query)
            .fetch_all(&sqlx::PgPool::connect(url).await.unwrap())
            .await
            .unwrap(),
    };
    rows.into_iter()
        .map(|(time, detail)| {
            let detail: Value = serde_json::from_str(&detail).unwrap();
            (time, detail["kid"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_rotation_never_breaks_verification_sqlite() {
    soak(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_rotation_never_breaks_verification_postgres() {
    soak(Db::Postgres).await;
}
