//! The `portcullis` command: `serve`, and admin commands that work on the same database.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use std::sync::Arc;

use crate::admin::{self, AdminError};
use crate::audit::AuditEvent;
use crate::config::Settings;
use crate::keys::SigningAlgorithm;
use crate::keys::master;
use crate::keys::rotation::Rotation;
use crate::keys::sealing::{MasterKey, MasterKeys};
use crate::oauth::client::Client;
use crate::startup::Application;
use crate::store::Store;
use crate::telemetry;
use crate::tenant::TenantSlug;

/// Portcullis: a multi-tenant OAuth 2.1 authorization server for MCP.
///
/// Settings come from PORTCULLIS_* environment variables (and a .env file in the working
/// directory); see .env.example for each with its default.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server: migrate the database, create the default tenant and admin user on
    /// first run, and serve every tenant's issuer.
    Serve,
    /// Create and list tenants (issuers).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Add users and set their passwords. Passwords are read from a prompt, or from the
    /// first line of standard input when it is not a terminal; never from arguments.
    #[command(subcommand)]
    User(UserCommand),
    /// Register protected resources (MCP server URIs) and their scopes.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Pre-register and list OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// List a tenant's signing keys and rotate them on demand.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Generate a master key, or re-seal every signing key under the current one.
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// List the tenant's keys with their states and times, newest first.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
    /// Create an upcoming key now. It is published at once and becomes current after
    /// PORTCULLIS_KEY_PUBLISH_LEAD_SECS, when a running server promotes it.
    Rotate {
        #[command(flatten)]
        tenant: TenantArg,
        /// Switch the tenant to this JWS algorithm (ES256, EdDSA or RS256) from the new key on.
        #[arg(long)]
        algorithm: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MasterKeyCommand {
    /// Print a new random master key (32 bytes, base64url) for PORTCULLIS_MASTER_KEY.
    Generate,
    /// Re-seal every signing key sealed under a key in PORTCULLIS_PREVIOUS_MASTER_KEYS (or
    /// stored in plain text) with PORTCULLIS_MASTER_KEY. Afterwards the previous keys can be
    /// removed from the configuration.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant with its first signing key; its issuer is {PUBLIC_URL}/t/NAME.
    Create {
        /// Tenant name: lowercase letters, digits and hyphens, 1 to 63 characters.
        name: String,
        /// JWS algorithm of the tenant's signing keys: ES256, EdDSA or RS256.
        #[arg(long, default_value = "ES256")]
        algorithm: String,
    },
    /// List tenants with their issuer URLs.
    List,
}

#[derive(Debug, Args)]
struct TenantArg {
    /// Tenant the command works on.
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user who can log in at the tenant's login page.
    Add {
        #[command(flatten)]
        tenant: TenantArg,
        /// Login name, which also becomes the `sub` claim of the user's tokens.
        username: String,
    },
    /// Replace a user's password.
    SetPassword {
        #[command(flatten)]
        tenant: TenantArg,
        username: String,
    },
}

#[derive(Debug, Subcommand)]
enum ResourceCommand {
    /// Register a resource, or replace the scopes of a registered one.
    Add {
        #[command(flatten)]
        tenant: TenantArg,
        /// Resource URI exactly as clients send it in `resource`, for example
        /// https://mcp.example.com/mcp; it becomes the `aud` of tokens for it.
        uri: String,
        /// Space-separated scopes the resource accepts, for example "mcp:tools mcp:resources".
        #[arg(long, default_value = "")]
        scopes: String,
    },
    /// List the tenant's resources and scopes.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Pre-register a client; a confidential client's secret is printed once.
    Add {
        #[command(flatten)]
        tenant: TenantArg,
        /// Name shown on the consent page.
        #[arg(long)]
        name: Option<String>,
        /// Redirect URI; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Token endpoint authentication: none (public client), client_secret_basic or
        /// client_secret_post.
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// Grant type: authorization_code, refresh_token or client_credentials; repeat for
        /// several. Default: authorization_code and refresh_token.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Space-separated scopes the client may request; default: every scope.
        #[arg(long)]
        scope: Option<String>,
        /// web or native; default: native when every redirect URI is loopback or private-use.
        #[arg(long)]
        application_type: Option<String>,
    },
    /// List the tenant's clients.
    List {
        #[command(flatten)]
        tenant: TenantArg,
    },
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => actix_web::rt::System::new().block_on(serve(settings)),
        Command::MasterKey(MasterKeyCommand::Generate) => {
            println!("{}", MasterKey::generate());
            Ok(())
        }
        command => runtime.block_on(admin_command(settings, command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    application.run_until_stopped().await?;
    Ok(())
}

async fn admin_command(settings: Settings, command: Command) -> anyhow::Result<()> {
    // An admin command run in the wrong directory would otherwise work on a new, empty
    // database and report only that the tenant or user does not exist.
    let new_file = crate::store::sqlite_file(&settings.database.url).filter(|file| !file.exists());
    let store = Store::connect(&settings.database).await?;
    if let Some(path) = new_file {
        let absolute = std::path::absolute(&path).unwrap_or(path);
        eprintln!(
            "note: created a new, empty database {}. Admin commands use the database that \
             PORTCULLIS_DATABASE_URL names, relative to the working directory; run them where \
             `portcullis serve` runs, or set PORTCULLIS_DATABASE_URL.",
            absolute.display()
        );
    }
    store.migrate().await?;
    let result = run_admin(&store, &settings, command).await;
    store.close().await;
    Ok(result?)
}

async fn run_admin(store: &Store, settings: &Settings, command: Command) -> Result<(), AdminError> {
    match command {
        Command::Serve => unreachable!("serve runs on the actix system"),
        Command::Tenant(TenantCommand::Create { name, algorithm }) => {
            let slug = TenantSlug::parse(&name).map_err(AdminError::Invalid)?;
            let algorithm = SigningAlgorithm::parse(&algorithm).map_err(AdminError::Invalid)?;
            let master_keys = checked_master_keys(store, settings).await?;
            admin::create_tenant(store, &master_keys, &slug, algorithm).await?;
            println!(
                "Created tenant {slug}; issuer {}/t/{slug}",
                settings.public_url
            );
        }
        Command::Tenant(TenantCommand::List) => {
            for (slug, created_at) in store.list_tenants().await? {
                println!(
                    "{slug}\t{}/t/{slug}\tcreated {}",
                    settings.public_url,
                    format_time(created_at)
                );
            }
        }
        Command::User(UserCommand::Add { tenant, username }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            admin::validate_username(&username)?;
            let password = read_password(&format!("Password for {username}: "))?;
            admin::add_user(store, &tenant_id, &username, &password).await?;
            println!("Added user {username} to tenant {}", tenant.tenant);
        }
        Command::User(UserCommand::SetPassword { tenant, username }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            let password = read_password(&format!("New password for {username}: "))?;
            admin::set_password(store, &tenant_id, &username, &password).await?;
            println!(
                "Changed the password of {username} in tenant {}",
                tenant.tenant
            );
        }
        Command::Resource(ResourceCommand::Add {
            tenant,
            uri,
            scopes,
        }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            admin::add_resource(store, &tenant_id, &uri, &scopes).await?;
            println!("Registered resource {uri} in tenant {}", tenant.tenant);
        }
        Command::Resource(ResourceCommand::List { tenant }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            for resource in store.list_resources(&tenant_id).await? {
                println!("{}\t{}", resource.uri, resource.scopes);
            }
        }
        Command::Client(ClientCommand::Add {
            tenant,
            name,
            redirect_uris,
            auth_method,
            grant_types,
            scope,
            application_type,
        }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            let grant_types = if grant_types.is_empty() {
                vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
            } else {
                grant_types
            };
            let mut body = Map::new();
            body.insert("token_endpoint_auth_method".into(), auth_method.into());
            body.insert("grant_types".into(), json!(grant_types));
            if grant_types
                .iter()
                .any(|grant| grant == "authorization_code")
            {
                body.insert("response_types".into(), json!(["code"]));
            } else {
                body.insert("response_types".into(), json!([]));
            }
            if !redirect_uris.is_empty() {
                body.insert("redirect_uris".into(), json!(redirect_uris));
            }
            for (field, value) in [
                ("client_name", name),
                ("scope", scope),
                ("application_type", application_type),
            ] {
                if let Some(value) = value {
                    body.insert(field.into(), Value::String(value));
                }
            }
            let (metadata, credentials) = admin::add_client(store, &tenant_id, &body).await?;
            println!("client_id: {}", credentials.client_id);
            if let Some(secret) = &credentials.client_secret {
                println!("client_secret: {}", secret.expose());
                println!("The secret is shown only once and stored only as a hash.");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&metadata).unwrap_or_default()
            );
        }
        Command::Keys(KeysCommand::List { tenant }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            println!("kid\talgorithm\tstate\tcreated\tactivated\tretired\tmaster key");
            for key in store.all_signing_keys(&tenant_id).await? {
                let time = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), format_time);
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    key.kid,
                    key.algorithm,
                    key.state,
                    format_time(key.created_at),
                    time(key.activated_at),
                    time(key.retired_at),
                    key.master_key_id.as_deref().unwrap_or("-"),
                );
            }
        }
        Command::Keys(KeysCommand::Rotate { tenant, algorithm }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            let algorithm = algorithm
                .as_deref()
                .map(SigningAlgorithm::parse)
                .transpose()
                .map_err(AdminError::Invalid)?;
            let master_keys = Arc::new(checked_master_keys(store, settings).await?);
            let rotation = Rotation::new(
                store.clone(),
                master_keys,
                settings.key_timing,
                settings.lifetimes.access_token,
            );
            let now = crate::clock::now();
            match rotation.create_upcoming(&tenant_id, algorithm, now).await? {
                Some(key) => {
                    let detail =
                        json!({"kid": key.kid, "algorithm": key.algorithm, "on_demand": true});
                    store
                        .insert_audit_events(&[
                            AuditEvent::new(&tenant_id, "key_created").detail(detail)
                        ])
                        .await?;
                    println!(
                        "Created upcoming key {} ({}); it is published now and a running server makes it current \
                         once it has been published for PORTCULLIS_KEY_PUBLISH_LEAD_SECS ({} s in this environment, \
                         so not before {})",
                        key.kid,
                        key.algorithm,
                        settings.key_timing.publish_lead,
                        format_time(now + settings.key_timing.publish_lead)
                    );
                }
                None => {
                    return Err(AdminError::Invalid(
                        "the tenant already has an upcoming key; it becomes current when its lead time has passed \
                         (see `portcullis keys list`)"
                            .into(),
                    ));
                }
            }
        }
        Command::MasterKey(MasterKeyCommand::Rotate) => {
            let master_keys = master::load(settings).map_err(AdminError::Invalid)?;
            let changed = master::reseal_all(store, &master_keys).await?;
            let remaining = store
                .sealed_signing_keys()
                .await?
                .iter()
                .filter(|(_, key)| {
                    !key.master_key_id
                        .as_deref()
                        .is_some_and(|id| master_keys.is_current(id))
                })
                .count();
            let detail =
                json!({"master_key_id": master_keys.current_id(), "resealed_keys": changed});
            let mut event = AuditEvent::new("", "master_key_rotated").detail(detail);
            event.tenant_id = None;
            store.insert_audit_events(&[event]).await?;
            println!(
                "Re-sealed {changed} signing keys under master key {}; {remaining} keys remain under other master keys",
                master_keys.current_id()
            );
        }
        Command::MasterKey(MasterKeyCommand::Generate) => {
            unreachable!("generate needs no database")
        }
        Command::Client(ClientCommand::List { tenant }) => {
            let tenant_id = admin::tenant_id(store, &tenant.tenant).await?;
            for record in store.list_clients(&tenant_id).await? {
                let registered_by = record.registered_by.clone();
                let client = Client::from_record(record)?;
                println!(
                    "{}\t{}\t{}\t{}\tissued {}\t{}",
                    client.id,
                    client.auth_method.as_str(),
                    registered_by,
                    client.display_name(),
                    format_time(client.issued_at),
                    client.metadata.redirect_uris.join(" "),
                );
            }
        }
    }
    Ok(())
}

/// Loads the master keys and opens every stored key with them, so that a command run with
/// another master key than the server's fails instead of sealing a key that no server can open.
async fn checked_master_keys(store: &Store, settings: &Settings) -> Result<MasterKeys, AdminError> {
    let master_keys = master::load(settings).map_err(AdminError::Invalid)?;
    master::check_stored_keys(store, &master_keys)
        .await
        .map_err(AdminError::Invalid)?;
    Ok(master_keys)
}

/// Reads a password from a hidden prompt on a terminal, or the first line of standard
/// input otherwise.
fn read_password(prompt: &str) -> Result<SecretString, AdminError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).map_err(|error| {
            AdminError::Invalid(format!("reading the password failed: {error}"))
        })?;
        let second = rpassword::prompt_password("Repeat the password: ").map_err(|error| {
            AdminError::Invalid(format!("reading the password failed: {error}"))
        })?;
        if first != second {
            return Err(AdminError::Invalid("the two passwords differ".into()));
        }
        first
    } else {
        let mut line = String::new();
        let read = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|error| {
                AdminError::Invalid(format!(
                    "reading the password from standard input failed: {error}"
                ))
            })?;
        if read == 0 {
            return Err(AdminError::Invalid(
                "no password on standard input: type it at a terminal, or pipe it in on one line"
                    .into(),
            ));
        }
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(SecretString::from(password))
}

fn format_time(epoch_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_seconds, 0)
        .map_or_else(|| epoch_seconds.to_string(), |time| time.to_rfc3339())
}
