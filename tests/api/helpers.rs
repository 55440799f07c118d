//! Test harness: a real server on a loopback port with a fresh database per test, and
//! helpers for each endpoint and for the browser steps of the authorization flow.
//!
//! Every test runs on SQLite, in a new file in a temporary directory. With
//! `PORTCULLIS_TEST_POSTGRES_URL` set (for example `postgres://postgres@127.0.0.1:5432/test`)
//! it also runs on PostgreSQL, in a new database that is dropped when the test ends. Without
//! it, the PostgreSQL runs print a notice and pass without running.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis::admin;
use portcullis::config::{
    DatabaseSettings, KeyTiming, Lifetimes, LogFormat, MasterKeySettings, Settings,
    SqliteSynchronous,
};
use portcullis::keys::SigningAlgorithm;
use portcullis::keys::sealing::{MasterKey, MasterKeys};
use portcullis::startup::Application;
use portcullis::store::Store;
use portcullis::tenant::TenantSlug;
use reqwest::{Response, StatusCode, redirect};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const TENANT: &str = "acme";
pub const OTHER_TENANT: &str = "beta";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-password-1";
pub const OTHER_USER: &str = "bob";
pub const OTHER_PASSWORD: &str = "bob-password-123";
/// The first protected resource of tenant `acme`, with scopes `mcp:tools mcp:resources`.
pub const RS1: &str = "https://mcp.example.com/mcp";
/// The second protected resource of tenant `acme`, with scope `mcp:tools`.
pub const RS2: &str = "https://mcp2.example.com/mcp";
/// The only protected resource of tenant `beta`, with scope `mcp:tools`.
pub const BETA_RS: &str = "https://beta.example.com/mcp";
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";
pub const ATTACKER: &str = "https://attacker.example";

pub const POSTGRES_VARIABLE: &str = "PORTCULLIS_TEST_POSTGRES_URL";

/// Returns the PostgreSQL URL the tests may use, or `None` when the variable is unset or
/// empty, as a CI configuration may leave it.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_VARIABLE)
        .ok()
        .filter(|url| !url.trim().is_empty())
}
/// Master key of every test server: 32 zero bytes in base64url.
pub const TEST_MASTER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Generates one test per database from `async fn NAME(app: TestApp)`.
#[macro_export]
macro_rules! db_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Db::Sqlite)
                    .await
                    .expect("SQLite is always available");
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Db::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
    };
}

/// A database made for one test, removed when dropped.
pub enum TestDatabase {
    /// A database the test manages itself.
    External,
    Sqlite(tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let admin_url = admin_url.clone();
            let name = name.clone();
            // Drop runs inside the test's runtime, which cannot block, so the statement runs on
            // a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut connection) = sqlx::PgConnection::connect(&admin_url).await {
                        let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                            .execute(&mut connection)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`, the public URL.
    pub address: String,
    pub port: u16,
    pub db: Db,
    /// Issuer of tenant `acme`.
    pub issuer: String,
    pub store: Store,
    /// Database URL the server uses, for tests that start another process on it.
    pub database_url: String,
    /// A client that follows no redirects and keeps no cookies.
    pub http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    _database: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// Returns default settings for a test server on `port` with database `url`.
pub fn test_settings(port: u16, url: &str) -> Settings {
    let public_url = format!("http://127.0.0.1:{port}");
    Settings {
        bind: format!("127.0.0.1:{port}").parse().unwrap(),
        public_url,
        database: DatabaseSettings {
            url: url.to_owned(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            sqlite_synchronous: SqliteSynchronous::Normal,
        },
        lifetimes: Lifetimes {
            access_token: 900,
            refresh_token: 86_400,
            code: 60,
            session: 3600,
            authorization_request: 900,
        },
        registration_rate_limit_per_minute: 0,
        password_hash_concurrency: 2,
        workers: 2,
        log_format: LogFormat::Text,
        production: false,
        master_keys: MasterKeySettings {
            current: Some(SecretString::from(TEST_MASTER_KEY)),
            previous: Vec::new(),
        },
        key_timing: KeyTiming {
            rotation_period: 2_592_000,
            publish_lead: 3600,
            clock_skew: 60,
        },
    }
}

/// Starts a server with tenants `acme` and `beta`, their users and resources. Returns
/// `None` for PostgreSQL when `PORTCULLIS_TEST_POSTGRES_URL` is not set.
pub async fn spawn_app(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |_| {}).await
}

/// Like `spawn_app`, with a chance to change the settings first.
pub async fn spawn_app_with(db: Db, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let (database, url) = fresh_database(db).await?;
    Some(start_app(db, database, url, configure).await)
}

/// Starts a server on the database at `url`, which `database` removes when dropped.
pub async fn start_app(
    db: Db,
    database: TestDatabase,
    url: String,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = test_settings(port, &url);
    configure(&mut settings);
    let application = Application::build_on(settings, listener)
        .await
        .expect("building the application failed");
    let store = application.store().clone();
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());

    seed(&store).await;
    let address = format!("http://127.0.0.1:{port}");
    TestApp {
        issuer: format!("{address}/t/{TENANT}"),
        address,
        port,
        db,
        store,
        database_url: url,
        http: plain_client(),
        handle,
        _database: database,
    }
}

/// Creates an empty database for one test and returns it with its URL. Returns `None` for
/// PostgreSQL when `PORTCULLIS_TEST_POSTGRES_URL` is not set.
pub async fn fresh_database(db: Db) -> Option<(TestDatabase, String)> {
    match db {
        Db::Sqlite => {
            let directory = tempfile::tempdir().expect("creating a temporary directory failed");
            let url = format!(
                "sqlite://{}",
                directory.path().join("portcullis.db").display()
            );
            Some((TestDatabase::Sqlite(directory), url))
        }
        Db::Postgres => {
            let Some(admin_url) = postgres_url() else {
                eprintln!(
                    "notice: {POSTGRES_VARIABLE} is unset or empty; skipping the PostgreSQL run"
                );
                return None;
            };
            let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
            {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|error| {
                        panic!("connecting to {POSTGRES_VARIABLE} failed: {error}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut connection)
                    .await
                    .expect("creating the test database failed");
            }
            let url = replace_database_name(&admin_url, &name);
            Some((TestDatabase::Postgres { admin_url, name }, url))
        }
    }
}

fn replace_database_name(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("PORTCULLIS_TEST_POSTGRES_URL is not a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Returns the master keys every test server uses.
pub fn test_master_keys() -> MasterKeys {
    MasterKeys::new(MasterKey::parse(TEST_MASTER_KEY).unwrap(), Vec::new())
}

/// Creates tenants `acme` and `beta` with their users and resources.
async fn seed(store: &Store) {
    let master_keys = test_master_keys();
    let acme = admin::create_tenant(
        store,
        &master_keys,
        &TenantSlug::parse(TENANT).unwrap(),
        SigningAlgorithm::Es256,
    )
    .await
    .unwrap();
    admin::add_user(store, &acme, USER, &SecretString::from(PASSWORD))
        .await
        .unwrap();
    admin::add_user(
        store,
        &acme,
        OTHER_USER,
        &SecretString::from(OTHER_PASSWORD),
    )
    .await
    .unwrap();
    admin::add_resource(store, &acme, RS1, "mcp:tools mcp:resources")
        .await
        .unwrap();
    admin::add_resource(store, &acme, RS2, "mcp:tools")
        .await
        .unwrap();
    let beta = admin::create_tenant(
        store,
        &master_keys,
        &TenantSlug::parse(OTHER_TENANT).unwrap(),
        SigningAlgorithm::Es256,
    )
    .await
    .unwrap();
    admin::add_user(store, &beta, USER, &SecretString::from(PASSWORD))
        .await
        .unwrap();
    admin::add_resource(store, &beta, BETA_RS, "mcp:tools")
        .await
        .unwrap();
}

/// Returns a loopback port that was free a moment ago. Another process can bind it before the
/// caller does, so a caller that hands it to a child process retries with a new one.
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Returns a client that follows no redirects and keeps no cookies.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// Returns a fresh PKCE pair `(verifier, S256 challenge)`.
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
        + &URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

pub fn basic(client_id: &str, secret: &str) -> String {
    let encode =
        |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

/// A registered client as the tests use it.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
    pub registration: Value,
}

/// A successful code exchange.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub body: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Returns the endpoint `path` (such as `/token`) of tenant `tenant`.
    pub fn endpoint(&self, tenant: &str, path: &str) -> String {
        format!("{}/t/{tenant}{path}", self.address)
    }

    pub fn issuer_of(&self, tenant: &str) -> String {
        format!("{}/t/{tenant}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET failed")
    }

    /// POSTs a JSON body to `{issuer of tenant}/register`.
    pub async fn register_at(&self, tenant: &str, body: &Value) -> Response {
        self.http
            .post(self.endpoint(tenant, "/register"))
            .json(body)
            .send()
            .await
            .expect("POST /register failed")
    }

    pub async fn register(&self, body: &Value) -> Response {
        self.register_at(TENANT, body).await
    }

    /// Registers a public native client for `REDIRECT_URI` at `tenant`.
    pub async fn public_client_at(&self, tenant: &str) -> TestClient {
        let body = json!({
            "client_name": "test client",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        });
        self.registered(tenant, &body).await
    }

    pub async fn public_client(&self) -> TestClient {
        self.public_client_at(TENANT).await
    }

    /// Registers a confidential web client with `auth_method`, allowed every grant.
    pub async fn confidential_client_at(&self, tenant: &str, auth_method: &str) -> TestClient {
        let body = json!({
            "client_name": "confidential test client",
            "redirect_uris": ["https://client.example/cb"],
            "token_endpoint_auth_method": auth_method,
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types": ["code"],
        });
        self.registered(tenant, &body).await
    }

    pub async fn confidential_client(&self) -> TestClient {
        self.confidential_client_at(TENANT, "client_secret_basic")
            .await
    }

    /// Registers `body` at `tenant`, asserting 201.
    pub async fn registered(&self, tenant: &str, body: &Value) -> TestClient {
        let response = self.register_at(tenant, body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registration failed"
        );
        let registration: Value = response.json().await.unwrap();
        TestClient {
            client_id: registration["client_id"].as_str().unwrap().to_owned(),
            client_secret: registration["client_secret"].as_str().map(str::to_owned),
            redirect_uri: registration["redirect_uris"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            registration,
        }
    }

    /// POSTs a form to `{issuer of tenant}{path}` with optional Basic credentials.
    pub async fn post_form_at(
        &self,
        tenant: &str,
        path: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
    ) -> Response {
        let mut request = self.http.post(self.endpoint(tenant, path)).form(form);
        if let Some((id, secret)) = basic_auth {
            request = request.header("Authorization", basic(id, secret));
        }
        request.send().await.expect("POST failed")
    }

    /// POSTs to the token endpoint of `acme`, authenticating as `client`.
    pub async fn token(&self, client: &TestClient, form: &[(&str, &str)]) -> Response {
        self.token_at(TENANT, client, form).await
    }

    /// POSTs to the token endpoint of `tenant`: Basic for a client with a secret, else
    /// `client_id` in the body.
    pub async fn token_at(
        &self,
        tenant: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> Response {
        self.client_post(tenant, "/token", client, form).await
    }

    /// POSTs an authenticated form to `path`: Basic for a client with a secret, else
    /// `client_id` in the body.
    pub async fn client_post(
        &self,
        tenant: &str,
        path: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> Response {
        match &client.client_secret {
            Some(secret)
                if client.registration["token_endpoint_auth_method"] == "client_secret_post" =>
            {
                let mut with_credentials = form.to_vec();
                with_credentials.push(("client_id", &client.client_id));
                with_credentials.push(("client_secret", secret));
                self.post_form_at(tenant, path, &with_credentials, None)
                    .await
            }
            Some(secret) => {
                self.post_form_at(tenant, path, form, Some((&client.client_id, secret)))
                    .await
            }
            None => {
                let mut with_id = form.to_vec();
                with_id.push(("client_id", &client.client_id));
                self.post_form_at(tenant, path, &with_id, None).await
            }
        }
    }

    /// Runs the whole browser flow at `acme` as `alice` for `RS1` and returns the code and
    /// its verifier.
    pub async fn code_for(&self, client: &TestClient) -> (String, String) {
        code_from(&Browser::new(self, TENANT), client).await
    }

    /// Presents a code at the token endpoint with `client`'s redirect URI and `RS1`.
    pub async fn redeem(&self, client: &TestClient, code: &str, verifier: &str) -> Response {
        self.token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", verifier),
                ("resource", RS1),
            ],
        )
        .await
    }

    /// Exchanges a code for tokens, asserting 200.
    pub async fn exchange(&self, client: &TestClient, code: &str, verifier: &str) -> Tokens {
        let response = self.redeem(client, code, verifier).await;
        assert_eq!(response.status(), StatusCode::OK, "code exchange failed");
        tokens(response).await
    }

    /// Runs the browser flow and the code exchange for `client`.
    pub async fn tokens_for(&self, client: &TestClient) -> Tokens {
        let (code, verifier) = self.code_for(client).await;
        self.exchange(client, &code, &verifier).await
    }

    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> Response {
        self.token(
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// Introspects `token` at `acme` as a fresh confidential client.
    pub async fn introspect(&self, token: &str) -> Value {
        let resource_server = self.confidential_client().await;
        let response = self
            .client_post(TENANT, "/introspect", &resource_server, &[("token", token)])
            .await;
        assert_eq!(response.status(), StatusCode::OK, "introspection failed");
        response.json().await.unwrap()
    }
}

pub async fn tokens(response: Response) -> Tokens {
    let body: Value = response.json().await.unwrap();
    Tokens {
        access_token: body["access_token"]
            .as_str()
            .expect("no access_token")
            .to_owned(),
        refresh_token: body["refresh_token"].as_str().map(str::to_owned),
        body,
    }
}

/// Asserts an OAuth JSON error with status and code, and returns its body.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let body: Value = response.json().await.expect("error body is not JSON");
    assert_eq!(body["error"], code, "unexpected error body {body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "missing error_description in {body}"
    );
    body
}

/// Decodes a JWT's header and claims without checking the signature.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let decode = |part: Option<&str>| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(part.expect("not a JWT"))
                .expect("not base64url"),
        )
        .expect("not JSON")
    };
    (decode(parts.next()), decode(parts.next()))
}

/// Returns the query parameters of a URL.
pub fn query_params(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Returns the `Location` header of a response.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Returns the value of the hidden input `name` in an HTML page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// A browser: its own cookie jar, no automatic redirects.
pub struct Browser {
    pub http: reqwest::Client,
    address: String,
    tenant: String,
}

impl Browser {
    pub fn new(app: &TestApp, tenant: &str) -> Self {
        Self::with_address(&app.address, tenant)
    }

    /// Creates a browser for the server at `address`, such as one started as a separate process.
    pub fn with_address(address: &str, tenant: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        Self {
            http,
            address: address.to_owned(),
            tenant: tenant.to_owned(),
        }
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/t/{}{path}", self.address, self.tenant)
    }

    /// `GET /authorize` with `params`.
    pub async fn authorize(&self, params: &[(&str, &str)]) -> Response {
        let query = serde_urlencoded::to_string(params).unwrap();
        self.http
            .get(format!("{}?{query}", self.endpoint("/authorize")))
            .send()
            .await
            .unwrap()
    }

    /// Submits the login form on `page`.
    pub async fn login(&self, page: &str, username: &str, password: &str) -> Response {
        let form = [
            (
                "request_id",
                hidden_field(page, "request_id").expect("no request_id on the page"),
            ),
            (
                "csrf_token",
                hidden_field(page, "csrf_token").expect("no csrf_token on the page"),
            ),
            ("username", username.to_owned()),
            ("password", password.to_owned()),
        ];
        self.http
            .post(self.endpoint("/login"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Submits the consent form on `page` with `decision`.
    pub async fn consent(&self, page: &str, decision: &str) -> Response {
        let form = [
            (
                "request_id",
                hidden_field(page, "request_id").expect("no request_id on the page"),
            ),
            (
                "csrf_token",
                hidden_field(page, "csrf_token").expect("no csrf_token on the page"),
            ),
            ("decision", decision.to_owned()),
        ];
        self.http
            .post(self.endpoint("/consent"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Authorizes, logs in when asked, approves when asked, and returns the final redirect.
    pub async fn authorize_and_approve(
        &self,
        params: &[(&str, &str)],
        username: &str,
        password: &str,
    ) -> String {
        let mut response = self.authorize(params).await;
        if response.status() == StatusCode::OK {
            let page = response.text().await.unwrap();
            response = if page.contains("name=\"password\"") {
                self.login(&page, username, password).await
            } else {
                self.consent(&page, "approve").await
            };
            if response.status() == StatusCode::OK {
                let page = response.text().await.unwrap();
                response = self.consent(&page, "approve").await;
            }
        }
        assert!(
            response.status().is_redirection(),
            "expected a redirect, got {}",
            response.status()
        );
        location(&response)
    }
}

impl TestApp {
    /// Returns the number of rows in `table`, read on a connection of its own, so that a
    /// test can check that a rejected request stored nothing.
    pub async fn count_rows(&self, table: &str) -> i64 {
        use sqlx::Connection;
        let statement = format!("SELECT COUNT(*) FROM {table}");
        match self.db {
            Db::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .expect("connecting to the test database failed");
                sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                    .fetch_one(&mut connection)
                    .await
                    .expect("counting rows failed")
            }
            Db::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .expect("connecting to the test database failed");
                sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
                    .fetch_one(&mut connection)
                    .await
                    .expect("counting rows failed")
            }
        }
    }

    /// Returns the id of tenant `tenant`.
    pub async fn tenant_id(&self, tenant: &str) -> String {
        self.store
            .tenant_id_by_slug(tenant)
            .await
            .expect("reading the tenant failed")
            .expect("the tenant does not exist")
    }

    /// Returns the clients stored for tenant `tenant`.
    pub async fn stored_clients(&self, tenant: &str) -> Vec<portcullis::store::ClientRecord> {
        let tenant_id = self.tenant_id(tenant).await;
        self.store
            .list_clients(&tenant_id)
            .await
            .expect("listing clients failed")
    }
}

/// Runs the authorization flow for `client` and `RS1` in `browser`, logging in as `alice`
/// and approving consent when the server shows those pages, and returns the code and its
/// verifier.
pub async fn code_from(browser: &Browser, client: &TestClient) -> (String, String) {
    let (verifier, challenge) = pkce();
    let location = browser
        .authorize_and_approve(
            &[
                ("response_type", "code"),
                ("client_id", &client.client_id),
                ("redirect_uri", &client.redirect_uri),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "s1"),
                ("resource", RS1),
            ],
            USER,
            PASSWORD,
        )
        .await;
    let params = query_params(&location);
    (
        params
            .get("code")
            .cloned()
            .expect("no code in the redirect"),
        verifier,
    )
}
