//! A server from the command line, as the examples run it: the flags and environment of
//! docs/http-contract.md#running, the store, the gate, the demo upstream, and [`serve`],
//! an accept loop with the connection limits a public server needs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use consent_gate::{ClientSecret, Config, ConsentPolicy, Gate, Keys, ServerKey, UpstreamConfig};
use consent_gate_store as store;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::{info, warn};

use crate::ConsentGate;
use crate::demo::DemoUpstream;
use crate::executor::secs;
use crate::fetch::{DocumentFetcher, FetchPolicy};
use crate::io::now;
use crate::limits::{Limiter, RateLimits, limit};

/// The usage line of the examples.
pub const USAGE: &str = "flags: [--listen ADDR] [--upstream demo|github|google|oidc] \
[--oidc-issuer URL] [--oidc-scopes 'openid email'] [--google-hd DOMAIN] [--public-url URL] \
[--store memory|sqlite:PATH|redis://HOST:PORT] [--state-dir DIR] [--remember-consent] \
[--allow-loopback-cimd]
env: CONSENT_GATE_KEY  the server key, hex, >= 32 bytes (random per process if unset: then \
records stay in memory); GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET, GOOGLE_CLIENT_ID and \
GOOGLE_CLIENT_SECRET, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET for those upstreams";

/// Connections open at once, and from one address; the time a connection may take to
/// send a request head (and stay idle between requests). A thousand idle sockets from one
/// address fill only that address's share.
const MAX_CONNECTIONS: usize = 4096;
const MAX_PER_ADDRESS: usize = 64;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A request head's size and header lines: a longer head is hyper's `431`.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEAD_LINES: usize = 64;
/// The whole of a request, body and answer: past it, `408`. Longer than every bound inside
/// (a body's 10 s, an upstream call's 10 s), so it ends only what would otherwise hang,
/// such as a body trickled into a guarded service that reads it without a clock.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long requests in flight get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A started server: bound, with its store, gate and (for `--upstream demo`) the demo
/// upstream's routes.
pub struct Started {
    /// The bound listener.
    pub listener: TcpListener,
    /// The gate with its store.
    pub auth: ConsentGate,
    /// The demo upstream's routes, when it is the upstream.
    pub demo: Option<Router>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Parses the flags, binds, opens the store and builds the gate.
pub async fn start(args: impl IntoIterator<Item = String>) -> Result<Started, String> {
    let mut flags = HashMap::new();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = match flag.as_str() {
            "--listen" | "--upstream" | "--public-url" | "--store" | "--state-dir"
            | "--oidc-issuer" | "--oidc-scopes" | "--google-hd" => args.next(),
            // One fault switch on, so that smoke.sh proves it catches it
            // (docs/design.md#fault-switches); in other builds an unknown argument.
            "--fault" if cfg!(consent_gate_faults) => args.next(),
            "--remember-consent" | "--allow-loopback-cimd" => Some(String::new()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        };
        flags.insert(flag.clone(), value.ok_or(format!("{flag} needs a value"))?);
    }
    let flag = |name: &str, default: &'static str| flags.get(name).map_or(default, |v| v.as_str());
    let listen = flag("--listen", "127.0.0.1:8080");
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let public_url = flags.get("--public-url").map(|u| u.trim_end_matches('/'));
    let base = public_url.unwrap_or(&bound);
    // Development mode (loopback `http://`) unless an https origin is given.
    let dev = !base.starts_with("https://");
    let env_key = std::env::var("CONSENT_GATE_KEY").ok();
    let durable = env_key.is_some();
    let key = match env_key {
        Some(hex) => hex::decode(hex.trim()).map_err(|_| "CONSENT_GATE_KEY is not hex")?,
        None => {
            warn!(
                event = "random_server_key",
                note = "CONSENT_GATE_KEY is not set: records end with this process"
            );
            let mut key = vec![0; 32];
            crate::io::entropy(&mut key);
            key
        }
    };
    let default_store = format!(
        "sqlite:{}/consent-gate.sqlite3",
        flag("--state-dir", ".consent-gate")
    );
    let spec = flags.get("--store").cloned().unwrap_or(if durable {
        default_store
    } else {
        "memory".into()
    });
    // Anyone already stored keeps working when a kind is full; the newcomer is told 429
    // (R64).
    let store = store::open(&spec, &store::Quotas::for_one_server()).await?;
    store::spawn_sweeper(store.clone(), Duration::from_secs(60), || secs(now()));
    let callback = format!("{base}/callback");
    let which = flag("--upstream", "demo");
    let env = |name| std::env::var(name).map_err(|_| format!("--upstream {which} needs {name}"));
    let (upstream, demo) = match which {
        "demo" => {
            let (routes, upstream) = DemoUpstream::routes(base, &callback, &key, store.clone());
            (upstream, Some(routes))
        }
        "github" => {
            let (id, secret) = (env("GITHUB_CLIENT_ID")?, env("GITHUB_CLIENT_SECRET")?);
            (UpstreamConfig::github(id, ClientSecret::new(secret)), None)
        }
        "google" => {
            let (id, secret) = (env("GOOGLE_CLIENT_ID")?, env("GOOGLE_CLIENT_SECRET")?);
            let google = UpstreamConfig::google(id, ClientSecret::new(secret));
            match flags.get("--google-hd") {
                Some(domain) => (google.hosted_domain(domain), None),
                None => (google, None),
            }
        }
        "oidc" => {
            let issuer = flags
                .get("--oidc-issuer")
                .ok_or("--upstream oidc needs --oidc-issuer URL")?;
            let (id, secret) = (env("OIDC_CLIENT_ID")?, env("OIDC_CLIENT_SECRET")?);
            // Fetched once at start; a provider that moves its endpoints needs a restart.
            let provider = crate::UpstreamClient::new().discover(issuer, dev).await?;
            let mut upstream = UpstreamConfig::openid(&provider, id, ClientSecret::new(secret));
            if let Some(scopes) = flags.get("--oidc-scopes") {
                upstream.scopes = scopes.split_whitespace().map(str::to_owned).collect();
                // Without `openid` there is no ID token, and every sign-in would fail.
                if !upstream.scopes.iter().any(|s| s == "openid") {
                    return Err("--oidc-scopes must include openid".into());
                }
            }
            (upstream, None)
        }
        other => {
            return Err(format!(
                "unknown upstream {other} (demo, github, google or oidc)"
            ));
        }
    };
    let policy = match flags.contains_key("--remember-consent") {
        true => ConsentPolicy::Remember,
        false => ConsentPolicy::Always,
    };
    let keys = Keys::new(ServerKey::new(&key).ok_or("CONSENT_GATE_KEY must be at least 32 bytes")?);
    let config = Config::builder(base, format!("{base}/mcp"), upstream, keys)
        .dev_loopback_http(dev)
        .consent_policy(policy)
        .client_metadata_documents(true);
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
    let config = config
        .build()
        .map_err(|e| format!("configuration refused: {e}"))?;
    // Client ID Metadata Documents from loopback addresses: development only (R58).
    let allow_loopback = flags.contains_key("--allow-loopback-cimd");
    if allow_loopback && !dev {
        return Err("--allow-loopback-cimd is for development (no https --public-url)".into());
    }
    let policy = FetchPolicy {
        allow_loopback,
        ..Default::default()
    };
    info!(event = "listening", addr = %bound, resource = config.resource(), store = store.backend());
    Ok(Started {
        listener,
        auth: ConsentGate::with_clients(
            Gate::new(config),
            store,
            crate::UpstreamClient::new(),
            Some(DocumentFetcher::new(policy)),
        ),
        demo,
    })
}

/// Serves `app` with the default [`RateLimits`] until the future `shutdown` ends, then
/// lets requests in flight finish (up to [`DRAIN_TIMEOUT`]): at most [`MAX_CONNECTIONS`]
/// connections, [`MAX_PER_ADDRESS`] from one address, each closed if it does not send a
/// request head within [`HEAD_TIMEOUT`]. Every request: a head of at most
/// [`MAX_HEAD_BYTES`] and [`MAX_HEAD_LINES`] (`431`), a body of at most 64 KiB on every
/// route, the guarded service's included (`413`, tower-http's `RequestBodyLimitLayer`),
/// and [`REQUEST_TIMEOUT`] in all (`408`, tower-http's `TimeoutLayer`).
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    let limiter = Limiter::new(RateLimits::default());
    let app = app
        .layer(axum::middleware::from_fn_with_state(limiter, limit))
        .layer(RequestBodyLimitLayer::new(crate::io::MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::map_response(limit_answer_headers));
    let open: Arc<Mutex<Counts>> = Arc::default();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEAD_LINES);
    let mut shutdown = std::pin::pin!(shutdown);
    let (stop, stopping) = tokio::sync::watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(event = "accept_failed", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, peer.ip()) else {
            warn!(event = "connection_refused", peer = %peer.ip(), reason = "too many connections");
            continue;
        };
        let app = app.clone();
        let service = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let (mut conn, _slot) = (std::pin::pin!(conn), slot);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stopping.changed() => {}
            }
            // Shutting down: the request in flight finishes, then the connection closes.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        });
    }
    drop(listener);
    let _ = stop.send(());
    // Every slot back, or the drain time over.
    let drained = async {
        while open.lock().unwrap_or_else(PoisonError::into_inner).total > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let in_flight = open.lock().unwrap_or_else(PoisonError::into_inner).total;
    info!(event = "shutting_down", open_connections = in_flight);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
}

/// The limit layers' own answers (`413`, `408`) with the headers of the crate's other text
/// answers: never cached, never sniffed.
async fn limit_answer_headers(mut response: Response) -> Response {
    if matches!(response.status().as_u16(), 408 | 413) {
        let headers = response.headers_mut();
        let no_store = HeaderValue::from_static("no-store");
        headers.entry(header::CACHE_CONTROL).or_insert(no_store);
        let nosniff = HeaderValue::from_static("nosniff");
        headers
            .entry(header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(nosniff);
    }
    response
}

/// Open connections, in total and per address.
#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// A connection's place in the counts, given back on drop.
struct Slot(Arc<Mutex<Counts>>, IpAddr);

impl Slot {
    fn take(open: &Arc<Mutex<Counts>>, ip: IpAddr) -> Option<Slot> {
        let mut counts = open.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= MAX_CONNECTIONS {
            return None;
        }
        let mine = counts.per_address.entry(ip).or_default();
        if *mine >= MAX_PER_ADDRESS {
            return None;
        }
        *mine += 1;
        counts.total += 1;
        Some(Slot(open.clone(), ip))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.1);
            }
        }
    }
}
