//! Restart time with many live grants (issue #12 §5), for `benches/stores.sh`. Two modes:
//!
//! ```text
//! CONSENT_GATE_KEY=HEX cargo bench --bench grants -- populate --db PATH --base http://127.0.0.1:PORT --count 100000
//! CONSENT_GATE_KEY=HEX cargo bench --bench grants -- restart --server BIN --db PATH --base http://127.0.0.1:PORT --token TOKEN
//! ```
//!
//! * `populate` writes `--count` real grants into a SQLite store through
//!   `consent_gate_store::SqliteStore::apply`: every grant comes out of the core's own
//!   complete flow (register, authorize, consent, upstream redirect, callback with the demo
//!   upstream's answers, code, token) under the configuration `examples/hyper_server.rs`
//!   builds for the same `--base` and `CONSENT_GATE_KEY`, with OS randomness. What is
//!   written is what the example's executor would have left in its store a few minutes
//!   after those sign-ins: the registrations (one per `--per-client` grants), each grant
//!   and its refresh record. The intermediate records (pending consents, transactions,
//!   codes and their redeemed markers) are taken or expire within minutes, so they are
//!   not written. Prints the sizes of the records and one `TOKEN=` (an access token of
//!   a stored grant, the middle one) for `restart`.
//! * `restart` starts the example server on that file (`--store sqlite:PATH`, the key
//!   from the environment, optionally under `--pin "taskset -c 0"`) and times, from just
//!   before the spawn, the first `200` of the authorization-server metadata, then a
//!   bearer-protected `GET /mcp` with that token (`405`, which the example answers only
//!   after the bearer check and its grant passed: the server must find the grant in the
//!   file and open it; a refused token gets `401`, checked with a forged one afterwards),
//!   then `POST /mcp` `initialize` (`200`). Polls every millisecond on
//!   loopback; gives up after 30 s. Stops the server with SIGTERM and waits for it.
//!
//! Loopback only: `--base` must be `http://127.0.0.1:PORT`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consent_gate::{
    Authorization, BrowserContext, Callback, ClientSecret, Config, ConsentForm, ConsentPolicy,
    Decision, Gate, Keys, Op, ServerKey, Step, TokenRequest, UnixTime, UpstreamConfig,
    UpstreamResponse,
};
use consent_gate_store::{self as store, SqliteOptions, SqliteStore, Store, Synchronous};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CLIENT_REDIRECT: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const REGISTRATION: &[u8] = br#"{"redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"consent-gate load client"}"#;
/// The demo upstream's answers (examples/hyper_server/demo_upstream.rs): a token of its
/// length and GitHub's (`gho_` and 36 characters) in GitHub's JSON shape, and its user
/// document verbatim.
const TOKEN_RESPONSE: &[u8] = br#"{"access_token":"gho_16C7e42F292c6912E7710c838347Ae178B4a","token_type":"bearer","scope":"read:user"}"#;
const USER_RESPONSE: &[u8] = br#"{"login":"octocat","id":1,"node_id":"MDQ6VXNlcjE=","avatar_url":"https://github.com/images/error/octocat_happy.gif","html_url":"https://github.com/octocat","type":"User","site_admin":false,"name":"monalisa octocat","email":null,"created_at":"2008-01-14T04:33:35Z","updated_at":"2008-01-14T04:33:35Z"}"#;
/// The example keeps a registration this long (its `CLIENT_LIFETIME`).
const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

type Res<T> = Result<T, String>;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(mode) = args.next() else {
        println!("grants: no mode given, nothing to do (run by benches/stores.sh)");
        return;
    };
    let mut flags = std::collections::HashMap::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        flags.insert(flag, value);
    }
    let flag = |name: &str| {
        flags
            .get(name)
            .cloned()
            .unwrap_or_else(|| fail(&format!("{mode} needs {name}")))
    };
    let base = flag("--base");
    if !base.starts_with("http://127.0.0.1:") {
        fail("--base must be http://127.0.0.1:PORT (loopback only)");
    }
    let result = match mode.as_str() {
        "populate" => {
            let count = flag("--count").parse().unwrap_or_else(|_| fail("--count"));
            let per_client = flags.get("--per-client").map_or(Ok(100), |v| v.parse());
            let per_client = per_client.unwrap_or_else(|_| fail("--per-client"));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(populate(&flag("--db"), &base, count, per_client))
        }
        "restart" => restart(
            &flag("--server"),
            flags.get("--pin").map_or("", |p| p.as_str()),
            &flag("--db"),
            &base,
            &flag("--token"),
        ),
        _ => Err(format!("unknown mode {mode} (populate or restart)")),
    };
    if let Err(e) = result {
        fail(&e)
    }
}

fn fail(why: &str) -> ! {
    eprintln!("grants: {why}");
    std::process::exit(2)
}

fn entropy(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
}

/// The example's configuration for `base` (examples/hyper_server.rs `configure`, demo
/// upstream, plain-HTTP development mode, consent always asked).
fn gate(base: &str, key: &[u8]) -> Res<Gate> {
    let demo = format!("{base}/demo-upstream");
    let mut secret = [0u8; 20];
    entropy(&mut secret);
    let mut up = UpstreamConfig::custom(
        "Demo GitHub",
        format!("{demo}/authorize"),
        format!("{demo}/token"),
        format!("{demo}/user"),
        "Ov23liDEMO",
        ClientSecret::new(hex::encode(secret)),
    );
    up.issuer = Some(demo);
    up.scopes = vec!["read:user".into()];
    up.subject_prefix = "demo-github:".into();
    let keys = Keys::new(ServerKey::new(key).ok_or("CONSENT_GATE_KEY shorter than 32 bytes")?);
    let config = Config::builder(base, format!("{base}/mcp"), up, keys)
        .dev_loopback_http(true)
        .consent_policy(ConsentPolicy::Always)
        .build()
        .map_err(|e| format!("configuration: {e}"))?;
    Ok(Gate::new(config))
}

fn param<'a>(url: &'a str, name: &str) -> Res<&'a str> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .ok_or_else(|| format!("no {name} in {url}"))
}

fn cookie_pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap_or_default()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One complete flow through the core for `client`; returns the token step and the
/// access token.
fn flow(gate: &Gate, client: &consent_gate::ClientRecord, now: UnixTime) -> Res<(Step, String)> {
    let rng = &mut entropy;
    let resource = enc(gate.config().resource());
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={CLIENT_REDIRECT}&state=load\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&resource={resource}",
        client.client_id()
    );
    let req = consent_gate::AuthorizeRequest::parse(query.as_bytes()).map_err(|e| e.to_string())?;
    let Ok(Authorization::NeedsConsent(prompt)) =
        gate.authorize(req, Some(client), BrowserContext::default(), now, rng)
    else {
        return Err("no consent page".into());
    };
    let body = format!(
        "tx={}&csrf={}&decision=approve",
        prompt.view().form_tx,
        prompt.view().form_csrf
    );
    let browser = cookie_pair(prompt.set_cookie()).to_owned();
    let (pending, _page) = prompt.into_parts();
    let form = ConsentForm::parse(body.as_bytes()).map_err(|e| e.to_string())?;
    let Ok(Decision::Approved(consent)) = gate.decide(
        form,
        Some(pending),
        BrowserContext::with_cookies(&browser),
        now,
    ) else {
        return Err("consent not approved".into());
    };
    let (txn, redirect) = gate.upstream_redirect(consent, now, rng).into_parts();
    let location = redirect.header("location").ok_or("no upstream redirect")?;
    let issuer = gate.config().upstream().issuer.clone().unwrap_or_default();
    let callback = format!(
        "code=demo-code&state={}&iss={}",
        param(location, "state")?,
        enc(&issuer)
    );
    let bind = redirect.set_cookies().next().ok_or("no binding cookie")?;
    let cookies = format!("{browser}; {}", cookie_pair(bind));
    let callback = Callback::parse(callback.as_bytes()).map_err(|e| e.to_string())?;
    let json = |body| UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body,
    };
    let auth = gate
        .verify_callback(
            callback,
            Some(txn),
            BrowserContext::with_cookies(&cookies),
            now,
        )
        .map_err(|e| format!("callback: {e}"))?
        .accept_token_response(json(TOKEN_RESPONSE))
        .map_err(|e| format!("upstream token: {e}"))?;
    let (code, reply) = gate
        .issue_code(auth, json(USER_RESPONSE), Some(client), now, rng)
        .map_err(|e| format!("code: {e}"))?
        .into_parts();
    let code_value = param(
        reply.header("location").ok_or("no client redirect")?,
        "code",
    )?;
    let token = format!(
        "grant_type=authorization_code&code={code_value}&code_verifier={VERIFIER}\
         &client_id={}&redirect_uri={CLIENT_REDIRECT}&resource={resource}",
        client.client_id()
    );
    let treq = TokenRequest::parse(token.as_bytes(), None).map_err(|e| e.to_string())?;
    let tokens = gate
        .redeem_code(&treq, Some(code), Some(client), now, rng)
        .map_err(|e| format!("token: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&tokens.reply.body).map_err(|e| e.to_string())?;
    let access = v["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned();
    Ok((tokens.into(), access))
}

/// The example's executor's mapping (examples/hyper_server/routes.rs `App::apply`), for
/// the kinds written here.
fn store_ops(step: Step, now: UnixTime, keep: &[consent_gate::Kind]) -> Vec<store::Op> {
    use consent_gate::Kind as Core;
    let mut ops = Vec::new();
    for op in step.ops {
        if !keep.contains(&op.kind()) {
            continue;
        }
        let kind = match op.kind() {
            Core::Client => store::Kind::Client,
            Core::Grant => store::Kind::Grant,
            Core::Refresh => store::Kind::Refresh,
            _ => continue,
        };
        let key = *op.key().as_bytes();
        if let Op::Put {
            value, expires_at, ..
        } = op
        {
            let at = expires_at.unwrap_or(UnixTime(now.0 + CLIENT_LIFETIME));
            ops.push(store::Op::Put {
                kind,
                key,
                value,
                expires_at: store::UnixTime::from_secs(at.0),
            });
        }
    }
    ops
}

async fn populate(db: &str, base: &str, count: usize, per_client: usize) -> Res<()> {
    use consent_gate::Kind as Core;
    let key = std::env::var("CONSENT_GATE_KEY").map_err(|_| "CONSENT_GATE_KEY is not set")?;
    let key = hex::decode(key.trim()).map_err(|_| "CONSENT_GATE_KEY is not hex")?;
    let gate = gate(base, &key)?;
    // NORMAL while filling (one fsync per checkpoint): the server reopens it with FULL.
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let sqlite = SqliteStore::open(db, options)
        .await
        .map_err(|e| format!("{db}: {e}"))?;
    let (t0, now) = (Instant::now(), now());
    let (mut batch, mut token, mut client) = (Vec::new(), String::new(), None);
    let mut sizes = [(0usize, 0usize); 3]; // client, grant, refresh: count, bytes
    for i in 0..count {
        if i % per_client.max(1) == 0 {
            let registered = gate
                .register(REGISTRATION, now, &mut entropy)
                .map_err(|e| format!("register: {e}"))?;
            client = Some(registered.record.clone());
            batch.extend(store_ops(registered.into(), now, &[Core::Client]));
        }
        let (step, access) = flow(&gate, client.as_ref().expect("registered"), now)?;
        batch.extend(store_ops(step, now, &[Core::Grant, Core::Refresh]));
        if i == count / 2 {
            token = access;
        }
        if batch.len() >= 2000 || i + 1 == count {
            for op in &batch {
                if let store::Op::Put { kind, value, .. } = op {
                    let slot = match kind {
                        store::Kind::Client => 0,
                        store::Kind::Grant => 1,
                        _ => 2,
                    };
                    sizes[slot].0 += 1;
                    sizes[slot].1 += value.len();
                }
            }
            let ops = std::mem::take(&mut batch);
            sqlite
                .apply(ops, store::UnixTime::from_secs(now.0))
                .await
                .map_err(|e| format!("store: {e}"))?;
        }
    }
    sqlite.close().await.map_err(|e| format!("close: {e}"))?;
    let avg = |(n, bytes): (usize, usize)| bytes.checked_div(n).unwrap_or(0);
    println!(
        "POPULATED grants={} refresh={} clients={} seconds={:.1} grant_bytes={} refresh_bytes={} client_bytes={}",
        sizes[1].0,
        sizes[2].0,
        sizes[0].0,
        t0.elapsed().as_secs_f64(),
        avg(sizes[1]),
        avg(sizes[2]),
        avg(sizes[0]),
    );
    println!("TOKEN={token}");
    Ok(())
}

/// One HTTP/1.1 request on a fresh connection; the status, or `None` if nothing answered.
fn status(addr: &str, request: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match tcp.read(&mut head[read..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => read += n,
        }
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn restart(server: &str, pin: &str, db: &str, base: &str, token: &str) -> Res<()> {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let host = addr;
    let metadata = format!(
        "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"restart","version":"1"}}}"#;
    let bearer = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{init}",
        init.len()
    );
    let bearer_get = format!(
        "GET /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n\r\n"
    );
    let mut argv: Vec<&str> = pin.split_whitespace().collect();
    let store = format!("sqlite:{db}");
    argv.extend([server, "--listen", addr, "--store", &store]);
    let t0 = Instant::now();
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{server}: {e}"))?;
    let mut child = Stopped(child);
    let deadline = Duration::from_secs(30);
    let ready = loop {
        if status(addr, &metadata) == Some(200) {
            break t0.elapsed();
        }
        if t0.elapsed() > deadline || child.0.try_wait().ok().flatten().is_some() {
            return Err("the server did not answer its metadata".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // Read-only first: `GET /mcp` is answered 405 only after the bearer check and the
    // grant (found in the file and opened) passed; a refused token gets 401 instead.
    let get = status(addr, &bearer_get);
    let get_at = t0.elapsed();
    // Then what a client sends first: `initialize` (200; in this example it also writes
    // the session it opens, so the time includes one committed write).
    let first = status(addr, &bearer);
    let bearer_at = t0.elapsed();
    if get != Some(405) || first != Some(200) {
        return Err(format!(
            "after the restart, GET /mcp with the token got {get:?} (405 expected) and \
             initialize {first:?} (200 expected)"
        ));
    }
    // Once more each, warm: what one bearer request costs once the file is open.
    let t1 = Instant::now();
    let again = status(addr, &bearer_get);
    let warm_get = t1.elapsed();
    let t2 = Instant::now();
    let again_init = status(addr, &bearer);
    let warm_init = t2.elapsed();
    // The control: with one character of the token changed the same request must get
    // 401, or a 405 would not prove that the bearer check ran (a server that refused the
    // method before checking the token would void the measurement).
    let last = token.chars().last().unwrap_or('A');
    let forged = format!(
        "{}{}",
        &token[..token.len() - last.len_utf8()],
        if last == 'A' { 'B' } else { 'A' }
    );
    let control = status(addr, &bearer_get.replace(token, &forged));
    if control != Some(401) {
        return Err(format!(
            "GET /mcp with a forged token got {control:?}, not 401"
        ));
    }
    println!(
        "RESTART ready_ms={:.1} bearer_get_ms={:.1} bearer_init_ms={:.1} warm_get_ms={:.2} \
         warm_init_ms={:.2} statuses={}/{}/{}/{}",
        ready.as_secs_f64() * 1e3,
        get_at.as_secs_f64() * 1e3,
        bearer_at.as_secs_f64() * 1e3,
        warm_get.as_secs_f64() * 1e3,
        warm_init.as_secs_f64() * 1e3,
        get.unwrap_or(0),
        first.unwrap_or(0),
        again.unwrap_or(0),
        again_init.unwrap_or(0),
    );
    child.stop();
    Ok(())
}

/// The server process: stopped with SIGTERM (a clean close of the SQLite file), then
/// SIGKILL after 10 s; also on an early return.
struct Stopped(Child);

impl Stopped {
    fn stop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..1000 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.stop();
    }
}
