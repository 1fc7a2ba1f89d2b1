//! Replays of the committed corpus and regressions, the fault self-test of the `hostile`
//! world (the `flow` target's, on the spec World, in `tests/spec_flow.rs`), and the
//! linear-time check of every parser. Run with
//! `cargo test --manifest-path fuzz/Cargo.toml --release` (stable, no libFuzzer).
//!
//! `cargo test … -- --ignored write_seeds` regenerates `corpus/*/seed-*` from the
//! fixture (client ids, forms and codes are deterministic, see `fixture.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
#[cfg(consent_gate_faults)]
use consent_gate::{ConsentPolicy, Faults};

use crate::fixture::{CHALLENGE, F5, F14, VERIFIER, fixture};
#[cfg(consent_gate_faults)]
use crate::hostile::Hostile;
use crate::hostile::{FlowInput, Follow, Op, Who, encode};
use crate::surfaces::{self, Reached};

mod spec_flow;

type Surface = fn(&[u8]) -> Reached;

const SURFACES: [(&str, Surface); 10] = [
    ("authorize_query", surfaces::authorize_query),
    ("consent_form", surfaces::consent_form),
    ("callback_query", surfaces::callback_query),
    ("cookie_header", surfaces::cookie_header),
    ("registration_json", surfaces::registration_json),
    ("token_request", surfaces::token_request),
    ("bearer_header", surfaces::bearer_header),
    ("upstream_token_response", surfaces::upstream_token_response),
    ("redirect_uri", surfaces::redirect_uri),
    ("openid_answer", surfaces::openid_answer),
];

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The committed seeds of `target`, plus its saved regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for d in [dir(&format!("corpus/{target}")), dir("regressions")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let mine = !d.ends_with("regressions") || name.starts_with(&format!("{target}-"));
            if mine && p.is_file() {
                out.push((p.clone(), std::fs::read(&p).expect("readable seed")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn seeds_and_regressions_replay_and_reach_acceptance() {
    for (name, f) in SURFACES {
        let seeds = inputs(name);
        assert!(
            seeds.len() >= 3,
            "{name}: fewer than 3 seeds; run `-- --ignored write_seeds`"
        );
        let best = seeds.iter().map(|(_, data)| f(data)).max();
        assert_eq!(
            best,
            Some(Reached::Accepted),
            "{name}: no seed is accepted any more; regenerate the seeds"
        );
    }
}

#[test]
fn flow_seeds_decode_and_hold() {
    let seeds = inputs("hostile");
    assert!(seeds.len() >= 3);
    for (p, data) in seeds {
        let input = FlowInput::arbitrary_take_rest(Unstructured::new(&data)).expect("decodes");
        assert!(
            input.ops.len() >= 2,
            "{}: decodes to almost nothing",
            p.display()
        );
        if let Err((v, trace)) = crate::hostile::run(&input) {
            panic!("{}: {v}\n{trace:#?}", p.display());
        }
    }
}

fn answer(who: Who, approve: bool, follow: Follow) -> Op {
    Op::Answer {
        who,
        page: 0,
        approve,
        follow,
    }
}

/// An attacker's `/authorize` link, opened in the attacker's browser or, from outside the
/// browser (`Sec-Fetch-Site: none`), in the victim's.
fn link(client: u8, redirect: u8, victim: bool) -> Op {
    Op::Link {
        client,
        redirect,
        victim,
        from_page: false,
    }
}

/// The flow seeds: honest flows and blocked attack attempts (A1–A3, A7–A9, A13), none of which
/// violates anything on correct code.
fn flow_seeds() -> Vec<(&'static str, FlowInput)> {
    use Op::*;
    let (v, a) = (Who::Victim, Who::Attacker);
    let honest = vec![HonestStart { redirect: 0 }, answer(v, true, Follow::All)];
    let mut refresh = honest.clone();
    refresh.extend([
        Tick { step: 1 },
        Refresh { who: v, token: 0 },
        Refresh { who: v, token: 0 },
    ]);
    let a2 = vec![
        link(1, 2, false),
        answer(a, true, Follow::BeforeUpstream),
        Upstream {
            who: v,
            link: 0,
            deny: false,
            follow: Follow::All,
        },
        Leak {
            what: crate::hostile::Leak::Callback,
            idx: 0,
        },
        Callback {
            who: a,
            link: 0,
            lost: false,
        },
    ];
    let a3 = vec![
        Link {
            client: 1,
            redirect: 2,
            victim: true,
            from_page: true,
        },
        ForgedAnswer {
            page: 0,
            legacy: true,
        },
        answer(v, true, Follow::All),
        Redeem {
            who: a,
            code: 0,
            client: 1,
        },
    ];
    let a7 = vec![
        HonestStart { redirect: 1 },
        answer(v, true, Follow::LoseCallbackReply),
        Leak {
            what: crate::hostile::Leak::Code,
            idx: 0,
        },
        Redeem {
            who: a,
            code: 0,
            client: 0,
        },
        Callback {
            who: v,
            link: 0,
            lost: false,
        },
        Redeem {
            who: v,
            code: 0,
            client: 0,
        },
    ];
    let remember = vec![
        HonestStart { redirect: 2 },
        answer(v, true, Follow::All),
        HonestStart { redirect: 2 },
        link(1, 2, true),
        Register { redirect: 0 },
        link(2, 0, true),
    ];
    // A13: the attacker's authorization server answers the victim's upstream request.
    let a13 = vec![
        HonestStart { redirect: 0 },
        answer(v, true, Follow::BeforeUpstream),
        MixUp { link: 0 },
    ];
    let input = |remember, ops| FlowInput { remember, ops };
    vec![
        ("seed-honest", input(false, honest)),
        ("seed-refresh", input(false, refresh)),
        ("seed-a2-forwarded-upstream-url", input(false, a2)),
        ("seed-a3-forged-post", input(false, a3)),
        ("seed-a7-a8-replays", input(false, a7)),
        ("seed-remember", input(true, remember)),
        ("seed-a13-mix-up", input(false, a13)),
    ]
}

/// One short trace per fault that must break a property; the same trace must hold on
/// correct code. Proves the world's checks are not vacuous without any fuzzing (in builds
/// with `--cfg consent_gate_faults`, the only ones with fault switches).
#[cfg(consent_gate_faults)]
fn fault_traces() -> Vec<(&'static str, bool, Vec<Op>)> {
    use Op::*;
    let (v, a) = (Who::Victim, Who::Attacker);
    vec![
        (
            "consent_per_browser",
            true,
            vec![
                HonestStart { redirect: 0 },
                answer(v, true, Follow::All),
                link(1, 2, true),
            ],
        ),
        (
            "csrf_unbound",
            false,
            vec![
                link(1, 2, false),
                ForgedAnswer {
                    page: 0,
                    legacy: true,
                },
            ],
        ),
        (
            "callback_unbound",
            false,
            vec![
                link(1, 2, false),
                answer(a, true, Follow::BeforeUpstream),
                Upstream {
                    who: v,
                    link: 0,
                    deny: false,
                    follow: Follow::All,
                },
            ],
        ),
        (
            "state_reusable",
            false,
            vec![
                HonestStart { redirect: 0 },
                answer(v, true, Follow::LoseCallbackReply),
                Callback {
                    who: v,
                    link: 0,
                    lost: false,
                },
            ],
        ),
        (
            "code_reusable",
            false,
            vec![
                HonestStart { redirect: 0 },
                answer(v, true, Follow::All),
                Redeem {
                    who: v,
                    code: 0,
                    client: 0,
                },
            ],
        ),
        ("redirect_prefix_match", false, vec![link(0, 136, false)]),
        (
            "issuer_unchecked",
            false,
            vec![
                HonestStart { redirect: 0 },
                answer(v, true, Follow::BeforeUpstream),
                MixUp { link: 0 },
            ],
        ),
    ]
}

#[test]
#[cfg(consent_gate_faults)]
fn every_fault_breaks_a_property_and_correct_code_holds() {
    for (name, faults) in Faults::ALL {
        let (_, remember, ops) = fault_traces()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .expect("a trace per fault");
        let policy = if remember {
            ConsentPolicy::Remember
        } else {
            ConsentPolicy::Always
        };
        for (w, expect_violation) in [
            (Hostile::new(policy, faults), true),
            (Hostile::new(policy, Faults::NONE), false),
        ] {
            let mut st = w.init_state();
            let result = ops
                .iter()
                .try_for_each(|op| w.step(&mut st, op).and_then(|()| w.invariants(&st)));
            assert_eq!(result.is_err(), expect_violation, "{name}: {result:?}");
        }
    }
}

#[test]
fn committed_flow_seeds_match_the_encoder() {
    for (name, input) in flow_seeds() {
        let bytes = encode(&input);
        let back = FlowInput::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
        assert_eq!(back.remember, input.remember);
        assert_eq!(
            back.ops, input.ops,
            "the encoder no longer mirrors arbitrary's decoding"
        );
        let committed = std::fs::read(dir(&format!("corpus/hostile/{name}"))).unwrap_or_default();
        assert_eq!(
            committed, bytes,
            "corpus/hostile/{name} is stale: run `-- --ignored write_seeds`"
        );
    }
}

/// The byte seeds: real inputs of each surface, made from the fixture's values.
fn byte_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let fx = fixture();
    let id = fx.public.client_id();
    let conf = fx.confidential.client_id();
    let auth = |r: &str, extra: &str| {
        format!(
            "response_type=code&client_id={id}&redirect_uri={r}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
        )
    };
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{conf}:{}", fx.confidential_secret))
    };
    let s = |x: String| x.into_bytes();
    vec![
        ("authorize_query", "seed-https", s(auth("https%3A%2F%2Fapp.example%2Fcb", "&scope=mcp&resource=https%3A%2F%2Fmcp.example%2Fmcp"))),
        ("authorize_query", "seed-loopback-port", s(auth("http%3A%2F%2F127.0.0.1%3A51234%2Fcb", ""))),
        ("authorize_query", "seed-a10-prefix", s(auth("https%3A%2F%2Fapp.example%2Fcb.evil.example", ""))),
        ("authorize_query", "seed-a12-plain", s(format!("response_type=code&client_id={id}&code_challenge=abc&code_challenge_method=plain"))),
        ("consent_form", "seed-approve", s(format!("{}\nhttps://mcp.example\nsame-origin\n{}", fx.browser_cookie, fx.consent_body))),
        ("consent_form", "seed-deny", s(format!("{}\n\n\n{}", fx.browser_cookie, fx.consent_body.replace("approve", "deny")))),
        ("consent_form", "seed-a3-cross-site", s(format!("\nhttps://evil.example\ncross-site\n{}", fx.consent_body))),
        ("callback_query", "seed-bound", s(format!("{}; {}\n{}", fx.browser_cookie, fx.binding_cookie, fx.callback_query))),
        ("callback_query", "seed-a2-unbound", s(format!("{}\n{}", fx.browser_cookie, fx.callback_query))),
        ("callback_query", "seed-f3-denied", s(format!("{}\nerror=access_denied&error_description=The+user+has+denied+your+application+access.&state={}", fx.binding_cookie, crate::fixture::form_param(fx.callback_query.as_bytes(), "state").unwrap_or_default()))),
        ("cookie_header", "seed-all", s(format!("{}; {}; {}", fx.browser_cookie, fx.binding_cookie, fx.remember_cookie))),
        ("cookie_header", "seed-duplicate", s(format!("{0}; {0}", fx.browser_cookie))),
        ("cookie_header", "seed-quoted", s(format!("other=1;{}", fx.remember_cookie.replacen('=', "=\"", 1) + "\""))),
        ("registration_json", "seed-claude", s(r#"{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}"#.into())),
        ("registration_json", "seed-loopback", s(r#"{"redirect_uris":["http://127.0.0.1:33418/cb","http://[::1]/cb","http://localhost/callback"],"application_type":"native","token_endpoint_auth_method":"none"}"#.into())),
        ("registration_json", "seed-confidential", s(r#"{"redirect_uris":["https://app.example/cb?x=1"],"client_name":"<b>\"x\"</b>","scope":"mcp"}"#.into())),
        ("registration_json", "seed-a17", s(r#"{"redirect_uris":["JaVaScript:alert(1)"]}"#.into())),
        ("token_request", "seed-code-public", s(format!("\ngrant_type=authorization_code&code={}&code_verifier={VERIFIER}&client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb", fx.code_value))),
        ("token_request", "seed-code-basic", s(format!("Basic {basic}\ngrant_type=authorization_code&code={}&code_verifier={VERIFIER}", fx.confidential_code_value))),
        ("token_request", "seed-refresh", s(format!("\ngrant_type=refresh_token&refresh_token={}&client_id={id}&scope=mcp", fx.refresh_token))),
        ("token_request", "seed-revoke", s(format!("\ntoken={}&token_type_hint=access_token&client_id={id}", fx.access_token))),
        ("openid_answer", "seed-google", s(format!("{}\n{GOOGLE_DISCOVERY}", oidc_token(surfaces::OIDC_NONCE, "RS256")))),
        ("openid_answer", "seed-other-trip", s(oidc_token("nonce-of-another-sign-in", "RS256"))),
        ("openid_answer", "seed-alg-none", s(format!("{}\n{{}}", oidc_token(surfaces::OIDC_NONCE, "none")))),
        ("bearer_header", "seed-valid", s(format!("Bearer {}", fx.access_token))),
        ("bearer_header", "seed-a14-upstream", s("Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a".into())),
        ("bearer_header", "seed-lowercase", s(format!("bearer  {}", fx.access_token))),
        ("upstream_token_response", "seed-f5-f14", [b"200\napplication/json; charset=utf-8\n200\n".as_slice(), F5, b"\n\n", F14].concat()),
        ("upstream_token_response", "seed-f6-form", [b"200\napplication/x-www-form-urlencoded; charset=utf-8\n200\naccess_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer\n\n".as_slice(), F14].concat()),
        ("upstream_token_response", "seed-f7-error", s("200\napplication/json; charset=utf-8\n200\n{\"error\":\"bad_verification_code\",\"error_description\":\"The code passed is incorrect or expired.\",\"error_uri\":\"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code\"}\n\n{}".into())),
        ("upstream_token_response", "seed-f8-form-error", s("200\napplication/x-www-form-urlencoded; charset=utf-8\n200\nerror=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.\n\n{}".into())),
        ("upstream_token_response", "seed-f12-f15", s("200\napplication/json; charset=utf-8\n401\n{\"access_token\":\"ghu_16C7e42F292c6912E7710c838347Ae178B4a\",\"expires_in\":28800,\"refresh_token\":\"ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498\",\"refresh_token_expires_in\":15724800,\"token_type\":\"bearer\",\"scope\":\"\"}\n\n{\"message\":\"Bad credentials\",\"documentation_url\":\"https://docs.github.com/rest\",\"status\":\"401\"}".into())),
        ("upstream_token_response", "seed-f13-oidc", s("200\napplication/json\n200\n{\"error\":\"bad_refresh_token\"}\n\n{\"sub\":\"110169484474386276334\",\"email\":\"a@example.com\"}".into())),
        ("redirect_uri", "seed-exact", s("https://app.example/cb\nhttps://app.example/cb".into())),
        ("redirect_uri", "seed-loopback-port", s("http://127.0.0.1/cb\nhttp://127.0.0.1:8080/cb".into())),
        ("redirect_uri", "seed-ipv6", s("http://[::1]:3000/cb?x=1\nhttp://[::1]/cb?x=1".into())),
        ("redirect_uri", "seed-a10-tricks", s("https://app.example\nhttps://app.example.evil.example/cb".into())),
        ("redirect_uri", "seed-a10-loopback", s("http://localhost/cb\nhttp://localhost.evil.example/cb".into())),
    ]
}

/// Google's discovery document, the members the core reads (docs/upstreams.md#google).
const GOOGLE_DISCOVERY: &str = r#"{"issuer":"https://accounts.google.com","authorization_endpoint":"https://accounts.google.com/o/oauth2/v2/auth","token_endpoint":"https://oauth2.googleapis.com/token","userinfo_endpoint":"https://openidconnect.googleapis.com/v1/userinfo","revocation_endpoint":"https://oauth2.googleapis.com/revoke","response_types_supported":["code","token","id_token"],"code_challenge_methods_supported":["plain","S256"]}"#;

/// An ID token in Google's shape for the fuzz surface's client, at the fixture's `NOW`.
fn oidc_token(nonce: &str, alg: &str) -> String {
    use base64::Engine as _;
    let part = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = crate::fixture::NOW.0;
    let claims = serde_json::json!({
        "iss": surfaces::OIDC_ISSUER, "azp": surfaces::OIDC_CLIENT, "aud": surfaces::OIDC_CLIENT,
        "sub": "110169484474386276334", "email": "a@example.com", "email_verified": true,
        "nonce": nonce, "iat": now, "exp": now + 3599,
    });
    let header = format!(r#"{{"alg":"{alg}","kid":"k1","typ":"JWT"}}"#);
    format!(
        "{}.{}.{}",
        part(header.as_bytes()),
        part(claims.to_string().as_bytes()),
        part(b"sig")
    )
}

#[test]
#[ignore = "writes corpus/*/seed-*; run on purpose after a fixture change"]
fn write_seeds() {
    for (target, name, data) in byte_seeds() {
        let d = dir(&format!("corpus/{target}"));
        std::fs::create_dir_all(&d).expect("corpus dir");
        std::fs::write(d.join(name), data).expect("seed written");
    }
    let d = dir("corpus/hostile");
    std::fs::create_dir_all(&d).expect("corpus dir");
    for (name, input) in flow_seeds() {
        std::fs::write(d.join(name), encode(&input)).expect("seed written");
    }
    let d = dir("corpus/flow");
    std::fs::create_dir_all(&d).expect("corpus dir");
    for (name, bytes) in spec_flow::spec_flow_seeds() {
        std::fs::write(d.join(name), bytes).expect("seed written");
    }
}

#[test]
fn committed_byte_seeds_are_current_and_reach_their_outcome() {
    use Reached::{Accepted as A, Parsed as P, Rejected as R};
    // What each seed must do on correct code: success paths stay reachable, and each
    // attack attempt is refused at the step that should refuse it.
    const EXPECTED: &[(&str, Reached)] = &[
        ("seed-https", A),
        ("seed-loopback-port", A),
        ("seed-a10-prefix", P),
        ("seed-a12-plain", P),
        ("seed-approve", A),
        ("seed-deny", A),
        ("seed-a3-cross-site", P),
        ("seed-bound", A),
        ("seed-a2-unbound", P),
        ("seed-f3-denied", P),
        ("seed-all", A),
        ("seed-duplicate", P),
        ("seed-quoted", A),
        ("seed-claude", A),
        ("seed-loopback", A),
        ("seed-confidential", A),
        ("seed-a17", R),
        ("seed-code-public", A),
        ("seed-code-basic", A),
        ("seed-refresh", A),
        ("seed-revoke", A),
        ("seed-valid", A),
        ("seed-a14-upstream", P),
        ("seed-lowercase", A),
        ("seed-f5-f14", A),
        ("seed-f6-form", A),
        ("seed-f7-error", R),
        ("seed-f8-form-error", R),
        ("seed-f12-f15", P),
        ("seed-f13-oidc", R),
        ("seed-exact", A),
        ("seed-ipv6", A),
        ("seed-a10-tricks", P),
        ("seed-a10-loopback", P),
        ("seed-google", A),
        ("seed-other-trip", P),
        ("seed-alg-none", R),
    ];
    for (target, name, data) in byte_seeds() {
        let committed = std::fs::read(dir(&format!("corpus/{target}/{name}"))).unwrap_or_default();
        assert!(
            committed == data,
            "corpus/{target}/{name} is stale: run `-- --ignored write_seeds`"
        );
        let f = SURFACES
            .iter()
            .find(|(n, _)| *n == target)
            .map(|(_, f)| *f)
            .expect("a surface");
        let want = EXPECTED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .expect("an outcome");
        assert_eq!(f(&data), want, "{target}/{name}");
    }
}

/// The fastest of `n` runs (robust against a busy machine).
fn fastest(n: usize, f: impl Fn()) -> Duration {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Worst-case shapes for each surface at a given size: long values, many separators,
/// many escapes, deep or wide JSON.
fn shapes(target: &str, n: usize) -> Vec<Vec<u8>> {
    let rep = |unit: &str| unit.repeat(n / unit.len()).into_bytes();
    let with = |head: &str, unit: &str| [head.as_bytes(), &rep(unit)].concat();
    match target {
        "cookie_header" => vec![
            rep("a=1; "),
            rep(";"),
            rep("="),
            with("__Host-cg-browser=", "A"),
        ],
        "registration_json" => vec![
            with("{\"client_name\":\"", "é"),
            with("{\"redirect_uris\":[", "\"https://a.example/cb\","),
            rep("["),
            with("{\"x\":", "{\"a\":1,"),
        ],
        "bearer_header" => vec![
            with("Bearer cga_", "A"),
            with("Bearer ", " "),
            rep("Bearer "),
        ],
        "upstream_token_response" => vec![
            with("200\napplication/json\n200\n{", "\"a\":\"b\","),
            with("200\napplication/x-www-form-urlencoded\n200\n", "a=%41&"),
            with("200\napplication/json\n200\n", "["),
            with("200\napplication/json\n200\n{\"access_token\":\"", "x"),
        ],
        "redirect_uri" => vec![
            with("http://127.0.0.1/cb\nhttp://127.0.0.1:", "1"),
            with("https://a.example/", "a/"),
            with("http://localhost\n", "%41"),
        ],
        "consent_form" | "callback_query" | "token_request" => {
            vec![
                with("\n", "a=%41&"),
                with("\n", "&"),
                with("\nx=", "%41"),
                with("\n", "%zz"),
            ]
        }
        _ => vec![
            rep("a=%41&"),
            rep("&"),
            with("x=", "%41"),
            with("client_id=", "+"),
            rep("b="),
        ],
    }
}

/// No input makes a parser superlinear: for each surface and each worst-case shape, a
/// 64 KiB input (and one at the surface's largest accepted size) costs at most twice
/// the linear extrapolation from 1 KiB. Prints ns/byte with `--nocapture`.
#[test]
fn parsers_take_linear_time() {
    let _ = fixture();
    let mut report = Vec::new();
    for (name, f) in SURFACES {
        for (shape, _) in shapes(name, 1024).iter().enumerate() {
            let small = &shapes(name, 1024)[shape];
            let t_small = fastest(20, || {
                f(small);
            });
            for big_n in [16 * 1024 - 16, 64 * 1024] {
                let big = &shapes(name, big_n)[shape];
                let t_big = fastest(5, || {
                    f(big);
                });
                let scale = big.len() as f64 / small.len() as f64;
                let bound = t_small.as_secs_f64() * scale * 2.0 + 200e-6;
                report.push(format!(
                    "{name:<24} shape {shape} {:>6} B {:>9.0} ns ({:.1} ns/B) vs {:>5} B {:>7.0} ns",
                    big.len(),
                    t_big.as_secs_f64() * 1e9,
                    t_big.as_secs_f64() * 1e9 / big.len() as f64,
                    small.len(),
                    t_small.as_secs_f64() * 1e9
                ));
                assert!(
                    t_big.as_secs_f64() <= bound,
                    "{name} shape {shape}: {t_big:?} for {} B vs {t_small:?} for {} B",
                    big.len(),
                    small.len()
                );
            }
        }
    }
    println!("{}", report.join("\n"));
}

/// Lists the fault switches for `.ci/fuzz` (one `CG_FAULT=name` line each), so the
/// script runs exactly `Faults::ALL`. Without `--cfg consent_gate_faults` there is none,
/// and `.ci/fuzz` stops.
#[test]
#[cfg(consent_gate_faults)]
fn print_fault_names() {
    assert!(!Faults::ALL.is_empty());
    for (name, _) in Faults::ALL {
        println!("CG_FAULT={name}");
    }
}
