use reqwest::StatusCode;

use crate::db_test;
use crate::helpers::*;

async fn full_flow_issues_rotating_tokens(app: TestApp) {
    let client = app.public_client().await;
    let tokens = app.tokens_for(&client).await;
    let (header, claims) = jwt_parts(&tokens.access_token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["aud"], RS1);
    assert_eq!(claims["sub"], USER);
    let refreshed = app
        .refresh(&client, tokens.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}
db_test!(full_flow_issues_rotating_tokens);
