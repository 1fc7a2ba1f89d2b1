//! One test per attack the core can face (docs/requirements.md#attacks, A1–A22; A19–A22 in
//! `attacks/review.rs`), each a real sequence of attacker and victim steps against the real
//! core: two browsers with separate cookie jars, an attacker who registers its own client with `https://evil.example/cb`, crafts
//! links, copies URLs and forms from its own browser into the victim's and replays what it
//! has seen. Each test asserts that the attack fails (the attacker never receives a code or
//! token for the victim) *and* that the honest flow beside it still works.
//!
//! The attacks that a fault switch re-opens are scenario functions in `attacks/scene.rs`
//! returning what the attacker walked away with; its `with_faults` (compiled only with
//! `RUSTFLAGS="--cfg consent_gate_faults"`, as `.ci/run` does) re-runs each with its
//! switch on and asserts that the attack then succeeds, so none of these tests can pass
//! vacuously. A18 (SSRF via CIMD) has no surface here: the gate fetches no client
//! metadata documents (`client_id_metadata_document_supported: false`).

mod common;
#[path = "attacks/scene.rs"]
mod scene;
// A19–A22 and R66: what the outside review found.
#[path = "attacks/review.rs"]
mod review;

use common::*;
use consent_gate::*;
use scene::*;

#[test]
fn a1_seed_confused_deputy() {
    let mut w = Scene::new(GateSetup::default());
    let x = App::new(&w.evil, "x");
    let github_before = w.host.github.authorize_hits;
    // X sends V the link, on a web page or in a mail: our own consent page, naming the
    // host the code would go to, is all V gets (R25–R27).
    for nav in [Nav::CrossSite, Nav::Direct] {
        let page = w.host.page(&mut w.victim, &x, nav);
        assert_eq!(page.status, 200);
        assert!(page.header("location").is_none());
        let text = html(&page);
        assert!(text.contains("id=\"redirect-host\">evil.example<"), "R27");
        assert!(text.contains(EVIL_CB));
    }
    assert_eq!(
        w.host.github.authorize_hits, github_before,
        "nothing upstream"
    );
    assert!(
        w.host.store.count(Kind::Transaction) == 0,
        "no state before approval (R34)"
    );
    assert!(!w.victim.holds_binding_cookie(), "R34");
    // V closes the tab: nothing ever reaches evil.example. If V clicks Deny, evil.example
    // learns only that.
    let page = w.host.page(&mut w.victim, &x, Nav::CrossSite);
    let denied = w.host.click(&mut w.victim, &page, "deny").unwrap();
    assert_eq!(x.receive(&denied, ISSUER), Err("access_denied".into()));
    w.honest_flow_still_works();
}

#[test]
fn a2_forwarded_upstream_url() {
    let (mut w, outcome) = forwarded_upstream_url(Faults::NONE);
    let Err(Blocked::Callback(err)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (err.clone(), err.status()),
        (CallbackError::BindingMismatch, 403)
    );
    assert_page_not_redirect(&err.response());
    w.honest_flow_still_works();
}

#[test]
fn a2_then_a7_the_failed_callback_burns_the_state() {
    // A2, and then the callback URL V's browser was sent to (V's GitHub code, X's `state`)
    // leaks to X, whose browser does hold the binding cookie. V's failed attempt took the
    // transaction, so X's replay finds nothing (found by the `flow` fuzzer).
    let mut w = Scene::new(GateSetup::default());
    let x = App::new(&w.evil, "x");
    let to_github = w.host.approved(&mut w.attacker, &x);
    let back = w.host.through_github(&w.victim, &to_github);
    let err = w.host.callback(&mut w.victim, &back).unwrap_err();
    assert_eq!(err, CallbackError::BindingMismatch);
    assert!(w.attacker.holds_binding_cookie());
    let replay = w.host.callback(&mut w.attacker, &back);
    assert_eq!(replay.unwrap_err(), CallbackError::UnknownTransaction, "A7");
    w.honest_flow_still_works();
}

#[test]
fn a3_csrf_on_consent() {
    // A modern browser: Fetch Metadata gives the cross-site POST away (defence in depth;
    // SameSite=Lax also withholds the browser cookie).
    for origin in ["https://evil.example", "null"] {
        let (_, outcome) = csrf_on_consent(Faults::NONE, false, origin);
        assert_blocked!(outcome, Blocked::Consent(ConsentError::CrossSite));
    }
    // A browser with neither Fetch Metadata nor SameSite, posting from a no-referrer page
    // (`Origin: null` proves nothing): it sends V's own browser cookie, and X's token is
    // bound to X's browser secret, not V's (R28).
    let (mut w, outcome) = csrf_on_consent(Faults::NONE, true, "null");
    let Err(Blocked::Consent(err)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (err.clone(), err.status()),
        (ConsentError::CsrfMismatch, 403)
    );
    assert_page_not_redirect(&err.response());
    assert!(!w.victim.holds_binding_cookie(), "none set in V's browser");
    w.honest_flow_still_works();
}

#[test]
fn a4_remembered_consent_is_per_client_and_never_cross_site() {
    let mut w = Scene::new(GateSetup {
        policy: ConsentPolicy::Remember,
        ..GateSetup::default()
    });
    // C's own request, started by V here: the remembered consent applies (R31).
    let c = App::new(&w.legit, "again");
    let silent = w.host.page(&mut w.victim, &c, Nav::Direct);
    assert_eq!(silent.status, 303);
    assert!(location(&silent).starts_with(&w.host.github.authorize_endpoint));
    // The AS in the middle: X's AS bounces V's browser to us with C's id, redirect URI,
    // state and challenge passed through. A cross-site navigation prompts again.
    let bounced = w.host.page(&mut w.victim, &c, Nav::CrossSite);
    assert_eq!(
        bounced.status, 200,
        "R31: prompt on a cross-site navigation"
    );
    // If V approves anyway, C learns from `iss` that the code is ours, not X's AS's (R47).
    let up = w.host.click(&mut w.victim, &bounced, "approve").unwrap();
    let back = w.host.through_github(&w.victim, &up);
    let to_c = w.host.callback(&mut w.victim, &back).unwrap();
    assert_eq!(query_params(location(&to_c))["iss"], ISSUER);
    // A browser that sends no Fetch Metadata prompts too (fail closed).
    let mut old = w.victim.clone();
    old.legacy = true;
    assert_eq!(w.host.page(&mut old, &c, Nav::Direct).status, 200);
    // A remembered consent for C does not apply to X, even on a direct navigation.
    let (mut w, outcome) = remembered_consent_elsewhere(Faults::NONE);
    assert_blocked!(outcome, Blocked::ConsentPageShown);
    w.honest_flow_still_works();
}

/// What a browser does with a response loaded in a frame on another site.
fn may_be_framed(reply: &Reply) -> bool {
    let csp = reply.header("content-security-policy").unwrap_or_default();
    let xfo = reply.header("x-frame-options");
    !(csp.contains("frame-ancestors 'none'") || xfo == Some("DENY"))
}

#[test]
fn a5_clickjacking_headers() {
    let mut w = Scene::new(GateSetup::default());
    let x = App::new(&w.evil, "x");
    // X frames our pages invisibly on a game page: the consent page and every error page
    // refuse to render in a frame (R29), with both headers.
    let consent = w.host.page(&mut w.victim, &x, Nav::CrossSite);
    let link = x.query_with(|p| p.truncate(2));
    let bad_link = w.host.get_authorize(&mut w.victim, &link, Nav::CrossSite);
    let form = "tx=AAAA&csrf=x&decision=approve";
    let bad_post = w.host.post_consent(&mut w.victim, form, Nav::CrossSite);
    let bad_callback = w.host.callback(&mut w.victim, "/callback?code=c&state=s");
    let pages = [
        consent,
        bad_link.unwrap_err().response(),
        bad_post.unwrap_err().response(),
        bad_callback.unwrap_err().response(),
    ];
    for page in &pages {
        assert!(!may_be_framed(page));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
    w.honest_flow_still_works();
}

#[test]
fn a6_login_csrf_code_injection() {
    let mut w = Scene::new(GateSetup::default());
    // V has a flow of its own in progress: approved, binding cookie set, going to GitHub.
    let v = App::new(&w.legit, "v");
    let v_up = w.host.approved(&mut w.victim, &v);
    // X runs a flow for the same client with its own GitHub account and captures our
    // callback URL without following it.
    let x = App::new(&w.legit, "x");
    let x_back = w.host.back_from_github(&mut w.attacker, &x);
    // X makes V's browser load it: V holds a binding cookie, but not that transaction's.
    let err = w.host.callback(&mut w.victim, &x_back).unwrap_err();
    assert_eq!(err, CallbackError::BindingMismatch, "R35");
    assert_page_not_redirect(&err.response());
    // A static or guessed state names no transaction (R33).
    let guessed = x_back.replace(&query_params(&x_back)["state"], "c3RhdGU");
    let err = w.host.callback(&mut w.victim, &guessed).unwrap_err();
    assert_eq!(err, CallbackError::UnknownTransaction);
    // V's own flow completes, as V.
    let back = w.host.through_github(&w.victim, &v_up);
    let to_c = w.host.callback(&mut w.victim, &back).unwrap();
    let who = w.redeem_loot(&v, &to_c).unwrap();
    assert_principal(&who, VICTIM, &w.legit);
}

#[test]
fn a7_state_replay() {
    let (mut w, outcome) = state_replay(Faults::NONE);
    assert_blocked!(
        outcome,
        Blocked::Callback(CallbackError::UnknownTransaction)
    );
    // The callback URL of a completed flow, replayed in X's browser or in V's (R36).
    let c = App::new(&w.legit, "done");
    let back = w.host.back_from_github(&mut w.victim, &c);
    assert!(w.host.callback(&mut w.victim, &back).is_ok());
    for browser in [&mut w.attacker, &mut w.victim] {
        let err = w.host.callback(browser, &back).unwrap_err();
        assert_eq!(err, CallbackError::UnknownTransaction);
    }
    w.honest_flow_still_works();
}

#[test]
fn a8_code_replay_revokes() {
    let (mut w, outcome, victim_tokens) = code_replay(Faults::NONE);
    let Err(Blocked::Token(err)) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(matches!(err, TokenError::CodeReused { .. }), "R43: {err:?}");
    // The tokens already issued from that code are revoked (R43).
    let revoked = w.host.bearer(victim_tokens.access());
    assert_eq!(revoked, Err(BearerError::Revoked));
    let legit = w.legit.clone();
    let rt = victim_tokens.refresh().unwrap();
    let err = w.host.refresh(&legit, rt, None).unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("grant revoked"));
    // A stolen code replayed without the verifier is invalid and revokes nothing (R43: an
    // invalid replay must not be a lever to log the victim out).
    let c = App::new(&legit, "later");
    let code = w.host.code_for(&mut w.victim, &c);
    let tokens = w.host.redeem(&legit, &code, &c.verifier, None).unwrap();
    let err = w
        .host
        .redeem(&legit, &code, &"x".repeat(43), None)
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("PKCE verification failed"));
    assert!(Step::from(err.clone()).ops.is_empty(), "nothing to delete");
    assert!(w.host.bearer(tokens.access()).is_ok());
    w.honest_flow_still_works();
}

#[test]
fn a9_code_injection_other_client() {
    let mut w = Scene::new(GateSetup::default());
    let a = w
        .host
        .register_client("Acme Web", "https://app.example/cb", "client_secret_basic");
    let evil = w.evil.clone();
    // X crafts a link for A with X's own PKCE pair; V approves (it is the real A, sending
    // to app.example); the code leaks from A's page (Referer, logs).
    let x_for_a = App::new(&a, "x");
    let page = w.host.page(&mut w.victim, &x_for_a, Nav::CrossSite);
    let up = w.host.click(&mut w.victim, &page, "approve").unwrap();
    let back = w.host.through_github(&w.victim, &up);
    let to_a = w.host.callback(&mut w.victim, &back).unwrap();
    let code = query_params(location(&to_a))["code"].clone();
    // X cannot authenticate as A, so it redeems as its own client, with its verifier.
    let err = w
        .host
        .redeem(&evil, &code, &x_for_a.verifier, None)
        .unwrap_err();
    assert_eq!(
        err,
        TokenError::InvalidGrant("code was issued to another client")
    );
    let mut as_a = a.clone();
    as_a.secret = Some("guessed".into());
    let err = w
        .host
        .redeem(&as_a, &code, &x_for_a.verifier, None)
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidClient);
    // The other way: X's own code (its account, its client) injected into A's callback;
    // A redeems it with its credentials and verifier.
    let x_code = w.host.code_for(&mut w.attacker, &App::new(&evil, "x-own"));
    let a_app = App::new(&a, "a");
    let a_uri = Some(a_app.redirect_uri.as_str());
    let err = w
        .host
        .redeem(&a, &x_code, &a_app.verifier, a_uri)
        .unwrap_err();
    assert_eq!(
        err,
        TokenError::InvalidGrant("code was issued to another client")
    );
    w.honest_flow_still_works();
    let tokens = w.host.login(&mut w.victim, &a_app);
    let who = w.host.bearer(tokens.access()).unwrap();
    assert_principal(&who, VICTIM, &a);
}

#[test]
fn a10_redirect_uri_tricks() {
    let (mut w, outcome) = redirect_trick(Faults::NONE);
    let Err(Blocked::Authorize(err)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(err, AuthorizeError::RedirectUriMismatch);
    assert_page_not_redirect(&err.response());
    // Every trick of docs/requirements.md#a10 against an https and a loopback registration: an
    // error page (R16), never a redirect (R17, R18).
    let web = w.host.register_public("Web", "https://app.example/cb");
    let cli = w.host.register_public("CLI", "http://127.0.0.1/cb");
    let tricks = [
        (&web, "https://app.example/cb/../evil"),
        (&web, "https://app.example/cb?x="),
        (&web, "https://app.example/cb/"),
        (&web, "https://app.example/CB"),
        (&web, "HTTPS://APP.example/cb"),
        (&web, "https://app.example:443/cb"),
        (&web, "https://app.example.evil.com/cb"),
        (&web, "https://app.example@evil.com/cb"),
        (&web, "https://app.example/cb%2F..%2Fevil"),
        (&web, "https://app.example/cb#x"),
        (&web, "http://app.example/cb"),
        (&cli, "http://127.0.0.1.evil.com:8080/cb"),
        (&cli, "http://localhost.evil.com/cb"),
        (&cli, "http://127.0.0.1:9/other"),
        (&cli, "http://127.0.0.1:9@evil.com/cb"),
        (&cli, "http://127.0.0.1:99999/cb"),
        (&cli, "http://localhost:9/cb"),
        (&cli, "https://127.0.0.1:9/cb"),
    ];
    for (client, trick) in tricks {
        let mut x = App::new(client, "x");
        x.redirect_uri = trick.into();
        let err = w
            .host
            .get_authorize(&mut w.victim, &x.query(), Nav::CrossSite);
        let err = err.unwrap_err();
        assert_eq!(err, AuthorizeError::RedirectUriMismatch, "{trick}");
        assert_page_not_redirect(&err.response());
    }
    // Only the port of a loopback redirect may vary (R18).
    let mut ok = App::new(&cli, "ok");
    ok.redirect_uri = "http://127.0.0.1:9/cb".into();
    assert!(w.host.code_for(&mut w.victim, &ok).len() >= 43);
    w.honest_flow_still_works();
}

#[test]
fn a11_loopback_warning() {
    let mut w = Scene::new(GateSetup::default());
    // Local malware registers a client named like C with a loopback redirect on its own
    // port and opens the link. Matching cannot tell; the page says where access goes and
    // warns that it is a program on this computer (R27).
    let malware = w
        .host
        .register_public("Claude Desktop", "http://127.0.0.1:45678/cb");
    let page = w
        .host
        .page(&mut w.victim, &App::new(&malware, "m"), Nav::Direct);
    let text = html(&page);
    assert!(text.contains("Local application"));
    assert!(text.contains("id=\"redirect-host\">127.0.0.1<"));
    assert!(text.contains("http://127.0.0.1:45678/cb"));
    let x = App::new(&w.evil, "x");
    let https_page = w.host.page(&mut w.victim, &x, Nav::Direct);
    assert!(!html(&https_page).contains("Local application"));
    w.honest_flow_still_works();
}

type Edit = fn(&mut Vec<(&'static str, String)>);

#[test]
fn a12_pkce_downgrade() {
    let mut w = Scene::new(GateSetup::default());
    let x = App::new(&w.legit, "x");
    // X starts a flow without a usable S256 challenge: an error page (R19).
    let downgrades: [Edit; 5] = [
        |p| p.retain(|(n, _)| *n != "code_challenge"),
        |p| p.retain(|(n, _)| *n != "code_challenge_method"),
        |p| p[5].1 = "plain".into(),
        |p| p[5].1 = "s256".into(),
        |p| p[4].1 = "tooshort".into(),
    ];
    for downgrade in downgrades {
        let link = x.query_with(downgrade);
        let err = w.host.get_authorize(&mut w.victim, &link, Nav::CrossSite);
        let err = err.unwrap_err();
        assert_eq!(err, AuthorizeError::PkceRequired, "{link}");
        assert_page_not_redirect(&err.response());
    }
    // X gets a code with its own challenge and injects it into V's client C, which sends
    // its own verifier: refused (R44).
    let x_code = w.host.code_for(&mut w.attacker, &x);
    let c = App::new(&w.legit, "v");
    let c_uri = Some(c.redirect_uri.as_str());
    let err = w
        .host
        .redeem(&c.client, &x_code, &c.verifier, c_uri)
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("PKCE verification failed"));
    // A code redemption without a verifier is malformed.
    let id = c.client.id.as_str();
    let body = encode([
        ("grant_type", "authorization_code"),
        ("code", "c"),
        ("client_id", id),
    ]);
    let err = w.host.post_token(&body, None).unwrap_err();
    assert_eq!(err.oauth_error(), "invalid_request");
    w.honest_flow_still_works();
}

#[test]
fn a13_upstream_issuer_mismatch() {
    let mut w = Scene::new(GateSetup::default());
    // The browser comes back to our callback with another authorization server's `iss`
    // (mix-up): refused before the code goes to any token endpoint (RFC 9207 §2.4).
    w.host.github.send_iss = Some(EVIL_AS.into());
    let c = App::new(&w.legit, "v");
    let back = w.host.back_from_github(&mut w.victim, &c);
    let tokens_before = w.host.github.issued_tokens().len();
    let err = w.host.callback(&mut w.victim, &back).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (CallbackError::IssuerMismatch, 403)
    );
    assert_page_not_redirect(&err.response());
    assert_eq!(
        w.host.github.issued_tokens().len(),
        tokens_before,
        "no exchange"
    );
    w.host.github.send_iss = Some(w.host.github.issuer.clone());
    w.honest_flow_still_works();
    // The mix-up proper: X's authorization server answers V's authorization request with a
    // code X got at GitHub for its own account; only `iss` tells the answer apart.
    let (mut w, outcome) = issuer_mix_up(Faults::NONE);
    assert_blocked!(outcome, Blocked::Callback(CallbackError::IssuerMismatch));
    w.honest_flow_still_works();
}

#[test]
fn a14_token_passthrough_and_audience() {
    let mut w = Scene::new(GateSetup::default());
    let tokens = w.host.login(&mut w.victim, &App::new(&w.legit, "v"));
    // The upstream's tokens never reach the client (R41), and are refused as bearers (R50).
    let body = String::from_utf8(tokens.reply.body.clone()).unwrap();
    for gho in w.host.github.issued_tokens() {
        assert!(!body.contains(&gho));
        assert_eq!(w.host.bearer(&gho), Err(BearerError::Invalid));
    }
    // A token from the same server key, minted for another resource: wrong audience (R49).
    let mut other = Host::with(GateSetup {
        resource: Some("http://127.0.0.1:8080/other-mcp"),
        ..GateSetup::default()
    });
    let client = other.register_public("Acme", "http://127.0.0.1:9/cb");
    let mut browser = other.browser(VICTIM);
    let foreign = other.login(&mut browser, &App::new(&client, "o"));
    assert!(other.bearer(foreign.access()).is_ok());
    let wrong = Err(BearerError::WrongAudience);
    assert_eq!(w.host.bearer(foreign.access()), wrong);
    assert_eq!(other.bearer(tokens.access()), wrong);
    // An edited token, another scheme, or none: refused.
    let mut edited = tokens.access().to_owned().into_bytes();
    edited[30] = if edited[30] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    assert_eq!(w.host.bearer(&edited), Err(BearerError::Invalid));
    let (gate, now) = (&w.host.gate, w.host.now);
    let basic = format!("Basic {}", tokens.access());
    assert_eq!(
        gate.verify_bearer(Some(&basic), now).unwrap_err(),
        BearerError::Missing
    );
    assert_eq!(
        gate.verify_bearer(None, now).unwrap_err(),
        BearerError::Missing
    );
    w.honest_flow_still_works();
}

#[test]
fn a15_no_redirect_before_consent() {
    let mut w = Scene::new(GateSetup::default());
    let phish = w.host.register_public("Acme", "https://phish.example/cb");
    let p = App::new(&phish, "p");
    // Links that fail validation: each an error page on our origin (R16, R32), never a
    // redirect to phish.example.
    let edits: [Edit; 6] = [
        |q| q.push(("scope", "admin".into())),
        |q| q[0].1 = "token".into(),
        |q| q.push(("resource", "https://other.example/mcp".into())),
        |q| q[2].1 = "https://phish.example/other".into(),
        |q| q[1].1 = "no-such-client".into(),
        |q| q.push(("state", "second".into())),
    ];
    for edit in edits {
        let link = p.query_with(edit);
        let err = w.host.get_authorize(&mut w.victim, &link, Nav::CrossSite);
        let err = err.unwrap_err();
        assert!(!err.redirect_allowed(), "{err:?}");
        let page = err.response();
        assert!((400..=500).contains(&page.status));
        assert_page_not_redirect(&page);
    }
    // Only after V has seen our page naming phish.example does Deny go there (R32).
    let page = w.host.page(&mut w.victim, &p, Nav::CrossSite);
    assert!(html(&page).contains("id=\"redirect-host\">phish.example<"));
    let denied = w.host.click(&mut w.victim, &page, "deny").unwrap();
    assert_eq!(p.receive(&denied, ISSUER), Err("access_denied".into()));
    w.honest_flow_still_works();
}

#[test]
fn a16_tampered_transaction_record() {
    let mut w = Scene::new(GateSetup::default());
    let c = App::new(&w.legit, "v");
    let up = w.host.approved(&mut w.victim, &c);
    // Someone with write access to the store points the transaction at evil.example.
    let [txn] =
        <[TransactionRecord; 1]>::try_from(w.host.store.all::<TransactionRecord>()).unwrap();
    let edited = tamper(&txn, |v| v["details"]["redirect_uri"] = EVIL_CB.into());
    w.host.store.put(&edited);
    let back = w.host.through_github(&w.victim, &up);
    let err = w.host.callback(&mut w.victim, &back).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (CallbackError::TamperedRecord, 500)
    );
    assert_page_not_redirect(&err.response());
    // Our `state` is an opaque handle carrying nothing (R38): an edited one finds nothing.
    let back = w.host.back_from_github(&mut w.victim, &c);
    let state = query_params(&back)["state"].clone();
    let edited = back.replace(&state, &format!("{state}A"));
    let err = w.host.callback(&mut w.victim, &edited).unwrap_err();
    assert_eq!(err, CallbackError::UnknownTransaction);
    w.honest_flow_still_works();
}

/// The store key of a code or refresh token, as the token endpoint computes it.
fn token_record_key(grant_type: &str, value: &str) -> StoreKey {
    let body = match grant_type {
        "authorization_code" => format!("code={value}&code_verifier={}", "v".repeat(43)),
        _ => format!("refresh_token={value}"),
    };
    let body = format!("grant_type={grant_type}&client_id=c&{body}");
    TokenRequest::parse(body.as_bytes(), None)
        .unwrap()
        .record_key()
}

#[test]
fn a16_tampered_records_of_every_kind() {
    let mut w = Scene::new(GateSetup::default());
    let (legit, evil) = (w.legit.clone(), w.evil.clone());
    // A client registration whose redirect URI was swapped.
    let original = w
        .host
        .store
        .get::<ClientRecord>(&StoreKey::client(&legit.id))
        .unwrap();
    let swapped = tamper(&original, |v| v["redirect_uris"][0] = EVIL_CB.into());
    w.host.store.put(&swapped);
    let mut c = App::new(&legit, "v");
    c.redirect_uri = EVIL_CB.into();
    let err = w.host.get_authorize(&mut w.victim, &c.query(), Nav::Direct);
    assert_eq!(err.unwrap_err(), AuthorizeError::TamperedRecord);
    w.host.store.put(&original);
    // A pending consent pointed at evil.example before V clicks.
    let c = App::new(&legit, "v");
    let page = w.host.page(&mut w.victim, &c, Nav::Direct);
    let [pending] = <[PendingConsent; 1]>::try_from(w.host.store.all::<PendingConsent>()).unwrap();
    let edited = tamper(&pending, |v| v["details"]["redirect_uri"] = EVIL_CB.into());
    w.host.store.put(&edited);
    let err = w.host.click(&mut w.victim, &page, "approve").unwrap_err();
    assert_eq!(err, ConsentError::TamperedRecord);
    // A stolen code whose PKCE challenge the thief replaced with its own.
    let code = w.host.code_for(&mut w.victim, &c);
    let key = token_record_key("authorization_code", &code);
    let record = w.host.store.get::<CodeRecord>(&key).unwrap();
    let x_verifier = "x".repeat(43);
    let challenge = s256(&x_verifier);
    let edited = tamper(&record, |v| {
        v["details"]["code_challenge"] = challenge.into()
    });
    w.host.store.put(&edited);
    let err = w.host.redeem(&legit, &code, &x_verifier, None).unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("unknown code"));
    // A redeemed code marked unredeemed again, to replay it.
    let c = App::new(&legit, "v2");
    let code = w.host.code_for(&mut w.victim, &c);
    let tokens = w.host.redeem(&legit, &code, &c.verifier, None).unwrap();
    let key = token_record_key("authorization_code", &code);
    let redeemed = w.host.store.get::<CodeRecord>(&key).unwrap();
    assert!(redeemed.is_redeemed());
    w.host
        .store
        .put(&tamper(&redeemed, |v| v["redeemed"] = false.into()));
    let err = w.host.redeem(&legit, &code, &c.verifier, None).unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("unknown code"));
    // A refresh token handed over to X's client; a rotated one made fresh again.
    let rt = tokens.refresh().unwrap();
    let key = token_record_key("refresh_token", rt);
    let record = w.host.store.get::<RefreshRecord>(&key).unwrap();
    let handed = tamper(&record, |v| v["client_id"] = evil.id.clone().into());
    w.host.store.put(&handed);
    let err = w.host.refresh(&evil, rt, None).unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("unknown refresh token"));
    w.host.store.put(&record);
    let next = w.host.refresh(&legit, rt, None).unwrap();
    let rotated = w.host.store.get::<RefreshRecord>(&key).unwrap();
    assert!(rotated.is_rotated());
    let fresh = tamper(&rotated, |v| v["rotated_at"] = serde_json::Value::Null);
    w.host.store.put(&fresh);
    w.host.advance(60);
    let err = w.host.refresh(&legit, rt, None).unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("unknown refresh token"));
    assert!(w.host.bearer(next.access()).is_ok());
    w.honest_flow_still_works();
}

/// Core bug (reported): `BearerClaims::confirm` does not verify the grant's MAC, so a grant
/// edited in the store is trusted at the MCP endpoint. Here X, with write access to the
/// store, copies V's upstream token into X's own grant: X's MCP token would then act on
/// V's GitHub account whenever the server calls the upstream for X.
#[test]
fn a16_tampered_grant_is_refused_at_the_bearer_check() {
    let mut w = Scene::new(GateSetup::default());
    let v_tokens = w.host.login(&mut w.victim, &App::new(&w.legit, "v"));
    let x_tokens = w.host.login(&mut w.attacker, &App::new(&w.evil, "x"));
    let v_grant = *w.host.bearer(v_tokens.access()).unwrap().grant_key();
    let v_upstream = w.host.store.get::<GrantRecord>(&v_grant).unwrap();
    let stolen = serde_json::to_value(&v_upstream).unwrap()["user"].clone();
    let x_grant = *w.host.bearer(x_tokens.access()).unwrap().grant_key();
    let record = w.host.store.get::<GrantRecord>(&x_grant).unwrap();
    w.host.store.put(&tamper(&record, |v| v["user"] = stolen));
    assert_eq!(w.host.bearer(x_tokens.access()), Err(BearerError::Revoked));
}

#[test]
fn a17_script_scheme_redirect() {
    let mut w = Scene::new(GateSetup::default());
    for uri in [
        "javascript:alert(document.domain)",
        "JaVaScript:alert(1)",
        "javascript://evil.example/%0aalert(1)",
        "\tjavascript:alert(1)",
        " https://app.example/cb",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "http://evil.example/cb",
        "https://user:pw@app.example/cb",
    ] {
        let body = serde_json::json!({"redirect_uris": ["https://ok.example/cb", uri],
            "token_endpoint_auth_method": "none"});
        let err = w.host.register(&body.to_string()).unwrap_err();
        assert_eq!(err.oauth_error(), "invalid_redirect_uri", "{uri:?}");
        assert_eq!(err.response().status, 400);
    }
    // At redirect time: a stored registration edited to hold one (it never passed
    // registration) does not even load: stored redirect URIs are validated again (R61).
    let key = StoreKey::client(&w.legit.id);
    let original = w.host.store.get::<ClientRecord>(&key).unwrap();
    let script = "javascript://evil.example/%0aalert(1)";
    let mut v = serde_json::to_value(&original).unwrap();
    v["redirect_uris"][0] = script.into();
    assert!(serde_json::from_value::<ClientRecord>(v).is_err());
    // An edit that stays a valid URI loads, and is refused before any redirect by its MAC.
    let other = "https://evil.example/cb";
    let edited = tamper(&original, |v| v["redirect_uris"][0] = other.into());
    w.host.store.put(&edited);
    let mut c = App::new(&w.legit, "v");
    c.redirect_uri = other.into();
    let err = w.host.get_authorize(&mut w.victim, &c.query(), Nav::Direct);
    let err = err.unwrap_err();
    assert_eq!(err, AuthorizeError::TamperedRecord);
    assert_page_not_redirect(&err.response());
    w.host.store.put(&original);
    w.honest_flow_still_works();
}
