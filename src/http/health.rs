//! `/healthz` answers while the process serves HTTP; `/readyz` also needs the database.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::error::RETRY_AFTER_UNAVAILABLE_SECS;

pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn get_readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", RETRY_AFTER_UNAVAILABLE_SECS.to_string()))
                .json(json!({"status": "unavailable", "reason": "the database is unreachable"}))
        }
    }
}
