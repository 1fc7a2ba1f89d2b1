//! A real MCP server behind consent-gate: hyper on tokio, a store from
//! `consent-gate-store`, `tracing` for the logs, and a built-in demo upstream that acts
//! like GitHub for a returning user (no consent screen), so that the confused-deputy
//! attack is real on a laptop and visibly fails. Here: flags, connections, limits, bytes
//! in and out; `routes.rs`: the OAuth endpoints and the one executor of the core's
//! `Step`s; `mcp.rs`: the protected endpoint. Contract: docs/http-contract.md.

#![forbid(unsafe_code)]

#[path = "hyper_server/demo_upstream.rs"]
mod demo_upstream;
#[path = "hyper_server/mcp.rs"]
mod mcp;
#[path = "hyper_server/routes.rs"]
mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consent_gate::{BrowserContext, ClientSecret, Config, ConsentPolicy, Gate, HttpRequest, Keys};
use consent_gate::{Reply, ServerKey, UnixTime, UpstreamConfig};
use consent_gate_store as store;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, server::conn::http1, service::service_fn};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, sync::watch, time::sleep, time::timeout};
use tracing::{info, warn};

/// The server's limits (docs/http-contract.md#limits): open connections; a request head's
/// bytes, lines and time (also the keep-alive idle time); a body's bytes and time; a
/// connection's age (then it closes gracefully: a slow reader cannot keep a slot); the
/// upstream's time to answer; the time requests in flight get at shutdown.
const MAX_CONNECTIONS: u32 = 1024;
const MAX_HEAD: (usize, usize, Duration) = (16 * 1024, 64, Duration::from_secs(10));
const MAX_BODY: (usize, Duration) = (64 * 1024, Duration::from_secs(10));
const MAX_AGE: Duration = Duration::from_secs(300);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: hyper_server [--listen ADDR] [--upstream demo|github|google] \
[--public-url URL] [--store memory|sqlite:PATH|redis://HOST:PORT] [--state-dir DIR] \
[--remember-consent]\nenv: CONSENT_GATE_KEY  the server key, hex, >= 32 bytes; with it the \
default store is DIR/consent-gate.sqlite3 (DIR: .consent-gate), without it memory
(docs/http-contract.md#running)";

/// A request with its body read, and a response as hyper sends it.
type Req = Request<Bytes>;
type Resp = Response<Full<Bytes>>;

#[tokio::main]
async fn main() {
    // One JSON line per event on stderr, its fields at the top level.
    let logs = tracing_subscriber::fmt().json().flatten_event(true);
    logs.with_target(false).with_writer(std::io::stderr).init();
    if let Err(e) = run().await {
        eprintln!("{e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let mut flags = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = match flag.as_str() {
            "--listen" | "--upstream" | "--public-url" | "--store" | "--state-dir" => args.next(),
            // One fault switch on, so that smoke.sh and the e2e drivers prove they catch
            // it (docs/design.md#fault-switches); in other builds an unknown argument.
            "--fault" if cfg!(consent_gate_faults) => args.next(),
            "--remember-consent" => Some(String::new()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        };
        flags.insert(flag.clone(), value.ok_or(format!("{flag} needs a value"))?);
    }
    let flag = |name: &str, default: &'static str| flags.get(name).map_or(default, |v| v.as_str());
    let listen = flag("--listen", "127.0.0.1:8080");
    let listener = TcpListener::bind(listen).await;
    let listener = listener.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (gate, demo) = configure(&flags, &format!("http://{bound}"))?;
    // Durable by default; in memory without a fixed key (no later process could read).
    let durable = std::env::var_os("CONSENT_GATE_KEY").is_some();
    let sqlite = format!(
        "sqlite:{}/consent-gate.sqlite3",
        flag("--state-dir", ".consent-gate")
    );
    let default = if durable { sqlite.as_str() } else { "memory" };
    let store = flags.get("--store").map_or(default, |v| v.as_str());
    // A full kind refuses the newcomer with 429; everyone stored keeps working (R64).
    let store = store::open(store, &store::Quotas::for_one_server()).await?;
    // Reads ignore expired entries anyway; the sweep gives their space back.
    store::spawn_sweeper(store.clone(), Duration::from_secs(60), || now().into());
    let resource = gate.config().resource().to_owned();
    info!(event = "listening", addr = %bound, resource, store = store.backend());
    println!("MCP server: {resource}");
    println!(
        "Add it to an MCP client (`npx @modelcontextprotocol/inspector`, or `claude mcp add \
         --transport http demo {resource}`): it registers, opens a consent page in your \
         browser, and calls the `whoami` tool once you approve."
    );
    serve(listener, Arc::new(routes::App::new(gate, store, demo))).await;
    Ok(())
}

/// The gate (and the demo upstream, if chosen) for the address we actually bound.
type Configured = (Gate, Option<demo_upstream::DemoUpstream>);
fn configure(flags: &HashMap<String, String>, bound: &str) -> Result<Configured, String> {
    let public_url = flags.get("--public-url").map(|u| u.trim_end_matches('/'));
    let (base, dev) = (public_url.unwrap_or(bound), public_url.is_none());
    let env = |name| std::env::var(name).map_err(|_| format!("this --upstream needs {name}"));
    let key = match std::env::var("CONSENT_GATE_KEY") {
        Ok(hex) => hex::decode(hex.trim()).map_err(|_| "CONSENT_GATE_KEY is not hex")?,
        Err(_) => {
            let note = "CONSENT_GATE_KEY is not set: records live in memory, with this process";
            warn!(event = "random_server_key", note);
            random(32)
        }
    };
    let (upstream, demo) = match flags.get("--upstream").map_or("demo", |u| u.as_str()) {
        "demo" => {
            if !dev {
                let note = "the demo upstream signs everyone in as octocat";
                warn!(event = "demo_upstream_public", note);
            }
            let (demo, upstream) = demo_upstream::DemoUpstream::new(base, &key);
            (upstream, Some(demo))
        }
        "github" => {
            let (id, secret) = (env("GITHUB_CLIENT_ID")?, env("GITHUB_CLIENT_SECRET")?);
            (UpstreamConfig::github(id, ClientSecret::new(secret)), None)
        }
        "google" => {
            let (id, secret) = (env("GOOGLE_CLIENT_ID")?, env("GOOGLE_CLIENT_SECRET")?);
            (UpstreamConfig::google(id, ClientSecret::new(secret)), None)
        }
        other => return Err(format!("unknown upstream {other} (demo, github or google)")),
    };
    let policy = match flags.contains_key("--remember-consent") {
        true => ConsentPolicy::Remember,
        false => ConsentPolicy::Always,
    };
    let short_key = "CONSENT_GATE_KEY must be at least 32 bytes (64 hex digits)";
    let keys = Keys::new(ServerKey::new(&key).ok_or(short_key)?);
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
            let note = "deliberately insecure";
            warn!(event = "FAULT_INJECTED", fault = name, note);
            config.faults(*faults)
        }
    };
    let hint = dev.then_some(" (listening beyond loopback needs --public-url https://…)");
    let refused = |e| format!("configuration refused: {e}{}", hint.unwrap_or(""));
    Ok((Gate::new(config.build().map_err(refused)?), demo))
}

/// Accepts connections until Ctrl-C or SIGTERM, then lets every connection finish its
/// request in flight. The connection slots double as the drain barrier.
async fn serve(listener: TcpListener, app: Arc<routes::App>) {
    let (mut http, (head_bytes, head_lines, head_time)) = (http1::Builder::new(), MAX_HEAD);
    http.timer(TokioTimer::new()).header_read_timeout(head_time);
    http.max_header_size(head_bytes).max_headers(head_lines);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    let (stop, stopped) = watch::channel(());
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (tcp, slot) = match (tcp, slots.clone().try_acquire_owned()) {
            (Ok((tcp, _)), Ok(slot)) => (tcp, slot),
            (Ok(_), Err(_)) => {
                let reason = "too many connections";
                warn!(event = "connection_refused", reason);
                continue;
            }
            (Err(error), _) => {
                warn!(event = "accept_failed", %error); // EMFILE and friends: back off
                sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (app, mut stopped) = (app.clone(), stopped.clone());
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(request(&app, req).await) }
        });
        let conn = http.serve_connection(TokioIo::new(tcp), service);
        // Until the client closes or idles past the head timeout (resets and malformed
        // heads end it too: hyper answered what deserved it, 400 or 431); or, after the
        // request in flight, until it is too old or the server stops.
        tokio::spawn(async move {
            let (mut conn, _slot) = (std::pin::pin!(conn), slot);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stopped.changed() => {}
                () = sleep(MAX_AGE) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = timeout(DRAIN_TIMEOUT, conn).await;
        });
    }
    let open = MAX_CONNECTIONS as usize - slots.available_permits();
    info!(event = "shutting_down", open_connections = open);
    drop((listener, stop));
    let drained = timeout(DRAIN_TIMEOUT, slots.acquire_many(MAX_CONNECTIONS)).await;
    if drained.is_err() {
        warn!(event = "drain_timeout");
    }
}

/// Ctrl-C, or SIGTERM (what `docker stop`, systemd and CI send).
async fn shutdown_signal() {
    #[cfg(unix)]
    use tokio::signal::unix::{SignalKind, signal};
    #[cfg(unix)]
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    #[cfg(unix)]
    let term = term.recv();
    #[cfg(not(unix))]
    let term = std::future::pending::<Option<()>>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// One request: its body read within the limits, routed, and one log line (never the
/// query string: it carries codes and `state`).
async fn request(app: &routes::App, req: Request<Incoming>) -> Resp {
    let started = Instant::now();
    let (head, body) = req.into_parts();
    let body = read_body(&head.headers, body).await;
    let bytes = body.as_ref().map_or_else(|_| Bytes::new(), Bytes::clone);
    let req = Request::from_parts(head, bytes);
    let resp = match body {
        Ok(_) => routes::route(app, &req).await,
        Err(refusal) => response(refusal),
    };
    let (path, status) = (store::short(req.uri().path()), resp.status().as_u16());
    let ms = started.elapsed().as_secs_f64() * 1e3;
    info!(event = "request", method = %req.method(), %path, status, ms);
    resp
}

/// A body within the limits, or the answer: 413, 408 or 400 (never a 5xx for the client's).
async fn read_body(headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, Reply> {
    let (max, time) = MAX_BODY;
    let length = headers.get("content-length");
    let length = length.and_then(|v| v.to_str().ok()?.parse().ok());
    if length.is_some_and(|n: usize| n > max) {
        return Err(Reply::text(413, "request body too large"));
    } else if body.is_end_stream() {
        return Ok(Bytes::new()); // GET and friends: no timer to set
    }
    match timeout(time, Limited::new(body, max).collect()).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Reply::text(413, "request body too large")),
        Ok(Err(_)) => Err(Reply::text(400, "malformed request body")),
        Err(_) => Err(Reply::text(408, "request body timed out")),
    }
}

/// A header as text; `None` when absent, repeated or not visible ASCII.
fn header<'r>(req: &'r Req, name: &str) -> Option<&'r str> {
    let mut values = req.headers().get_all(name).iter();
    let first = values.next()?.to_str().ok();
    first.filter(|_| values.next().is_none())
}

/// Whether the body is declared as `essence` (parameters such as `charset` ignored).
fn declared_as(req: &Req, essence: &str) -> bool {
    let declared = header(req, "content-type").and_then(|ct| ct.split(';').next());
    declared.is_some_and(|e| e.trim().eq_ignore_ascii_case(essence))
}

/// The cookies (several `Cookie` headers joined, as RFC 6265 §5.4 allows) and the
/// fetch-metadata headers the core checks on browser endpoints.
fn browser<'a>(req: &'a Req, cookies: &'a mut String) -> BrowserContext<'a> {
    let all = req.headers().get_all("cookie").iter();
    let all: Vec<_> = all.map(|v| v.to_str().unwrap_or("")).collect();
    *cookies = all.join("; ");
    let (origin, sec_fetch_site) = (header(req, "origin"), header(req, "sec-fetch-site"));
    BrowserContext {
        cookies,
        origin,
        sec_fetch_site,
    }
}

/// Copies a reply onto a hyper response, headers verbatim.
fn response(reply: Reply) -> Resp {
    let status = StatusCode::from_u16(reply.status);
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    for (name, value) in reply.headers {
        // The core writes only valid values; refuse rather than send half a reply.
        let Ok(value) = HeaderValue::try_from(value.into_owned()) else {
            return response(Reply::text(500, "internal error"));
        };
        headers.append(HeaderName::from_static(name), value);
    }
    resp
}

/// The wall clock, as the core wants it (docs/conventions.md#time-is-an-argument).
fn now() -> UnixTime {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    UnixTime(since_epoch.map_or(0, |d| d.as_secs()))
}

/// The OS random generator as the core's `Entropy`. Without it no handle would be
/// unguessable: abort rather than continue.
fn entropy(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    entropy(&mut bytes);
    bytes
}

/// The back channel: HTTPS with rustls and the webpki roots (github.com); plain HTTP only
/// where the core's configuration allowed it (loopback in development).
struct Upstream(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>);

impl Upstream {
    fn new() -> Self {
        let tls = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots();
        let tls = tls.https_or_http().enable_http1().build();
        Upstream(Client::builder(TokioExecutor::new()).build(tls))
    }

    /// Sends a request the core built, reading at most the core's limit of body.
    async fn send(&self, r: &HttpRequest) -> Result<store::Answer, &'static str> {
        let mut request = Request::builder().method(r.method).uri(r.url.as_str());
        for (name, value) in &r.headers {
            request = request.header(*name, &**value);
        }
        let request = request.body(Full::from(r.body.clone()));
        let request = request.map_err(|_| "bad request")?;
        let exchange = async {
            let resp = self.0.request(request).await.map_err(|_| "unreachable")?;
            let content_type = resp.headers().get("content-type").map(|v| v.to_str());
            let content_type = content_type.and_then(Result::ok).map(str::to_owned);
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), consent_gate::MAX_UPSTREAM_BODY);
            let body = body.collect().await.map_err(|_| "too large or broken")?;
            let body = body.to_bytes().to_vec();
            Ok(store::Answer {
                status,
                content_type,
                body,
            })
        };
        let answered = timeout(UPSTREAM_TIMEOUT, exchange).await;
        answered.map_err(|_| "timed out")?
    }
}
