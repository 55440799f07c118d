//! The `portcullis` binary as a user runs it: admin commands and a server process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory with its own SQLite database for the binary.
pub struct Workspace {
    pub directory: tempfile::TempDir,
    pub database_url: String,
}

impl Workspace {
    pub fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let database_url = format!(
            "sqlite://{}",
            directory.path().join("portcullis.db").display()
        );
        Self {
            directory,
            database_url,
        }
    }

    /// Creates a workspace whose binary uses the database at `database_url`.
    pub fn with_database(database_url: &str) -> Self {
        Self {
            directory: tempfile::tempdir().unwrap(),
            database_url: database_url.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORTCULLIS_DATABASE_URL", &self.database_url);
        // SQLite workspaces use the generated key file; PostgreSQL needs an explicit key.
        if self.database_url.starts_with("postgres") {
            command.env("PORTCULLIS_MASTER_KEY", crate::helpers::TEST_MASTER_KEY);
        }
        command
    }

    /// Runs `portcullis ARGS` with extra environment variables and no input.
    pub fn run_with(&self, args: &[&str], variables: &[(&str, &str)]) -> Output {
        let mut command = self.command();
        for (name, value) in variables {
            command.env(name, value);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("starting portcullis failed")
    }

    /// Like `run_with`, asserting success; returns standard output.
    pub fn run_with_ok(&self, args: &[&str], variables: &[(&str, &str)]) -> String {
        let output = self.run_with(args, variables);
        assert!(
            output.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs `portcullis ARGS` with `stdin` as its standard input.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting portcullis failed");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `portcullis ARGS` and returns its standard output, asserting success.
    pub fn run_ok(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Starts `portcullis serve` on a free loopback port with extra environment variables;
    /// standard output and error go to files in the workspace, named after the port, so
    /// that servers started together keep separate logs. When another process takes the
    /// port between its choice and the server's bind, it retries on another port.
    pub async fn serve(&self, extra: &[(&str, &str)]) -> Server {
        for _ in 0..5 {
            let port = crate::helpers::unused_port();
            let stdout = self.path().join(format!("stdout-{port}.log"));
            let stderr = self.path().join(format!("stderr-{port}.log"));
            let mut command = self.command();
            command
                .arg("serve")
                .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
                .env("PORTCULLIS_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
                .stdout(std::fs::File::create(&stdout).unwrap())
                .stderr(std::fs::File::create(&stderr).unwrap());
            for (name, value) in extra {
                command.env(name, value);
            }
            let child = command.spawn().expect("starting portcullis serve failed");
            let mut server = Server {
                child,
                address: format!("http://127.0.0.1:{port}"),
                stdout,
                stderr,
            };
            if server.wait_ready().await {
                return server;
            }
            let errors = std::fs::read_to_string(&server.stderr).unwrap_or_default();
            assert!(
                errors.contains(&format!("binding 127.0.0.1:{port} failed")),
                "portcullis serve exited before it became healthy: {errors}"
            );
        }
        panic!("portcullis serve found each of five loopback ports taken");
    }
}

/// A running `portcullis serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Server {
    /// Waits until the server has bound its port and passes its health check, and returns
    /// true, or returns false when the process exits first.
    async fn wait_ready(&mut self) -> bool {
        // A timeout, because a process that took the port first may accept and never respond.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            // The server logs "listening" only after its own bind succeeded. Before that, a
            // health check could reach another test's server on the same port.
            let bound = std::fs::read_to_string(&self.stderr)
                .unwrap_or_default()
                .contains("listening");
            if bound
                && let Ok(response) = client.get(format!("{}/healthz", self.address)).send().await
                && response.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "portcullis serve did not log \"listening\" and pass its health check within 30 s: {}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
    }

    /// Stops the server with SIGTERM, as a service manager does, and waits for it to exit;
    /// returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().is_ok_and(|status| status.success())
    }

    /// Stops the server and returns what it wrote to standard output and standard error.
    pub fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
