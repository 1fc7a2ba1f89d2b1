//! Honest flows through the whole gate, as a host drives them (docs/design.md#typestate,
//! docs/http-contract.md): approval, denial, refresh, parallel flows, expiry, confidential clients,
//! upstream error shapes, metadata, and the headers and cookies of what the browser sees.
//!
//! Every test runs the real core against the deterministic host of `common/`: a store
//! that takes single-use records, browsers with cookie jars, and a GitHub double that
//! auto-approves a returning user (docs/upstreams.md#github-returning-user,
//! docs/upstreams.md#fixtures).

mod common;

use common::*;
use consent_gate::*;

#[test]
fn approve_end_to_end_r24_r34_r46_r47_r49() {
    let (mut host, mut browser, app) = app_host();
    // GET /authorize: the consent page; no binding cookie, no transaction yet (R34).
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(browser.cookie_names(), ["cg-browser"]);
    assert_eq!(
        (
            host.store.count(Kind::Pending),
            host.store.count(Kind::Transaction)
        ),
        (1, 0)
    );
    // POST approve: 303 (R24) to the upstream, the binding cookie set only now.
    let to_github = host.click(&mut browser, &page, "approve").unwrap();
    assert_eq!(to_github.status, 303);
    assert!(location(&to_github).starts_with(&host.github.authorize_endpoint));
    assert!(browser.holds_binding_cookie());
    assert_eq!(
        (
            host.store.count(Kind::Pending),
            host.store.count(Kind::Transaction)
        ),
        (0, 1)
    );
    // GitHub sends the browser straight back; the callback redirects to the app.
    let back = host.through_github(&browser, &to_github);
    let to_app = host.callback(&mut browser, &back).unwrap();
    assert_eq!(to_app.status, 303);
    let q = query_params(location(&to_app));
    assert_eq!(q["state"], app.state);
    assert_eq!(q["iss"], ISSUER, "R47");
    let code = app.receive(&to_app, ISSUER).unwrap();
    assert_eq!(q["code"], code);
    assert!(!browser.holds_binding_cookie(), "cleared once used");
    assert!(host.store.count(Kind::Transaction) == 0, "taken (R36)");
    // POST /token: JSON, no-store (R46), Bearer, refresh token (registered grant).
    let tokens = host
        .redeem(&app.client, &code, &app.verifier, Some(&app.redirect_uri))
        .unwrap();
    assert_eq!(tokens.reply.status, 200);
    assert_eq!(tokens.reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        tokens.reply.header("content-type"),
        Some("application/json")
    );
    assert_eq!(tokens.json["token_type"], "Bearer");
    assert_eq!(tokens.json["expires_in"], 3600);
    assert_eq!(tokens.json["scope"], "mcp");
    assert!(tokens.refresh().is_some());
    // The bearer verifies to the upstream subject (R49).
    let who = host.bearer(tokens.access()).unwrap();
    assert_eq!(who.subject(), VICTIM.subject());
    assert_eq!(who.client_id(), app.client.id);
    assert_eq!(who.scope().to_scope_string(), "mcp");
}

#[test]
fn deny_redirects_access_denied_with_state_and_iss_and_stores_nothing() {
    let (mut host, mut browser, app) = app_host();
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let to_app = host.click(&mut browser, &page, "deny").unwrap();
    assert_eq!(app.receive(&to_app, ISSUER), Err("access_denied".into()));
    assert!(host.store.count(Kind::Transaction) == 0 && host.store.count(Kind::Pending) == 0);
    assert!(!browser.holds_binding_cookie());
    assert_eq!(host.github.authorize_hits, 0, "nothing went upstream");
}

#[test]
fn loopback_redirect_port_may_vary_r18() {
    let mut host = Host::new();
    let client = host.register_public("CLI", "http://127.0.0.1/cb");
    let mut app = App::new(&client, "cli");
    app.redirect_uri = "http://127.0.0.1:49152/cb".into();
    let mut browser = host.browser(VICTIM);
    let tokens = host.login(&mut browser, &app);
    assert_eq!(
        host.bearer(tokens.access()).unwrap().subject(),
        VICTIM.subject()
    );
}

// --- refresh (R53) -----------------------------------------------------------------------

#[test]
fn refresh_rotates_and_old_token_after_grace_revokes_the_family() {
    let (mut host, mut browser, app) = app_host();
    let t0 = host.login(&mut browser, &app);
    let rt0 = t0.refresh().unwrap().to_owned();
    let t1 = host.refresh(&app.client, &rt0, None).unwrap();
    let rt1 = t1.refresh().unwrap().to_owned();
    assert_ne!(rt1, rt0, "rotated");
    assert_eq!(t1.reply.header("cache-control"), Some("no-store"));
    assert!(host.bearer(t1.access()).is_ok());
    // The old token again, after the grace window: the whole grant dies.
    host.advance(host.gate.config().lifetimes().refresh_grace + 1);
    let err = host.refresh(&app.client, &rt0, None).unwrap_err();
    assert!(matches!(err, TokenError::RefreshReused { .. }), "{err:?}");
    assert_eq!(err.oauth_error(), "invalid_grant");
    assert_eq!(host.bearer(t1.access()), Err(BearerError::Revoked));
    assert_eq!(host.bearer(t0.access()), Err(BearerError::Revoked));
    assert_eq!(
        host.refresh(&app.client, &rt1, None).unwrap_err(),
        TokenError::InvalidGrant("grant revoked")
    );
}

#[test]
fn concurrent_refresh_within_grace_gets_the_same_successor() {
    let (mut host, mut browser, app) = app_host();
    let t0 = host.login(&mut browser, &app);
    let rt0 = t0.refresh().unwrap().to_owned();
    let first = host.refresh(&app.client, &rt0, None).unwrap();
    host.advance(host.gate.config().lifetimes().refresh_grace);
    let second = host.refresh(&app.client, &rt0, None).unwrap();
    assert_eq!(first.refresh(), second.refresh(), "FastMCP #4901");
    assert!(host.bearer(first.access()).is_ok() && host.bearer(second.access()).is_ok());
    let next = host
        .refresh(&app.client, first.refresh().unwrap(), None)
        .unwrap();
    assert!(host.bearer(next.access()).is_ok());
}

#[test]
fn refresh_scope_may_only_narrow() {
    let mut host = Host::with(GateSetup {
        scopes: vec!["mcp:read", "mcp:write"],
        ..GateSetup::default()
    });
    let client = host.register_public("Acme", "http://127.0.0.1:9/cb");
    let app = App::new(&client, "acme");
    let mut browser = host.browser(VICTIM);
    let t0 = host.login(&mut browser, &app);
    assert_eq!(t0.json["scope"], "mcp:read mcp:write");
    let rt0 = t0.refresh().unwrap();
    for wider in ["mcp:admin", "mcp:read mcp:admin"] {
        let err = host.refresh(&client, rt0, Some(wider)).unwrap_err();
        assert_eq!(err, TokenError::InvalidScope);
        assert_eq!(err.oauth_error(), "invalid_scope");
    }
    let narrow = host.refresh(&client, rt0, Some("mcp:read")).unwrap();
    assert_eq!(narrow.json["scope"], "mcp:read");
    let who = host.bearer(narrow.access()).unwrap();
    assert_eq!(who.scope().to_scope_string(), "mcp:read");
    // The narrowed family cannot widen back.
    let rt1 = narrow.refresh().unwrap();
    let err = host.refresh(&client, rt1, Some("mcp:write")).unwrap_err();
    assert_eq!(err, TokenError::InvalidScope);
}

// --- browsers ------------------------------------------------------------------------------

#[test]
fn two_parallel_flows_in_one_browser_both_complete() {
    let (mut host, mut browser, app_a) = app_host();
    let other = host.register_public("Other", "https://other.example/cb");
    let app_b = App::new(&other, "other");
    let page_a = host
        .get_authorize(&mut browser, &app_a.query(), Nav::Direct)
        .unwrap();
    let page_b = host
        .get_authorize(&mut browser, &app_b.query(), Nav::Direct)
        .unwrap();
    let up_a = host.click(&mut browser, &page_a, "approve").unwrap();
    let up_b = host.click(&mut browser, &page_b, "approve").unwrap();
    let binding = |b: &Browser| {
        b.cookie_names()
            .iter()
            .filter(|n| n.contains("cg-bind-"))
            .count()
    };
    assert_eq!(binding(&browser), 2, "one binding cookie per transaction");
    let back_a = host.through_github(&browser, &up_a);
    let back_b = host.through_github(&browser, &up_b);
    // Callbacks in the other order.
    let to_b = host.callback(&mut browser, &back_b).unwrap();
    let to_a = host.callback(&mut browser, &back_a).unwrap();
    let code_a = app_a.receive(&to_a, ISSUER).unwrap();
    let code_b = app_b.receive(&to_b, ISSUER).unwrap();
    let ta = host
        .redeem(&app_a.client, &code_a, &app_a.verifier, None)
        .unwrap();
    let tb = host
        .redeem(&app_b.client, &code_b, &app_b.verifier, None)
        .unwrap();
    assert_eq!(
        host.bearer(ta.access()).unwrap().client_id(),
        app_a.client.id
    );
    assert_eq!(
        host.bearer(tb.access()).unwrap().client_id(),
        app_b.client.id
    );
    assert_eq!(binding(&browser), 0);
}

#[test]
fn double_get_of_the_consent_page_keeps_both_forms_valid() {
    // A prefetch and then the navigation (FastMCP #4814): the second render must not
    // invalidate the form the user is looking at.
    let (mut host, mut browser, app) = app_host();
    let first = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let second = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let cookie = |r: &Reply| {
        r.set_cookies()
            .next()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(cookie(&first), cookie(&second), "one browser secret");
    assert_ne!(ConsentFields::read(&first), ConsentFields::read(&second));
    let up = host.click(&mut browser, &first, "approve").unwrap();
    assert_eq!(up.status, 303);
    let up2 = host.click(&mut browser, &second, "approve").unwrap();
    assert_eq!(up2.status, 303);
    let back = host.through_github(&browser, &up);
    let to_app = host.callback(&mut browser, &back).unwrap();
    assert!(app.receive(&to_app, ISSUER).is_ok());
}

// --- expiry ----------------------------------------------------------------------------------

#[test]
fn consent_page_expires() {
    let (mut host, mut browser, app) = app_host();
    let early = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let late = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    host.advance(host.gate.config().lifetimes().consent - 1);
    assert_eq!(
        host.click(&mut browser, &early, "approve").unwrap().status,
        303
    );
    host.advance(1);
    let err = host.click(&mut browser, &late, "approve").unwrap_err();
    assert_eq!(err, ConsentError::Expired);
    assert!(err.response().header("location").is_none());
}

#[test]
fn transaction_expires_after_ten_minutes_r36() {
    let (mut host, mut browser, app) = app_host();
    assert_eq!(host.gate.config().lifetimes().transaction, 600);
    let to_callback = |host: &mut Host, browser: &mut Browser| {
        let page = host
            .get_authorize(browser, &app.query(), Nav::Direct)
            .unwrap();
        let up = host.click(browser, &page, "approve").unwrap();
        host.through_github(browser, &up)
    };
    let in_time = to_callback(&mut host, &mut browser);
    let too_late = to_callback(&mut host, &mut browser);
    host.advance(599);
    assert!(host.callback(&mut browser, &in_time).is_ok());
    host.advance(1);
    let err = host.callback(&mut browser, &too_late).unwrap_err();
    assert_eq!(err, CallbackError::Expired);
    assert!(!err.redirect_allowed());
}

#[test]
fn code_expires_after_sixty_seconds_r42() {
    let (mut host, mut browser, app) = app_host();
    let code = host.code_for(&mut browser, &app);
    host.advance(59);
    assert!(host.redeem(&app.client, &code, &app.verifier, None).is_ok());
    let code = host.code_for(&mut browser, &app);
    host.advance(60);
    let err = host
        .redeem(&app.client, &code, &app.verifier, None)
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("code expired"));
}

#[test]
fn access_token_expires_r52() {
    let (mut host, mut browser, app) = app_host();
    let tokens = host.login(&mut browser, &app);
    host.advance(3599);
    assert!(host.bearer(tokens.access()).is_ok());
    host.advance(1);
    assert_eq!(host.bearer(tokens.access()), Err(BearerError::Expired));
}

// --- confidential clients --------------------------------------------------------------------

#[test]
fn confidential_clients_authenticate_with_basic_and_post() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let mut host = Host::new();
        let client = host.register_client("Web", "https://web.example/cb", method);
        assert_eq!(client.auth, method);
        assert!(
            client.secret.as_deref().is_some_and(|s| s.len() >= 43),
            "{method}"
        );
        let app = App::new(&client, "web");
        let mut browser = host.browser(VICTIM);
        // Without the secret, or with a wrong one: 401 invalid_client. A failed attempt
        // consumes the code (it was taken), so each attempt gets a fresh one.
        let mut anonymous = client.clone();
        anonymous.auth = "none";
        let code = host.code_for(&mut browser, &app);
        let err = host
            .redeem(&anonymous, &code, &app.verifier, None)
            .unwrap_err();
        assert_eq!((err.oauth_error(), err.status()), ("invalid_client", 401));
        let mut wrong = client.clone();
        wrong.secret = Some("not-the-secret".into());
        let code = host.code_for(&mut browser, &app);
        let err = host.redeem(&wrong, &code, &app.verifier, None).unwrap_err();
        assert_eq!(err, TokenError::InvalidClient);
        // With it: tokens.
        let code = host.code_for(&mut browser, &app);
        let tokens = host.redeem(&client, &code, &app.verifier, None).unwrap();
        assert_eq!(host.bearer(tokens.access()).unwrap().client_id(), client.id);
    }
}

// --- upstream shapes (docs/upstreams.md#fixtures) ---------------------------------------------

#[test]
fn github_http_200_error_bodies_become_server_error_for_the_client() {
    for error in ["bad_verification_code", "incorrect_client_credentials"] {
        let (mut host, mut browser, app) = app_host();
        let page = host
            .get_authorize(&mut browser, &app.query(), Nav::Direct)
            .unwrap();
        let up = host.click(&mut browser, &page, "approve").unwrap();
        let back = host.through_github(&browser, &up);
        host.github.fail_next_exchange = Some(error);
        let err = host.callback(&mut browser, &back).unwrap_err();
        assert!(err.redirect_allowed(), "{err:?}");
        let reply = err.response();
        assert_eq!(app.receive(&reply, ISSUER), Err("server_error".into()));
        assert!(
            !location(&reply).contains(error),
            "the upstream's text is not leaked"
        );
        assert!(host.store.count(Kind::Code) == 0);
    }
}

#[test]
fn upstream_denial_and_suspension_reach_the_client_as_oauth_errors() {
    for (upstream_error, client_error) in [
        ("access_denied", "access_denied"),
        ("application_suspended", "server_error"),
    ] {
        let (mut host, mut browser, app) = app_host();
        let page = host
            .get_authorize(&mut browser, &app.query(), Nav::Direct)
            .unwrap();
        let up = host.click(&mut browser, &page, "approve").unwrap();
        let back = host.github.refuse(location(&up), upstream_error);
        let err = host.callback(&mut browser, &back).unwrap_err();
        assert_eq!(
            app.receive(&err.response(), ISSUER),
            Err(client_error.into())
        );
    }
}

#[test]
fn upstream_iss_equal_or_absent_is_accepted_different_is_rejected_rfc9207() {
    let (mut host, mut browser, app) = app_host();
    assert!(
        host.code_for(&mut browser, &app).len() >= 43,
        "F1: iss equal"
    );
    host.github.send_iss = None;
    assert!(host.code_for(&mut browser, &app).len() >= 43, "F2: no iss");
    host.github.send_iss = Some("https://github.com/login/oauth".into());
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let up = host.click(&mut browser, &page, "approve").unwrap();
    let back = host.through_github(&browser, &up);
    let err = host.callback(&mut browser, &back).unwrap_err();
    assert_eq!(err, CallbackError::IssuerMismatch);
    assert_eq!(err.status(), 403);
    assert!(err.response().header("location").is_none());
    // Without a configured upstream issuer, `iss` is not checked (docs/upstreams.md#issuer-check).
    let mut lax = Host::with(GateSetup {
        upstream_issuer: false,
        ..GateSetup::default()
    });
    let client = lax.register_public("Acme", "http://127.0.0.1:9/cb");
    lax.github.send_iss = Some("https://anything.example".into());
    let mut browser = lax.browser(VICTIM);
    assert!(
        !lax.code_for(&mut browser, &App::new(&client, "a"))
            .is_empty()
    );
}

// --- documents and headers -------------------------------------------------------------------

fn json(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.header("content-type"), Some("application/json"));
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn metadata_documents_r1_r3_r6_r7_r8() {
    let host = Host::new();
    let gate = &host.gate;
    let asm = json(&gate.authorization_server_metadata());
    assert_eq!(asm["issuer"], ISSUER, "R6: byte for byte");
    assert_eq!(asm["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(asm["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(asm["registration_endpoint"], format!("{ISSUER}/register"));
    assert_eq!(
        asm["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let methods = asm["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&"none".into()));
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);
    assert_eq!(asm["response_types_supported"], serde_json::json!(["code"]));
    let prm = json(&gate.protected_resource_metadata());
    assert_eq!(prm["resource"], RESOURCE, "R4");
    assert_eq!(prm["authorization_servers"][0], ISSUER, "R1");
    assert_eq!(
        gate.protected_resource_metadata_url(),
        format!("{ISSUER}/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(
        gate.protected_resource_metadata_paths(),
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource"
        ]
    );
}

#[test]
fn unauthorized_challenge_golden_r2_r5() {
    let host = Host::new();
    let missing = host.gate.unauthorized(BearerError::Missing);
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
        )
    );
    let invalid = host.gate.unauthorized(BearerError::Invalid);
    assert_eq!(
        invalid.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\", error=\"invalid_token\""
        )
    );
    assert_eq!(host.bearer("").unwrap_err(), BearerError::Invalid);
}

#[test]
fn registration_echoes_redirect_uris_and_assigns_the_client_id_r10() {
    let mut host = Host::new();
    let uris = ["http://127.0.0.1:9/cb", "https://app.example/cb"];
    let body = serde_json::json!({"redirect_uris": uris, "client_id": "chosen-by-me",
        "token_endpoint_auth_method": "none", "client_name": "Acme"});
    let (client, reply) = host.register(&body.to_string()).unwrap();
    assert_eq!(reply.status, 201);
    let v = json(&reply);
    assert_eq!(v["redirect_uris"], serde_json::json!(uris));
    assert_eq!(v["client_id"], client.id.as_str());
    assert_ne!(client.id, "chosen-by-me");
    assert!(v.get("client_secret").is_none(), "public client");
}

#[test]
fn consent_page_security_headers_r29_r56() {
    let (mut host, mut browser, app) = app_host();
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let text = html(&page);
    assert!(
        !text.contains("src=") && !text.contains("href="),
        "R56: nothing external"
    );
}

fn set_cookie_attributes(line: &str) -> (String, Vec<String>) {
    let mut parts = line.split("; ");
    let name = parts.next().unwrap().split('=').next().unwrap().to_owned();
    let mut attrs: Vec<String> = parts
        .filter(|a| !a.starts_with("Max-Age="))
        .map(str::to_owned)
        .collect();
    attrs.sort();
    (name, attrs)
}

#[test]
fn cookies_on_https_are_host_prefixed_secure_httponly_lax_r30() {
    let mut host = Host::with(GateSetup {
        https: true,
        ..GateSetup::default()
    });
    let client = host.register_public("Acme", "https://app.example/cb");
    let app = App::new(&client, "acme");
    let mut browser = host.browser(VICTIM);
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let up = host.click(&mut browser, &page, "approve").unwrap();
    let expected = ["HttpOnly", "Path=/", "SameSite=Lax", "Secure"].map(String::from);
    let lines: Vec<&str> = page.set_cookies().chain(up.set_cookies()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in lines {
        let (name, attrs) = set_cookie_attributes(line);
        assert!(name.starts_with("__Host-cg-"), "{line}");
        assert_eq!(attrs, expected, "{line}");
        assert!(!line.contains("Domain"), "{line}");
    }
    // And the browser, which enforces the prefix rules, completes the flow.
    let back = host.through_github(&browser, &up);
    let to_app = host.callback(&mut browser, &back).unwrap();
    let code = app.receive(&to_app, HTTPS_ISSUER).unwrap();
    let tokens = host.redeem(&client, &code, &app.verifier, None).unwrap();
    assert_eq!(
        host.bearer(tokens.access()).unwrap().subject(),
        VICTIM.subject()
    );
}

#[test]
fn consent_page_names_the_client_and_the_redirect_host_and_escapes_r12_r27() {
    let mut host = Host::new();
    let client = host.register_public(
        "<script>alert(1)</script> & \"Acme\"",
        "https://app.example/oauth/cb",
    );
    let app = App::new(&client, "acme");
    let mut browser = host.browser(VICTIM);
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let text = html(&page);
    assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Acme&quot;"));
    assert!(!text.contains("<script>"));
    assert!(
        text.contains("id=\"redirect-host\">app.example<"),
        "R27: the host"
    );
    assert!(
        text.contains("https://app.example/oauth/cb"),
        "R27: the exact URI"
    );
    assert!(text.contains("read:user"), "R27: the upstream scopes");
    assert!(
        !text.contains("Local application"),
        "no loopback warning for https"
    );
}
