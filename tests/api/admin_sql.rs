//! Every query in docs/ADMIN-SQL.md runs on both databases, against data from real flows.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use sqlx::Row;

use crate::db_test;
use crate::helpers::*;

/// Returns the SQL of every ```sql block in the operators' guide.
fn documented_queries() -> Vec<String> {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ADMIN-SQL.md"))
            .unwrap();
    let mut queries = Vec::new();
    let mut current: Option<String> = None;
    for line in guide.lines() {
        match (&mut current, line.trim()) {
            (None, "```sql") => current = Some(String::new()),
            (Some(query), "```") => {
                queries.push(std::mem::take(query));
                current = None;
            }
            (Some(query), _) => {
                query.push_str(line);
                query.push('\n');
            }
            (None, _) => {}
        }
    }
    queries
}

/// Rows of one query, each as text columns named in `columns`.
async fn run_query(app: &TestApp, query: &str, columns: &[&str]) -> Vec<Vec<Option<String>>> {
    macro_rules! collect {
        ($pool:expr) => {{
            let rows = sqlx::query(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_all(&$pool)
                .await
                .unwrap_or_else(|error| {
                    panic!("documented query failed on {:?}: {error}\n{query}", app.db)
                });
            rows.iter()
                .map(|row| {
                    columns
                        .iter()
                        .map(|column| row.try_get::<Option<String>, _>(*column).unwrap())
                        .collect()
                })
                .collect()
        }};
    }
    match app.db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            collect!(pool)
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            collect!(pool)
        }
    }
}

/// Produces a client, tokens, a failed login and a detected reuse.
async fn make_history(app: &TestApp) {
    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let first = tokens.refresh_token.unwrap();
    assert_eq!(app.refresh(&client, &first).await.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&client, &first).await.status(),
        StatusCode::BAD_REQUEST
    );

    let browser = Browser::new(app, TENANT);
    let (_, challenge) = pkce();
    let page = browser
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
    let failed = browser.login(&page, USER, "not-the-password").await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
}

/// Waits until the audit writer has stored an event of kind `event`.
async fn wait_for_events(app: &TestApp, event: &str) {
    let query = format!("SELECT event FROM audit_events WHERE event = '{event}'");
    for _ in 0..50 {
        if !run_query(app, &query, &["event"]).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {event} audit event was written");
}

async fn documented_queries_run(app: TestApp) {
    make_history(&app).await;
    for event in ["login_failed", "refresh_token_reuse_detected"] {
        wait_for_events(&app, event).await;
    }
    let queries = documented_queries();
    assert!(queries.len() >= 10, "the guide lost its queries");
    for query in &queries {
        run_query(&app, query, &[]).await;
    }
}
db_test!(documented_queries_run);

async fn audit_records_security_events(app: TestApp) {
    make_history(&app).await;
    for event in [
        "login_failed",
        "refresh_token_reuse_detected",
        "token_issued",
        "login_succeeded",
        "client_registered",
        "key_created",
        "consent_granted",
    ] {
        wait_for_events(&app, event).await;
    }
    let failed = run_query(
        &app,
        "SELECT subject, detail FROM audit_events WHERE event = 'login_failed'",
        &["subject", "detail"],
    )
    .await;
    assert_eq!(failed[0][0].as_deref(), Some(USER));
    assert!(failed[0][1].as_deref().unwrap().contains("wrong_password"));

    let families = run_query(
        &app,
        "SELECT status, revoked_reason FROM operator_refresh_families WHERE tenant = 'acme'",
        &["status", "revoked_reason"],
    )
    .await;
    assert_eq!(families.len(), 1, "one code exchange makes one family");
    assert_eq!(families[0][0].as_deref(), Some("revoked"));
    assert_eq!(families[0][1].as_deref(), Some("refresh_token_reuse"));

    let keys = run_query(
        &app,
        "SELECT kid, state FROM operator_signing_keys WHERE tenant = 'acme'",
        &["kid", "state"],
    )
    .await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0][1].as_deref(), Some("current"));
}
db_test!(audit_records_security_events);

/// Checks that a running server writes the `client_credentials` summary once its period has
/// passed, without another token or a stop.
async fn summary_written_while_idle(app: TestApp) {
    let client = app.confidential_client().await;
    for _ in 0..2 {
        let response = app
            .token(
                &client,
                &[("grant_type", "client_credentials"), ("resource", RS1)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let query = "SELECT detail FROM audit_events WHERE event = 'token_issued'";
    let mut rows = Vec::new();
    for _ in 0..150 {
        rows = run_query(&app, query, &["detail"]).await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 1, "expected one summary row within 15 seconds");
    let detail: serde_json::Value =
        serde_json::from_str(rows[0][0].as_deref().unwrap_or_default()).unwrap();
    assert_eq!(detail["count"], 2);
}
db_test!(summary_written_while_idle);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_issuance_is_summarized() {
    let workspace = crate::process::Workspace::new();
    workspace.run_ok(&["tenant", "create", "acme"], "");
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
    let added = workspace.run_ok(
        &[
            "client",
            "add",
            "--tenant",
            "acme",
            "--grant-type",
            "client_credentials",
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
    let server = workspace.serve(&[]).await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .post(format!("{}/t/acme/token", server.address))
            .header("Authorization", basic(&client_id, &secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        server.terminate(),
        "the server did not exit cleanly on SIGTERM"
    );

    // The summary of the last period is written when the server stops.
    let pool = sqlx::SqlitePool::connect(&workspace.database_url)
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT event, client_id, detail FROM audit_events WHERE event = 'token_issued'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "expected one summary row: {rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some(client_id.as_str()));
    let detail: serde_json::Value = serde_json::from_str(&rows[0].2).unwrap();
    assert_eq!(detail["grant_type"], "client_credentials");
    assert_eq!(detail["count"], 3);
    assert_eq!(detail["resource"], RS1);
}
