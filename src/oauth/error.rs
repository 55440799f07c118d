//! OAuth error codes from RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
//! RFC 7591 §3.2.2 and RFC 8707 §2, with a description for the client's developer.

use std::borrow::Cow;
use std::fmt;

use crate::store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    InvalidToken,
    InvalidRedirectUri,
    InvalidClientMetadata,
    InvalidSoftwareStatement,
    /// No tenant has the name in the request path; sent with HTTP 404.
    UnknownIssuer,
    /// Too many requests from one client address; sent with HTTP 429.
    RateLimited,
    ServerError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// Returns the code as the RFCs spell it in the `error` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::UnknownIssuer => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::RateLimited | Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// An OAuth error: the RFC code and a description safe to show to the client.
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// The failure behind a `server_error` or `temporarily_unavailable`, logged once at the
    /// edge and never sent to the client.
    pub cause: Option<anyhow::Error>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            cause: None,
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_client_metadata(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, description)
    }

    pub fn invalid_redirect_uri(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRedirectUri, description)
    }

    /// Wraps an unexpected failure as `server_error`, keeping the cause for the log.
    pub fn server_error(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            code: ErrorCode::ServerError,
            description: "the server failed to process the request".into(),
            cause: Some(cause.into()),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        match error {
            error if error.is_unavailable() => Self {
                code: ErrorCode::TemporarilyUnavailable,
                description: "the database is unavailable; retry later".into(),
                cause: Some(error.into()),
            },
            other => Self::server_error(other),
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
