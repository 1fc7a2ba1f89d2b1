//! The OAuth endpoints (docs/http-contract.md#endpoints) as an axum `Router`: HTTP in and
//! out around `consent_gate_store::Endpoints`, which reads and takes the records each step
//! needs in the order that is the security (docs/design.md#store-contract).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{any, get};
use consent_gate::{Gate, HttpRequest, UnixTime, paths};
use consent_gate_store::{Answer, Endpoints, Stepped, Store, short};
use tracing::warn;

use crate::executor::finish;
use crate::fetch::DocumentFetcher;
use crate::io::{Req, cors, entropy, method_not_allowed, now, preflight, reply, text};
use crate::upstream::UpstreamClient;

/// What every handler and the guard share: the endpoints (the gate and the store), the
/// upstream client.
pub struct Shared {
    pub endpoints: Endpoints,
    pub upstream: UpstreamClient,
    /// Our origin (`scheme://host[:port]`), for the MCP transport's `Origin` check.
    pub origin: String,
}

impl Shared {
    pub fn new(
        gate: Gate,
        store: Arc<dyn Store>,
        upstream: UpstreamClient,
        documents: Option<DocumentFetcher>,
    ) -> Self {
        let origin = split_url(gate.config().resource()).0.to_owned();
        let endpoints = Endpoints::new(gate, store, entropy);
        // Client ID Metadata Documents, where the configuration accepts them (R57), with
        // the SSRF policy's defaults unless the host chose its own (R58).
        let documents = documents.unwrap_or_else(|| DocumentFetcher::new(Default::default()));
        let endpoints = match endpoints.gate().config().metadata_documents() {
            true => endpoints.with_documents(Arc::new(documents)),
            false => endpoints,
        };
        Shared {
            endpoints,
            upstream,
            origin,
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        self.endpoints.gate()
    }
}

type Host = State<Arc<Shared>>;

/// Every OAuth endpoint of the HTTP contract, on the paths the configuration names.
pub fn router(shared: Arc<Shared>) -> Router {
    let config = shared.gate().config();
    let callback_path = split_url(config.callback_uri()).1.to_owned();
    let mut router = Router::new()
        .route(paths::REGISTER, any(register))
        .route(paths::TOKEN, any(token))
        .route(paths::REVOKE, any(revoke))
        .route(paths::AUTHORIZE, any(authorize))
        .route(&callback_path, any(callback))
        .route("/healthz", get(|| async { text(200, "ok") }));
    for path in shared.gate().authorization_server_metadata_paths() {
        router = router.route(&path, any(as_metadata));
    }
    for path in shared.gate().protected_resource_metadata_paths() {
        router = router.route(&path, any(resource_metadata));
    }
    let router = router.with_state(shared);
    router.layer(axum::middleware::from_fn(span))
}

/// Every request in a `tracing` span with its method and path (never the query: it
/// carries codes and `state`), so the security events inside name their request.
async fn span(request: Request<Body>, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let path = short(request.uri().path()).into_owned();
    let span = tracing::info_span!("request", method = %request.method(), path);
    next.run(request).instrument(span).await
}

/// `(origin, path)` of an absolute URL the configuration validated; `/` for no path.
fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, "/"),
    }
}

/// RFC 8414 and RFC 9728 documents: public, cached by nobody, readable cross-origin.
async fn as_metadata(State(host): Host, request: Request<Body>) -> Response {
    match *request.method() {
        Method::OPTIONS => preflight("GET, OPTIONS"),
        Method::GET | Method::HEAD => cors(reply(host.gate().authorization_server_metadata())),
        _ => method_not_allowed("GET, HEAD, OPTIONS"),
    }
}

async fn resource_metadata(State(host): Host, request: Request<Body>) -> Response {
    match *request.method() {
        Method::OPTIONS => preflight("GET, OPTIONS"),
        Method::GET | Method::HEAD => cors(reply(host.gate().protected_resource_metadata())),
        _ => method_not_allowed("GET, HEAD, OPTIONS"),
    }
}

/// The back-channel endpoints a browser-based client calls with `fetch`: CORS, and none
/// of them reads a cookie.
async fn back_channel(
    host: &Shared,
    request: Request<Body>,
    handler: impl AsyncFnOnce(&Endpoints, Req, UnixTime) -> Stepped,
) -> Response {
    match *request.method() {
        Method::POST => match Req::read(request).await {
            Ok(req) => {
                let now = now();
                let stepped = handler(&host.endpoints, req, now).await;
                cors(finish(&host.endpoints, stepped, now).await)
            }
            Err(refused) => cors(refused),
        },
        Method::OPTIONS => preflight("POST, OPTIONS"),
        _ => method_not_allowed("POST, OPTIONS"),
    }
}

/// `POST /register` (RFC 7591).
async fn register(State(host): Host, request: Request<Body>) -> Response {
    back_channel(&host, request, async |e, req, now| {
        e.register(&req.body, now).await
    })
    .await
}

/// `GET /authorize`: the consent page, or an error page (never a redirect, R16);
/// `POST /authorize`: the decision.
async fn authorize(State(host): Host, request: Request<Body>) -> Response {
    let method = request.method().clone();
    let req = match Req::read(request).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    let (now, e, mut cookies) = (now(), &host.endpoints, String::new());
    let stepped = match method {
        Method::GET => {
            let language = req.header("accept-language");
            e.authorize(req.query(), req.browser(&mut cookies), language, now)
                .await
        }
        Method::POST if !req.is("application/x-www-form-urlencoded") => {
            return text(415, "expected an HTML form submission");
        }
        Method::POST => e.decide(&req.body, req.browser(&mut cookies), now).await,
        _ => return method_not_allowed("GET, POST"),
    };
    finish(e, stepped, now).await
}

/// The upstream sends the browser back here.
async fn callback(State(host): Host, request: Request<Body>) -> Response {
    if request.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let req = match Req::read(request).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    let (now, e, mut cookies) = (now(), &host.endpoints, String::new());
    let send = |r: HttpRequest| {
        let host = host.clone();
        async move { send(&host, &r).await }
    };
    let stepped = e
        .callback(req.query(), req.browser(&mut cookies), now, send)
        .await;
    finish(e, stepped, now).await
}

/// A back-channel request for the core; `None` when the upstream is unreachable.
pub(crate) async fn send(host: &Shared, r: &HttpRequest) -> Option<Answer> {
    let sent = host.upstream.send(r).await;
    sent.inspect_err(|why| {
        let url = short(r.url.split('?').next().unwrap_or(""));
        warn!(event = "upstream_unreachable", url = %url, why);
    })
    .ok()
}

/// `POST /token`: the code and refresh grants.
async fn token(State(host): Host, request: Request<Body>) -> Response {
    back_channel(&host, request, async |e, req, now| {
        e.token(&req.body, req.header("authorization"), now).await
    })
    .await
}

/// `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
async fn revoke(State(host): Host, request: Request<Body>) -> Response {
    let sender = host.clone();
    // Where the upstream has a revocation endpoint, its tokens go too (R66).
    let send = move |r: HttpRequest| {
        let host = sender.clone();
        async move { send(&host, &r).await }
    };
    back_channel(&host, request, async |e, req, now| {
        e.revoke(&req.body, req.header("authorization"), now, send)
            .await
    })
    .await
}
