//! A real MCP server behind consent-gate: hyper 1 + tokio, an in-memory store, a
//! streamable-HTTP MCP endpoint with one tool, and a built-in demo upstream that behaves
//! like GitHub for a returning user (no consent screen of its own), so that the
//! confused-deputy attack is real on a laptop and visibly fails.
//!
//! ```text
//! cargo run --example hyper_server                       # http://127.0.0.1:8080/mcp, demo upstream
//! cargo run --example hyper_server -- --listen 127.0.0.1:9000
//! GITHUB_CLIENT_ID=… GITHUB_CLIENT_SECRET=… cargo run --example hyper_server -- --upstream github
//! cargo run --example hyper_server -- --public-url https://mcp.example.com   # behind a TLS proxy
//! ```
//!
//! Environment: `CONSENT_GATE_KEY` (hex, at least 32 bytes) is the server key that signs
//! tokens and seals stored records; without it a random key is drawn at startup.
//!
//! Endpoints (docs/http-contract.md#endpoints): `/mcp`,
//! `/.well-known/oauth-protected-resource[/mcp]`, `/.well-known/oauth-authorization-server`,
//! `POST /register`, `GET|POST /authorize`, `GET /callback`, `POST /token`, `POST /revoke`, and
//! `/demo-upstream/*`.
//!
//! The layout is what to copy: `routes.rs` is the crate docs' run loop with a store and a
//! network, `glue.rs` moves bytes between hyper and the core, `store.rs` has the atomic
//! take, `mcp.rs` the protected endpoint, `demo_upstream.rs` the GitHub stand-in.

#![forbid(unsafe_code)]
// `cargo test --example hyper_server` runs the store tests; the server itself is unused there.
#![cfg_attr(test, allow(dead_code))]

#[path = "hyper_server/demo_upstream.rs"]
mod demo_upstream;
#[path = "hyper_server/glue.rs"]
mod glue;
#[path = "hyper_server/mcp.rs"]
mod mcp;
#[path = "hyper_server/revoke.rs"]
mod revoke;
#[path = "hyper_server/routes.rs"]
mod routes;
#[path = "hyper_server/store.rs"]
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_gate::{ClientSecret, Config, ConsentPolicy, Gate, Keys, ServerKey, UpstreamConfig};
use glue::V;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Open connections at most; more are closed at once (file descriptors are finite).
const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request head within this time (also the idle keep-alive limit).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Request head limits: 16 KiB (cookies included), 64 header lines.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// A connection is closed (gracefully) after this long, however busy.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// How long in-flight requests get to finish after Ctrl-C.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str =
    "usage: hyper_server [--listen ADDR] [--upstream demo|github] [--public-url URL] [--remember-consent]

  --listen ADDR      address to listen on (default 127.0.0.1:8080; port 0 picks a free one)
  --upstream NAME    demo (built in, default) or github (needs GITHUB_CLIENT_ID and
                     GITHUB_CLIENT_SECRET; register http://127.0.0.1:8080/callback, or
                     PUBLIC_URL/callback, as the OAuth app's callback URL)
  --public-url URL   the https origin clients use when a TLS proxy is in front; sets the
                     issuer and the resource (PUBLIC_URL/mcp) and turns off dev mode
  --remember-consent remember an approval per browser for exactly that client, redirect
                     URI, scope and resource (default: ask every time; see R31, A4)
env: CONSENT_GATE_KEY  hex, >= 32 bytes: the server key (random per process if unset)";

struct Args {
    listen: SocketAddr,
    upstream: String,
    public_url: Option<String>,
    remember_consent: bool,
    #[cfg(consent_gate_faults)]
    fault: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        upstream: "demo".into(),
        public_url: None,
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
            "--remember-consent" => args.remember_consent = true,
            // Re-creates a known bypass so that the smoke walk and the end-to-end drivers
            // can prove they catch it. Compiled only with `--cfg consent_gate_faults`
            // (RUSTFLAGS), never in a normal or release build: there it is an unknown
            // argument.
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

/// The server key from `CONSENT_GATE_KEY`, or a random one (said in the log: every token
/// and registration dies with the process then).
fn server_key() -> Result<ServerKey, String> {
    let bytes = match std::env::var("CONSENT_GATE_KEY") {
        Ok(hex) => {
            let hex = hex.trim();
            let decoded: Option<Vec<u8>> = (hex.len() % 2 == 0)
                .then(|| {
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                        .collect()
                })
                .flatten();
            decoded.ok_or("CONSENT_GATE_KEY is not hex")?
        }
        Err(_) => {
            glue::info(
                "random_server_key",
                &[(
                    "note",
                    V::Str(
                        "CONSENT_GATE_KEY is not set: using a random key; tokens and registrations end with this process",
                    ),
                )],
            );
            let mut b = vec![0u8; 32];
            glue::entropy(&mut b);
            b
        }
    };
    ServerKey::new(&bytes)
        .ok_or_else(|| "CONSENT_GATE_KEY must be at least 32 bytes (64 hex digits)".into())
}

/// Builds the gate (and the demo upstream, if chosen) for the address we actually bound.
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
            let secret = glue::random_hex(20);
            let demo = demo_upstream::DemoUpstream::new(
                format!("{base}/demo-upstream"),
                "Ov23liDEMO".into(),
                secret.clone(),
                format!("{base}/callback"),
            );
            let mut up = UpstreamConfig::custom(
                "Demo GitHub",
                format!("{base}/demo-upstream/authorize"),
                format!("{base}/demo-upstream/token"),
                format!("{base}/demo-upstream/user"),
                "Ov23liDEMO",
                ClientSecret::new(secret),
            );
            up.issuer = Some(demo.issuer().to_owned());
            up.scopes = vec!["read:user".into()];
            up.subject_prefix = "demo-github:".into();
            if !dev {
                glue::info(
                    "demo_upstream_public",
                    &[(
                        "note",
                        V::Str(
                            "the demo upstream signs everyone in as octocat: use --upstream github for real users",
                        ),
                    )],
                );
            }
            (up, Some(demo))
        }
        "github" => {
            let id = std::env::var("GITHUB_CLIENT_ID")
                .map_err(|_| "--upstream github needs GITHUB_CLIENT_ID")?;
            let secret = std::env::var("GITHUB_CLIENT_SECRET")
                .map_err(|_| "--upstream github needs GITHUB_CLIENT_SECRET")?;
            (UpstreamConfig::github(id, ClientSecret::new(secret)), None)
        }
        other => return Err(format!("unknown upstream {other} (demo or github)")),
    };
    let builder = Config::builder(
        base.as_str(),
        format!("{base}/mcp"),
        upstream,
        Keys::new(server_key()?),
    )
    .dev_loopback_http(dev)
    .consent_policy(if args.remember_consent {
        ConsentPolicy::Remember
    } else {
        ConsentPolicy::Always
    });
    #[cfg(consent_gate_faults)]
    let builder = match &args.fault {
        None => builder,
        Some(name) => {
            let (_, faults) = consent_gate::Faults::ALL
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        consent_gate::Faults::ALL.iter().map(|(n, _)| *n).collect();
                    format!("unknown fault {name} (one of: {})", known.join(" "))
                })?;
            glue::info(
                "FAULT_INJECTED",
                &[
                    ("fault", V::Str(name)),
                    ("note", V::Str("this server is deliberately insecure")),
                ],
            );
            builder.faults(*faults)
        }
    };
    let config = builder.build().map_err(|e| {
        let hint = if dev {
            " (listening beyond loopback needs --public-url https://…)"
        } else {
            ""
        };
        format!("configuration refused: {e}{hint}")
    })?;
    Ok((Gate::new(config), demo))
}

fn main() {
    glue::start_log_flusher();
    // One thread per CPU we may run on. On one CPU (a container limit, `taskset`), the
    // single-threaded scheduler: the same work without cross-thread wake-ups and queues.
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cpus);
        b
    };
    let result = match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    // Log lines are buffered: out with them before the process ends.
    glue::flush_log();
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
    let resource = gate.config().resource().to_owned();
    let app = Arc::new(routes::App::new(
        gate,
        Arc::new(store::MemoryStore::new()),
        demo,
    ));

    println!("MCP server: {resource}");
    println!(
        "Add it to an MCP client (e.g. `npx @modelcontextprotocol/inspector`, or `claude mcp add --transport http demo {resource}`);"
    );
    println!(
        "the client registers, opens a consent page in your browser, and calls the `whoami` tool once you approve."
    );
    glue::info(
        "listening",
        &[
            ("addr", V::Str(&bound.to_string())),
            ("resource", V::Str(&resource)),
        ],
    );

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut stop = std::pin::pin!(shutdown_signal());

    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    glue::info("accept_failed", &[("error", V::Str(&e.to_string()))]);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            glue::info(
                "connection_refused",
                &[("reason", V::Str("too many connections"))],
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
    let open = MAX_CONNECTIONS - slots.available_permits();
    glue::info(
        "shutting_down",
        &[("open_connections", V::Num(open as u64))],
    );
    drop(stop_tx);
    let all = u32::try_from(MAX_CONNECTIONS).expect("a small constant");
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        glue::info("drain_timeout", &[]);
    }
    Ok(())
}

/// One connection, until the client closes it, it idles past [`HEADER_TIMEOUT`], it has
/// lived [`MAX_CONNECTION_AGE`] (so a slow reader cannot hold a slot forever), or the
/// server shuts down; in the last two cases the request in flight is finished first.
async fn connection(
    http: http1::Builder,
    tcp: tokio::net::TcpStream,
    app: Arc<routes::App>,
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

/// One request: read within limits, route, log one line.
async fn serve(app: &routes::App, req: hyper::Request<hyper::body::Incoming>) -> glue::Resp {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    match glue::read_body(&parts.headers, body).await {
        Ok(body) => {
            let req = glue::Req {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
            };
            let resp = routes::route(app, &req).await;
            glue::log_request(&req.method, req.path(), resp.status(), started.elapsed());
            resp
        }
        Err(resp) => {
            let path = parts.uri.path();
            glue::log_request(&parts.method, path, resp.status(), started.elapsed());
            resp
        }
    }
}

/// Ctrl-C, or SIGTERM (what `docker stop`, systemd and CI send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
