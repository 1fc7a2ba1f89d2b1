//! hyper ⇄ consent-gate: requests read within limits, the core's replies copied onto hyper
//! responses, the back channel to the upstream, the clock and the OS entropy. Nothing here
//! decides anything about OAuth: the core chose every status, header and cookie.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consent_gate::{BrowserContext, HttpRequest, Reply, UnixTime, UpstreamResponse};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};

/// Request bodies (consent form, token request, registration, JSON-RPC) end at 64 KiB and
/// must arrive within 10 s of the head; the upstream, too, gets 10 s to answer.
const MAX_BODY: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

pub type Resp = Response<Full<Bytes>>;

/// A request read in full.
pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The raw query string. Never logged: it carries codes and `state`.
    pub fn query(&self) -> &[u8] {
        self.uri.query().unwrap_or("").as_bytes()
    }

    /// A header as text; `None` when absent, repeated or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?.to_str().ok();
        first.filter(|_| values.next().is_none())
    }

    /// The cookies (several `Cookie` headers joined, as RFC 6265 §5.4 allows) and the
    /// fetch-metadata headers the core checks on browser endpoints.
    pub fn browser<'a>(&'a self, cookies: &'a mut String) -> BrowserContext<'a> {
        let all = self
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or(""));
        *cookies = all.collect::<Vec<_>>().join("; ");
        let (origin, sec_fetch_site) = (self.header("origin"), self.header("sec-fetch-site"));
        BrowserContext {
            cookies,
            origin,
            sec_fetch_site,
        }
    }

    /// Whether the body is declared as `essence` (parameters such as `charset` ignored).
    pub fn is(&self, essence: &str) -> bool {
        let declared = self
            .header("content-type")
            .and_then(|ct| ct.split(';').next());
        declared.is_some_and(|e| e.trim().eq_ignore_ascii_case(essence))
    }
}

/// Reads a body within the limits; on failure, the answer to send instead (413, 408 or
/// 400: never a 5xx for what the client did).
pub async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Resp> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if declared.is_some_and(|n: usize| n > MAX_BODY) {
        return Err(text(413, "request body too large"));
    }
    if body.is_end_stream() {
        return Ok(Bytes::new()); // GET and friends: no timer to set
    }
    match tokio::time::timeout(TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(text(413, "request body too large")),
        Ok(Err(_)) => Err(text(400, "malformed request body")),
        Err(_) => Err(text(408, "request body timed out")),
    }
}

/// Copies a core reply onto a hyper response, headers verbatim.
pub fn reply(r: Reply) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        // The core writes only valid values; refuse rather than send half a reply.
        let Ok(value) = HeaderValue::try_from(value.into_owned()) else {
            return text(500, "internal error");
        };
        resp.headers_mut()
            .append(HeaderName::from_static(name), value);
    }
    resp
}

/// An answer of the example's own: never cached, never sniffed.
pub fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    let headers = [
        ("content-type", content_type),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ];
    with(resp, &headers)
}

/// Adds fixed headers.
pub fn with(mut resp: Resp, headers: &[(&'static str, &'static str)]) -> Resp {
    for (name, value) in headers {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    resp
}

pub fn text(status: u16, message: &'static str) -> Resp {
    respond(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

pub fn json(status: u16, value: &serde_json::Value) -> Resp {
    respond(status, "application/json", value.to_string())
}

pub fn method_not_allowed(allow: &'static str) -> Resp {
    with(text(405, "method not allowed"), &[("allow", allow)])
}

/// `Access-Control-Allow-Origin: *` for the endpoints a browser-based MCP client calls
/// with `fetch` (metadata, registration, token, revocation). Safe there: none of them
/// reads a cookie, and `*` never lets a browser attach credentials, so a foreign page
/// gains nothing it could not get with curl. Never on `/authorize` or `/callback` (R22).
pub fn cors(resp: Resp) -> Resp {
    let expose = ("access-control-expose-headers", "www-authenticate");
    with(resp, &[("access-control-allow-origin", "*"), expose])
}

/// The answer to a CORS preflight on those endpoints.
pub fn preflight(methods: &'static str) -> Resp {
    let allow_headers = "authorization, content-type, mcp-protocol-version";
    let headers = [
        ("access-control-allow-methods", methods),
        ("access-control-allow-headers", allow_headers),
        ("access-control-max-age", "600"),
    ];
    with(cors(respond(204, "text/plain", "")), &headers)
}

/// The wall clock, as the core wants it (docs/conventions.md#time-is-an-argument).
pub fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The OS random generator as the core's `Entropy`. Without it no handle would be
/// unguessable: abort rather than continue.
pub fn entropy(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    entropy(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Attacker-controlled text cut to at most 96 printable characters, for the logs.
pub fn short(s: &str) -> Cow<'_, str> {
    if s.len() <= 96 && !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().filter(|c| !c.is_control()).take(96).collect())
}

/// The back channel: HTTPS with rustls and the webpki roots (github.com); plain HTTP only
/// where the core's configuration allowed it (loopback in development).
pub struct Upstream(Client<HttpsConnector<HttpConnector>, Full<Bytes>>);

/// What came back from the upstream: status, content type, body.
pub struct Fetched(u16, Option<String>, Bytes);

impl Fetched {
    pub fn as_upstream(&self) -> UpstreamResponse<'_> {
        let content_type = self.1.as_deref();
        UpstreamResponse {
            status: self.0,
            content_type,
            body: &self.2,
        }
    }
}

impl Upstream {
    pub fn new() -> Self {
        let tls = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new());
        Upstream(client.build(tls.https_or_http().enable_http1().build()))
    }

    /// Sends a request the core built, reading at most the core's limit of body.
    pub async fn send(&self, r: &HttpRequest) -> Result<Fetched, &'static str> {
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
            let body = body
                .collect()
                .await
                .map_err(|_| "body too large or broken")?;
            Ok(Fetched(status, content_type, body.to_bytes()))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out")?
    }
}
