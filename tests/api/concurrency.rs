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

/// Concurrent client inserts share one statement. A row that cannot be stored, here one for
/// a tenant that does not exist, must fail alone and leave the others of its batch stored.
async fn one_bad_client_row_fails_alone(app: TestApp) {
    let tenant_id = app.tenant_id(TENANT).await;
    let before = app.stored_clients(TENANT).await.len();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for index in 0..CLIENTS {
        let store = app.store.clone();
        let barrier = Arc::clone(&barrier);
        let tenant_id = if index % 16 == 5 {
            "no-such-tenant".to_owned()
        } else {
            tenant_id.clone()
        };
        tasks.push(tokio::spawn(async move {
            let client_id = format!("batched-{index}");
            let client = portcullis::store::NewClient {
                client_id: &client_id,
                client_secret_hash: None,
                client_secret_expires_at: None,
                registration_access_token_hash: None,
                token_endpoint_auth_method: "none",
                registered_by: "test",
                metadata: "{}",
                issued_at: 1_700_000_000,
            };
            barrier.wait().await;
            (index, store.insert_client(&tenant_id, &client).await)
        }));
    }
    for task in tasks {
        let (index, result) = task.await.expect("an insert task failed");
        if index % 16 == 5 {
            let error = result.expect_err("a client of an unknown tenant was stored");
            assert!(
                !error.is_unavailable(),
                "a bad row was reported as an outage: {error}"
            );
        } else {
            result.unwrap_or_else(|error| panic!("client {index} was not stored: {error}"));
        }
    }
    let bad = CLIENTS.div_ceil(16);
    assert_eq!(
        app.stored_clients(TENANT).await.len(),
        before + CLIENTS - bad,
        "every good row must be stored exactly once"
    );
}
db_test!(one_bad_client_row_fails_alone);

/// Returns the name of a rotation outcome, for assertion messages.
fn outcome_name<E>(outcome: &portcullis::store::RotatedToken<E>) -> &'static str {
    use portcullis::store::RotatedToken;
    match outcome {
        RotatedToken::Rotated(_) => "rotated",
        RotatedToken::Rejected(_) => "rejected",
        RotatedToken::Reused { .. } => "reused",
        RotatedToken::Unknown => "unknown",
    }
}

/// A presentation whose check fails, batched with the rightful client's presentation of the
/// same refresh token, must neither use the token up nor cost that client its rotation.
async fn rejected_presentation_spares_batched_rotation(app: TestApp) {
    let client = app.public_client().await;
    let tenant_id = app.tenant_id(TENANT).await;
    for round in 0..10 {
        let tokens = app.tokens_for(&client).await;
        let refresh_token = tokens.refresh_token.expect("no refresh token");
        let token_hash = portcullis::secret::hash_token(&refresh_token);
        let now = portcullis::clock::now();
        let rejected_successor = format!("rejected-successor-{round}");
        let accepted_successor = format!("accepted-successor-{round}");
        // Joined in one task, both jobs are normally queued before the batch task starts.
        let (rejected, accepted) = tokio::join!(
            app.store.rotate_refresh_token(
                &tenant_id,
                &token_hash,
                &rejected_successor,
                now + 3600,
                now,
                |_| Err("presented by another client"),
            ),
            app.store.rotate_refresh_token(
                &tenant_id,
                &token_hash,
                &accepted_successor,
                now + 3600,
                now,
                |_| Ok::<(), &str>(()),
            ),
        );
        let rejected = rejected.expect("the rejected rotation failed");
        let accepted = accepted.expect("the accepted rotation failed");
        assert_eq!(outcome_name(&rejected), "rejected", "round {round}");
        assert_eq!(outcome_name(&accepted), "rotated", "round {round}");
    }
}
db_test!(rejected_presentation_spares_batched_rotation);

/// A code presented at another tenant, batched with its redemption at its own tenant, must
/// not make that redemption fail.
async fn code_at_other_tenant_spares_batched_redemption(app: TestApp) {
    let client = app.public_client().await;
    let store = &app.store;
    let own = app.tenant_id(TENANT).await;
    let other = app.tenant_id(OTHER_TENANT).await;
    for round in 0..10 {
        let (code, _) = app.code_for(&client).await;
        let code_hash = portcullis::secret::hash_token(&code);
        let now = portcullis::clock::now();
        let (elsewhere, at_home) = tokio::join!(
            store.redeem_code(&other, &code_hash, None, now + 3600, now, |_| Ok::<(), ()>(
                ()
            )),
            store.redeem_code(
                &own,
                &code_hash,
                None,
                now + 3600,
                now,
                |_| Ok::<(), ()>(())
            ),
        );
        let elsewhere = elsewhere.expect("the redemption at the other tenant failed");
        let at_home = at_home.expect("the redemption at the code's tenant failed");
        assert!(
            matches!(elsewhere, portcullis::store::RedeemedCode::Unknown),
            "round {round}: the other tenant got {elsewhere:?}"
        );
        assert!(
            matches!(at_home, portcullis::store::RedeemedCode::Issued { .. }),
            "round {round}: the code's tenant got {at_home:?}"
        );
    }
}
db_test!(code_at_other_tenant_spares_batched_redemption);
