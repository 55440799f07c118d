//! The login and consent pages in real headless Chromium, driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver` packages). Set
//! `PORTCULLIS_TEST_CHROMEDRIVER` to use another chromedriver binary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// A chromedriver process on a free loopback port, killed when dropped, with a directory
/// for its log and the browser profile.
struct Driver {
    process: Child,
    port: u16,
    directory: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a port that was free a moment ago.
    fn start(binary: &str) -> Self {
        let port = unused_port();
        let directory = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(directory.path().join("chromedriver.log")).unwrap();
        let process = Command::new(binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("starting {binary} failed: {error}; install Debian's chromium and chromium-driver packages")
            });
        Self {
            process,
            port,
            directory,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// Opens a browser session once chromedriver reports that it has bound its port, so that the
    /// session cannot land on another process that took the port first.
    async fn session(&mut self, deadline: Instant) -> Result<Client, String> {
        let started = format!("started successfully on port {}", self.port);
        while !self.log().contains(&started) {
            if self.process.try_wait().unwrap().is_some() {
                return Err(format!("chromedriver exited: {}", self.log()));
            }
            if Instant::now() >= deadline {
                return Err(format!("chromedriver did not start: {}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", self.directory.path().join("profile").display()),
                ]
            }
        });
        let mut builder = ClientBuilder::native();
        builder.capabilities(capabilities.as_object().unwrap().clone());
        let url = format!("http://127.0.0.1:{}", self.port);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, builder.connect(&url)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(format!("chromedriver at {url} gave no session: {error}")),
            Err(_) => Err(format!("chromedriver at {url} gave no session in time")),
        }
    }
}

/// Starts chromedriver and opens a browser session on it. A failed attempt, such as
/// chromedriver exiting because its port was taken after the choice, is retried with a new
/// process, port and profile, up to five attempts in two minutes.
async fn start_browser() -> (Driver, Client) {
    let binary = std::env::var("PORTCULLIS_TEST_CHROMEDRIVER")
        .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut failures = Vec::new();
    while failures.len() < 5 && Instant::now() < deadline {
        let mut driver = Driver::start(&binary);
        match driver.session(deadline).await {
            Ok(client) => return (driver, client),
            Err(failure) => failures.push(failure),
        }
    }
    panic!(
        "no browser session after {} attempts: {failures:#?}",
        failures.len()
    );
}

/// Waits until the browser has been sent to the client's callback; returns that URL.
async fn wait_for_callback(browser: &Client) -> String {
    for _ in 0..50 {
        let current = browser.current_url().await.unwrap().to_string();
        if current.starts_with("http://127.0.0.1:9/callback") {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser never reached the callback");
}

fn authorize_url(app: &TestApp, client: &TestClient, challenge: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/callback"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", "browser-state"),
        ("resource", RS1),
    ])
    .unwrap();
    format!("{}/authorize?{query}", app.issuer)
}

/// Logs in through the real form and returns on the consent page.
async fn log_in(browser: &Client, url: &str) {
    browser.goto(url).await.unwrap();
    browser
        .find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(USER)
        .await
        .unwrap();
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("button[value=approve]"))
        .await
        .unwrap();
}

/// Registers a client whose name contains markup; the consent page must show it as text.
async fn client_with_markup_name(app: &TestApp) -> TestClient {
    app.registered(
        TENANT,
        &json!({
            "client_name": "<b>Bold</b><script>document.title='owned'</script>",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_logs_in_and_approves() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let client = client_with_markup_name(&app).await;
    let (verifier, challenge) = pkce();
    let (_driver, browser) = start_browser().await;

    log_in(&browser, &authorize_url(&app, &client, &challenge)).await;
    let shown = browser
        .find(Locator::Id("client-name"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        shown, "<b>Bold</b><script>document.title='owned'</script>",
        "the client name is not shown as text"
    );
    assert_ne!(
        browser.title().await.unwrap(),
        "owned",
        "markup in the client name ran as script"
    );
    assert!(
        browser
            .find_all(Locator::Css("#client-name b"))
            .await
            .unwrap()
            .is_empty(),
        "markup in the client name became an element"
    );

    browser
        .find(Locator::Css("button[value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let callback = wait_for_callback(&browser).await;
    let params = query_params(&callback);
    assert_eq!(
        params.get("state").map(String::as_str),
        Some("browser-state")
    );
    assert_eq!(params.get("iss"), Some(&app.issuer));
    let code = params.get("code").expect("the redirect carries no code");
    browser.close().await.unwrap();

    let response = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://127.0.0.1:9/callback"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        reqwest::StatusCode::OK,
        "the code from the browser was not redeemable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_denial_reaches_client() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let client = client_with_markup_name(&app).await;
    let (_, challenge) = pkce();
    let (_driver, browser) = start_browser().await;

    log_in(&browser, &authorize_url(&app, &client, &challenge)).await;
    browser
        .find(Locator::Css("button[value=deny]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let callback = wait_for_callback(&browser).await;
    let params = query_params(&callback);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(
        params.get("state").map(String::as_str),
        Some("browser-state")
    );
    assert_eq!(params.get("iss"), Some(&app.issuer));
    assert!(
        !params.contains_key("code"),
        "a denial must not deliver a code"
    );
    browser.close().await.unwrap();
}
