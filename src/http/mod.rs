//! HTTP endpoints, one file each. Handlers extract and parse, call `oauth`, and map the
//! typed outcome to a response; OAuth errors become responses in `error`.

mod authorize;
mod consent;
mod error;
mod extract;
mod health;
mod introspect;
mod jwks;
mod login;
mod metadata;
mod pages;
mod register;
mod revoke;
mod session;
mod token;

use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::web;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::audit::AuditLog;
use crate::config::Settings;
use crate::keys::KeyRing;
use crate::keys::sealing::MasterKeys;
use crate::oauth::client::ClientDirectory;
use crate::password::PasswordChecker;
use crate::store::Store;
use crate::tenant::TenantDirectory;

/// Everything the handlers share, built once by `startup`.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub tenants: TenantDirectory,
    pub clients: ClientDirectory,
    pub keys: KeyRing,
    pub passwords: PasswordChecker,
    pub audit: AuditLog,
    /// Registrations per client IP address; `None` when the limit is off.
    pub registration_limiter: Option<DefaultKeyedRateLimiter<std::net::IpAddr>>,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        audit: AuditLog,
        master_keys: Arc<MasterKeys>,
    ) -> Self {
        let registration_limiter = NonZeroU32::new(settings.registration_rate_limit_per_minute)
            .map(|per_minute| governor::RateLimiter::keyed(Quota::per_minute(per_minute)));
        Self {
            tenants: TenantDirectory::new(store.clone(), settings.public_url.clone()),
            clients: ClientDirectory::new(store.clone()),
            keys: KeyRing::new(store.clone(), master_keys, settings.key_timing),
            passwords: PasswordChecker::new(settings.password_hash_concurrency),
            registration_limiter,
            audit,
            store,
            settings,
        }
    }
}

/// Mounts every route.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::get_healthz))
        .route("/readyz", web::get().to(health::get_readyz))
        .route(
            "/.well-known/oauth-authorization-server/t/{tenant}",
            web::get().to(metadata::get_metadata),
        )
        .route(
            "/.well-known/openid-configuration/t/{tenant}",
            web::get().to(metadata::get_metadata),
        )
        .service(
            web::scope("/t/{tenant}")
                .route(
                    "/.well-known/oauth-authorization-server",
                    web::get().to(metadata::get_metadata),
                )
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(metadata::get_metadata),
                )
                .route("/jwks.json", web::get().to(jwks::get_jwks))
                .route("/register", web::post().to(register::post_register))
                .route("/register/{client_id}", web::get().to(register::get_client))
                .route("/register/{client_id}", web::put().to(register::put_client))
                .route(
                    "/register/{client_id}",
                    web::delete().to(register::delete_client),
                )
                .route("/authorize", web::get().to(authorize::get_authorize))
                .route("/login", web::post().to(login::post_login))
                .route("/consent", web::post().to(consent::post_consent))
                .route("/token", web::post().to(token::post_token))
                .route("/revoke", web::post().to(revoke::post_revoke))
                .route("/introspect", web::post().to(introspect::post_introspect)),
        );
}
