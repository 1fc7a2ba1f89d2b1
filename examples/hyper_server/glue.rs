//! hyper ⇄ consent-gate: reading requests within limits, copying a core [`Reply`] onto a
//! hyper response, the back-channel HTTP client for the core's [`HttpRequest`]s, the
//! clock, the OS entropy, and the log lines.
//!
//! Nothing here decides anything about OAuth: the core chose every status, header and
//! cookie; this file only moves bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consent_gate::{BrowserContext, HttpRequest, MAX_UPSTREAM_BODY, Reply, UnixTime};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Largest request body we read (consent form, token request, registration, JSON-RPC).
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send its body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for the upstream (GitHub) on the back channel.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

pub type Resp = Response<Full<Bytes>>;

/// A request read in full: what every handler needs, nothing more.
pub struct Req {
    pub method: Method,
    pub path: String,
    /// The raw query string without `?` (never logged: it carries codes and `state`).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// Reads the body within [`MAX_BODY`] and [`BODY_TIMEOUT`]; on failure, the reply to
    /// send instead (413, 408 or 400: never a 5xx for what the client did).
    pub async fn read(req: Request<Incoming>) -> Result<Req, Resp> {
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(text(413, "request body too large"));
        }
        let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect())
            .await
        {
            Err(_) => return Err(text(408, "request body timed out")),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(text(413, "request body too large"));
            }
            Ok(Err(_)) => return Err(text(400, "malformed request body")),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        Ok(Req {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts.headers,
            body,
        })
    }

    /// A header as text; `None` when absent, repeated or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        first.to_str().ok()
    }

    /// The cookies (several `Cookie` headers joined, as RFC 6265 §5.4 allows) and the
    /// fetch-metadata headers the core checks on browser endpoints.
    pub fn browser<'a>(&'a self, cookies: &'a mut String) -> BrowserContext<'a> {
        for (i, v) in self.headers.get_all("cookie").iter().enumerate() {
            if i > 0 {
                cookies.push_str("; ");
            }
            cookies.push_str(v.to_str().unwrap_or(""));
        }
        BrowserContext {
            cookies: cookies.as_str(),
            origin: self.header("origin"),
            sec_fetch_site: self.header("sec-fetch-site"),
        }
    }

    /// Whether the body is declared as `essence` (parameters such as `charset` ignored).
    pub fn content_type_is(&self, essence: &str) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(essence))
        })
    }
}

/// Copies a core reply onto a hyper response, headers verbatim.
pub fn reply(r: Reply) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        match HeaderValue::from_str(&value) {
            Ok(v) => {
                resp.headers_mut().append(HeaderName::from_static(name), v);
            }
            // The core never produces such a value; refuse rather than send half a reply.
            Err(_) => return text(500, "internal error"),
        }
    }
    resp
}

/// A response of the example's own (not decided by the core).
pub fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

pub fn text(status: u16, message: &'static str) -> Resp {
    respond(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

pub fn json_resp(status: u16, value: &Value) -> Resp {
    respond(status, "application/json", value.to_string())
}

pub fn not_found() -> Resp {
    text(404, "not found")
}

pub fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = text(405, "method not allowed");
    r.headers_mut()
        .insert("allow", HeaderValue::from_static(allow));
    r
}

pub fn with_header(mut r: Resp, name: &'static str, value: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

/// `Access-Control-Allow-Origin: *` for the endpoints a browser-based MCP client calls
/// with `fetch` (metadata, registration, token, revocation). Safe there: none of them
/// reads a cookie, and `*` never lets a browser attach credentials, so a foreign page
/// gains nothing it could not get with curl. Never on `/authorize` or `/callback`.
pub fn cors(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("www-authenticate"),
    );
    r
}

/// The answer to a CORS preflight on those endpoints.
pub fn preflight(methods: &'static str) -> Resp {
    let mut r = cors(respond(204, "text/plain", Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(methods),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    r
}

/// The wall clock, as the core wants it.
pub fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The OS random generator, as the core's `Entropy`. Without it no handle would be
/// unguessable: abort rather than continue.
pub fn entropy(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    entropy(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What came back from the upstream.
pub struct Fetched {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Fetched {
    pub fn as_upstream(&self) -> consent_gate::UpstreamResponse<'_> {
        consent_gate::UpstreamResponse {
            status: self.status,
            content_type: self.content_type.as_deref(),
            body: &self.body,
        }
    }
}

/// The back-channel client: HTTPS with rustls and the webpki roots (github.com), plain
/// HTTP only where the core's configuration allowed it (loopback in development).
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Upstream {
    pub fn new() -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// Sends a request the core built; the body read is capped at the core's limit.
    pub async fn send(&self, r: &HttpRequest) -> Result<Fetched, &'static str> {
        let mut builder = Request::builder().method(r.method).uri(r.url.as_str());
        for (name, value) in &r.headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::from(r.body.clone())))
            .map_err(|_| "bad upstream request")?;
        let exchange = async {
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|_| "upstream unreachable")?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(resp.into_body(), MAX_UPSTREAM_BODY)
                .collect()
                .await
                .map_err(|_| "upstream body too large or broken")?
                .to_bytes();
            Ok(Fetched {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .map_err(|_| "upstream timed out")?
    }
}

/// Cuts attacker-controlled text to a bounded, printable length for logs.
pub fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(96).collect()
}

fn emit(mut line: Value) {
    line["ts"] = now().0.into();
    eprintln!("{line}");
}

/// One line per request: method, path (never the query), status, duration.
pub fn log_request(method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
    emit(json!({
        "event": "request",
        "method": method.as_str(),
        "path": short(path),
        "status": status.as_u16(),
        "ms": (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
    }));
}

/// One line per security-relevant decision. `fields` must hold no secret (no token,
/// code, state, cookie or query string) and only bounded values.
pub fn security(event: &'static str, fields: Value) {
    let mut line = json!({ "event": event, "security": true });
    if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
        obj.extend(extra);
    }
    emit(line);
}

/// A plain operational log line.
pub fn info(event: &'static str, fields: Value) {
    let mut line = json!({ "event": event });
    if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
        obj.extend(extra);
    }
    emit(line);
}
