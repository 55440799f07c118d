//! Builds the application the same way for production and tests: connect, migrate,
//! bootstrap an empty database, bind, and report the port actually bound.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::SecretString;

use crate::audit::AuditLog;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::keys::rotation::{self, Rotation};
use crate::keys::sealing::MasterKeys;
use crate::store::Store;
use crate::tenant::TenantSlug;
use crate::{admin, clock, keys};

/// Name of the tenant created in an empty database.
pub const DEFAULT_TENANT: &str = "default";
/// Name of the user created in the default tenant of an empty database.
pub const DEFAULT_USER: &str = "admin";

/// How long an idle HTTP/1.1 connection stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// How long a new connection may take to send its first request head. Pooled clients open
/// connections ahead of need, and a 408 sent on an unused one reaches their next request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopping server waits for queued audit events to be written.
const AUDIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired codes, sessions and tokens are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(300);

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    audit_writer: tokio::task::JoinHandle<()>,
    /// A handle on the audit queue, to write the last summaries when the server stops.
    audit: AuditLog,
    /// Timers for key rotation and purging, stopped with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Builds the application listening on `settings.bind`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind).with_context(|| {
            format!(
                "binding {} failed; to serve on another address, set PORTCULLIS_BIND and \
                     PORTCULLIS_PUBLIC_URL",
                settings.bind
            )
        })?;
        Self::build_on(settings, listener).await
    }

    /// Builds the application on a listener bound by the caller, so that tests can learn
    /// the port before they choose the public URL.
    pub async fn build_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database).await.with_context(|| {
            format!(
                "connecting to the database at {}",
                redact_url(&settings.database.url)
            )
        })?;
        store.migrate().await.context("migrating the database")?;
        // Loaded after the database opens, so that a start that fails on the database leaves
        // no new master key file behind.
        let master_keys = Arc::new(keys::master::load(&settings).map_err(anyhow::Error::msg)?);
        keys::master::check_stored_keys(&store, &master_keys)
            .await
            .map_err(anyhow::Error::msg)?;
        bootstrap(&store, &master_keys)
            .await
            .context("creating the default tenant")?;

        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let settings = Arc::new(settings);
        let (audit, audit_writer) = AuditLog::start(store.clone());
        let audit_handle = audit.clone();
        let rotation = Rotation::new(
            store.clone(),
            Arc::clone(&master_keys),
            settings.key_timing,
            settings.lifetimes.access_token,
        );
        let rotation_task = rotation::spawn(rotation);
        let state = web::Data::new(AppState::new(
            Arc::clone(&settings),
            store.clone(),
            audit,
            master_keys,
        ));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|request, service| {
                    let method = request.method().clone();
                    let path = request.path().to_owned();
                    let started = std::time::Instant::now();
                    let response = service.call(request);
                    async move {
                        let mut response = response.await?;
                        http::fallback::cors_headers(&path, response.headers_mut());
                        let status = response.status().as_u16();
                        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                        if status >= 500 {
                            tracing::warn!(%method, path, status, elapsed_ms, "request failed");
                        } else {
                            tracing::debug!(%method, path, status, elapsed_ms, "request");
                        }
                        Ok(response)
                    }
                })
                .configure(http::routes)
        })
        .workers(workers)
        // Longer than the idle timeouts of common clients and load balancers, so a client rarely
        // sends a request on a connection the server is closing at that moment.
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(FIRST_REQUEST_TIMEOUT)
        .listen(listener)?
        .run();
        log_issuers(&store, &settings.public_url, port).await;
        let purge_task = spawn_purge(store.clone(), settings.lifetimes.access_token);
        Ok(Self {
            port,
            server,
            store,
            audit_writer,
            audit: audit_handle,
            background: vec![rotation_task, purge_task],
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until the server is stopped, then waits up to `AUDIT_FLUSH_TIMEOUT` for queued
    /// audit events to be written.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.audit.flush_summaries();
        drop(self.audit);
        for task in &self.background {
            task.abort();
        }
        if tokio::time::timeout(AUDIT_FLUSH_TIMEOUT, self.audit_writer)
            .await
            .is_err()
        {
            tracing::warn!("audit events were still queued at shutdown and are lost");
        }
        served
    }
}

/// Creates the `default` tenant and its `admin` user when the database has no tenant, and
/// prints the generated password once on standard output (never to the log).
async fn bootstrap(store: &Store, master_keys: &MasterKeys) -> anyhow::Result<()> {
    if store.count_tenants().await? > 0 {
        return Ok(());
    }
    let slug = TenantSlug::parse(DEFAULT_TENANT).map_err(anyhow::Error::msg)?;
    let tenant_id =
        match admin::create_tenant(store, master_keys, &slug, keys::DEFAULT_ALGORITHM).await {
            Ok(id) => id,
            // Another instance on the same database bootstrapped first.
            Err(admin::AdminError::Invalid(_)) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
    let password = crate::secret::random_token();
    admin::add_user(
        store,
        &tenant_id,
        DEFAULT_USER,
        &SecretString::from(password.clone()),
    )
    .await?;
    println!(
        "Created tenant {DEFAULT_TENANT:?} with user {DEFAULT_USER:?}, password: {password}\n\
         This password is shown only once. Change it with: portcullis user set-password --tenant {DEFAULT_TENANT} {DEFAULT_USER}"
    );
    Ok(())
}

async fn log_issuers(store: &Store, public_url: &str, port: u16) {
    tracing::info!(port, public_url, "listening");
    let advertised = url::Url::parse(public_url).ok();
    let advertised_port = advertised
        .as_ref()
        .and_then(url::Url::port_or_known_default);
    let loopback = advertised
        .as_ref()
        .and_then(url::Url::host_str)
        .is_some_and(crate::config::is_loopback_host);
    if loopback && advertised_port.is_some_and(|advertised| advertised != port) {
        tracing::warn!(
            port,
            public_url,
            "the public URL names another port than the server listens on; set PORTCULLIS_PUBLIC_URL \
             to match PORTCULLIS_BIND unless a proxy forwards that port"
        );
    }
    match store.list_tenants().await {
        Ok(tenants) => {
            for (slug, _) in tenants.iter().take(20) {
                tracing::info!(
                    issuer = format!("{public_url}/t/{slug}"),
                    metadata =
                        format!("{public_url}/.well-known/oauth-authorization-server/t/{slug}"),
                    "serving issuer"
                );
            }
            if tenants.len() > 20 {
                tracing::info!(
                    count = tenants.len(),
                    "more tenants served; list them with `portcullis tenant list`"
                );
            }
        }
        Err(error) => tracing::warn!(error = %error, "listing tenants failed"),
    }
}

fn spawn_purge(store: Store, access_token_lifetime: i64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(PURGE_INTERVAL);
        loop {
            interval.tick().await;
            let now = clock::now();
            match store
                .purge_expired(now, now - access_token_lifetime - 3600)
                .await
            {
                Ok(deleted) if deleted > 0 => tracing::info!(deleted, "expired rows purged"),
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(error)),
                    "purging expired rows failed"
                ),
            }
        }
    })
}

/// Hides the password in a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
