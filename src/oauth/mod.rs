//! OAuth 2.1 protocol rules, free of HTTP types: handlers parse requests into these types,
//! call the functions here and map their typed outcomes to responses.

pub mod authorization;
pub mod client;
pub mod client_auth;
pub mod error;
pub mod grants;
pub mod params;
pub mod pkce;
pub mod redirect;
pub mod registration;
pub mod resource;
pub mod scope;

pub use error::{ErrorCode, OAuthError};
