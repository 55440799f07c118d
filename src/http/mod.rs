//! HTTP endpoints, one file each. Handlers extract and parse, call `oauth`, and map the
//! typed outcome to a response; OAuth errors become responses in `error`.

mod authorize;
mod consent;
mod error;
mod extract;
pub mod fallback;
mod health;
mod introspect;
mod jwks;
mod login;
mod metadata;
mod pages;
mod register;
mod revoke;
mod session;
mod throttle;
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
    pub login_throttle: throttle::LoginThrottle,
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
            login_throttle: throttle::LoginThrottle::default(),
            registration_limiter,
            audit,
            store,
            settings,
        }
    }
}

/// Mounts every route. Each path is one resource, so a method it does not support gets
/// 405 with `Allow` (or, for `OPTIONS`, a CORS preflight response).
///
/// actix-web matches a pattern with a dynamic segment by running a regular expression, and
/// tries resources in the order they are mounted. So every tenant path sits in one dynamic
/// scope, its static paths come first with the token endpoint at the top, and the two
/// patterns of metadata at the root come last.
pub fn routes(config: &mut web::ServiceConfig) {
    let get = || fallback::method_not_allowed("GET");
    let post = || fallback::method_not_allowed("POST");
    config
        .service(
            web::resource("/healthz")
                .get(health::get_healthz)
                .default_service(web::to(get())),
        )
        .service(
            web::resource("/readyz")
                .get(health::get_readyz)
                .default_service(web::to(get())),
        )
        .service(
            web::scope("/t/{tenant}")
                .service(
                    web::resource("/token")
                        .post(token::post_token)
                        .default_service(web::to(post())),
                )
                .service(
                    web::resource("/jwks.json")
                        .get(jwks::get_jwks)
                        .default_service(web::to(get())),
                )
                .service(
                    web::resource("/register")
                        .post(register::post_register)
                        .default_service(web::to(post())),
                )
                .service(
                    web::resource("/authorize")
                        .get(authorize::get_authorize)
                        .default_service(web::to(get())),
                )
                .service(
                    web::resource("/login")
                        .post(login::post_login)
                        .default_service(web::to(post())),
                )
                .service(
                    web::resource("/consent")
                        .post(consent::post_consent)
                        .default_service(web::to(post())),
                )
                .service(
                    web::resource("/revoke")
                        .post(revoke::post_revoke)
                        .default_service(web::to(post())),
                )
                .service(
                    web::resource("/introspect")
                        .post(introspect::post_introspect)
                        .default_service(web::to(post())),
                )
                .service(
                    web::resource([
                        "/.well-known/oauth-authorization-server",
                        "/.well-known/openid-configuration",
                    ])
                    .get(metadata::get_metadata)
                    .default_service(web::to(get())),
                )
                .service(
                    web::resource("/register/{client_id}")
                        .get(register::get_client)
                        .put(register::put_client)
                        .delete(register::delete_client)
                        .default_service(web::to(fallback::method_not_allowed("GET, PUT, DELETE"))),
                ),
        )
        .service(
            web::resource([
                "/.well-known/oauth-authorization-server/t/{tenant}",
                "/.well-known/openid-configuration/t/{tenant}",
            ])
            .get(metadata::get_metadata)
            .default_service(web::to(get())),
        )
        .default_service(web::to(fallback::not_found));
}
