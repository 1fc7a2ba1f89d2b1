//! Property tests over the public surface (proptest).
//!
//! * Every parser takes arbitrary bytes and answers `Ok` or a typed error, never a panic
//!   (A17, R22), and what it accepts satisfies the parser's own invariants.
//! * Redirect matching is differential against an independent reference (R17, R18, A10).
//! * A repeated parameter always fails (R22), scope sets behave as sets, the consent CSRF
//!   token is bound to the browser cookie (R28, A3), and a bearer token cannot be edited
//!   (R49, R50).
//! * Maximum-size adversarial inputs are refused (bounded parsers; timing is measured by
//!   the benchmarks, not asserted here).
//!
//! Case counts are modest so that the file runs in seconds in a debug build.

#[path = "properties/support.rs"]
mod support;

use std::collections::BTreeSet;

use consent_gate::*;
use consent_gate_spec::oracle::redirect_acceptable;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use support::*;

// ---------------------------------------------------------------- structured oracles

/// What a registration request may contain (RFC 7591 members the core reads).
#[derive(Clone, Debug)]
struct RegistrationInput {
    redirect_uris: Option<Vec<Candidate>>,
    client_name: Option<String>,
    auth_method: Option<&'static str>,
    grant_types: Option<Vec<&'static str>>,
    response_types: Option<Vec<&'static str>>,
    application_type: Option<&'static str>,
    scope: Option<&'static str>,
}

/// A redirect URI offered for registration, and whether R11 admits it when that is known
/// without asking the code: grammar URIs are valid, the A17 list is not; for the edits of
/// valid URIs `RedirectUri::parse` decides (its own property checks it independently).
#[derive(Clone, Debug)]
struct Candidate {
    raw: String,
    valid: Option<bool>,
}

fn registration_input() -> impl Strategy<Value = RegistrationInput> {
    let known = |valid| {
        move |raw| Candidate {
            raw,
            valid: Some(valid),
        }
    };
    let unknown = |raw| Candidate { raw, valid: None };
    let uri = prop_oneof![
        3 => registered_uri().prop_map(known(true)),
        1 => (registered_uri(), edit()).prop_map(|(r, e)| apply(&r, &e)).prop_map(unknown),
        1 => one_of(vec![
            "javascript:alert(1)",
            "http://evil.example/cb",
            "HTTPS://a.example/cb",
            "https://a.example/#f",
            "https://user@a.example/cb",
            "http://127.0.0.1:99999/cb",
            " https://a.example/cb",
        ])
        .prop_map(known(false)),
    ];
    (
        prop::option::of(prop::collection::vec(uri, 0..12)),
        prop::option::of(prop_oneof!["[ -~]{0,40}", "\\PC{95,105}", any::<String>()]),
        prop::option::of(select(vec![
            "none",
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
            "",
        ])),
        prop::option::of(prop::collection::vec(
            select(vec!["authorization_code", "refresh_token", "implicit"]),
            0..3,
        )),
        prop::option::of(prop::collection::vec(select(vec!["code", "token"]), 0..2)),
        prop::option::of(select(vec!["web", "native", "browser"])),
        prop::option::of(select(vec!["mcp", "", "mcp other"])),
    )
        .prop_map(
            |(
                redirect_uris,
                client_name,
                auth_method,
                grant_types,
                response_types,
                application_type,
                scope,
            )| {
                RegistrationInput {
                    redirect_uris,
                    client_name,
                    auth_method,
                    grant_types,
                    response_types,
                    application_type,
                    scope,
                }
            },
        )
}

impl RegistrationInput {
    fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::json!({});
        let mut put = |k: &str, x: serde_json::Value| v[k] = x;
        if let Some(x) = &self.redirect_uris {
            put("redirect_uris", x.iter().map(|c| c.raw.clone()).collect())
        }
        if let Some(x) = &self.client_name {
            put("client_name", x.clone().into())
        }
        if let Some(x) = self.auth_method {
            put("token_endpoint_auth_method", x.into())
        }
        if let Some(x) = &self.grant_types {
            put("grant_types", x.clone().into())
        }
        if let Some(x) = &self.response_types {
            put("response_types", x.clone().into())
        }
        if let Some(x) = self.application_type {
            put("application_type", x.into())
        }
        if let Some(x) = self.scope {
            put("scope", x.into())
        }
        serde_json::to_vec(&v).unwrap()
    }

    /// RFC 7591 as this server profiles it (R10, R11), from the spec rather than the code.
    fn acceptable(&self) -> bool {
        let uris = self.redirect_uris.as_deref().unwrap_or_default();
        let grants_ok = self.grant_types.as_ref().is_none_or(|g| {
            g.contains(&"authorization_code")
                && g.iter()
                    .all(|t| matches!(*t, "authorization_code" | "refresh_token"))
        });
        (1..=10).contains(&uris.len())
            && uris.iter().all(|u| {
                u.valid
                    .unwrap_or_else(|| RedirectUri::parse(&u.raw).is_ok())
            })
            && self
                .client_name
                .as_ref()
                .is_none_or(|n| n.chars().count() <= 100 && !n.chars().any(char::is_control))
            && self
                .auth_method
                .is_none_or(|m| matches!(m, "none" | "client_secret_post" | "client_secret_basic"))
            && grants_ok
            && self
                .response_types
                .as_ref()
                .is_none_or(|r| r.iter().all(|t| *t == "code"))
            && self
                .application_type
                .is_none_or(|a| matches!(a, "web" | "native"))
            && self.scope.is_none_or(|s| s != "mcp other")
    }
}

/// The oracle for a JSON token response whose members are strings
/// (docs/upstreams.md#github-token-response).
fn token_response_acceptable(status: u16, members: &[(&str, Option<String>)]) -> bool {
    let get = |k: &str| {
        members
            .iter()
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| v.as_deref())
    };
    get("error").is_none()
        && status == 200
        && get("access_token").is_some_and(|t| !t.is_empty() && t.len() <= 4096)
        && get("token_type").is_none_or(|t| t.eq_ignore_ascii_case("bearer"))
}

// ---------------------------------------------------------------- parsers are total

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A17, R22: arbitrary bytes are a request or a typed error; an accepted client id is
    /// printable and bounded.
    #[test]
    fn authorize_parse_is_total(input in any_input()) {
        if let Ok(req) = AuthorizeRequest::parse(&input) {
            let id = req.client_id();
            prop_assert!(!id.is_empty() && id.len() <= 256);
            prop_assert!(id.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
    }

    /// R28: an arbitrary consent form never approves browser A's pending consent, even
    /// with A's cookie: it names another transaction or carries a wrong CSRF token.
    #[test]
    fn consent_form_parse_is_total(input in any_input()) {
        let f = &*FIXTURE;
        if let Ok(form) = ConsentForm::parse(&input) {
            let cookie = format!("cg-browser={}", f.secret_a);
            let ctx = BrowserContext::with_cookies(&cookie);
            let r = f.gate.decide(form, Some(f.pending_a.clone()), ctx, NOW);
            prop_assert!(r.is_err(), "{:?}", r);
        }
    }

    /// R35, A7: an arbitrary callback query never verifies against the live transaction.
    #[test]
    fn callback_parse_is_total(input in any_input()) {
        let f = &*FIXTURE;
        if let Ok(cb) = Callback::parse(&input) {
            let ctx = BrowserContext::with_cookies(&f.callback_cookies);
            prop_assert!(f.gate.verify_callback(cb, Some(f.txn.clone()), ctx, NOW).is_err());
        }
    }

    /// R22, RFC 6749 §2.3.1: any body and any `Authorization` header; an accepted client
    /// id is non-empty and bounded.
    #[test]
    fn token_request_parse_is_total(
        body in any_input(),
        header in prop::option::of(authorization_header()),
    ) {
        if let Ok(req) = TokenRequest::parse(&body, header.as_deref()) {
            prop_assert!(!req.client_id().is_empty() && req.client_id().len() <= 256);
        }
    }

    /// RFC 6749 §2.3.1: Basic credentials are form-encoded then base64; any id and secret
    /// survive the round trip.
    #[test]
    fn basic_credentials_round_trip(
        id in "[!-~]{1,40}",
        secret in prop_oneof!["[ -~]{0,80}", "\\PC{0,20}"],
    ) {
        let credentials = format!("{}:{}", pct(&id), pct(&secret));
        let header = format!("Basic {}", base64_std(credentials.as_bytes()));
        let body = format!("grant_type=authorization_code&code=c&code_verifier={VERIFIER}");
        let req = TokenRequest::parse(body.as_bytes(), Some(&header));
        prop_assert_eq!(req.map(|r| r.client_id().to_owned()), Ok(id));
    }

    /// R10, R11: arbitrary bodies never panic; whatever registers has only valid URIs.
    #[test]
    fn register_is_total(body in jsonish()) {
        if let Ok(reg) = FIXTURE.gate.register(&body, NOW, &mut SplitMix64(2)) {
            prop_assert_eq!(reg.reply.status, 201);
            prop_assert!(!reg.record.redirect_uris().is_empty());
            for u in reg.record.redirect_uris() {
                prop_assert!(RedirectUri::parse(u.as_str()).is_ok());
            }
        }
    }

    /// R49, R50: no string that is not one of our minted tokens verifies.
    #[test]
    fn arbitrary_bearer_headers_never_verify(header in forged_bearer()) {
        prop_assert!(FIXTURE.gate.verify_bearer(Some(&header), NOW).is_err());
    }

    /// R49, R50: changing any one character of a real token, truncating it or extending
    /// it makes it `Invalid` (MAC over the payload, strict base64).
    #[test]
    fn edited_bearer_tokens_are_invalid(
        i in any::<Index>(),
        c in any::<char>(),
        extra in "[A-Za-z0-9_-]{1,4}",
    ) {
        let t = &FIXTURE.access_token;
        let at = i.index(t.len());
        prop_assume!(!t[at..].starts_with(c));
        let edits = [replace_at(t, i, c), t[..at].to_owned(), format!("{t}{extra}")];
        for token in edits {
            let r = FIXTURE.gate.verify_bearer(Some(&format!("Bearer {token}")), NOW);
            prop_assert_eq!(r.map(|_| ()), Err(BearerError::Invalid), "{}", token);
        }
    }

    /// A17, R11: an accepted redirect URI is exactly the input, spelled `https://` or
    /// `http://`, with no fragment, whitespace, control or non-ASCII byte; it matches itself.
    /// R61, A19: the host the consent page shows is the host a WHATWG parser (the `url`
    /// crate) sends the browser to, and it is what a reader sees right after `://`.
    #[test]
    fn redirect_uri_parse_is_total(raw in redirect_candidate()) {
        if let Ok(u) = RedirectUri::parse(&raw) {
            prop_assert_eq!(u.as_str(), raw.as_str());
            prop_assert!(raw.starts_with("https://") || raw.starts_with("http://"));
            prop_assert!(!raw.contains('#') && raw.bytes().all(|b| b > 0x20 && b < 0x7f));
            prop_assert_eq!(u.matching(&raw), Some(u.clone()));
            let browser = url::Url::parse(&raw).expect("a WHATWG parser reads it");
            prop_assert_eq!(Some(u.host()), browser.host_str(), "{}", raw);
            prop_assert!(browser.username().is_empty() && browser.password().is_none());
            let shown = &raw[raw.find("://").unwrap() + 3..];
            prop_assert!(shown.starts_with(u.host()), "{}", raw);
            prop_assert!(
                matches!(shown.as_bytes().get(u.host().len()), None | Some(b':' | b'/' | b'?')),
                "{}", raw
            );
        }
    }

    /// docs/upstreams.md#github-token-response: any upstream answer is parsed or refused; a non-200
    /// never signs in.
    #[test]
    fn token_response_is_total(
        status in prop_oneof![Just(200u16), any::<u16>()],
        content_type in content_type(),
        body in jsonish(),
    ) {
        let content_type = content_type.as_deref();
        let resp = UpstreamResponse { status, content_type, body: &body };
        if FIXTURE.verified().accept_token_response(resp).is_ok() {
            prop_assert_eq!(status, 200);
        }
    }
}

// ---------------------------------------------------------------- structured oracles

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// R10, R11, A17: registration accepts exactly what the profile allows, and the record
    /// holds the presented URIs verbatim (de-duplicated, in order) and the grant choice.
    #[test]
    fn registration_follows_the_profile(input in registration_input()) {
        let r = FIXTURE.gate.register(&input.to_json(), NOW, &mut SplitMix64(3));
        prop_assert_eq!(r.is_ok(), input.acceptable(), "{:?}", r);
        if let Ok(reg) = r {
            let mut want: Vec<&str> = Vec::new();
            for u in input.redirect_uris.iter().flatten() {
                if !want.contains(&u.raw.as_str()) {
                    want.push(&u.raw);
                }
            }
            let got: Vec<&str> =
                reg.record.redirect_uris().iter().map(RedirectUri::as_str).collect();
            prop_assert_eq!(got, want);
            let grants = input.grant_types.as_ref();
            let refresh = grants.is_some_and(|g| g.contains(&"refresh_token"));
            prop_assert_eq!(reg.record.refresh_allowed(), refresh);
        }
    }

    /// docs/upstreams.md#github-token-response: a token response signs in exactly when it is a 200
    /// with a usable `access_token`, no `error`, and a bearer (or absent) `token_type`; JSON
    /// members that are `null` count as absent.
    #[test]
    fn token_response_follows_the_oracle(
        status in prop_oneof![3 => Just(200u16), 1 => select(vec![201u16, 400, 401, 500])],
        members in token_members(),
        content_type in json_content_type(),
    ) {
        let members: Vec<(&str, Option<String>)> = members.into_iter().collect();
        let json = |v: &Option<String>| v.clone().map_or(serde_json::Value::Null, Into::into);
        let obj: serde_json::Map<String, serde_json::Value> =
            members.iter().map(|(k, v)| ((*k).to_owned(), json(v))).collect();
        let body = serde_json::to_vec(&obj).unwrap();
        let resp = UpstreamResponse { status, content_type, body: &body };
        let r = FIXTURE.verified().accept_token_response(resp);
        let want = token_response_acceptable(status, &members);
        prop_assert_eq!(r.is_ok(), want, "{:?}", r.err());
    }
}

// ---------------------------------------------------------------- R17, R18: redirect matching

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// R17, R18, A10: `matching` agrees with the reference on every edit of a registered
    /// URI: byte-identical, or a loopback `http` registration and a different port only.
    #[test]
    fn redirect_matching_agrees_with_reference(reg in registered_uri(), e in edit()) {
        let registered = RedirectUri::parse(&reg);
        prop_assert!(registered.is_ok(), "generator made an invalid registration {}", reg);
        let presented = apply(&reg, &e);
        let got = registered.unwrap().matching(&presented);
        let want = redirect_acceptable(&reg, &presented);
        prop_assert_eq!(got.is_some(), want, "{} vs {}", reg, presented);
        if let Some(u) = got {
            prop_assert_eq!(u.as_str(), presented.as_str());
        }
    }
}

// ---------------------------------------------------------------- R22: repeated parameters

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// R22 (OAuth 2.1 §3.1): a valid authorize query parses; the same query with any one
    /// parameter repeated anywhere, with any value and in any percent-spelling of its name,
    /// is refused as `Repeated`, never "first wins" or "last wins".
    #[test]
    fn any_repeated_parameter_is_refused(
        pairs in valid_authorize_pairs(),
        which in any::<Index>(),
        at in any::<Index>(),
        value in prop_oneof![Just(None), prop::option::of("[ -~]{0,12}")],
        encode_name in any::<bool>(),
    ) {
        let query = encode_pairs(&pairs);
        prop_assert!(AuthorizeRequest::parse(query.as_bytes()).is_ok(), "{}", query);
        let (name, original) = &pairs[which.index(pairs.len())];
        let mut parts: Vec<String> = query.split('&').map(str::to_owned).collect();
        let spelled = if encode_name {
            name.bytes().map(|b| format!("%{b:02X}")).collect()
        } else {
            name.clone()
        };
        let dup = format!("{spelled}={}", pct(value.as_deref().unwrap_or(original)));
        parts.insert(at.index(parts.len() + 1), dup);
        let r = AuthorizeRequest::parse(parts.join("&").as_bytes());
        prop_assert_eq!(r, Err(AuthorizeError::Params(ParamError::Repeated(name.clone()))));
    }
}

// ---------------------------------------------------------------- scope sets

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// RFC 6749 §3.3: a scope string is an order-free set; printing and re-parsing it is
    /// the identity; the parsed set is the set of tokens.
    #[test]
    fn scope_round_trip(
        tokens in prop::collection::vec(scope_token(), 0..32),
        seps in prop::collection::vec(" {1,3}", 32),
    ) {
        let raw: String = tokens.iter().zip(&seps).map(|(t, s)| format!("{s}{t}")).collect();
        let set = ScopeSet::parse(&raw);
        prop_assert!(set.is_some(), "{:?}", raw);
        let set = set.unwrap();
        let want: BTreeSet<&str> = tokens.iter().map(String::as_str).collect();
        prop_assert_eq!(set.iter().collect::<BTreeSet<_>>(), want);
        prop_assert_eq!(ScopeSet::parse(&set.to_scope_string()), Some(set.clone()));
    }

    /// A scope string with an invalid token (`"`, `\`, control or non-ASCII) is refused.
    #[test]
    fn scope_refuses_bad_tokens(
        tokens in prop::collection::vec(scope_token(), 0..5),
        bad in bad_scope_token(),
    ) {
        let raw = tokens.iter().chain([&bad]).cloned().collect::<Vec<_>>().join(" ");
        prop_assert_eq!(ScopeSet::parse(&raw), None);
    }

    /// `is_subset_of` is set inclusion: reflexive, transitive, and equal to `BTreeSet`'s.
    #[test]
    fn scope_subset_is_set_inclusion(
        c in prop::collection::vec(pooled_scope_token(), 0..12),
        keep_b in prop::collection::vec(any::<bool>(), 12),
        keep_a in prop::collection::vec(any::<bool>(), 12),
        other in prop::collection::vec(pooled_scope_token(), 0..6),
    ) {
        let pick = |v: &[String], keep: &[bool]| -> Vec<String> {
            v.iter().zip(keep).filter(|(_, k)| **k).map(|(t, _)| t.clone()).collect()
        };
        let b_tokens = pick(&c, &keep_b);
        let a_tokens = pick(&b_tokens, &keep_a);
        let set = |v: &[String]| ScopeSet::parse(&v.join(" ")).unwrap();
        let (a, b, c, o) = (set(&a_tokens), set(&b_tokens), set(&c), set(&other));
        for s in [&a, &b, &c, &o] {
            prop_assert!(s.is_subset_of(s));
        }
        prop_assert!(a.is_subset_of(&b) && b.is_subset_of(&c) && a.is_subset_of(&c));
        for (x, y) in [(&o, &c), (&c, &o), (&o, &a), (&b, &o)] {
            let xs: BTreeSet<&str> = x.iter().collect();
            let ys: BTreeSet<&str> = y.iter().collect();
            prop_assert_eq!(x.is_subset_of(y), xs.is_subset(&ys));
        }
    }
}

// ---------------------------------------------------------------- R28, A3: CSRF binding

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// R28, A3 (FastMCP #3519): A's form fields with any cookie header that does not carry
    /// A's browser secret are refused, whatever else it carries (B's cookie, edits of A's).
    #[test]
    fn csrf_needs_the_browsers_own_cookie(cookies in cookie_header()) {
        let f = &*FIXTURE;
        prop_assume!(!cookies.contains(&f.secret_a));
        let r = f.decide(&f.tx_a, &f.csrf_a, &cookies);
        prop_assert_eq!(r.map(|_| ()), Err(ConsentError::CsrfMismatch));
    }

    /// A's secret under any other cookie name, or A's cookie sent twice, is refused; A's
    /// cookie among unrelated cookies is accepted (so the refusals above are not vacuous).
    #[test]
    fn csrf_cookie_name_and_uniqueness(
        wrong in wrong_cookie_name(),
        others in prop::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9_-]{0,20}"), 0..4),
        at in any::<Index>(),
    ) {
        let f = &*FIXTURE;
        let own = format!("cg-browser={}", f.secret_a);
        let mut jar: Vec<String> = others.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let refused = |jar: &[String]| f.decide(&f.tx_a, &f.csrf_a, &jar.join("; ")).map(|_| ());
        let mut misnamed = jar.clone();
        misnamed.insert(at.index(jar.len() + 1), format!("{wrong}={}", f.secret_a));
        prop_assert_eq!(refused(&misnamed), Err(ConsentError::CsrfMismatch));
        jar.insert(at.index(jar.len() + 1), own.clone());
        let r = f.decide(&f.tx_a, &f.csrf_a, &jar.join("; "));
        prop_assert!(matches!(r, Ok(Decision::Approved(_))), "{:?}", r);
        jar.push(own);
        prop_assert_eq!(refused(&jar), Err(ConsentError::CsrfMismatch));
    }

    /// R28: with A's own cookie, changing any one character of the CSRF field is refused,
    /// and changing one of the transaction handle names no pending consent.
    #[test]
    fn csrf_field_edits_are_refused(i in any::<Index>(), c in any::<char>()) {
        let f = &*FIXTURE;
        let own = format!("cg-browser={}", f.secret_a);
        let (csrf, tx) = (replace_at(&f.csrf_a, i, c), replace_at(&f.tx_a, i, c));
        prop_assume!(csrf != f.csrf_a);
        let r = f.decide(&f.tx_a, &csrf, &own).map(|_| ());
        prop_assert_eq!(r, Err(ConsentError::CsrfMismatch));
        if tx != f.tx_a {
            let r = f.decide(&tx, &f.csrf_a, &own).map(|_| ());
            let refused = matches!(
                r,
                Err(ConsentError::UnknownTransaction | ConsentError::Params(_))
            );
            prop_assert!(refused, "{:?}", r);
        }
    }
}

// ---------------------------------------------------------------- bounded cost

/// Maximum-size and oversized adversarial inputs: every parser refuses them (bounded
/// input, bounded parameter count, bounded nesting). Speed is the benchmarks' business.
#[test]
fn adversarial_max_size_inputs_are_refused() {
    const BIG: usize = 64 * 1024;
    const MAX_FORM: usize = 16 * 1024;
    let many: String = (0..BIG / 8).map(|i| format!("p{i}=1&")).collect();
    let inputs: Vec<Vec<u8>> = vec![
        vec![b'a'; BIG],
        vec![b'&'; BIG],
        vec![b'%'; BIG],
        "%41".repeat(BIG / 3).into_bytes(),
        "client_id=x&".repeat(BIG / 12).into_bytes(),
        many.clone().into_bytes(),
        many.as_bytes()[..MAX_FORM].to_vec(),
        vec![b'&'; MAX_FORM],
        "%41".repeat(MAX_FORM / 3).into_bytes(),
        format!("client_id={}", "a".repeat(MAX_FORM - 10)).into_bytes(),
        format!("state={}", "%".repeat(MAX_FORM - 6)).into_bytes(),
        vec![b'['; BIG],
        format!(
            "{{\"redirect_uris\":[\"https://a.example/{}\"]}}",
            "a".repeat(BIG)
        )
        .into_bytes(),
    ];
    let f = &*FIXTURE;
    let header = format!("Basic {}", "A".repeat(BIG));
    for input in &inputs {
        let n = input.len();
        assert!(AuthorizeRequest::parse(input).is_err(), "authorize {n}");
        assert!(ConsentForm::parse(input).is_err(), "consent {n}");
        assert!(Callback::parse(input).is_err(), "callback {n}");
        assert!(TokenRequest::parse(input, None).is_err(), "token {n}");
        assert!(
            TokenRequest::parse(input, Some(&header)).is_err(),
            "token+basic {n}"
        );
        assert!(
            f.gate.register(input, NOW, &mut SplitMix64(4)).is_err(),
            "register {n}"
        );
        assert!(
            RedirectUri::parse(&String::from_utf8_lossy(input)).is_err(),
            "redirect {n}"
        );
        for ct in ["application/json", "application/x-www-form-urlencoded"] {
            let resp = UpstreamResponse {
                status: 200,
                content_type: Some(ct),
                body: input,
            };
            assert!(
                f.verified().accept_token_response(resp).is_err(),
                "token response {ct} {n}"
            );
        }
    }
    let bearer = format!("Bearer cga_{}", "A".repeat(BIG));
    assert_eq!(
        f.gate.verify_bearer(Some(&bearer), NOW).map(|_| ()),
        Err(BearerError::Invalid)
    );
    // An oversized Cookie header is refused with its own error, even with A's cookie in
    // it: the decision and the callback fail closed, and say why (A21).
    let padded = format!("cg-browser={}; {}", f.secret_a, "x=1; ".repeat(BIG / 5));
    let r = f.decide(&f.tx_a, &f.csrf_a, &padded).map(|_| ());
    assert_eq!(r, Err(ConsentError::CookieHeaderTooLarge));
    let padded = format!("{}; {}", f.callback_cookies, "x=1; ".repeat(BIG / 5));
    let ctx = BrowserContext::with_cookies(&padded);
    let r = f
        .gate
        .verify_callback(f.callback.clone(), Some(f.txn.clone()), ctx, NOW);
    assert!(
        matches!(r, Err(CallbackError::CookieHeaderTooLarge)),
        "{r:?}"
    );
}
