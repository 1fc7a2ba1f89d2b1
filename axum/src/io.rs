//! HTTP ⇄ consent-gate: a request's parts as the core reads them, the core's replies as
//! axum responses, the clock and the OS entropy. Nothing here decides anything about
//! OAuth: the core chose every status, header and cookie of its replies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use consent_gate::{BrowserContext, Reply, UnixTime};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// The longest request body read (consent form, token request, registration).
pub const MAX_BODY: usize = 64 * 1024;
/// How long a request body may take to arrive, and the upstream to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A request read in full, within [`MAX_BODY`] and [`TIMEOUT`].
pub struct Req {
    pub headers: HeaderMap,
    pub query: String,
    pub body: Bytes,
}

impl Req {
    /// Reads `request`; on failure, the answer to send instead (413, 408 or 400: never a
    /// 5xx for what the client did).
    pub async fn read(request: Request<Body>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if declared.is_some_and(|n: usize| n > MAX_BODY) {
            return Err(text(413, "request body too large"));
        }
        let body = match tokio::time::timeout(TIMEOUT, Limited::new(body, MAX_BODY).collect()).await
        {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) if e.is::<LengthLimitError>() => {
                return Err(text(413, "request body too large"));
            }
            Ok(Err(_)) => return Err(text(400, "malformed request body")),
            Err(_) => return Err(text(408, "request body timed out")),
        };
        Ok(Req {
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts.headers,
            body,
        })
    }

    /// The raw query string. Never logged: it carries codes and `state`.
    pub fn query(&self) -> &[u8] {
        self.query.as_bytes()
    }

    /// A header as text; `None` when absent, repeated or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The cookies (several `Cookie` headers joined, as RFC 6265 §5.4 allows) and the
    /// fetch-metadata headers the core checks on browser endpoints.
    pub fn browser<'a>(&'a self, cookies: &'a mut String) -> BrowserContext<'a> {
        let all = self.headers.get_all("cookie").iter();
        *cookies = all
            .map(|v| v.to_str().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("; ");
        BrowserContext {
            cookies,
            origin: self.header("origin"),
            sec_fetch_site: self.header("sec-fetch-site"),
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

/// A header as text; `None` when absent, repeated or not visible ASCII.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok();
    first.filter(|_| values.next().is_none())
}

/// A core reply as a response, headers verbatim.
pub fn reply(r: Reply) -> Response {
    let mut resp = Response::new(Body::from(r.body));
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

/// An answer of the host's own: never cached, never sniffed.
pub fn respond(status: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    with(
        resp,
        &[
            ("content-type", content_type),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ],
    )
}

/// Adds fixed headers.
pub fn with(mut resp: Response, headers: &[(&'static str, &'static str)]) -> Response {
    for (name, value) in headers {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    resp
}

/// A short plain-text answer.
pub fn text(status: u16, message: &'static str) -> Response {
    respond(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// 405 with the methods the path takes.
pub fn method_not_allowed(allow: &'static str) -> Response {
    with(text(405, "method not allowed"), &[("allow", allow)])
}

/// `Access-Control-Allow-Origin: *` for the endpoints a browser-based MCP client calls
/// with `fetch` (metadata, registration, token, revocation). Safe there: none of them
/// reads a cookie, and `*` never lets a browser attach credentials. Never on
/// `/authorize` or `/callback` (R22).
pub fn cors(resp: Response) -> Response {
    let expose = ("access-control-expose-headers", "www-authenticate");
    with(resp, &[("access-control-allow-origin", "*"), expose])
}

/// The answer to a CORS preflight on those endpoints.
pub fn preflight(methods: &'static str) -> Response {
    let headers = [
        ("access-control-allow-methods", methods),
        (
            "access-control-allow-headers",
            "authorization, content-type, mcp-protocol-version",
        ),
        ("access-control-max-age", "600"),
    ];
    with(cors(respond(204, "text/plain", "")), &headers)
}

/// The wall clock, as the core wants it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_or_binary_headers_are_absent() {
        let mut h = HeaderMap::new();
        h.append("origin", HeaderValue::from_static("https://a.example"));
        assert_eq!(header(&h, "origin"), Some("https://a.example"));
        h.append("origin", HeaderValue::from_static("https://b.example"));
        assert_eq!(header(&h, "origin"), None);
        h.insert("x", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(header(&h, "x"), None);
    }
}
