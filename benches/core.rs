//! The core's cost per step, with deterministic inputs (no clock, no OS RNG, no store: the
//! sans-IO core is pure computation, so what is measured here is exactly what a host pays
//! per request on top of its own HTTP and storage).
//!
//! Run: `cargo bench --bench core` (add `-- --quick` style criterion flags as usual).
//! Targets (benches/RESULTS.md): one complete honest flow < 10 µs median; bearer
//! verification < 1 µs median; every pending record (consent, transaction, code) < 1 KiB
//! serialized. `.ci/bench` reads criterion's `estimates.json` and checks the first two;
//! the record sizes are printed and checked here, before any measurement.
//!
//! Steps that consume their input (a taken record, a proof such as `ConsentGiven`) are
//! measured with `iter_batched`: the setup (cloning the record, or running the previous
//! steps to obtain a proof that has no `Clone` by design, A1) is not timed.

use consent_gate::*;
use consent_gate_spec::entropy::SplitMix64;
use consent_gate_spec::kit::GateSetup;
use criterion::{BatchSize, Criterion, black_box, criterion_group, criterion_main};
use std::time::Duration;

const NOW: UnixTime = consent_gate_spec::kit::T0;
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REGISTRATION: &[u8] = br#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"client_name":"Bench client"}"#;
const TOKEN_RESPONSE: &[u8] = br#"{"access_token":"gho_16C7e42F292c6912E7710c838347Ae178B4a","token_type":"bearer","scope":"read:user"}"#;
const USER_RESPONSE: &[u8] =
    br#"{"login":"octocat","id":583231,"name":"The Octocat","email":null}"#;
/// The pending-record budget (a store entry per open browser tab must stay small: R-bounded
/// stores are sized in entries, so the entry size decides the memory bound).
const PENDING_RECORD_BUDGET: usize = 1024;

/// The kit's deterministic entropy (splitmix64): repeatable inputs, distinct per draw. The
/// same stream as before it moved to the kit, so every step sees the same bytes.
fn entropy() -> SplitMix64 {
    SplitMix64(0x9E37_79B9_7F4A_7C15)
}

/// The kit's gate builder (`consent_gate_spec::kit::GateSetup`), loopback, default policy,
/// the upstream's answers below carrying no RFC 9207 `iss`.
fn gate() -> Gate {
    GateSetup {
        upstream_issuer: false,
        ..GateSetup::default()
    }
    .build()
    .0
}

/// `name=value` of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap_or_default()
}

/// The value of `name` in a URL's query.
fn query_param<'a>(url: &'a str, name: &str) -> &'a str {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .expect("parameter present")
}

fn authorize_query(client: &ClientRecord) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=xyz\
         &scope=mcp&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        client.client_id()
    )
}

/// Every input and record of one honest flow, produced once by running the core. Each
/// bench replays one step from these.
struct Flow {
    client: ClientRecord,
    query: String,
    pending: PendingConsent,
    consent_body: String,
    consent_cookie: String,
    txn: TransactionRecord,
    callback_query: String,
    callback_cookies: String,
    code: CodeRecord,
    code_request: String,
    grant: GrantRecord,
    refresh: RefreshRecord,
    refresh_request: String,
    bearer: String,
}

/// Runs the whole flow through the core (register once, then authorize → consent →
/// upstream → callback → code → token), as a browser and host would, and returns the
/// inputs and records of each step (the clones stand for the host's store writes).
fn run_flow(gate: &Gate, client: &ClientRecord, rng: &mut impl Entropy) -> Flow {
    let query = authorize_query(client);
    let req = AuthorizeRequest::parse(query.as_bytes()).expect("authorize query");
    let Ok(Authorization::NeedsConsent(prompt)) =
        gate.authorize(req, Some(client), BrowserContext::default(), NOW, rng)
    else {
        panic!("consent page expected (ConsentPolicy::Always)")
    };
    let consent_body = format!(
        "tx={}&csrf={}&decision=approve",
        prompt.view().form_tx,
        prompt.view().form_csrf
    );
    let consent_cookie = cookie_pair(prompt.set_cookie()).to_owned();
    let pending = prompt.pending_record().clone();
    let _page = prompt.page();
    let form = ConsentForm::parse(consent_body.as_bytes()).expect("consent form");
    let Ok(Decision::Approved(consent)) = gate.decide(
        form,
        Some(pending.clone()),
        BrowserContext::with_cookies(&consent_cookie),
        NOW,
    ) else {
        panic!("approval expected")
    };
    let (txn, redirect) = gate.upstream_redirect(consent, NOW, rng).into_parts();
    let location = redirect.header("location").expect("303 location");
    let callback_query = format!(
        "code=upstream-code&state={}",
        query_param(location, "state")
    );
    let bind = cookie_pair(redirect.set_cookies().next().expect("binding cookie"));
    let callback_cookies = format!("{consent_cookie}; {bind}");
    let callback = Callback::parse(callback_query.as_bytes()).expect("callback query");
    let auth = gate
        .verify_callback(
            callback,
            Some(txn.clone()),
            BrowserContext::with_cookies(&callback_cookies),
            NOW,
        )
        .expect("callback verifies")
        .accept_token_response(upstream_json(TOKEN_RESPONSE))
        .expect("token response");
    let (code, reply) = gate
        .issue_code(auth, upstream_json(USER_RESPONSE), Some(client), NOW, rng)
        .expect("code issued")
        .into_parts();
    let code_value = query_param(reply.header("location").expect("location"), "code");
    let code_request = format!(
        "grant_type=authorization_code&code={code_value}&code_verifier={VERIFIER}&client_id={}\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        client.client_id()
    );
    let treq = TokenRequest::parse(code_request.as_bytes(), None).expect("token request");
    let tokens = gate
        .redeem_code(&treq, Some(code.clone()), Some(client), NOW, rng)
        .expect("tokens");
    let reply: serde_json::Value = serde_json::from_slice(&tokens.reply.body).expect("JSON");
    let access = reply["access_token"].as_str().expect("access_token");
    let refresh_token = reply["refresh_token"].as_str().expect("refresh_token");
    let refresh_request = format!(
        "grant_type=refresh_token&refresh_token={refresh_token}&client_id={}",
        client.client_id()
    );
    Flow {
        client: client.clone(),
        query,
        pending,
        consent_body,
        consent_cookie,
        txn,
        callback_query,
        callback_cookies,
        code,
        code_request,
        grant: tokens.grant.expect("grant"),
        refresh: tokens.refresh.into_iter().next().expect("refresh record"),
        refresh_request,
        bearer: format!("Bearer {access}"),
    }
}

/// The `value` of the hidden input `name` in a rendered page's form (what a browser
/// submits). The form is the page's tail, so the search runs backwards.
fn hidden_input<'a>(page: &'a str, name: &str) -> &'a str {
    let mut form = page.len().saturating_sub(640);
    while !page.is_char_boundary(form) {
        form += 1;
    }
    let at = form + page[form..].find(name).expect("input present") + name.len();
    let rest = &page[at..];
    &rest[..rest.find('"').expect("closing quote")]
}

/// One complete honest flow after registration, as the host runs it: every core step of
/// authorize → consent → upstream → callback → code → token, with the records *moved*
/// from one step to the next (what a host's take from its store hands back) and only the
/// string handling a browser must do in between (read the form's hidden inputs, the
/// `Location`s and cookies). Returns the access token's length.
fn complete_flow(
    gate: &Gate,
    client: &ClientRecord,
    query: &[u8],
    rng: &mut impl Entropy,
) -> usize {
    let req = AuthorizeRequest::parse(query).expect("authorize query");
    let Ok(Authorization::NeedsConsent(prompt)) =
        gate.authorize(req, Some(client), BrowserContext::default(), NOW, rng)
    else {
        panic!("consent page expected (ConsentPolicy::Always)")
    };
    let (pending, page) = prompt.into_parts();
    let html = core::str::from_utf8(&page.body).expect("UTF-8 page");
    // The browser's string work uses `concat` (one exact allocation, no formatting
    // machinery) so that the measurement is the core's.
    let consent_body = [
        "tx=",
        hidden_input(html, "name=\"tx\" value=\""),
        "&csrf=",
        hidden_input(html, "name=\"csrf\" value=\""),
        "&decision=approve",
    ]
    .concat();
    let consent_cookie = cookie_pair(page.set_cookies().next().expect("browser cookie"));
    let form = ConsentForm::parse(consent_body.as_bytes()).expect("consent form");
    let Ok(Decision::Approved(consent)) = gate.decide(
        form,
        Some(pending),
        BrowserContext::with_cookies(consent_cookie),
        NOW,
    ) else {
        panic!("approval expected")
    };
    let (txn, redirect) = gate.upstream_redirect(consent, NOW, rng).into_parts();
    let location = redirect.header("location").expect("303 location");
    let callback_query = ["code=upstream-code&state=", query_param(location, "state")].concat();
    let bind = cookie_pair(redirect.set_cookies().next().expect("binding cookie"));
    let callback_cookies = [consent_cookie, "; ", bind].concat();
    let callback = Callback::parse(callback_query.as_bytes()).expect("callback query");
    let verified = gate
        .verify_callback(
            callback,
            Some(txn),
            BrowserContext::with_cookies(&callback_cookies),
            NOW,
        )
        .expect("callback verifies");
    let _ = black_box(verified.token_request());
    let auth = verified
        .accept_token_response(upstream_json(TOKEN_RESPONSE))
        .expect("token response");
    let _ = black_box(auth.user_request());
    let (code, reply) = gate
        .issue_code(auth, upstream_json(USER_RESPONSE), Some(client), NOW, rng)
        .expect("code issued")
        .into_parts();
    let code_value = query_param(reply.header("location").expect("location"), "code");
    let code_request = [
        "grant_type=authorization_code&code=",
        code_value,
        "&code_verifier=",
        VERIFIER,
        "&client_id=",
        client.client_id(),
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
    ]
    .concat();
    let treq = TokenRequest::parse(code_request.as_bytes(), None).expect("token request");
    let tokens = gate
        .redeem_code(&treq, Some(code), Some(client), NOW, rng)
        .expect("tokens");
    let body = core::str::from_utf8(&tokens.reply.body).expect("UTF-8 JSON");
    let access = body
        .split_once("\"access_token\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .expect("access_token")
        .0;
    access.len()
}

fn upstream_json(body: &[u8]) -> UpstreamResponse<'_> {
    UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body,
    }
}

/// Prints the serialized size of every stored record once and fails loudly when a pending
/// record exceeds its budget, so a regression cannot hide in a benchmark log.
fn report_record_sizes(flow: &Flow) {
    let sizes = [
        (
            "client (ClientRecord)",
            serde_json::to_vec(&flow.client),
            false,
        ),
        ("pending consent", serde_json::to_vec(&flow.pending), true),
        ("transaction", serde_json::to_vec(&flow.txn), true),
        ("code", serde_json::to_vec(&flow.code), true),
        ("grant", serde_json::to_vec(&flow.grant), false),
        ("refresh", serde_json::to_vec(&flow.refresh), false),
    ];
    println!("record sizes, serde_json bytes (pending budget {PENDING_RECORD_BUDGET} B):");
    let mut over = Vec::new();
    for (name, json, pending) in sizes {
        let len = json.expect("records serialize").len();
        let verdict = match (pending, len <= PENDING_RECORD_BUDGET) {
            (false, _) => "",
            (true, true) => "  (pending: within budget)",
            (true, false) => "  (pending: OVER BUDGET)",
        };
        println!("  record-size {name:<24} {len:>5} B{verdict}");
        if pending && len > PENDING_RECORD_BUDGET {
            over.push(name);
        }
    }
    assert!(over.is_empty(), "pending records over budget: {over:?}");
}

fn steps(c: &mut Criterion) {
    let gate = gate();
    let mut rng = entropy();
    let client = gate
        .register(REGISTRATION, NOW, &mut rng)
        .expect("registration")
        .record;
    let flow = run_flow(&gate, &client, &mut rng);
    report_record_sizes(&flow);

    let mut g = c.benchmark_group("step");
    g.bench_function("register", |b| {
        b.iter(|| gate.register(black_box(REGISTRATION), NOW, &mut rng))
    });
    // GET /authorize: parse + validate (A10 exact redirect match, R-PKCE) + consent page.
    g.bench_function("authorize_consent_page", |b| {
        b.iter(|| {
            let req = AuthorizeRequest::parse(black_box(flow.query.as_bytes())).expect("query");
            match gate.authorize(
                req,
                Some(&flow.client),
                BrowserContext::default(),
                NOW,
                &mut rng,
            ) {
                Ok(Authorization::NeedsConsent(p)) => p.into_parts(),
                _ => panic!("consent page expected"),
            }
        })
    });
    // POST /authorize: form parse, CSRF bound to the browser cookie (A3), record MAC.
    g.bench_function("consent_decision", |b| {
        b.iter_batched(
            || flow.pending.clone(),
            |pending| {
                let form = ConsentForm::parse(flow.consent_body.as_bytes()).expect("form");
                let ctx = BrowserContext::with_cookies(&flow.consent_cookie);
                gate.decide(form, Some(pending), ctx, NOW).is_ok()
            },
            BatchSize::SmallInput,
        )
    });
    // ConsentGiven has no Clone (A1): each iteration's proof comes from an untimed decide.
    g.bench_function("upstream_redirect", |b| {
        b.iter_batched(
            || {
                let form = ConsentForm::parse(flow.consent_body.as_bytes()).expect("form");
                let ctx = BrowserContext::with_cookies(&flow.consent_cookie);
                match gate.decide(form, Some(flow.pending.clone()), ctx, NOW) {
                    Ok(Decision::Approved(c)) => c,
                    _ => panic!("approval expected"),
                }
            },
            |consent| gate.upstream_redirect(consent, NOW, &mut rng).into_parts(),
            BatchSize::SmallInput,
        )
    });
    // GET /callback: state → transaction, binding cookie (A2), then the token JSON.
    g.bench_function("callback_verify_and_token_response", |b| {
        b.iter_batched(
            || flow.txn.clone(),
            |txn| {
                let cb = Callback::parse(flow.callback_query.as_bytes()).expect("callback");
                let ctx = BrowserContext::with_cookies(&flow.callback_cookies);
                gate.verify_callback(cb, Some(txn), ctx, NOW)
                    .expect("verified")
                    .accept_token_response(upstream_json(TOKEN_RESPONSE))
                    .is_ok()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("issue_code", |b| {
        b.iter_batched(
            || {
                let cb = Callback::parse(flow.callback_query.as_bytes()).expect("callback");
                let ctx = BrowserContext::with_cookies(&flow.callback_cookies);
                gate.verify_callback(cb, Some(flow.txn.clone()), ctx, NOW)
                    .expect("verified")
                    .accept_token_response(upstream_json(TOKEN_RESPONSE))
                    .expect("token response")
            },
            |auth| {
                gate.issue_code(
                    auth,
                    upstream_json(USER_RESPONSE),
                    Some(&flow.client),
                    NOW,
                    &mut rng,
                )
                .expect("code")
                .into_parts()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("token_authorization_code", |b| {
        b.iter_batched(
            || flow.code.clone(),
            |code| {
                let req = TokenRequest::parse(flow.code_request.as_bytes(), None).expect("req");
                gate.redeem_code(&req, Some(code), Some(&flow.client), NOW, &mut rng)
                    .expect("tokens")
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("token_refresh", |b| {
        b.iter_batched(
            || flow.refresh.clone(),
            |refresh| {
                let req = TokenRequest::parse(flow.refresh_request.as_bytes(), None).expect("req");
                gate.redeem_refresh(
                    &req,
                    Some(refresh),
                    Some(&flow.grant),
                    Some(&flow.client),
                    NOW,
                )
                .expect("tokens")
            },
            BatchSize::SmallInput,
        )
    });
    // Every MCP request: the stateless signature/expiry check, then the grant lookup's
    // confirm (revocation, R-bearer) — both are on the hot path of `/mcp`.
    g.bench_function("bearer_verify", |b| {
        b.iter(|| {
            gate.verify_bearer(Some(black_box(flow.bearer.as_str())), NOW)
                .is_ok()
        })
    });
    g.bench_function("bearer_verify_and_confirm", |b| {
        b.iter(|| {
            gate.verify_bearer(Some(black_box(flow.bearer.as_str())), NOW)
                .expect("claims")
                .confirm(Some(&flow.grant), NOW)
                .is_ok()
        })
    });
    g.finish();

    // One complete honest flow after registration: authorize → consent → upstream →
    // callback → code → token, plus the small string handling a browser and host do.
    let query = authorize_query(&client);
    assert!(complete_flow(&gate, &client, query.as_bytes(), &mut rng) > 100);
    let mut g = c.benchmark_group("flow");
    g.bench_function("complete_honest", |b| {
        b.iter(|| complete_flow(&gate, &client, black_box(query.as_bytes()), &mut rng))
    });
    g.finish();
}

fn config() -> Criterion {
    // Short windows: the bench shares 2 cores with builds; medians over 50 samples are
    // stable enough for the 10 µs / 1 µs targets, and the CLI can override all of these.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

criterion_group! { name = benches; config = config(); targets = steps }
criterion_main!(benches);
