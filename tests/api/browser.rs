//! The login and consent pages in real headless Chromium, driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver` packages). Set
//! `PORTCULLIS_TEST_CHROMEDRIVER` to use another chromedriver binary.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// A chromedriver process on a free loopback port, killed when dropped.
struct Driver {
    process: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts chromedriver and opens a browser session on it. chromedriver exits when its port
/// is taken, which can happen between the choice of the port and its bind, so it is retried
/// on another port.
async fn start_browser() -> (Driver, Client) {
    let binary = std::env::var("PORTCULLIS_TEST_CHROMEDRIVER")
        .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    for _ in 0..5 {
        let port = unused_port();
        let process = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("starting {binary} failed: {error}; install Debian's chromium and chromium-driver packages")
            });
        let profile = tempfile::tempdir().unwrap();
        let mut driver = Driver {
            process,
            port,
            _profile: profile,
        };
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ]
            }
        });
        let capabilities: serde_json::Map<String, serde_json::Value> =
            capabilities.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{}", driver.port);
        for _ in 0..50 {
            if driver.process.try_wait().unwrap().is_some() {
                break;
            }
            // A timeout, because a process that took the port first may accept and never respond.
            let mut builder = ClientBuilder::native();
            builder.capabilities(capabilities.clone());
            let session = builder.connect(&url);
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(30), session).await {
                return (driver, client);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            driver.process.try_wait().unwrap().is_some(),
            "chromedriver at {url} did not accept a session"
        );
    }
    panic!("chromedriver exited on each of five loopback ports; check that {binary} runs");
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
