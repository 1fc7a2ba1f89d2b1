//! Helpers, the shared fixture and the generators of `tests/properties.rs`: one honest flow
//! run once, grammars of redirect URIs and of the edits an attacker makes to them. The
//! deterministic entropy and the redirect-matching reference (R17, R18) are the kit's
//! (`consent_gate_spec::entropy`, `consent_gate_spec::oracle`).

use std::sync::LazyLock;

use base64::Engine as _;
use consent_gate::*;
pub(crate) use consent_gate_spec::entropy::SplitMix64;
use consent_gate_spec::kit::{GateSetup, Store};
use proptest::prelude::*;
use proptest::sample::{Index, select};

pub(crate) const NOW: UnixTime = consent_gate_spec::kit::T0;
pub(crate) const REDIRECT: &str = "http://127.0.0.1/cb";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

// ---------------------------------------------------------------- helpers and fixture

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Standard base64 with padding, for `Authorization: Basic` headers.
pub(crate) fn base64_std(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The kit's gate builder, loopback; the fixture's upstream answers carry no `iss`.
pub(crate) fn gate() -> Gate {
    GateSetup {
        upstream_issuer: false,
        ..GateSetup::default()
    }
    .build()
    .0
}

/// One honest flow, run once: a consent page for browser A (and one for browser B), the
/// upstream transaction A approved, and a real access token.
pub(crate) struct Fixture {
    pub(crate) gate: Gate,
    pub(crate) pending_a: PendingConsent,
    pub(crate) tx_a: String,
    pub(crate) csrf_a: String,
    pub(crate) secret_a: String,
    pub(crate) secret_b: String,
    pub(crate) callback: Callback,
    pub(crate) txn: TransactionRecord,
    pub(crate) callback_cookies: String,
    pub(crate) access_token: String,
}

/// The `name=value` part of a `Set-Cookie`.
pub(crate) fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

pub(crate) fn prompt(gate: &Gate, client: &ClientRecord, rng: &mut impl Entropy) -> ConsentPrompt {
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz\
         &code_challenge={CHALLENGE}&code_challenge_method=S256",
        client.client_id(),
        pct(REDIRECT)
    );
    let req = AuthorizeRequest::parse(q.as_bytes()).unwrap();
    match gate.authorize(req, Some(client), BrowserContext::default(), NOW, rng) {
        Ok(Authorization::NeedsConsent(p)) => p,
        other => panic!("expected a consent page, got {other:?}"),
    }
}

pub(crate) static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let gate = gate();
    let rng = &mut SplitMix64(1);
    let body = format!(r#"{{"redirect_uris":["{REDIRECT}"],"token_endpoint_auth_method":"none"}}"#);
    let client = gate.register(body.as_bytes(), NOW, rng).unwrap().record;
    let page_a = prompt(&gate, &client, rng);
    let page_b = prompt(&gate, &client, rng);
    let cookie_a = cookie_pair(page_a.set_cookie());
    let secret_of = |c: &str| c.split_once('=').unwrap().1.to_owned();
    let (tx_a, csrf_a) = (
        page_a.view().form_tx.clone(),
        page_a.view().form_csrf.clone(),
    );
    // The kit's store and its one executor keep what each step returns.
    let mut store = Store::default();
    let _page = store.apply(page_a);
    let form = format!("tx={tx_a}&csrf={csrf_a}&decision=approve");
    let form = ConsentForm::parse(form.as_bytes()).unwrap();
    let pending_a = store.take::<PendingConsent>(&form.pending_key()).unwrap();
    let ctx = BrowserContext::with_cookies(&cookie_a);
    let Ok(Decision::Approved(consent)) = gate.decide(form, Some(pending_a.clone()), ctx, NOW)
    else {
        panic!("the honest decision must be approved")
    };
    let redirect = store.apply(gate.upstream_redirect(consent, NOW, rng));
    let state = redirect
        .header("location")
        .unwrap()
        .split("state=")
        .nth(1)
        .unwrap();
    let state = state.split('&').next().unwrap();
    let callback = Callback::parse(format!("code=abc&state={state}").as_bytes()).unwrap();
    let txn = store
        .take::<TransactionRecord>(&callback.transaction_key())
        .unwrap();
    let bind = cookie_pair(redirect.set_cookies().next().unwrap());
    let callback_cookies = format!("{cookie_a}; {bind}");
    let ctx = BrowserContext::with_cookies(&callback_cookies);
    let verified = gate
        .verify_callback(callback.clone(), Some(txn.clone()), ctx, NOW)
        .unwrap();
    let ok = |body: &'static [u8]| UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body,
    };
    let auth = verified
        .accept_token_response(ok(br#"{"access_token":"gho_x"}"#))
        .unwrap();
    let issued = gate
        .issue_code(
            auth,
            ok(br#"{"login":"octocat","id":1}"#),
            Some(&client),
            NOW,
            rng,
        )
        .unwrap();
    let reply = store.apply(issued);
    let code = reply
        .header("location")
        .unwrap()
        .split("code=")
        .nth(1)
        .unwrap();
    let code = code.split('&').next().unwrap();
    let token_body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}\
         &client_id={}&redirect_uri={}",
        client.client_id(),
        pct(REDIRECT)
    );
    let treq = TokenRequest::parse(token_body.as_bytes(), None).unwrap();
    let code_rec = store.take::<CodeRecord>(&treq.record_key());
    let tokens = gate
        .redeem_code(&treq, code_rec, Some(&client), NOW, rng)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&tokens.reply.body).unwrap();
    Fixture {
        access_token: v["access_token"].as_str().unwrap().to_owned(),
        secret_a: secret_of(&cookie_a),
        secret_b: secret_of(&cookie_pair(page_b.set_cookie())),
        gate,
        pending_a,
        tx_a,
        csrf_a,
        callback,
        txn,
        callback_cookies,
    }
});

impl Fixture {
    /// A fresh `VerifiedCallback` (it is consumed by the token exchange).
    pub(crate) fn verified(&self) -> VerifiedCallback {
        let ctx = BrowserContext::with_cookies(&self.callback_cookies);
        self.gate
            .verify_callback(self.callback.clone(), Some(self.txn.clone()), ctx, NOW)
            .unwrap()
    }

    /// Browser A's decision with the given form fields and cookie header.
    pub(crate) fn decide(
        &self,
        tx: &str,
        csrf: &str,
        cookies: &str,
    ) -> Result<Decision, ConsentError> {
        let body = format!("tx={}&csrf={}&decision=approve", pct(tx), pct(csrf));
        let form = ConsentForm::parse(body.as_bytes())?;
        let ctx = BrowserContext::with_cookies(cookies);
        self.gate
            .decide(form, Some(self.pending_a.clone()), ctx, NOW)
    }
}

// ---------------------------------------------------------------- strategies

/// Form-ish bytes: known parameter names, separators and escapes, so that the parsers'
/// deeper branches are reached more often than by uniform bytes.
pub(crate) fn formish() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        select(vec![
            "client_id",
            "redirect_uri",
            "response_type",
            "state",
            "code_challenge",
            "code_challenge_method",
            "scope",
            "resource",
            "tx",
            "csrf",
            "decision",
            "code",
            "error",
            "iss",
            "grant_type",
            "code_verifier",
            "refresh_token",
            "client_secret",
        ])
        .prop_map(str::to_owned),
        "[a-z_%0-9A-F]{0,6}",
    ];
    let value = prop_oneof![
        select(vec![
            "code",
            "S256",
            "approve",
            "deny",
            "authorization_code",
            "refresh_token"
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,50}",
        "[A-Za-z0-9_-]{43}",
        "(%[0-9a-fA-FgG]{0,2}|\\+|[a-zA-Z0-9_-]){0,20}",
        any::<String>(),
    ];
    prop::collection::vec((name, prop::option::of(value)), 0..12).prop_map(|pairs| {
        let parts: Vec<String> = pairs
            .into_iter()
            .map(|(n, v)| v.map_or(n.clone(), |v| format!("{n}={v}")))
            .collect();
        parts.join("&").into_bytes()
    })
}

pub(crate) fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..300), formish()]
}

pub(crate) fn https_uri() -> impl Strategy<Value = String> {
    // No `--` in the third and fourth place: IDNA reserves that shape (`xn--…` is
    // punycode), and the URL parser rightly refuses a malformed one.
    // Lower case only: a browser lowercases the host, and registration takes only the
    // spelling a browser would serialize (R61).
    let label = "[a-z][a-z0-9-]{0,6}".prop_filter("IDNA-reserved label", |l: &String| {
        l.get(2..4) != Some("--")
    });
    let host = prop::collection::vec(label, 1..4).prop_map(|l| l.join("."));
    // 443 is https's default port: the serializer drops it, so it is not canonical.
    let port = prop::option::of((1u16..=65535).prop_filter("default port", |p| *p != 443));
    (host, port, path(), query()).prop_map(|(h, p, path, q)| {
        format!(
            "https://{h}{}{path}{q}",
            p.map_or(String::new(), |p| format!(":{p}"))
        )
    })
}

pub(crate) fn loopback_uri() -> impl Strategy<Value = String> {
    let host = select(vec!["127.0.0.1", "localhost", "[::1]", "127.0.0.53"]);
    let port = prop::option::of((0u16..=65535).prop_filter("default port", |p| *p != 80));
    (host, port, path(), query()).prop_map(|(h, p, path, q)| {
        format!(
            "http://{h}{}{path}{q}",
            p.map_or(String::new(), |p| format!(":{p}"))
        )
    })
}

pub(crate) fn path() -> impl Strategy<Value = String> {
    // No `.` or `..` segment: the serializer resolves those away.
    prop::collection::vec(
        "[a-zA-Z0-9._~-]{0,8}".prop_filter("dot segment", |s: &String| s != "." && s != ".."),
        0..4,
    )
    .prop_map(|segs| segs.iter().map(|s| format!("/{s}")).collect())
}

pub(crate) fn query() -> impl Strategy<Value = String> {
    prop::option::of("[a-z0-9=&:@]{0,10}")
        .prop_map(|q| q.map_or(String::new(), |q| format!("?{q}")))
}

/// A URI the registration grammar accepts (R11).
pub(crate) fn registered_uri() -> impl Strategy<Value = String> {
    prop_oneof![https_uri(), loopback_uri()]
}

/// One of these strings, owned.
pub(crate) fn one_of(options: Vec<&'static str>) -> impl Strategy<Value = String> {
    select(options).prop_map(str::to_owned)
}

/// Ways an attacker edits a registered redirect URI (R17/R18 test list, A10).
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    Same,
    FlipCase(Index),
    TrailingSlash,
    AppendQuery(String),
    Userinfo(String),
    AtAfterAuthority(String),
    SetPort(String),
    DropPort,
    HostSuffix(String),
    PercentEncode(Index),
    SwapScheme,
    Truncate(Index),
    Insert(Index, char),
    Fragment(String),
    Arbitrary(String),
}

pub(crate) fn edit() -> impl Strategy<Value = Edit> {
    let port = prop_oneof![
        (0u32..70_000).prop_map(|p| p.to_string()),
        "0{1,3}[0-9]{1,4}",
        "[0-9]{6,7}",
        Just(String::new()),
        "[0-9a-z+ :@-]{1,4}",
    ];
    prop_oneof![
        1 => Just(Edit::Same),
        1 => any::<Index>().prop_map(Edit::FlipCase),
        1 => Just(Edit::TrailingSlash),
        1 => "[?&][a-z=]{0,4}".prop_map(Edit::AppendQuery),
        1 => one_of(vec!["user", "evil.com", "127.0.0.1", "a:b"]).prop_map(Edit::Userinfo),
        1 => one_of(vec!["evil.com", "127.0.0.1", ""]).prop_map(Edit::AtAfterAuthority),
        3 => port.prop_map(Edit::SetPort),
        1 => Just(Edit::DropPort),
        1 => one_of(vec![".evil.com", "evil.com", ".", "%2e"]).prop_map(Edit::HostSuffix),
        1 => any::<Index>().prop_map(Edit::PercentEncode),
        1 => Just(Edit::SwapScheme),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| Edit::Insert(i, c)),
        1 => "[a-z]{0,4}".prop_map(Edit::Fragment),
        1 => any::<String>().prop_map(Edit::Arbitrary),
    ]
}

/// Byte offsets of (end of `scheme://`, end of host, end of authority) of a generated URI.
pub(crate) fn offsets(uri: &str) -> (usize, usize, usize) {
    let start = uri.find("://").unwrap() + 3;
    let after = &uri[start..];
    let auth_end = after.find(['/', '?']).unwrap_or(after.len());
    let host_end = if after.starts_with('[') {
        after.find(']').unwrap() + 1
    } else {
        after[..auth_end].find(':').unwrap_or(auth_end)
    };
    (start, start + host_end, start + auth_end)
}

pub(crate) fn apply(reg: &str, e: &Edit) -> String {
    let (start, host_end, auth_end) = offsets(reg);
    let splice = |at: usize, s: &str| format!("{}{s}{}", &reg[..at], &reg[at..]);
    match e {
        Edit::Same => reg.to_owned(),
        Edit::FlipCase(i) => {
            let mut b = reg.as_bytes().to_vec();
            let i = i.index(b.len());
            b[i] = if b[i].is_ascii_lowercase() {
                b[i].to_ascii_uppercase()
            } else {
                b[i].to_ascii_lowercase()
            };
            String::from_utf8(b).unwrap()
        }
        Edit::TrailingSlash => format!("{reg}/"),
        Edit::AppendQuery(q) => format!("{reg}{q}"),
        Edit::Userinfo(u) => splice(start, &format!("{u}@")),
        Edit::AtAfterAuthority(h) => splice(auth_end, &format!("@{h}")),
        Edit::SetPort(p) => format!("{}:{p}{}", &reg[..host_end], &reg[auth_end..]),
        Edit::DropPort => format!("{}{}", &reg[..host_end], &reg[auth_end..]),
        Edit::HostSuffix(s) => splice(host_end, s),
        Edit::PercentEncode(i) => {
            let i = i.index(reg.len());
            format!("{}%{:02X}{}", &reg[..i], reg.as_bytes()[i], &reg[i + 1..])
        }
        Edit::SwapScheme => match reg.strip_prefix("https://") {
            Some(rest) => format!("http://{rest}"),
            None => format!("https://{}", &reg[7..]),
        },
        Edit::Truncate(i) => reg[..i.index(reg.len())].to_owned(),
        Edit::Insert(i, c) => splice(i.index(reg.len() + 1), &c.to_string()),
        Edit::Fragment(f) => format!("{reg}#{f}"),
        Edit::Arbitrary(s) => s.clone(),
    }
}

/// Scope tokens: RFC 6749 §3.3 `%x21 / %x23-5B / %x5D-7E`.
pub(crate) fn scope_token() -> impl Strategy<Value = String> {
    let chars: Vec<char> = (0x21u8..=0x7e)
        .filter(|b| *b != b'"' && *b != b'\\')
        .map(char::from)
        .collect();
    prop::collection::vec(select(chars), 1..10).prop_map(|v| v.into_iter().collect())
}

/// The pairs of a valid authorize query for the fixture-free parser, with unknown extras.
pub(crate) fn valid_authorize_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let extras = prop::collection::btree_map("x[a-z]{1,6}", "[ -~]{0,8}", 0..4);
    (
        "[!-~]{1,40}",
        registered_uri(),
        prop::option::of("[ -~]{1,30}"),
        "[A-Za-z0-9._~-]{43,64}",
        prop::option::of(select(vec!["mcp", "mcp other", ""])),
        extras,
    )
        .prop_flat_map(|(client_id, redirect, state, challenge, scope, extras)| {
            let mut pairs = vec![
                ("response_type".to_owned(), "code".to_owned()),
                ("client_id".to_owned(), client_id),
                ("redirect_uri".to_owned(), redirect),
                ("code_challenge".to_owned(), challenge),
                ("code_challenge_method".to_owned(), "S256".to_owned()),
            ];
            pairs.extend(state.map(|s| ("state".to_owned(), s)));
            pairs.extend(scope.map(|s| ("scope".to_owned(), s.to_owned())));
            pairs.extend(extras);
            Just(pairs).prop_shuffle()
        })
}

pub(crate) fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", pct(n), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------- R28, A3: CSRF binding

/// Cookie headers built from our cookie names (and near misses) with B's secret, random
/// base64, edits of A's secret and junk.
pub(crate) fn cookie_header() -> impl Strategy<Value = String> {
    let f = &*FIXTURE;
    let (a, b) = (f.secret_a.clone(), f.secret_b.clone());
    let a2 = a.clone();
    let name = select(vec![
        "cg-browser",
        "__Host-cg-browser",
        "CG-BROWSER",
        "cg-browser2",
        "cg-consent",
        "other",
        " cg-browser",
    ]);
    let value = prop_oneof![
        Just(b.clone()),
        Just(format!("\"{b}\"")),
        "[A-Za-z0-9_-]{43}",
        (any::<Index>(), any::<char>()).prop_map(move |(i, c)| {
            let i = i.index(a.len());
            format!("{}{c}{}", &a[..i], &a[i + 1..])
        }),
        any::<Index>().prop_map(move |i| a2[..i.index(a2.len())].to_owned()),
        "[ -~]{0,20}",
    ];
    prop_oneof![
        prop::collection::vec((name, value), 0..4).prop_map(|v| v
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")),
        any::<String>(),
    ]
}

/// `Authorization` header values for the token endpoint: junk, Basic with arbitrary bytes,
/// and a Basic-like scheme in any case.
pub(crate) fn authorization_header() -> impl Strategy<Value = String> {
    let basic = prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        any::<String>(),
        basic.prop_map(|b| format!("Basic {}", base64_std(&b))),
        "[Bb][Aa][Ss][Ii][Cc] [ -~]{0,40}",
    ]
}

/// Bytes that look like a JSON object more often than uniform bytes do.
pub(crate) fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_input(),
        "\\{[ -~]{0,80}\\}".prop_map(String::into_bytes)
    ]
}

/// Headers that imitate our bearer tokens without our key.
pub(crate) fn forged_bearer() -> impl Strategy<Value = String> {
    let payload = prop::collection::vec(any::<u8>(), 0..160).prop_map(|b| {
        let text = base64_std(&b).trim_end_matches('=').replace('+', "-");
        format!("Bearer cga_{}", text.replace('/', "_"))
    });
    prop_oneof![
        any::<String>(),
        "[Bb]earer +cga_[A-Za-z0-9_-]{0,200}",
        payload
    ]
}

/// Arbitrary strings and edits of registrable URIs.
pub(crate) fn redirect_candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (registered_uri(), edit()).prop_map(|(r, e)| apply(&r, &e)),
        deceptive_uri(),
    ]
}

/// URIs built to show one host and send the browser to another (A19): two hosts around a
/// separator a reader and a WHATWG parser read differently.
pub(crate) fn deceptive_uri() -> impl Strategy<Value = String> {
    let scheme = select(vec!["https://", "http://", "HTTPS://"]);
    let host = select(vec![
        "claude.ai",
        "attacker.example",
        "127.0.0.1",
        "localhost",
        "[::1]",
        "127.1",
        "CLAUDE.ai",
        "xn--clude-9ta.ai",
        "claude%2eai",
    ]);
    let sep = select(vec![
        "\\@", "@", "\\", ":@", ":80@", "%40", "%5C", "/", "\\.", ".", ":443/", "\t", "%00",
    ]);
    (scheme, host.clone(), sep, host, path())
        .prop_map(|(s, a, sep, b, p)| format!("{s}{a}{sep}{b}{p}"))
}

/// `Content-Type` values an upstream token endpoint might send.
pub(crate) fn content_type() -> impl Strategy<Value = Option<String>> {
    let known = select(vec![
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "TEXT/PLAIN; charset=utf-8",
    ]);
    prop::option::of(prop_oneof![known.prop_map(str::to_owned), any::<String>()])
}

/// The string-or-null members of a JSON token response.
pub(crate) fn token_members()
-> impl Strategy<Value = std::collections::BTreeMap<&'static str, Option<String>>> {
    let names = select(vec![
        "access_token",
        "token_type",
        "error",
        "scope",
        "expires_in",
    ]);
    let token_types = select(vec!["bearer", "Bearer", "BEARER", "mac", ""]);
    let value = prop_oneof!["[ -~]{0,12}", token_types.prop_map(str::to_owned)];
    prop::collection::btree_map(names, prop::option::of(value), 0..5)
}

/// JSON media types in several spellings.
pub(crate) fn json_content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
    ]))
}

/// Cookie names that are not browser A's binding cookie in development mode.
pub(crate) fn wrong_cookie_name() -> impl Strategy<Value = &'static str> {
    select(vec![
        "__Host-cg-browser",
        "CG-BROWSER",
        "cg-browserx",
        "xcg-browser",
        "cg-consent",
        "cg-bind-000000000000",
    ])
}

/// Scope tokens drawn mostly from a small pool, so that sets overlap often.
pub(crate) fn pooled_scope_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => one_of(vec!["a", "b", "c", "d", "mcp", "read", "write", "admin"]),
        1 => scope_token(),
    ]
}

/// A scope token with one character RFC 6749 §3.3 forbids (`"`, `\`, control, non-ASCII).
pub(crate) fn bad_scope_token() -> impl Strategy<Value = String> {
    "[a-z]{0,3}[\"\\\\\\x00-\\x1f\\x7f\u{80}-\u{10ffff}][a-z]{0,3}"
}

/// Replaces the character at byte offset `i.index(len)` of an ASCII string with `c`.
pub(crate) fn replace_at(s: &str, i: Index, c: char) -> String {
    let i = i.index(s.len());
    format!("{}{c}{}", &s[..i], &s[i + 1..])
}
