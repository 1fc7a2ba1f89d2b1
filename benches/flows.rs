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
//! One thread drives all connections (a tokio current-thread runtime, one task per
//! connection, closed loop): the generator has one CPU of its own in load.sh, and an
//! event loop costs it far less per request than a blocked thread per connection, so it
//! stays well clear of being the bottleneck of either server.
//!
//! Bounded (the workplace rule for load tests): loopback addresses only (anything else is
//! refused before a socket opens), a fixed duration, a maximum count, 10 s at most per
//! operation (a page, a POST, a whole flow).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// RFC 7636 Appendix B: a fixed verifier is fine, every flow is a fresh transaction.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The MCP client's loopback redirect URI. Nothing listens there: the flow stops when a
/// redirect points at it, as a native client's listener would take the code.
const CLIENT_REDIRECT: &str = "http://127.0.0.1:9/cb";
/// The longest one operation (a page, a POST, a whole flow) may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 8;

type Res<T> = Result<T, String>;

#[path = "flows/http.rs"]
mod http;
use http::{Browser, Http, Response, Url};

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

/// The server's endpoints and our registration.
struct Target {
    authorize: Url,
    token: Url,
    client_id: String,
    client_secret: Option<String>,
    resource: String,
    /// The client's `/authorize` link (the same for every flow: a fresh transaction each
    /// time all the same, since every flow starts in a fresh browser).
    link: Url,
}

async fn discover_and_register(base: &str) -> Res<Target> {
    let mut http = Http::default();
    let meta_url = Url::parse(&format!("{base}/.well-known/oauth-authorization-server"))?;
    let meta = http.send("GET", &meta_url, &[], b"").await?;
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
    let reg = http
        .send(
            "POST",
            &endpoint("registration_endpoint")?,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await?;
    let reg: serde_json::Value =
        serde_json::from_slice(&reg.body).map_err(|_| format!("registration: {}", reg.text()))?;
    let mut t = Target {
        authorize: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
        client_id: reg["client_id"].as_str().ok_or("no client_id")?.to_owned(),
        client_secret: reg["client_secret"].as_str().map(str::to_owned),
        resource: format!("{base}/mcp"),
        link: Url::parse(base)?,
    };
    t.link = Url::parse(&authorize_url(&t))?;
    Ok(t)
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
async fn consent_page(http: &mut Http, t: &Target) -> Res<Form> {
    let mut browser = Browser::default();
    let mut url = t.link.clone();
    for _ in 0..MAX_REDIRECTS {
        let r = browser.request(http, "GET", &url, &[], b"").await?;
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
async fn approve(http: &mut Http, form: &mut Form) -> Res<Response> {
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
        .request(http, "POST", &form.action, &headers, body.as_bytes())
        .await?;
    if !(300..=399).contains(&r.status) {
        return Err(format!("consent POST: {} {}", r.status, short(&r.text())));
    }
    Ok(r)
}

/// The whole flow; returns the token response.
async fn flow(http: &mut Http, t: &Target) -> Res<serde_json::Value> {
    let mut form = consent_page(http, t).await?;
    let mut r = approve(http, &mut form).await?;
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
        r = form.browser.request(http, "GET", &url, &[], b"").await?;
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
    let r = http
        .send(
            "POST",
            &t.token,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await?;
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
        // ` name=` followed by the quote, found without building the pattern.
        let mut from = 0;
        while let Some(i) = head[from..].find(name) {
            let at = from + i;
            from = at + name.len();
            let before = head[..at].ends_with(' ');
            let rest = &head[at + name.len()..];
            let Some(rest) = rest
                .strip_prefix('=')
                .and_then(|r| r.strip_prefix(quote))
                .filter(|_| before)
            else {
                continue;
            };
            let v = &rest[..rest.find(quote)?];
            if !v.contains('&') {
                return Some(v.to_owned());
            }
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

/// One operation of a mode (a page, a POST, a flow), on a worker's connections.
type Op<S> = Rc<dyn Fn(&mut Http, Option<S>) -> Pin<Box<dyn Future<Output = Res<()>> + '_>>>;

/// Runs `op` on `concurrency` connections (closed loop, one task each, all on this one
/// thread) until the duration or the count is spent; prints the rate and latency
/// percentiles of the successful operations.
async fn run<S: 'static>(name: &str, o: &Opts, inputs: Vec<S>, op: Op<S>) {
    struct Shared<S> {
        started: Cell<usize>,
        errors: Cell<usize>,
        stop: Cell<bool>,
        first_error: RefCell<Option<String>>,
        queue: RefCell<Vec<S>>,
        latencies: RefCell<Vec<Duration>>,
    }
    let has_inputs = !inputs.is_empty();
    let shared = Rc::new(Shared {
        started: Cell::new(0),
        errors: Cell::new(0),
        stop: Cell::new(false),
        first_error: RefCell::new(None),
        queue: RefCell::new(inputs),
        latencies: RefCell::new(Vec::new()),
    });
    let t0 = Instant::now();
    let local = tokio::task::LocalSet::new();
    for _ in 0..o.concurrency {
        let (shared, op, duration, max) = (shared.clone(), op.clone(), o.duration, o.max);
        local.spawn_local(async move {
            let mut http = Http::default();
            while !shared.stop.get() && t0.elapsed() < duration {
                let n = shared.started.get();
                if n >= max {
                    break;
                }
                shared.started.set(n + 1);
                let input = if has_inputs {
                    match shared.queue.borrow_mut().pop() {
                        Some(i) => Some(i),
                        None => break,
                    }
                } else {
                    None
                };
                let t = Instant::now();
                let result = tokio::time::timeout(IO_TIMEOUT, op(&mut http, input))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                match result {
                    Ok(()) => shared.latencies.borrow_mut().push(t.elapsed()),
                    Err(e) => {
                        // A server that fails every request should not be hammered for
                        // the whole duration: stop after 100 errors.
                        let errors = shared.errors.get() + 1;
                        shared.errors.set(errors);
                        if errors > 100 {
                            shared.stop.set(true);
                        }
                        // A connection in an unknown state is not reused.
                        http.conns.clear();
                        shared.first_error.borrow_mut().get_or_insert(e);
                    }
                }
            }
        });
    }
    local.await;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *shared.latencies.borrow_mut());
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "RESULT {name} ok={} errors={} seconds={elapsed:.2} rate={:.1} p50_ms={:.2} p99_ms={:.2}",
        l.len(),
        shared.errors.get(),
        l.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    if let Some(e) = shared.first_error.borrow_mut().take() {
        eprintln!("first error ({name}): {e}");
    }
}

fn main() {
    let o = parse_opts();
    // One thread: the generator gets one CPU (benches/load.sh pins it), and on one CPU an
    // event loop drives many connections for far less than a thread per connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async_main(o));
}

async fn async_main(o: Opts) {
    let target = Rc::new(discover_and_register(&o.base).await.unwrap_or_else(|e| {
        eprintln!("flows: cannot register at {}: {e}", o.base);
        std::process::exit(1)
    }));
    match o.mode.as_str() {
        "flows" => {
            let t = target.clone();
            let op: Op<()> = Rc::new(move |http, _| {
                let t = t.clone();
                Box::pin(async move { flow(http, &t).await.map(drop) })
            });
            run("flows", &o, Vec::new(), op).await;
        }
        "pages" => {
            let t = target.clone();
            let op: Op<()> = Rc::new(move |http, _| {
                let t = t.clone();
                Box::pin(async move { consent_page(http, &t).await.map(drop) })
            });
            run("pages", &o, Vec::new(), op).await;
        }
        "consent-post" => {
            // Phase 1 (untimed for the result): fresh pending records, one per POST.
            let forms = Rc::new(RefCell::new(Vec::new()));
            let (t, collected) = (target.clone(), forms.clone());
            let setup: Op<()> = Rc::new(move |http, _| {
                let (t, collected) = (t.clone(), collected.clone());
                Box::pin(async move {
                    let f = consent_page(http, &t).await?;
                    collected.borrow_mut().push(f);
                    Ok(())
                })
            });
            run("consent-post-setup", &o, Vec::new(), setup).await;
            let forms = std::mem::take(&mut *forms.borrow_mut());
            // Phase 2: every collected form is posted once (bounded by the same count).
            let post = Opts {
                max: forms.len(),
                ..o.clone()
            };
            let op: Op<Form> = Rc::new(|http, f| {
                Box::pin(async move { approve(http, &mut f.expect("queued form")).await.map(drop) })
            });
            run("consent-post", &post, forms, op).await;
        }
        "session" => session(&o, &target).await.unwrap_or_else(|e| {
            eprintln!("flows: session: {e}");
            std::process::exit(1)
        }),
        _ => usage("unknown mode"),
    }
}

/// One flow, then MCP `initialize` + `notifications/initialized` with the token; prints
/// what wrk needs to call `tools/list`.
async fn session(o: &Opts, t: &Target) -> Res<()> {
    let mut http = Http::default();
    let tokens = flow(&mut http, t).await?;
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
    let r = http.send("POST", &mcp, &base, init.as_bytes()).await?;
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
    http.send("POST", &mcp, &headers, note.as_bytes()).await?;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let r = http.send("POST", &mcp, &headers, list.as_bytes()).await?;
    if r.status != 200 || !r.text().contains("tools") {
        return Err(format!("tools/list: {} {}", r.status, short(&r.text())));
    }
    println!("AUTHORIZE={}", authorize_url(t));
    println!("TOKEN={token}");
    println!("SESSION={}", session.unwrap_or_default());
    Ok(())
}
