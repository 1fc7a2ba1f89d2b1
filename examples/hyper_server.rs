//! A real MCP server behind consent-gate: hyper on tokio, a store from
//! `consent-gate-store`, `tracing` for the logs, and a built-in demo upstream that behaves
//! like GitHub for a returning user (no consent screen of its own), so that the
//! confused-deputy attack is real on a laptop and visibly fails. `routes.rs` is the crate
//! docs' host loop with a store and a network, `http.rs` moves bytes between hyper and the
//! core, `mcp.rs` is the protected endpoint. Flags, endpoints, limits and log lines:
//! docs/http-contract.md.

#![forbid(unsafe_code)]

#[path = "hyper_server/demo_upstream.rs"]
mod demo_upstream;
#[path = "hyper_server/http.rs"]
mod http;
#[path = "hyper_server/mcp.rs"]
mod mcp;
#[path = "hyper_server/routes.rs"]
mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_gate::{ClientSecret, Config, ConsentPolicy, Gate, Keys, ServerKey, UpstreamConfig};
use consent_gate_store as store;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{info, warn};

/// The limits of docs/http-contract.md#limits that are the server's: open connections
/// (more are closed at once), the time and size of a request head (also the keep-alive
/// idle limit), a connection's age (then it is closed gracefully, so a slow reader cannot
/// hold a slot forever), and how long requests in flight get to finish at shutdown.
const MAX_CONNECTIONS: u32 = 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str =
    "usage: hyper_server [--listen ADDR] [--upstream demo|github] [--public-url URL]
                    [--store memory|sqlite:PATH|redis://HOST:PORT] [--remember-consent]
  --listen ADDR      default 127.0.0.1:8080; port 0 picks a free one
  --upstream NAME    demo (built in, the default) or github (needs GITHUB_CLIENT_ID and
                     GITHUB_CLIENT_SECRET; the OAuth app's callback is BASE/callback)
  --public-url URL   the https origin clients use when a TLS proxy is in front: the issuer
                     and the resource (URL/mcp), and development mode off
  --store STORE      memory (the default: bounded, gone on exit), sqlite:PATH (one durable
                     file) or redis://HOST:PORT (shared by replicas)
  --remember-consent remember an approval per browser for exactly that client, redirect
                     URI, scope and resource (R31; the default asks every time)
env: CONSENT_GATE_KEY  hex, >= 32 bytes: the server key (random per process if unset)";

fn main() {
    // One JSON line per event on stderr, its fields at the top level.
    let logs = tracing_subscriber::fmt().json().flatten_event(true);
    logs.with_target(false).with_writer(std::io::stderr).init();
    // On one CPU (a container limit, `taskset`) the single-threaded scheduler: the same
    // work without cross-thread wake-ups and queues.
    let runtime = match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = runtime.map_err(|e| format!("cannot start the runtime: {e}"));
    if let Err(e) = runtime.and_then(|runtime| runtime.block_on(run())) {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

/// The command line as `flag → value` (an empty value for `--remember-consent`).
fn flags() -> Result<HashMap<String, String>, String> {
    let mut flags = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = match flag.as_str() {
            "--listen" | "--upstream" | "--public-url" | "--store" => args.next(),
            // Turns one fault switch on, so that the smoke walk and the end-to-end drivers
            // can prove they catch it (docs/design.md#fault-switches). Only in builds with
            // `--cfg consent_gate_faults`: anywhere else an unknown argument.
            "--fault" if cfg!(consent_gate_faults) => args.next(),
            "--remember-consent" => Some(String::new()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        };
        let value = value.ok_or(format!("{flag} needs a value"))?;
        flags.insert(flag, value);
    }
    Ok(flags)
}

async fn run() -> Result<(), String> {
    let flags = flags()?;
    let flag = |name: &str, default: &'static str| flags.get(name).map_or(default, |v| v.as_str());
    let listen = flag("--listen", "127.0.0.1:8080");
    let listener = TcpListener::bind(listen).await;
    let listener = listener.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (gate, demo) = configure(&flags, &format!("http://{bound}"))?;
    let store = open_store(flag("--store", "memory")).await?;
    // Reads ignore expired entries anyway; the sweep gives their space back.
    let clock = || routes::secs(http::now());
    store::spawn_sweeper(store.clone(), Duration::from_secs(60), clock);
    let resource = gate.config().resource().to_owned();
    info!(event = "listening", addr = %bound, resource, store = store.backend());
    println!("MCP server: {resource}");
    println!(
        "Add it to an MCP client (`npx @modelcontextprotocol/inspector`, or \
         `claude mcp add --transport http demo {resource}`): it registers, opens a consent \
         page in your browser, and calls the `whoami` tool once you approve."
    );
    serve(listener, Arc::new(routes::App::new(gate, store, demo))).await;
    Ok(())
}

/// The server key from `CONSENT_GATE_KEY`, or a random one (then every token and
/// registration dies with the process).
fn server_key() -> Result<ServerKey, String> {
    let Ok(hex) = std::env::var("CONSENT_GATE_KEY") else {
        let note = "CONSENT_GATE_KEY is not set: tokens and registrations end with this process";
        warn!(event = "random_server_key", note);
        let mut key = [0u8; 32];
        http::entropy(&mut key);
        return Ok(ServerKey::new(&key).expect("32 bytes"));
    };
    let hex = hex.trim();
    // An odd length or a non-ASCII character makes a `get` fail.
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(byte).collect();
    let bytes = bytes.ok_or("CONSENT_GATE_KEY is not hex")?;
    let short = "CONSENT_GATE_KEY must be at least 32 bytes (64 hex digits)";
    ServerKey::new(&bytes).ok_or_else(|| short.into())
}

/// The gate (and the demo upstream, if chosen) for the address we actually bound.
fn configure(
    flags: &HashMap<String, String>,
    bound: &str,
) -> Result<(Gate, Option<demo_upstream::DemoUpstream>), String> {
    let public_url = flags.get("--public-url").map(|u| u.trim_end_matches('/'));
    let (base, dev) = (public_url.unwrap_or(bound), public_url.is_none());
    let env = |name| std::env::var(name).map_err(|_| format!("--upstream github needs {name}"));
    let (upstream, demo) = match flags.get("--upstream").map_or("demo", |u| u.as_str()) {
        "demo" => {
            if !dev {
                let note = "the demo upstream signs everyone in as octocat";
                warn!(event = "demo_upstream_public", note);
            }
            let (demo, upstream) = demo_upstream::DemoUpstream::new(base);
            (upstream, Some(demo))
        }
        "github" => {
            let (id, secret) = (env("GITHUB_CLIENT_ID")?, env("GITHUB_CLIENT_SECRET")?);
            (UpstreamConfig::github(id, ClientSecret::new(secret)), None)
        }
        other => return Err(format!("unknown upstream {other} (demo or github)")),
    };
    let policy = match flags.contains_key("--remember-consent") {
        true => ConsentPolicy::Remember,
        false => ConsentPolicy::Always,
    };
    let keys = Keys::new(server_key()?);
    let config = Config::builder(base, format!("{base}/mcp"), upstream, keys);
    let config = config.dev_loopback_http(dev).consent_policy(policy);
    #[cfg(consent_gate_faults)]
    let config = match flags.get("--fault") {
        None => config,
        Some(name) => {
            let all = consent_gate::Faults::ALL;
            let Some((_, faults)) = all.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
                let known = known.join(" ");
                return Err(format!("unknown fault {name} (one of: {known})"));
            };
            let note = "this server is deliberately insecure";
            warn!(event = "FAULT_INJECTED", fault = name, note);
            config.faults(*faults)
        }
    };
    let hint = " (listening beyond loopback needs --public-url https://…)";
    let hint = if dev { hint } else { "" };
    let config = config.build();
    let config = config.map_err(|e| format!("configuration refused: {e}{hint}"))?;
    Ok((Gate::new(config), demo))
}

/// The store `--store` names. In memory, 10 000 entries of each kind: a flood costs the
/// flooder its own oldest entries, then others' oldest pending pages, never the server's
/// memory; ten times that many grants and sessions and twenty times the refresh tokens,
/// which live long.
async fn open_store(spec: &str) -> Result<Arc<dyn store::Store>, String> {
    let failed = |e| format!("--store {spec}: {e}");
    let limits = |n| store::MemoryLimits {
        max_entries: n,
        max_bytes: 256 << 20,
        ..Default::default()
    };
    if spec == "memory" {
        let memory = store::MemoryStore::new().limit(mcp::SESSIONS, limits(100_000));
        let memory = memory.limit(store::Kind::Grant, limits(100_000));
        Ok(Arc::new(
            memory.limit(store::Kind::Refresh, limits(200_000)),
        ))
    } else if let Some(path) = spec.strip_prefix("sqlite:") {
        let sqlite = store::SqliteStore::open(path, Default::default()).await;
        Ok(Arc::new(sqlite.map_err(failed)?))
    } else if spec.starts_with("redis://") {
        let redis = store::RedisStore::connect(spec, Default::default()).await;
        Ok(Arc::new(redis.map_err(failed)?))
    } else {
        let known = "memory, sqlite:PATH or redis://HOST:PORT";
        Err(format!("unknown store {spec} ({known})"))
    }
}

/// Accepts connections until Ctrl-C or SIGTERM, then lets every connection finish its
/// request in flight. The connection slots double as the drain barrier: all returned,
/// all closed.
async fn serve(listener: TcpListener, app: Arc<routes::App>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    http.max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    let (stop, stopped) = watch::channel(());
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let tcp = match (accepted, slots.clone().try_acquire_owned()) {
            (Ok((tcp, _)), Ok(slot)) => (tcp, slot),
            (Ok(_), Err(_)) => {
                warn!(
                    event = "connection_refused",
                    reason = "too many connections"
                );
                continue;
            }
            (Err(error), _) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(event = "accept_failed", %error);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(connection(http.clone(), tcp, app.clone(), stopped.clone()));
    }
    drop(listener);
    let open = MAX_CONNECTIONS as usize - slots.available_permits();
    info!(event = "shutting_down", open_connections = open);
    drop(stop);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(MAX_CONNECTIONS));
    if drained.await.is_err() {
        warn!(event = "drain_timeout");
    }
}

/// One connection, until the client closes it or idles past [`HEADER_TIMEOUT`]; or,
/// after the request in flight, until it is [`MAX_CONNECTION_AGE`] old or the server stops.
async fn connection(
    http: http1::Builder,
    (tcp, _slot): (TcpStream, OwnedSemaphorePermit),
    app: Arc<routes::App>,
    mut stop: watch::Receiver<()>,
) {
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(request(&app, req).await) }
    });
    let mut conn = std::pin::pin!(http.serve_connection(TokioIo::new(tcp), service));
    // Resets, timeouts and malformed heads end in `Err`; hyper answered what deserved an
    // answer (400, 431).
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.changed() => {}
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
}

/// One request: read within limits, routed, and one log line (never the query string).
async fn request(app: &routes::App, req: hyper::Request<Incoming>) -> http::Resp {
    let started = Instant::now();
    let (head, body) = req.into_parts();
    let (method, uri, headers) = (head.method, head.uri, head.headers);
    let mut req = http::Req {
        method,
        uri,
        headers,
        body: Default::default(),
    };
    let resp = match http::read_body(&req.headers, body).await {
        Ok(body) => {
            req.body = body;
            routes::route(app, &req).await
        }
        Err(resp) => resp,
    };
    let (path, status) = (http::short(req.path()), resp.status().as_u16());
    let ms = started.elapsed().as_secs_f64() * 1e3;
    info!(event = "request", method = %req.method, %path, status, ms);
    resp
}

/// Ctrl-C, or SIGTERM (what `docker stop`, systemd and CI send).
async fn shutdown_signal() {
    #[cfg(unix)]
    let mut term = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::terminate()).expect("a SIGTERM handler")
    };
    #[cfg(unix)]
    let term = term.recv();
    #[cfg(not(unix))]
    let term = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
