//! The admin commands and first run, through the real binary.

use crate::process::Workspace;

#[test]
fn every_command_explains_itself() {
    let workspace = Workspace::new();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["tenant", "create", "--help"],
        vec!["tenant", "list", "--help"],
        vec!["user", "add", "--help"],
        vec!["user", "set-password", "--help"],
        vec!["resource", "add", "--help"],
        vec!["resource", "list", "--help"],
        vec!["client", "add", "--help"],
        vec!["client", "list", "--help"],
    ] {
        let help = workspace.run_ok(&args, "");
        assert!(help.contains("Usage:"), "{args:?} printed no usage");
    }
    let help = workspace.run_ok(&["client", "add", "--help"], "");
    for option in [
        "--tenant",
        "--name",
        "--redirect-uri",
        "--auth-method",
        "--grant-type",
        "--scope",
        "--application-type",
    ] {
        assert!(
            help.contains(option),
            "client add --help does not explain {option}"
        );
    }
}

#[test]
fn admin_commands_manage_a_tenant() {
    let workspace = Workspace::new();
    let first = workspace.run(&["tenant", "create", "acme"], "");
    assert!(first.status.success(), "tenant create failed: {first:?}");
    let created = String::from_utf8(first.stdout).unwrap();
    assert!(
        created.contains("/t/acme"),
        "tenant create did not print the issuer: {created}"
    );
    let notice = String::from_utf8(first.stderr).unwrap();
    let database = workspace.path().join("portcullis.db");
    assert!(
        notice.contains(&format!(
            "created a new, empty database {}",
            database.display()
        )),
        "the first command did not name the database it created: {notice}"
    );
    let second = workspace.run(&["tenant", "list"], "");
    let stderr = String::from_utf8(second.stderr).unwrap();
    assert!(
        !stderr.contains("created a new"),
        "an existing database was reported as new: {stderr}"
    );
    let listed = workspace.run_ok(&["tenant", "list"], "");
    assert!(
        listed.contains("acme\t"),
        "tenant list misses acme: {listed}"
    );

    workspace.run_ok(
        &["user", "add", "--tenant", "acme", "carol"],
        "carol-password-1\n",
    );
    workspace.run_ok(
        &["user", "set-password", "--tenant", "acme", "carol"],
        "carol-password-2\n",
    );
    let short = workspace.run(&["user", "add", "--tenant", "acme", "dave"], "short\n");
    assert!(!short.status.success(), "a short password was accepted");
    let duplicate = workspace.run(
        &["user", "add", "--tenant", "acme", "carol"],
        "carol-password-3\n",
    );
    assert!(!duplicate.status.success(), "a duplicate user was accepted");

    workspace.run_ok(
        &[
            "resource",
            "add",
            "--tenant",
            "acme",
            "https://mcp.example.com/mcp",
            "--scopes",
            "mcp:tools",
        ],
        "",
    );
    let resources = workspace.run_ok(&["resource", "list", "--tenant", "acme"], "");
    assert!(
        resources.contains("https://mcp.example.com/mcp\tmcp:tools"),
        "resource list: {resources}"
    );
    let fragment = workspace.run(
        &[
            "resource",
            "add",
            "--tenant",
            "acme",
            "https://mcp.example.com/mcp#x",
        ],
        "",
    );
    assert!(
        !fragment.status.success(),
        "a resource with a fragment was accepted"
    );

    let added = workspace.run_ok(
        &[
            "client",
            "add",
            "--tenant",
            "acme",
            "--name",
            "Worker",
            "--grant-type",
            "client_credentials",
        ],
        "",
    );
    assert!(
        added.contains("client_id: "),
        "client add printed no id: {added}"
    );
    let secret = added
        .split("client_secret: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("client add printed no secret for a confidential client");
    let clients = workspace.run_ok(&["client", "list", "--tenant", "acme"], "");
    assert!(
        clients.contains("Worker"),
        "client list misses the client: {clients}"
    );
    assert!(!clients.contains(secret), "client list shows the secret");

    let bad_redirect = workspace.run(
        &[
            "client",
            "add",
            "--tenant",
            "acme",
            "--redirect-uri",
            "javascript:alert(1)",
        ],
        "",
    );
    assert!(
        !bad_redirect.status.success(),
        "a javascript: redirect URI was accepted"
    );
    let unknown = workspace.run(
        &["user", "add", "--tenant", "nosuch", "erin"],
        "erin-password-1\n",
    );
    assert!(
        !unknown.status.success(),
        "a user was added to a missing tenant"
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("does not exist"));
}

#[test]
fn password_is_never_an_argument() {
    let workspace = Workspace::new();
    workspace.run_ok(&["tenant", "create", "acme"], "");
    let attempt = workspace.run(
        &[
            "user",
            "add",
            "--tenant",
            "acme",
            "carol",
            "--password",
            "carol-password-1",
        ],
        "",
    );
    assert!(
        !attempt.status.success(),
        "user add accepted a password argument"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_creates_default_tenant() {
    let workspace = Workspace::new();
    let server = workspace.serve(&[]).await;
    let metadata: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server/t/default",
        server.address
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], format!("{}/t/default", server.address));
    let (stdout, stderr) = server.stop();
    let password = stdout
        .split("password: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the first run printed no admin password");
    assert!(password.len() >= 32, "the generated password is short");
    assert!(
        !stderr.contains(password),
        "the admin password reached the log"
    );
    assert!(
        stderr.contains(&format!("{}/t/default", server_address(&stderr))),
        "the log does not name the issuer"
    );

    let again = workspace.serve(&[]).await;
    let (stdout, _) = again.stop();
    assert!(
        !stdout.contains("password"),
        "a second start printed a password again"
    );
}

fn server_address(log: &str) -> String {
    log.split("public_url=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_fail_at_start() {
    let workspace = Workspace::new();
    for (name, value) in [
        ("PORTCULLIS_PUBLIC_URL", "http://auth.example.com"),
        ("PORTCULLIS_BIND", "nonsense"),
        ("PORTCULLIS_PUBLICURL", "http://127.0.0.1:1"),
        ("PORTCULLIS_DATABASE_URL", "mysql://localhost/db"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        let output = command
            .current_dir(workspace.path())
            .env_clear()
            .env("PORTCULLIS_BIND", "127.0.0.1:0")
            .env(name, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("PORTCULLIS_"),
            "the error for {name}={value} does not name the setting: {stderr}"
        );
    }
}
