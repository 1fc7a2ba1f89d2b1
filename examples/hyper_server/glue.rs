//! hyper ⇄ consent-gate: reading requests within limits, copying a core [`Reply`] onto a
//! hyper response, the back-channel HTTP client for the core's [`HttpRequest`]s, the
//! clock, the OS entropy, and the log lines.
//!
//! Nothing here decides anything about OAuth: the core chose every status, header and
//! cookie; this file only moves bytes.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consent_gate::{BrowserContext, HttpRequest, MAX_UPSTREAM_BODY, Reply, UnixTime};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

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
    /// Path and query; the query string (never logged: it carries codes and `state`) is
    /// [`Req::query`].
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Reads a request body within [`MAX_BODY`] and [`BODY_TIMEOUT`]; on failure, the reply
/// to send instead (413, 408 or 400: never a 5xx for what the client did).
pub async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, Resp> {
    // GET, HEAD and friends without a body: nothing to wait for.
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(text(413, "request body too large"));
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => Err(text(408, "request body timed out")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(text(413, "request body too large"))
        }
        Ok(Err(_)) => Err(text(400, "malformed request body")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

impl Req {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The raw query string without `?` (empty if none).
    pub fn query(&self) -> &str {
        self.uri.query().unwrap_or("")
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
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    for (name, value) in r.headers {
        match header_value(value) {
            Ok(v) => {
                headers.append(header_name(name), v);
            }
            // The core never produces such a value; refuse rather than send half a reply.
            Err(_) => return text(500, "internal error"),
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *resp.headers_mut() = headers;
    resp
}

/// A header value: the core's fixed values come as `Cow::Borrowed` statics and become
/// static values (no copy); any other is checked byte by byte (`try_from(String)` keeps
/// the string's buffer: no copy either).
fn header_value(
    value: Cow<'static, str>,
) -> Result<HeaderValue, hyper::header::InvalidHeaderValue> {
    match value {
        // `from_static` would panic on a byte it refuses: check the same rule first, so a
        // bad value is a 500 like any other, never a panic.
        Cow::Borrowed(s) if s.bytes().all(|b| (32..127).contains(&b) || b == b'\t') => {
            Ok(HeaderValue::from_static(s))
        }
        Cow::Borrowed(s) => HeaderValue::from_str(s),
        Cow::Owned(s) => HeaderValue::try_from(s),
    }
}

/// The core's header names as hyper's constants (no parsing per response); any other
/// name through `from_static`, which checks it.
fn header_name(name: &'static str) -> HeaderName {
    use hyper::header;
    match name {
        "content-type" => header::CONTENT_TYPE,
        "cache-control" => header::CACHE_CONTROL,
        "location" => header::LOCATION,
        "set-cookie" => header::SET_COOKIE,
        "content-security-policy" => header::CONTENT_SECURITY_POLICY,
        "x-frame-options" => header::X_FRAME_OPTIONS,
        "referrer-policy" => header::REFERRER_POLICY,
        "x-content-type-options" => header::X_CONTENT_TYPE_OPTIONS,
        "www-authenticate" => header::WWW_AUTHENTICATE,
        "pragma" => header::PRAGMA,
        other => HeaderName::from_static(other),
    }
}

/// A response of the example's own (not decided by the core).
pub fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
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
    h.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        hyper::header::ACCESS_CONTROL_EXPOSE_HEADERS,
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
///
/// Read in blocks of [`ENTROPY_BLOCK`] bytes per thread (one `getrandom` call for several
/// requests instead of one or two per request); every byte is handed out once and wiped
/// from the block as it goes. Larger requests go to the OS directly.
pub fn entropy(buf: &mut [u8]) {
    use std::cell::RefCell;
    thread_local! {
        static BLOCK: RefCell<([u8; ENTROPY_BLOCK], usize)> =
            const { RefCell::new(([0; ENTROPY_BLOCK], ENTROPY_BLOCK)) };
    }
    if buf.len() > ENTROPY_BLOCK / 4 {
        getrandom::getrandom(buf).expect("the OS random number generator failed");
        return;
    }
    BLOCK.with_borrow_mut(|(block, used)| {
        if block.len() - *used < buf.len() {
            getrandom::getrandom(block).expect("the OS random number generator failed");
            *used = 0;
        }
        let fresh = &mut block[*used..*used + buf.len()];
        buf.copy_from_slice(fresh);
        fresh.fill(0);
        *used += buf.len();
    });
}
const ENTROPY_BLOCK: usize = 512;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    entropy(&mut b);
    let mut s = String::with_capacity(2 * n);
    for x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 15)]));
    }
    s
}
const HEX: &[u8; 16] = b"0123456789abcdef";

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
            builder = builder.header(*name, &**value);
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

/// A value in a log line. Log lines are written by hand (no `serde_json::Value` per
/// line): the fields are few and flat.
#[derive(Clone, Copy)]
pub enum V<'a> {
    /// Text written as is (escaped): constants and values we produced ourselves.
    Str(&'a str),
    /// Attacker-controlled text, cut like [`short`]: printable, 96 characters at most.
    Short(&'a str),
    /// Several such texts, as a JSON array.
    ShortList(&'a [String]),
    Num(u64),
    Null,
}

/// Where log lines collect before they reach stderr: a buffer drained by a flusher thread
/// every [`LOG_FLUSH_EVERY`], by the writer itself once it holds [`LOG_FLUSH_AT`] bytes
/// (so a blocked stderr slows the server down instead of growing the buffer), and by
/// [`flush_log`] at exit. One `write` per batch instead of several per line.
struct LogBuffer {
    lines: std::sync::Mutex<Vec<u8>>,
    /// Held while a batch is written, so that batches reach stderr in order.
    out: std::sync::Mutex<()>,
}

static LOG: LogBuffer = LogBuffer {
    lines: std::sync::Mutex::new(Vec::new()),
    out: std::sync::Mutex::new(()),
};
const LOG_FLUSH_AT: usize = 64 * 1024;
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Starts the thread that writes buffered log lines to stderr; once, at startup.
pub fn start_log_flusher() {
    std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(|| {
            loop {
                std::thread::sleep(LOG_FLUSH_EVERY);
                flush_log();
            }
        })
        .expect("the log flusher thread starts");
}

/// Writes out whatever log lines are buffered (also called at exit).
pub fn flush_log() {
    use std::io::Write as _;
    let _order = LOG.out.lock().unwrap_or_else(|p| p.into_inner());
    let batch = {
        let mut lines = LOG.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            return;
        }
        std::mem::replace(&mut *lines, Vec::with_capacity(LOG_FLUSH_AT + 1024))
    };
    // A log that cannot be written must not take the server down.
    let _ = std::io::stderr().lock().write_all(&batch);
}

fn json_str(out: &mut Vec<u8>, s: &str, max_chars: Option<usize>) {
    // Text we wrote ourselves, or attacker text that is printable ASCII and short enough
    // already: nothing to cut.
    let plain =
        max_chars.is_none_or(|max| s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b)));
    out.push(b'"');
    if plain {
        json_escape(out, s);
    } else {
        let mut cut = String::with_capacity(s.len());
        let mut chars = 0;
        for c in s.chars() {
            if let Some(max) = max_chars {
                if c.is_control() {
                    continue;
                }
                if chars == max {
                    break;
                }
                chars += 1;
            }
            cut.push(c);
        }
        json_escape(out, &cut);
    }
    out.push(b'"');
}

/// The inside of a JSON string: `"`, `\\` and control characters escaped, the rest (UTF-8
/// included) copied in runs.
fn json_escape(out: &mut Vec<u8>, s: &str) {
    // Which bytes need an escape: control characters, `"` and `\\`.
    const ESCAPE: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            t[b] = true;
            b += 1;
        }
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t
    };
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !ESCAPE[usize::from(b)] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
}

fn json_num(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A flat JSON object of strings, `{"k":"v",…}`, in the given order.
pub fn json_object(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(&mut out, k, None);
        out.push(b':');
        json_str(&mut out, v, None);
    }
    out.push(b'}');
    out
}

/// One JSON line: `{"event":…,["security":true,]…fields…,"ts":…}`.
fn emit(event: &str, security: bool, fields: &[(&str, V<'_>)], ms_tenths: Option<u64>) {
    let mut out = LOG.lines.lock().unwrap_or_else(|p| p.into_inner());
    let line = &mut *out;
    line.extend_from_slice(b"{\"event\":");
    json_str(line, event, None);
    if security {
        line.extend_from_slice(b",\"security\":true");
    }
    for (name, value) in fields {
        line.push(b',');
        json_str(line, name, None);
        line.push(b':');
        match *value {
            V::Str(s) => json_str(line, s, None),
            V::Short(s) => json_str(line, s, Some(96)),
            V::ShortList(items) => {
                line.push(b'[');
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    json_str(line, s, Some(96));
                }
                line.push(b']');
            }
            V::Num(n) => json_num(line, n),
            V::Null => line.extend_from_slice(b"null"),
        }
    }
    if let Some(t) = ms_tenths {
        line.extend_from_slice(b",\"ms\":");
        json_num(line, t / 10);
        line.push(b'.');
        json_num(line, t % 10);
    }
    line.extend_from_slice(b",\"ts\":");
    json_num(line, now().0);
    line.extend_from_slice(b"}\n");
    let full = line.len() >= LOG_FLUSH_AT;
    drop(out);
    if full {
        flush_log();
    }
}

/// One line per request: method, path (never the query), status, duration.
pub fn log_request(method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
    let tenths = (elapsed.as_micros() + 50) / 100;
    emit(
        "request",
        false,
        &[
            ("method", V::Str(method.as_str())),
            ("path", V::Short(path)),
            ("status", V::Num(u64::from(status.as_u16()))),
        ],
        Some(u64::try_from(tenths).unwrap_or(u64::MAX)),
    );
}

/// One line per security-relevant decision. `fields` must hold no secret (no token,
/// code, state, cookie or query string) and only bounded values.
pub fn security(event: &'static str, fields: &[(&str, V<'_>)]) {
    emit(event, true, fields, None);
}

/// A plain operational log line.
pub fn info(event: &'static str, fields: &[(&str, V<'_>)]) {
    emit(event, false, fields, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_json_and_cut_attacker_text() {
        let mut line = Vec::new();
        for text in [
            "é\"\\\n\u{1}x".repeat(40),
            "a\u{7f}b\u{85}c\u{2028}".into(),
            "x".repeat(97),
            "plain".into(),
        ] {
            line.clear();
            json_str(&mut line, &text, Some(96));
            let v: String = serde_json::from_slice(&line).expect("valid JSON string");
            assert_eq!(v, short(&text));
        }
        line.clear();
        json_str(&mut line, "a\"b\\c\n\u{1f}", None);
        let v: String = serde_json::from_slice(&line).expect("valid JSON string");
        assert_eq!(v, "a\"b\\c\n\u{1f}");
        let object = json_object(&[("a", "x\"y"), ("b", "")]);
        let v: serde_json::Value = serde_json::from_slice(&object).expect("valid JSON");
        assert_eq!(v, serde_json::json!({ "a": "x\"y", "b": "" }));
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            line.clear();
            json_num(&mut line, n);
            assert_eq!(line, n.to_string().as_bytes());
        }
    }

    #[test]
    fn entropy_blocks_hand_out_fresh_bytes() {
        let mut seen = std::collections::HashSet::new();
        // Several blocks' worth, in sizes that straddle block boundaries.
        for n in [32usize, 16, 7, 32, 100].iter().cycle().take(200) {
            let mut b = vec![0u8; *n];
            entropy(&mut b);
            assert!(seen.insert(b), "a repeated draw");
        }
    }
}
