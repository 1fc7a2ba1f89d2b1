//! A real MCP server behind consent-gate: hyper 1 on tokio, a store from
//! `consent-gate-store`, a streamable-HTTP MCP endpoint with one tool, `tracing` for the
//! logs, and a built-in demo upstream that behaves like GitHub for a returning user (no
//! consent screen of its own), so that the confused-deputy attack is real on a laptop and
//! visibly fails. Flags, endpoints, limits and logs: docs/http-contract.md.
//!
//! ```text
//! cargo run --example hyper_server                       # http://127.0.0.1:8080/mcp, demo upstream
//! cargo run --example hyper_server -- --store sqlite:consent-gate.db
//! GITHUB_CLIENT_ID=… GITHUB_CLIENT_SECRET=… cargo run --example hyper_server -- --upstream github
//! cargo run --example hyper_server -- --public-url https://mcp.example.com   # behind a TLS proxy
//! ```
//!
//! What to copy: `oauth.rs` is the crate docs' host loop with a store and a network,
//! `http.rs` moves bytes between hyper and the core, `mcp.rs` is the protected endpoint,
//! `demo_upstream.rs` the GitHub stand-in. This file reads the flags and runs the server.

#![forbid(unsafe_code)]

#[path = "hyper_server/demo_upstream.rs"]
mod demo_upstream;
#[path = "hyper_server/http.rs"]
mod http;
#[path = "hyper_server/mcp.rs"]
mod mcp;
#[path = "hyper_server/oauth.rs"]
mod oauth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_gate::{ClientSecret, Config, ConsentPolicy, Gate, Keys, ServerKey, UpstreamConfig};
use consent_gate_store::{
    Kind, MemoryLimits, MemoryStore, RedisOptions, RedisStore, SqliteOptions,
};
use consent_gate_store::{SqliteStore, Store};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{info, warn};

/// Open connections at most; more are closed at once (file descriptors are finite).
const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request head within this time (also the idle keep-alive limit),
/// of at most 16 KiB (cookies included) in 64 header lines.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// A connection is closed (gracefully) after this long, however busy: a slow reader
/// cannot hold a slot forever.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// How long in-flight requests get to finish after Ctrl-C or SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str =
    "usage: hyper_server [--listen ADDR] [--upstream demo|github] [--public-url URL]
                    [--store memory|sqlite:PATH|redis://HOST:PORT] [--remember-consent]

  --listen ADDR      address to listen on (default 127.0.0.1:8080; port 0 picks a free one)
  --upstream NAME    demo (built in, default) or github (needs GITHUB_CLIENT_ID and
                     GITHUB_CLIENT_SECRET; register http://127.0.0.1:8080/callback, or
                     PUBLIC_URL/callback, as the OAuth app's callback URL)
  --public-url URL   the https origin clients use when a TLS proxy is in front; sets the
                     issuer and the resource (PUBLIC_URL/mcp) and turns off dev mode
  --store STORE      memory (default: bounded, forgotten on exit), sqlite:PATH (one
                     durable file) or redis://HOST:PORT (shared by replicas)
  --remember-consent remember an approval per browser for exactly that client, redirect
                     URI, scope and resource (default: ask every time; see R31, A4)
env: CONSENT_GATE_KEY  hex, >= 32 bytes: the server key (random per process if unset)";

struct Args {
    listen: SocketAddr,
    upstream: String,
    public_url: Option<String>,
    store: String,
    remember_consent: bool,
    #[cfg(consent_gate_faults)]
    fault: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        upstream: "demo".into(),
        public_url: None,
        store: "memory".into(),
        remember_consent: false,
        #[cfg(consent_gate_faults)]
        fault: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                args.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: not an address: {v}"))?;
            }
            "--upstream" => args.upstream = value()?,
            "--public-url" => args.public_url = Some(value()?.trim_end_matches('/').to_owned()),
            "--store" => args.store = value()?,
            "--remember-consent" => args.remember_consent = true,
            // Re-creates a known bypass so that the smoke walk and the end-to-end drivers
            // can prove they catch it (docs/design.md#fault-switches). Only in builds with
            // `--cfg consent_gate_faults`; anywhere else an unknown argument.
            #[cfg(consent_gate_faults)]
            "--fault" => args.fault = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
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
    let byte = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|b| u8::from_str_radix(b, 16).ok())
    };
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(byte).collect();
    let bytes = bytes.ok_or("CONSENT_GATE_KEY is not hex")?;
    ServerKey::new(&bytes)
        .ok_or_else(|| "CONSENT_GATE_KEY must be at least 32 bytes (64 hex digits)".into())
}

/// The gate (and the demo upstream, if chosen) for the address we actually bound.
fn configure(
    args: &Args,
    bound: SocketAddr,
) -> Result<(Gate, Option<demo_upstream::DemoUpstream>), String> {
    let dev = args.public_url.is_none();
    let base = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let (upstream, demo) = match args.upstream.as_str() {
        "demo" => {
            if !dev {
                warn!(
                    event = "demo_upstream_public",
                    note = "the demo upstream signs everyone in as octocat"
                );
            }
            let (demo, upstream) = demo_upstream::DemoUpstream::new(&base);
            (upstream, Some(demo))
        }
        "github" => {
            let var = |name: &str| {
                std::env::var(name).map_err(|_| format!("--upstream github needs {name}"))
            };
            let secret = ClientSecret::new(var("GITHUB_CLIENT_SECRET")?);
            (
                UpstreamConfig::github(var("GITHUB_CLIENT_ID")?, secret),
                None,
            )
        }
        other => return Err(format!("unknown upstream {other} (demo or github)")),
    };
    let keys = Keys::new(server_key()?);
    let policy = if args.remember_consent {
        ConsentPolicy::Remember
    } else {
        ConsentPolicy::Always
    };
    let builder = Config::builder(base.as_str(), format!("{base}/mcp"), upstream, keys);
    let builder = builder.dev_loopback_http(dev).consent_policy(policy);
    #[cfg(consent_gate_faults)]
    let builder = match &args.fault {
        None => builder,
        Some(name) => {
            let all = consent_gate::Faults::ALL;
            let Some((_, faults)) = all.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown fault {name} (one of: {})",
                    known.join(" ")
                ));
            };
            warn!(
                event = "FAULT_INJECTED",
                fault = name,
                note = "this server is deliberately insecure"
            );
            builder.faults(*faults)
        }
    };
    let hint = if dev {
        " (listening beyond loopback needs --public-url https://…)"
    } else {
        ""
    };
    let config = builder
        .build()
        .map_err(|e| format!("configuration refused: {e}{hint}"))?;
    Ok((Gate::new(config), demo))
}

/// The store `--store` names. The memory store keeps 10 000 entries of each kind (a
/// flood costs the flooder its own oldest entries, then others' oldest pending pages,
/// never the server's memory), more of the long-lived grants, refresh tokens and sessions.
async fn open_store(spec: &str) -> Result<Arc<dyn Store>, String> {
    let failed = |e| format!("--store {spec}: {e}");
    if spec == "memory" {
        let long = MemoryLimits {
            max_entries: 100_000,
            max_bytes: 128 << 20,
            ..Default::default()
        };
        let store = MemoryStore::new()
            .limit(Kind::Grant, long)
            .limit(mcp::SESSIONS, long);
        Ok(Arc::new(store.limit(
            Kind::Refresh,
            MemoryLimits {
                max_entries: 200_000,
                ..long
            },
        )))
    } else if let Some(path) = spec.strip_prefix("sqlite:") {
        Ok(Arc::new(
            SqliteStore::open(path, SqliteOptions::default())
                .await
                .map_err(failed)?,
        ))
    } else if spec.starts_with("redis://") {
        Ok(Arc::new(
            RedisStore::connect(spec, RedisOptions::default())
                .await
                .map_err(failed)?,
        ))
    } else {
        Err(format!(
            "unknown store {spec} (memory, sqlite:PATH or redis://HOST:PORT)"
        ))
    }
}

fn main() {
    // JSON lines on stderr, one per event, fields at the top level (never a secret).
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // One thread per CPU we may run on. On one CPU (a container limit, `taskset`), the
    // single-threaded scheduler: the same work without cross-thread wake-ups and queues.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut runtime = match cpus {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let result = match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (gate, demo) = configure(&args, bound)?;
    let store = open_store(&args.store).await?;
    // Reads ignore expired entries anyway; the sweep gives their space back.
    consent_gate_store::spawn_sweeper(store.clone(), Duration::from_secs(60), || {
        oauth::secs(http::now())
    });
    let resource = gate.config().resource().to_owned();
    info!(event = "listening", addr = %bound, resource, store = store.backend());
    let app = Arc::new(oauth::App::new(gate, store, demo));
    println!("MCP server: {resource}");
    println!(
        "Add it to an MCP client (e.g. `npx @modelcontextprotocol/inspector`, or `claude mcp add --transport http demo {resource}`);\n\
         the client registers, opens a consent page in your browser, and calls the `whoami` tool once you approve."
    );

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    http.max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(event = "accept_failed", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(
                event = "connection_refused",
                reason = "too many connections"
            );
            continue;
        };
        tokio::spawn(connection(
            http.clone(),
            tcp,
            app.clone(),
            stop_rx.clone(),
            slot,
        ));
    }
    // Stop accepting, let every connection finish its request in flight, then exit. The
    // connection slots double as the drain barrier: all returned = all closed.
    drop(listener);
    info!(
        event = "shutting_down",
        open_connections = MAX_CONNECTIONS - slots.available_permits()
    );
    drop(stop_tx);
    let all = u32::try_from(MAX_CONNECTIONS).expect("a small constant");
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        warn!(event = "drain_timeout");
    }
    Ok(())
}

/// One connection, until the client closes it, it idles past [`HEADER_TIMEOUT`], it has
/// lived [`MAX_CONNECTION_AGE`], or the server shuts down; in the last two cases the
/// request in flight is finished first.
async fn connection(
    http: http1::Builder,
    tcp: TcpStream,
    app: Arc<oauth::App>,
    mut stop: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
) {
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(serve(&app, req).await) }
    });
    let mut conn = std::pin::pin!(http.serve_connection(TokioIo::new(tcp), service));
    // Client resets, timeouts and malformed heads end in `Err` here; hyper already
    // answered what deserved an answer (400, 431).
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.changed() => {}
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
}

/// One request: read within limits, route, and one log line (never the query string).
async fn serve(app: &oauth::App, req: hyper::Request<hyper::body::Incoming>) -> http::Resp {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let mut req = http::Req {
        method,
        uri,
        headers,
        body: Default::default(),
    };
    let resp = match http::read_body(&req.headers, body).await {
        Ok(body) => {
            req.body = body;
            oauth::route(app, &req).await
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
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => _ = s.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
