//! OAuth errors as HTTP responses: status, JSON body and `WWW-Authenticate`, in one place.
//! Unexpected failures are logged here with their cause chain, once.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::oauth::{ErrorCode, OAuthError};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u32 = 5;

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::UnknownIssuer => StatusCode::NOT_FOUND,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        log_cause(self);
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        match self.code {
            ErrorCode::InvalidClient => {
                response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"portcullis\""));
            }
            ErrorCode::InvalidToken => {
                let challenge = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.description.replace(['"', '\\'], "'")
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            ErrorCode::RateLimited => {
                response.insert_header((header::RETRY_AFTER, "60"));
            }
            ErrorCode::TemporarilyUnavailable => {
                response.insert_header((
                    header::RETRY_AFTER,
                    RETRY_AFTER_UNAVAILABLE_SECS.to_string(),
                ));
            }
            _ => {}
        }
        response.json(json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        }))
    }
}

/// Logs the cause of an unexpected failure; client errors are not logged as errors.
pub fn log_cause(error: &OAuthError) {
    if let Some(cause) = &error.cause {
        match error.code {
            ErrorCode::TemporarilyUnavailable => {
                tracing::warn!(error = format!("{cause:#}"), "database unavailable")
            }
            _ => tracing::error!(error = format!("{cause:#}"), "request failed"),
        }
    }
}
