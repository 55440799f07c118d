//! Portcullis: a multi-tenant OAuth 2.1 authorization server for the Model Context Protocol.
//!
//! `startup` builds the HTTP application the same way for production and tests; `oauth` holds
//! protocol rules free of HTTP types; `store` holds all SQL; `http` maps requests to `oauth`
//! calls and outcomes to responses.

pub mod admin;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod password;
pub mod secret;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tenant;
