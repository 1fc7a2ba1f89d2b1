//! A bounded loopback load client that drives OAuth flows the way a browser and an MCP
//! client do, against consent-gate's example server or a peer (FastMCP's `OAuthProxy`):
//! the same code measures both, so the ratios in benches/RESULTS.md compare servers, not
//! clients. Run by `benches/load.sh`; by hand:
//!
//! ```text
//! cargo bench --bench flows -- flows --base http://127.0.0.1:8080 --concurrency 32 --duration 10
//! ```
//!
//! Modes (each prints one `RESULT …` line that load.sh parses):
//! * `flows`: register once, then per flow a fresh browser (empty cookie jar) does
//!   `/authorize` → consent page → approve → upstream → callback → client redirect with a
//!   code → `POST /token` (PKCE S256). Counts complete flows per second.
//! * `pages`: only `/authorize` until the consent form is rendered (one request on ours;
//!   the peer redirects to a separate `/consent` page first).
//! * `consent-post`: first collects fresh consent pages (each POST needs its own pending
//!   record, R36 single use), then times only the approving POSTs.
//! * `session`: one flow, then MCP `initialize`; prints `AUTHORIZE=` (a consent page URL),
//!   `TOKEN=` and `SESSION=` for wrk.
//!
//! Without a mode (`cargo bench` running every bench, `cargo test --benches`) it only
//! says how to use it and exits 0: it needs a running server, which load.sh provides.
//!
//! Generic on purpose: endpoints come from RFC 8414 metadata, the consent form is read
//! from the HTML (hidden inputs, the submit button whose value is `approve`), redirects
//! are followed across ports until the client's `redirect_uri` is reached.
//!
//! Bounded (the workplace rule for load tests): loopback addresses only (anything else is
//! refused before a socket opens), a fixed duration, a maximum count, 10 s socket timeouts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// RFC 7636 Appendix B: a fixed verifier is fine, every flow is a fresh transaction.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The MCP client's loopback redirect URI. Nothing listens there: the flow stops when a
/// redirect points at it, as a native client's listener would take the code.
const CLIENT_REDIRECT: &str = "http://127.0.0.1:9/cb";
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 8;

type Res<T> = Result<T, String>;

#[derive(Clone)]
struct Opts {
    mode: String,
    base: String,
    concurrency: usize,
    duration: Duration,
    max: usize,
}

fn parse_opts() -> Opts {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(mode) = args.next() else {
        println!(
            "flows: no mode given, nothing to do (it drives a running server: see benches/load.sh)"
        );
        std::process::exit(0)
    };
    if !["flows", "pages", "consent-post", "session"].contains(&mode.as_str()) {
        usage("unknown mode")
    }
    let mut o = Opts {
        mode,
        base: "http://127.0.0.1:8080".into(),
        concurrency: 32,
        duration: Duration::from_secs(10),
        max: 100_000,
    };
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage("flag without value"));
        let num = || {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| usage("not a number"))
        };
        match flag.as_str() {
            "--base" => o.base = value.trim_end_matches('/').to_owned(),
            "--concurrency" => o.concurrency = num().clamp(1, 256) as usize,
            "--duration" => o.duration = Duration::from_secs(num().clamp(1, 120)),
            "--max" => o.max = num().clamp(1, 1_000_000) as usize,
            _ => usage("unknown flag"),
        }
    }
    o
}

fn usage(why: &str) -> ! {
    eprintln!(
        "flows: {why}\nusage: flows flows|pages|consent-post|session [--base URL] \
         [--concurrency N] [--duration SECS] [--max COUNT]"
    );
    std::process::exit(2)
}

/// An `http://` URL split for a raw HTTP/1.1 request.
#[derive(Clone, Debug)]
struct Url {
    authority: String,
    target: String,
}

impl Url {
    fn parse(raw: &str) -> Res<Self> {
        let rest = raw
            .strip_prefix("http://")
            .ok_or_else(|| format!("not http: {raw}"))?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        // Loopback only: a load test never leaves this machine.
        let loopback = host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!("refusing non-loopback host {host}"));
        }
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.into()
        };
        Ok(Self {
            authority: authority.into(),
            target,
        })
    }

    /// Resolves a `Location` or form `action` against this URL.
    fn join(&self, reference: &str) -> Res<Self> {
        if reference.starts_with("http://") || reference.starts_with("https://") {
            Self::parse(reference)
        } else if reference.starts_with('/') {
            Self::parse(&format!("http://{}{reference}", self.authority))
        } else if reference.is_empty() {
            Ok(self.clone())
        } else {
            let dir = self.target.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            Self::parse(&format!("http://{}{dir}{reference}", self.authority))
        }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.authority)
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Keep-alive connections of one worker, one per authority.
#[derive(Default)]
struct Http {
    conns: HashMap<String, BufReader<TcpStream>>,
}

impl Http {
    fn send(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Res<Response> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\n",
            url.target, url.authority
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        // A kept-alive connection the server closed meanwhile fails on first use: retry
        // once on a new one, as browsers do.
        for attempt in 0..2 {
            let fresh = !self.conns.contains_key(&url.authority);
            let conn = match self.conns.entry(url.authority.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let s =
                        TcpStream::connect(&url.authority).map_err(|e| format!("connect: {e}"))?;
                    s.set_nodelay(true).ok();
                    s.set_read_timeout(Some(IO_TIMEOUT)).ok();
                    s.set_write_timeout(Some(IO_TIMEOUT)).ok();
                    e.insert(BufReader::new(s))
                }
            };
            let sent = conn
                .get_mut()
                .write_all(head.as_bytes())
                .and_then(|()| conn.get_mut().write_all(body));
            let result = sent
                .map_err(|e| e.to_string())
                .and_then(|()| read_response(conn));
            match result {
                Ok(r) => {
                    if r.header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    {
                        self.conns.remove(&url.authority);
                    }
                    return Ok(r);
                }
                Err(e) => {
                    self.conns.remove(&url.authority);
                    if fresh || attempt == 1 {
                        return Err(format!("{method} {}: {e}", url.target));
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }
}

fn read_response(conn: &mut BufReader<TcpStream>) -> Res<Response> {
    let mut line = String::new();
    let io = |e: std::io::Error| e.to_string();
    if conn.read_line(&mut line).map_err(io)? == 0 {
        return Err("connection closed".into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line).map_err(io)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if r.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(io)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| "bad chunk size")?;
            let start = r.body.len();
            r.body.resize(start + size + 2, 0);
            conn.read_exact(&mut r.body[start..]).map_err(io)?;
            r.body.truncate(start + size);
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        r.body.resize(len, 0);
        conn.read_exact(&mut r.body).map_err(io)?;
    } else if status >= 200 && status != 204 && status != 304 {
        conn.read_to_end(&mut r.body).map_err(io)?;
        r.headers.push(("connection".into(), "close".into()));
    }
    Ok(r)
}

/// A fresh browser: a cookie jar (one loopback "site", so names are enough) and its
/// connections.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn request(
        &mut self,
        http: &mut Http,
        method: &str,
        url: &Url,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Res<Response> {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = extra.to_vec();
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        let r = http.send(method, url, &headers, body)?;
        for (_, set) in r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let expired = set.to_ascii_lowercase().contains("max-age=0");
                self.cookies.retain(|(k, _)| k != name.trim());
                if !expired {
                    self.cookies
                        .push((name.trim().to_owned(), value.trim().to_owned()));
                }
            }
        }
        Ok(r)
    }
}

/// The server's endpoints and our registration.
#[derive(Clone)]
struct Target {
    authorize: Url,
    token: Url,
    client_id: String,
    client_secret: Option<String>,
    resource: String,
}

fn discover_and_register(base: &str) -> Res<Target> {
    let mut http = Http::default();
    let meta_url = Url::parse(&format!("{base}/.well-known/oauth-authorization-server"))?;
    let meta = http.send("GET", &meta_url, &[], b"")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta.body).map_err(|e| format!("metadata: {e}"))?;
    let endpoint = |name: &str| -> Res<Url> {
        Url::parse(
            meta[name]
                .as_str()
                .ok_or_else(|| format!("metadata lacks {name}"))?,
        )
    };
    let body = serde_json::json!({
        "redirect_uris": [CLIENT_REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "consent-gate load client",
    });
    let reg = http.send(
        "POST",
        &endpoint("registration_endpoint")?,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )?;
    let reg: serde_json::Value =
        serde_json::from_slice(&reg.body).map_err(|_| format!("registration: {}", reg.text()))?;
    Ok(Target {
        authorize: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
        client_id: reg["client_id"].as_str().ok_or("no client_id")?.to_owned(),
        client_secret: reg["client_secret"].as_str().map(str::to_owned),
        resource: format!("{base}/mcp"),
    })
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The consent form as the browser would submit it.
struct Form {
    action: Url,
    fields: Vec<(String, String)>,
    browser: Browser,
}

/// The client's `/authorize` link (no scope: each server's default).
fn authorize_url(t: &Target) -> String {
    format!(
        "http://{}{}?response_type=code&client_id={}&redirect_uri={}&state=load\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&resource={}",
        t.authorize.authority,
        t.authorize.target,
        enc(&t.client_id),
        enc(CLIENT_REDIRECT),
        enc(&t.resource)
    )
}

/// `GET /authorize`, following redirects to the page with the consent form.
fn consent_page(http: &mut Http, t: &Target) -> Res<Form> {
    let mut browser = Browser::default();
    let mut url = Url::parse(&authorize_url(t))?;
    for _ in 0..MAX_REDIRECTS {
        let r = browser.request(http, "GET", &url, &[], b"")?;
        if let (300..=399, Some(loc)) = (r.status, r.header("location")) {
            url = url.join(loc)?;
            continue;
        }
        if r.status != 200 {
            return Err(format!("consent page: {} {}", r.status, short(&r.text())));
        }
        let (action, fields) = parse_form(&r.text())?;
        return Ok(Form {
            action: url.join(&action)?,
            fields,
            browser,
        });
    }
    Err("too many redirects before the consent page".into())
}

/// Submits the approval; returns the first response (a redirect to the upstream).
fn approve(http: &mut Http, form: &mut Form) -> Res<Response> {
    let body = form
        .fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let origin = form.action.origin();
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let r = form
        .browser
        .request(http, "POST", &form.action, &headers, body.as_bytes())?;
    if !(300..=399).contains(&r.status) {
        return Err(format!("consent POST: {} {}", r.status, short(&r.text())));
    }
    Ok(r)
}

/// The whole flow; returns the token response.
fn flow(http: &mut Http, t: &Target) -> Res<serde_json::Value> {
    let mut form = consent_page(http, t)?;
    let mut r = approve(http, &mut form)?;
    let mut url = form.action.clone();
    let mut code = None;
    for _ in 0..MAX_REDIRECTS {
        let loc = r
            .header("location")
            .ok_or_else(|| format!("{} without Location: {}", r.status, short(&r.text())))?;
        if let Some(q) = loc
            .strip_prefix(CLIENT_REDIRECT)
            .and_then(|rest| rest.strip_prefix('?'))
        {
            code = url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned());
            break;
        }
        url = url.join(loc)?;
        r = form.browser.request(http, "GET", &url, &[], b"")?;
        if !(300..=399).contains(&r.status) {
            return Err(format!(
                "redirect chain stopped at {} {}",
                r.status,
                short(&r.text())
            ));
        }
    }
    let code = code.ok_or("no code reached the client")?;
    let mut body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}&resource={}",
        enc(&code),
        enc(CLIENT_REDIRECT),
        enc(&t.client_id),
        enc(&t.resource)
    );
    if let Some(s) = &t.client_secret {
        body.push_str(&format!("&client_secret={}", enc(s)));
    }
    let r = http.send(
        "POST",
        &t.token,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|_| format!("token: {} {}", r.status, short(&r.text())))?;
    if r.status != 200 || !v["access_token"].is_string() {
        return Err(format!("token: {} {}", r.status, short(&r.text())));
    }
    Ok(v)
}

/// The consent form: its action, hidden inputs, and the approve button's name/value.
fn parse_form(html: &str) -> Res<(String, Vec<(String, String)>)> {
    let start = html.find("<form").ok_or("no <form> on the consent page")?;
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let action = attr(form, "action").unwrap_or_default();
    let mut fields = Vec::new();
    let mut approve = None;
    for (i, _) in form.match_indices('<') {
        let tag = &form[i..i + form[i..].find('>').unwrap_or(form.len() - i)];
        let (Some(name), value) = (attr(tag, "name"), attr(tag, "value").unwrap_or_default())
        else {
            continue;
        };
        if tag.starts_with("<input") && attr(tag, "type").is_none_or(|t| t != "submit") {
            fields.push((name, value));
        } else if (tag.starts_with("<button") || tag.starts_with("<input")) && value == "approve" {
            approve = Some((name, value));
        }
    }
    fields.push(approve.ok_or("no approve button on the consent page")?);
    Ok((action, fields))
}

/// An attribute's value inside one tag (double or single quotes), HTML-unescaped.
fn attr(tag: &str, name: &str) -> Option<String> {
    let head = &tag[..tag.find('>').unwrap_or(tag.len())];
    for quote in ['"', '\''] {
        let key = format!(" {name}={quote}");
        if let Some(i) = head.find(&key) {
            let rest = &head[i + key.len()..];
            let v = &rest[..rest.find(quote)?];
            return Some(
                v.replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&#x27;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            );
        }
    }
    None
}

fn short(s: &str) -> String {
    s.chars().take(200).collect::<String>().replace('\n', " ")
}

/// Runs `op` on `concurrency` threads until the duration or the count is spent; prints the
/// rate and latency percentiles of the successful operations.
fn run<S: Send>(
    name: &str,
    o: &Opts,
    mut inputs: Vec<S>,
    op: impl Fn(&mut Http, Option<S>) -> Res<()> + Sync,
) {
    let stop = AtomicBool::new(false);
    let started = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let first_error = Mutex::new(None::<String>);
    let queue = Mutex::new(std::mem::take(&mut inputs));
    let has_inputs = !queue.lock().unwrap().is_empty();
    let latencies = Mutex::new(Vec::<Duration>::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.concurrency {
            s.spawn(|| {
                let mut http = Http::default();
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) && t0.elapsed() < o.duration {
                    if started.fetch_add(1, Ordering::Relaxed) >= o.max {
                        break;
                    }
                    let input = if has_inputs {
                        match queue.lock().unwrap().pop() {
                            Some(i) => Some(i),
                            None => break,
                        }
                    } else {
                        None
                    };
                    let t = Instant::now();
                    match op(&mut http, input) {
                        Ok(()) => mine.push(t.elapsed()),
                        Err(e) => {
                            // A server that fails every request should not be hammered for
                            // the whole duration: stop after 100 errors.
                            if errors.fetch_add(1, Ordering::Relaxed) >= 100 {
                                stop.store(true, Ordering::Relaxed);
                            }
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let mut l = latencies.into_inner().unwrap();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "RESULT {name} ok={} errors={} seconds={elapsed:.2} rate={:.1} p50_ms={:.2} p99_ms={:.2}",
        l.len(),
        errors.load(Ordering::Relaxed),
        l.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    if let Some(e) = first_error.into_inner().unwrap() {
        eprintln!("first error ({name}): {e}");
    }
}

fn main() {
    let o = parse_opts();
    let target = discover_and_register(&o.base).unwrap_or_else(|e| {
        eprintln!("flows: cannot register at {}: {e}", o.base);
        std::process::exit(1)
    });
    match o.mode.as_str() {
        "flows" => run("flows", &o, Vec::<()>::new(), |http, _| {
            flow(http, &target).map(drop)
        }),
        "pages" => run("pages", &o, Vec::<()>::new(), |http, _| {
            consent_page(http, &target).map(drop)
        }),
        "consent-post" => {
            // Phase 1 (untimed for the result): fresh pending records, one per POST.
            let forms = Mutex::new(Vec::new());
            run("consent-post-setup", &o, Vec::<()>::new(), |http, _| {
                let f = consent_page(http, &target)?;
                forms.lock().unwrap().push(f);
                Ok(())
            });
            let forms = forms.into_inner().unwrap();
            // Phase 2: every collected form is posted once (bounded by the same count).
            let post = Opts {
                max: forms.len(),
                ..o.clone()
            };
            run("consent-post", &post, forms, |http, f| {
                approve(http, &mut f.expect("queued form")).map(drop)
            });
        }
        "session" => session(&o, &target).unwrap_or_else(|e| {
            eprintln!("flows: session: {e}");
            std::process::exit(1)
        }),
        _ => usage("unknown mode"),
    }
}

/// One flow, then MCP `initialize` + `notifications/initialized` with the token; prints
/// what wrk needs to call `tools/list`.
fn session(o: &Opts, t: &Target) -> Res<()> {
    let mut http = Http::default();
    let tokens = flow(&mut http, t)?;
    let token = tokens["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned();
    let auth = format!("Bearer {token}");
    let mcp = Url::parse(&format!("{}/mcp", o.base))?;
    let base = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}"#;
    let r = http.send("POST", &mcp, &base, init.as_bytes())?;
    if r.status != 200 {
        return Err(format!("initialize: {} {}", r.status, short(&r.text())));
    }
    let session = r.header("mcp-session-id").map(str::to_owned);
    let mut headers = base.to_vec();
    if let Some(s) = &session {
        headers.push(("Mcp-Session-Id", s));
    }
    headers.push(("Mcp-Protocol-Version", "2025-06-18"));
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    http.send("POST", &mcp, &headers, note.as_bytes())?;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let r = http.send("POST", &mcp, &headers, list.as_bytes())?;
    if r.status != 200 || !r.text().contains("tools") {
        return Err(format!("tools/list: {} {}", r.status, short(&r.text())));
    }
    println!("AUTHORIZE={}", authorize_url(t));
    println!("TOKEN={token}");
    println!("SESSION={}", session.unwrap_or_default());
    Ok(())
}
