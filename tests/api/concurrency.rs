//! Many clients at once: every write path under 64 concurrent clients, with no
//! "database is locked" failure on SQLite and no serialization failure on PostgreSQL.

use std::sync::Arc;

use reqwest::StatusCode;
use tokio::sync::Barrier;

use crate::db_test;
use crate::helpers::*;

const CLIENTS: usize = 64;
const REFRESHES: usize = 5;

async fn mixed_load_never_fails(app: TestApp) {
    let app = Arc::new(app);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for index in 0..CLIENTS {
        let app = Arc::clone(&app);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            if index % 4 == 0 {
                let client = app.confidential_client().await;
                for _ in 0..REFRESHES {
                    let response = app
                        .token(
                            &client,
                            &[("grant_type", "client_credentials"), ("resource", RS1)],
                        )
                        .await;
                    assert_eq!(
                        response.status(),
                        StatusCode::OK,
                        "client_credentials failed under load"
                    );
                }
                return;
            }
            let client = app.public_client().await;
            let tokens = app.tokens_for(&client).await;
            let mut refresh_token = tokens.refresh_token.expect("no refresh token");
            for _ in 0..REFRESHES {
                let response = app.refresh(&client, &refresh_token).await;
                assert_eq!(
                    response.status(),
                    StatusCode::OK,
                    "refresh failed under load"
                );
                refresh_token = tokens_from(response).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task failed");
    }
}
db_test!(mixed_load_never_fails);

async fn tokens_from(response: reqwest::Response) -> String {
    tokens(response)
        .await
        .refresh_token
        .expect("no rotated refresh token")
}
