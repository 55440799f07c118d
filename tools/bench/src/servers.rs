//! Starting the servers under test, and reading their CPU time and peak memory from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::http::{Request, once};

/// A server process under test, killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub pid: u32,
}

impl ServerProcess {
    /// Starts `command`, whose server listens at `base_url`, and waits until `ready_path`
    /// responds with 200.
    pub async fn start(
        mut command: Command,
        base_url: &str,
        ready_path: &str,
        log: &Path,
    ) -> Result<Self, String> {
        let log_file = std::fs::File::create(log).map_err(|error| error.to_string())?;
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|error| error.to_string())?)
            .stderr(log_file)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|error| format!("starting the server failed: {error}"))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let server = Self { child, pid };
        for _ in 0..300 {
            if let Ok(reply) = once(&format!("{base_url}{ready_path}"), Request::get("")).await
                && reply.status == 200
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the server at {base_url} did not become ready; see {}",
            log.display()
        ))
    }

    /// Returns the CPU time the process has used, user plus system, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 and 15 of /proc/PID/stat (utime, stime), counted from 1 with the name as 2.
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (ticks(11) + ticks(12)) as f64 / clock_ticks_per_second()
    }

    /// Returns the peak resident memory of the process so far, in MiB (VmHWM).
    pub fn peak_memory_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports CPU times in USER_HZ, which is 100 on every mainstream architecture.
    100.0
}

/// Returns a free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a `portcullis` admin command and returns its standard output.
pub async fn admin(
    binary: &Path,
    environment: &[(String, String)],
    args: &[&str],
    stdin: &str,
) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut command = Command::new(binary);
    command
        .args(args)
        .envs(environment.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| error.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let output = child
        .wait_with_output()
        .await
        .map_err(|error| error.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Locations of the programs the harness runs.
pub struct Programs {
    pub portcullis: PathBuf,
    pub peers: PathBuf,
    pub peers_dir: PathBuf,
    pub node: PathBuf,
}
