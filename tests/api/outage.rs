//! Database outages: a PostgreSQL cluster made for the test with `initdb`, reached through a
//! Unix socket in its own directory, is stopped under a running server and started again.
//! Runs with the PostgreSQL suite, that is with `PORTCULLIS_TEST_POSTGRES_URL` set.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A private PostgreSQL cluster, stopped when dropped.
struct Cluster {
    directory: tempfile::TempDir,
    binaries: PathBuf,
    as_root: bool,
}

impl Cluster {
    fn create() -> Self {
        let binaries = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries not found under /usr/lib/postgresql")
            .map(|entry| entry.unwrap().path().join("bin"))
            .find(|path| path.join("initdb").exists())
            .expect("initdb not found under /usr/lib/postgresql/*/bin");
        // Under /tmp regardless of TMPDIR, because the socket's path must fit in the
        // 108 bytes of a Unix socket address, terminating zero included.
        let directory = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.starts_with(b"0\n"));
        // PostgreSQL refuses to run as root, so the cluster belongs to the postgres user.
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(directory.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let cluster = Self {
            directory,
            binaries,
            as_root,
        };
        let data = cluster.data().display().to_string();
        cluster.run(
            "initdb",
            &["-D", &data, "--auth=trust", "-U", "postgres", "--no-sync"],
        );
        cluster
    }

    fn data(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    /// Builds a command for one of the server's programs, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let binary = self.binaries.join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = self.command(program).args(args).output().unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        if let Err(message) = self.try_run(program, args) {
            panic!("{message}");
        }
    }

    fn log(&self) -> PathBuf {
        self.directory.path().join("server.log")
    }

    /// Starts the server on a Unix socket only. A TCP port picked in advance could be taken
    /// by another test's connection before the server binds it, or while it is stopped.
    fn start(&self) {
        let options = format!(
            "-c listen_addresses='' -k {} -c fsync=off",
            self.directory.path().display()
        );
        let log = self.log().display().to_string();
        let data = self.data().display().to_string();
        let started = self.try_run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-t", "120", "-w", "start",
            ],
        );
        if let Err(message) = started {
            let server_log = std::fs::read_to_string(self.log()).unwrap_or_default();
            panic!("{message}\nserver log:\n{server_log}");
        }
    }

    fn stop(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.directory.path().display()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

async fn assert_unavailable_json(response: reqwest::Response, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} during the outage"
    );
    assert!(
        response.headers().contains_key("retry-after"),
        "{what} has no Retry-After"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"], "temporarily_unavailable",
        "{what} body: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_answers_503_then_recovers() {
    if postgres_url().is_none() {
        eprintln!(
            "notice: {POSTGRES_VARIABLE} is unset or empty; skipping the PostgreSQL outage test"
        );
        return;
    }
    let cluster = Cluster::create();
    cluster.start();
    let app = start_app(
        Db::Postgres,
        TestDatabase::External,
        cluster.url(),
        |settings| {
            settings.database.acquire_timeout = Duration::from_secs(1);
        },
    )
    .await;
    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let refresh_token = tokens.refresh_token.unwrap();
    let (code, verifier) = app.code_for(&client).await;
    let redeem_code = || app.redeem(&client, &code, &verifier);
    let (_, challenge) = pkce();
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&resource={}",
        app.issuer, client.client_id, REDIRECT_URI, RS1
    );

    cluster.stop();
    assert_unavailable_json(app.refresh(&client, &refresh_token).await, "refresh").await;
    assert_unavailable_json(redeem_code().await, "code exchange").await;
    assert_unavailable_json(
        app.register(&serde_json::json!({"redirect_uris": [REDIRECT_URI]}))
            .await,
        "registration",
    )
    .await;
    // Past the tenant cache, so the authorize request needs the database too.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let page = app.http.get(&authorize).send().await.unwrap();
    assert_eq!(
        page.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "authorize during the outage"
    );
    assert!(
        page.headers().contains_key("retry-after"),
        "the authorize page has no Retry-After"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("temporarily unavailable")
    );
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    cluster.start();
    let mut ready = false;
    for _ in 0..60 {
        if app.get("/readyz").await.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        ready,
        "the server did not become ready after the database returned"
    );

    // The refresh attempted during the outage changed nothing, so the token still works once.
    let refreshed = app.refresh(&client, &refresh_token).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the grant was lost in the outage"
    );
    assert_eq!(
        app.refresh(&client, &refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    // The code presented during the outage was not used up, so it redeems exactly once.
    assert_eq!(
        redeem_code().await.status(),
        StatusCode::OK,
        "the code was lost in the outage"
    );
    assert_eq!(redeem_code().await.status(), StatusCode::BAD_REQUEST);
    let pool = sqlx::PgPool::connect(&cluster.url()).await.unwrap();
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT family_id, COUNT(*) FROM refresh_tokens GROUP BY family_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        counts.len(),
        2,
        "each of the two code exchanges makes one family"
    );
    assert!(
        counts.iter().any(|(_, count)| *count == 2),
        "the refreshed family holds the first token and exactly one successor"
    );
    assert!(
        counts.iter().any(|(_, count)| *count == 1),
        "the family of the code redeemed after the outage holds one token"
    );
    let registered = app.register(&serde_json::json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(
        registered.status(),
        StatusCode::CREATED,
        "registration did not resume"
    );
    pool.close().await;
    drop(app);
}
