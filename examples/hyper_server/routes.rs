//! The route table: each OAuth endpoint (docs/http-contract.md#endpoints) is one call into
//! `consent_gate_store::Endpoints`, which reads and takes the records its step needs in
//! the order that is the security (docs/design.md#store-contract), and one application
//! of the `Step` that comes back: its store operations, then its reply.

use std::sync::Arc;

use consent_gate::{Gate, HttpRequest, Reply, Step, paths};
use consent_gate_store::{Answer, Endpoints, Stepped, Store, StoreError, short};
use hyper::Method;
use tracing::warn;

use crate::{Req, Resp, Upstream, browser, declared_as, demo_upstream::DemoUpstream};
use crate::{entropy, header, now, response};

/// Everything a request handler needs; shared by all connections.
pub struct App {
    pub endpoints: Endpoints,
    pub upstream: Upstream,
    demo: Option<DemoUpstream>,
    /// Our origin (`scheme://host:port`); the callback and MCP paths; the metadata paths.
    pub origin: String,
    paths: [String; 2],
    metadata: [Vec<String>; 2],
}

impl App {
    pub fn new(gate: Gate, store: Arc<dyn Store>, demo: Option<DemoUpstream>) -> Self {
        let url = |u: &str| url::Url::parse(u).expect("a URL the configuration validated");
        let (resource, callback) = (url(gate.config().resource()), gate.config().callback_uri());
        let paths = [url(callback).path().to_owned(), resource.path().to_owned()];
        let as_paths = gate.authorization_server_metadata_paths();
        let metadata = [as_paths, gate.protected_resource_metadata_paths()];
        let (origin, upstream) = (resource.origin().ascii_serialization(), Upstream::new());
        let endpoints = Endpoints::new(gate, store, entropy);
        App {
            endpoints,
            upstream,
            demo,
            origin,
            paths,
            metadata,
        }
    }

    pub fn gate(&self) -> &Gate {
        self.endpoints.gate()
    }
}

/// An answer that needs no store operation.
fn ok(reply: Reply) -> Stepped {
    Ok(reply.into())
}

fn not_allowed(allow: &'static str) -> Stepped {
    ok(Reply::text(405, "method not allowed").with_header("allow", allow))
}

/// The route table. Unknown paths are 404, known ones with another method 405.
pub async fn route(app: &App, req: &Req) -> Resp {
    let (method, path, now) = (req.method(), req.uri().path(), now());
    let [as_paths, resource_paths] = &app.metadata;
    let as_doc = as_paths.iter().any(|p| p == path);
    let metadata = as_doc || resource_paths.iter().any(|p| p == path);
    // CORS on what a browser-based client calls with `fetch` (`cors`), never on the
    // browser endpoints `/authorize` and `/callback` (R22).
    let back_channel = metadata || [paths::REGISTER, paths::TOKEN, paths::REVOKE].contains(&path);
    let ([callback_path, mcp_path], gate) = (&app.paths, app.gate());
    let (e, authorization, mut cookies) =
        (&app.endpoints, header(req, "authorization"), String::new());
    let form = declared_as(req, "application/x-www-form-urlencoded");
    let step = match (method, path) {
        (&Method::GET | &Method::HEAD, _) if as_doc => ok(gate.authorization_server_metadata()),
        (&Method::GET | &Method::HEAD, _) if metadata => ok(gate.protected_resource_metadata()),
        (&Method::OPTIONS, _) if metadata => ok(preflight("GET, OPTIONS")),
        _ if metadata => not_allowed("GET, HEAD, OPTIONS"),
        (&Method::POST, paths::REGISTER) => e.register(req.body(), now).await,
        (&Method::POST, paths::TOKEN) => e.token(req.body(), authorization, now).await,
        (&Method::POST, paths::REVOKE) => {
            // Where the upstream has a revocation endpoint, its tokens go too (R66).
            let send = |r: HttpRequest| async move { send(app, &r).await };
            e.revoke(req.body(), authorization, now, send).await
        }
        (&Method::OPTIONS, _) if back_channel => ok(preflight("POST, OPTIONS")),
        _ if back_channel => not_allowed("POST, OPTIONS"),
        (&Method::GET, paths::AUTHORIZE) => {
            let (language, browser) = (header(req, "accept-language"), browser(req, &mut cookies));
            e.authorize(query(req), browser, language, now).await
        }
        (&Method::POST, paths::AUTHORIZE) if !form => {
            ok(Reply::text(415, "expected an HTML form submission"))
        }
        (&Method::POST, paths::AUTHORIZE) => {
            e.decide(req.body(), browser(req, &mut cookies), now).await
        }
        (_, paths::AUTHORIZE) => not_allowed("GET, POST"),
        (&Method::GET, p) if p == callback_path => {
            let send = |r: HttpRequest| async move { send(app, &r).await };
            e.callback(query(req), browser(req, &mut cookies), now, send)
                .await
        }
        (_, p) if p == callback_path => not_allowed("GET"),
        (_, p) if p == mcp_path => crate::mcp::handle(app, req, now).await.map(Step::from),
        (_, p) => match &app.demo {
            Some(demo) if p.starts_with("/demo-upstream/") => ok(demo.handle(req)),
            _ => ok(Reply::text(404, "not found")),
        },
    };
    let reply = match step {
        Ok(step) => e.apply(step, now).await,
        Err(failed) => Err(failed),
    };
    let reply = reply.unwrap_or_else(store_failed);
    response(if back_channel { cors(reply) } else { reply })
}

/// A full store is the newcomer's problem, said plainly: 429, never a reason to push out
/// someone already stored (R64). Any other failure is a 503.
pub fn store_failed(error: StoreError) -> Reply {
    warn!(event = "store_failed", %error);
    let (status, message, retry) = match error {
        StoreError::QuotaExceeded(_) => (429, "too many sign-ins right now, try later", "60"),
        _ => (503, "storage unavailable, try again", "5"),
    };
    Reply::text(status, message).with_header("retry-after", retry)
}

/// `Access-Control-Allow-Origin: *`: none of these endpoints reads a cookie and `*` never
/// lets a browser attach credentials, so a foreign page gains nothing it could not get
/// with curl.
fn cors(reply: Reply) -> Reply {
    let reply = reply.with_header("access-control-allow-origin", "*");
    reply.with_header("access-control-expose-headers", "www-authenticate")
}

/// The answer to a CORS preflight on those endpoints.
fn preflight(methods: &'static str) -> Reply {
    let allow_headers = "authorization, content-type, mcp-protocol-version";
    let reply = Reply::text(204, "").with_header("access-control-allow-methods", methods);
    let reply = reply.with_header("access-control-allow-headers", allow_headers);
    reply.with_header("access-control-max-age", "600")
}

/// A back-channel request for the core; `None` when the upstream is unreachable.
pub(crate) async fn send(app: &App, r: &HttpRequest) -> Option<Answer> {
    let sent = app.upstream.send(r).await;
    let url = short(r.url.split('?').next().unwrap_or(""));
    sent.inspect_err(|why| warn!(event = "upstream_unreachable", %url, why))
        .ok()
}

fn query(req: &Req) -> &[u8] {
    req.uri().query().unwrap_or("").as_bytes()
}
