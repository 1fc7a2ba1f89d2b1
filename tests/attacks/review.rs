//! The attacks an outside review of the gate found (A19–A22) and the upstream token's
//! expiry (R66), each as a real sequence against the core with the honest flow beside it.
//! Each protection here was seen to fail its test when removed by hand (the closing note
//! of the change that added it says how).

use super::*;

/// The `Cookie` header's bound (the core reads 8 KiB and refuses more, A21).
const MAX_COOKIE_HEADER: usize = 8 * 1024;

fn register_one(w: &mut Scene, uri: &str) -> Result<Client, RegistrationError> {
    let body = serde_json::json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none",
        "client_name": "Claude"});
    w.host.register(&body.to_string()).map(|(c, _)| c)
}

#[test]
fn a19_redirect_uris_that_show_one_host_and_send_to_another_are_refused() {
    let mut w = Scene::new(GateSetup::default());
    for uri in [
        // A WHATWG browser reads `\` as `/`: it goes to attacker.example.
        "https://attacker.example\\@claude.ai/cb",
        "https://attacker.example\\claude.ai/cb",
        // Userinfo only serves to deceive.
        "https://claude.ai@attacker.example/cb",
        "http://localhost:80@attacker.example/cb",
        "http://127.0.0.1@attacker.example/cb",
        "https://@attacker.example/cb",
        // Control characters and whitespace anywhere.
        "https://claude.ai\t.attacker.example/cb",
        "https://claude.ai/c\nb",
        "https://claude.ai /cb",
        // Hosts the browser spells otherwise than the text.
        "https://claude%2eai/cb",
        "https://CLAUDE.ai/cb",
        "https://bücher.example/cb",
        "http://2130706433/cb",
        "http://127.1/cb",
        // Default ports written out, dot segments.
        "https://claude.ai:443/cb",
        "http://127.0.0.1:80/cb",
        "https://claude.ai/x/../cb",
    ] {
        let err = register_one(&mut w, uri).unwrap_err();
        assert_eq!(err.oauth_error(), "invalid_redirect_uri", "{uri:?}");
        assert_eq!(err.response().status, 400, "{uri:?}");
    }
    // What registers is shown as the browser will go: the page's host and its CSP
    // `form-action` come from the parsed URL.
    let ok = register_one(&mut w, "https://claude.ai/api/mcp/auth_callback").unwrap();
    let page = w.host.page(&mut w.victim, &App::new(&ok, "v"), Nav::Direct);
    let body = html(&page);
    assert!(
        body.contains(">claude.ai<"),
        "the host stands alone: {body}"
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("https://claude.ai"), "{csp}");
    assert!(!csp.contains("attacker"), "{csp}");
    w.honest_flow_still_works();
}

#[test]
fn a20_a_same_site_navigation_never_applies_a_remembered_consent() {
    let mut w = Scene::new(GateSetup {
        policy: ConsentPolicy::Remember,
        ..GateSetup::default()
    });
    let c = App::new(&w.legit, "again");
    // A page on a sibling subdomain (or, on loopback, another port) links to C's own
    // authorization: the user did not start it here, so the page is shown (R71).
    let from_sibling = w.host.page(&mut w.victim, &c, Nav::SameSite);
    assert_eq!(
        from_sibling.status, 200,
        "R71: prompt on a same-site navigation"
    );
    assert!(html(&from_sibling).contains("name=\"csrf\""));
    // The same request started by the user goes straight upstream (R31).
    let direct = w.host.page(&mut w.victim, &c, Nav::Direct);
    assert_eq!(direct.status, 303);
    assert!(location(&direct).starts_with(&w.host.github.authorize_endpoint));
    w.honest_flow_still_works();
}

/// `browser` with a cookie a sibling subdomain planted, so that its `Cookie` header to us
/// is `len` bytes long.
fn padded(w: &Scene, browser: &Browser, len: usize) -> Browser {
    let mut b = browser.clone();
    let now = w.host.now;
    let base = b.request(Nav::Direct, now).context().cookies.len();
    let name = "pad";
    let overhead = name.len() + 1 + if base == 0 { 0 } else { 2 };
    b.plant(name, &"x".repeat(len - base - overhead));
    assert_eq!(b.request(Nav::Direct, now).context().cookies.len(), len);
    b
}

#[test]
fn a21_an_oversized_cookie_header_gets_a_page_that_says_why() {
    let mut w = Scene::new(GateSetup::default());
    let c = App::new(&w.legit, "padded");
    let says_why = |reply: &Reply| {
        assert_eq!(reply.status, 400);
        assert!(html(reply).contains("Too many cookies"), "{}", html(reply));
        assert_page_not_redirect(reply);
    };
    // GET /authorize: refused with its own error, not a page whose form must fail.
    let mut over = padded(&w, &w.victim, MAX_COOKIE_HEADER + 1);
    let err = w.host.get_authorize(&mut over, &c.query(), Nav::Direct);
    let err = err.unwrap_err();
    assert_eq!(err, AuthorizeError::CookieHeaderTooLarge);
    says_why(&err.response());
    // At exactly the bound everything works.
    let mut at = padded(&w, &w.victim, MAX_COOKIE_HEADER);
    let page = w.host.page(&mut at, &c, Nav::Direct);
    assert_eq!(page.status, 200);
    // POST /authorize: padded after the page was shown. Not a CSRF mismatch.
    let page = w.host.page(&mut w.victim, &c, Nav::Direct);
    let mut over = padded(&w, &w.victim, MAX_COOKIE_HEADER + 100);
    let err = w.host.click(&mut over, &page, "approve").unwrap_err();
    assert_eq!(err, ConsentError::CookieHeaderTooLarge);
    says_why(&err.response());
    // GET /callback: padded after approval. Not a binding mismatch.
    let to_github = w.host.approved(&mut w.victim, &c);
    let back = w.host.through_github(&w.victim, &to_github);
    let mut over = padded(&w, &w.victim, 2 * MAX_COOKIE_HEADER);
    let err = w.host.callback(&mut over, &back).unwrap_err();
    assert_eq!(err, CallbackError::CookieHeaderTooLarge);
    assert_eq!(err.oauth_error(), "invalid_request");
    says_why(&err.response());
    // The browser without the planted cookie signs in as before.
    w.honest_flow_still_works();
}

#[test]
fn a22_a_slow_first_refresh_never_overwrites_a_rotated_successor() {
    let mut w = Scene::new(GateSetup::default());
    let app = App::new(&w.legit, "race");
    let tokens = w.host.login(&mut w.victim, &app);
    let first = tokens.refresh().expect("a refresh token").to_owned();
    // Two requests refresh `first` at once: both read its record before either writes.
    let (body, auth) = app
        .client
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &first)]);
    let req = TokenRequest::parse(body.as_bytes(), auth.as_deref()).unwrap();
    let record = w.host.store.get::<RefreshRecord>(&req.record_key());
    let grant = w
        .host
        .store
        .get::<GrantRecord>(&record.as_ref().unwrap().grant_key());
    let client = w.host.store.get::<ClientRecord>(&req.client_key());
    let now = w.host.now;
    let fast = w
        .host
        .gate
        .redeem_refresh(&req, record.clone(), grant.as_ref(), client.as_ref(), now)
        .unwrap();
    let slow = w
        .host
        .gate
        .redeem_refresh(&req, record, grant.as_ref(), client.as_ref(), now)
        .unwrap();
    assert!(fast.successor.is_some() && slow.successor.is_some());
    // The one executor: the successor is put-if-absent, as the core asks (R63).
    let store = |w: &mut Scene, issued: TokensIssued| {
        let _tokens = w.host.store.apply(issued);
    };
    let body: serde_json::Value = serde_json::from_slice(&fast.reply.body).unwrap();
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    store(&mut w, fast);
    // The client uses the successor: it is rotated in turn.
    w.host.advance(1);
    let third = w
        .host
        .refresh(&app.client, &second, None)
        .expect("rotation");
    // Only now does the slow request write what it computed.
    store(&mut w, slow);
    // The rotated successor presented again after the grace window is still reuse, and
    // revokes the grant (R53): the slow writer did not reset it to unrotated.
    w.host.advance(60);
    let err = w.host.refresh(&app.client, &second, None).unwrap_err();
    assert!(matches!(err, TokenError::RefreshReused { .. }), "{err:?}");
    // The host executed the error's step, which deleted the grant before the reply.
    assert_eq!(
        w.host.bearer(third.access()),
        Err(BearerError::Revoked),
        "every token of the grant is dead"
    );
    w.honest_flow_still_works();
}

#[test]
fn r66_an_expired_upstream_token_stops_authorizing() {
    let mut w = Scene::new(GateSetup::default());
    w.host.github.token_lifetime = Some(600);
    let app = App::new(&w.legit, "expiring");
    let tokens = w.host.login(&mut w.victim, &app);
    let refresh = tokens.refresh().unwrap().to_owned();
    // One second before the upstream token expires: the grant authorizes.
    w.host.advance(599);
    assert!(w.host.bearer(tokens.access()).is_ok());
    // At its expiry: our access token is still unexpired, but the grant no longer speaks
    // for the user upstream. The host is told so (it may renew upstream), and a host that
    // does not answers 401 invalid_token.
    w.host.advance(1);
    let err = w.host.bearer(tokens.access()).unwrap_err();
    assert_eq!(err, BearerError::UpstreamExpired);
    assert_eq!(
        (err.status(), err.oauth_error()),
        (401, Some("invalid_token"))
    );
    // Refreshing cannot revive it: the client signs in again.
    let err = w.host.refresh(&app.client, &refresh, None).unwrap_err();
    assert_eq!(
        err,
        TokenError::InvalidGrant("upstream authorization expired")
    );
    // Tokens that never expire upstream (GitHub OAuth Apps) keep working.
    w.host.github.token_lifetime = None;
    let lasting = w.host.login(&mut w.victim, &App::new(&w.legit, "lasting"));
    w.host.advance(3000);
    assert!(w.host.bearer(lasting.access()).is_ok());
    w.honest_flow_still_works();
}
