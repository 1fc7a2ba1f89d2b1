//! Redirect matching (R17, R18) and registration (R10, R11).

use super::*;

fn registered(uri: &str) -> RedirectUri {
    RedirectUri::parse(uri).expect("a canonical redirect URI")
}

#[test]
fn an_https_redirect_uri_matches_only_itself() {
    let r = registered("https://app.example/cb");
    let m = r.matching("https://app.example/cb").expect("itself");
    assert_eq!(m.as_str(), "https://app.example/cb");
    assert_eq!(m, r);
    // Every other canonical URI, even one that differs only in the port or the scheme.
    for other in [
        "https://app.example:8443/cb",
        "https://app.example/cb2",
        "https://app.example/c",
        "https://app.example/cb?x=1",
        "https://app.example.evil/cb",
        "https://evil.example/cb",
        "http://localhost/cb",
    ] {
        assert!(r.matching(other).is_none(), "{other}");
    }
}

#[test]
fn a_loopback_redirect_uri_matches_on_any_port_but_nothing_else() {
    for (reg, same_but_port) in [
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"),
        ("http://127.0.0.1:3000/cb", "http://127.0.0.1/cb"),
        ("http://localhost:3000/cb?a=1", "http://localhost:9/cb?a=1"),
        ("http://[::1]:8080/", "http://[::1]:1/"),
    ] {
        let r = registered(reg);
        assert!(r.is_loopback());
        assert_eq!(
            r.matching(reg).map(|m| m.as_str().to_owned()),
            Some(reg.into())
        );
        let m = r.matching(same_but_port).expect(same_but_port);
        assert_eq!(m.as_str(), same_but_port);
        assert!(m.is_loopback());
    }
    let r = registered("http://127.0.0.1:3000/cb");
    for other in [
        // Another loopback host, with and without the port.
        "http://127.0.0.2:3000/cb",
        "http://127.0.0.2/cb",
        "http://localhost:3000/cb",
        "http://[::1]:3000/cb",
        // Another path or query.
        "http://127.0.0.1:3000/cb2",
        "http://127.0.0.1:4000/c",
        "http://127.0.0.1:4000/cb?x",
        "http://127.0.0.1:4000/cb/",
        // Another scheme, the same host and path.
        "https://127.0.0.1:3000/cb",
        "https://127.0.0.1/cb",
        // Not a redirect URI we would register at all.
        "http://127.0.0.1:4000/cb#x",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:4000@evil.example/cb",
        "http://evil.example:3000/cb",
        "",
    ] {
        assert!(r.matching(other).is_none(), "{other}");
    }
    // An https registration on a loopback host is not an http loopback one.
    let s = registered("https://127.0.0.1:3000/cb");
    assert!(!s.is_loopback());
    assert!(s.matching("https://127.0.0.1:4000/cb").is_none());
    assert!(s.matching("http://127.0.0.1:3000/cb").is_none());
}

// ---------------------------------------------------------------- registration (R10, R11)

fn register(host: &mut Host, body: &str) -> Result<serde_json::Value, RegistrationError> {
    let reg = host
        .gate
        .register(body.as_bytes(), host.now, &mut host.entropy)?;
    assert_eq!(reg.reply.status, 201);
    Ok(serde_json::from_slice(&reg.reply.body).expect("JSON"))
}

fn with_uris(uris: &[String]) -> String {
    serde_json::json!({ "redirect_uris": uris, "token_endpoint_auth_method": "none" }).to_string()
}

#[test]
fn registration_bounds_are_inclusive() {
    let mut host = Host::new();
    let base = with_uris(&["https://app.example/cb".to_owned()]);
    let padded = |len: usize| format!("{base}{}", " ".repeat(len - base.len()));
    // The body: 16 KiB, not a byte more.
    assert!(register(&mut host, &padded(MAX_REGISTRATION_BODY)).is_ok());
    assert_eq!(
        register(&mut host, &padded(MAX_REGISTRATION_BODY + 1)).unwrap_err(),
        RegistrationError::InvalidClientMetadata("request too large")
    );
    // Ten redirect URIs, not eleven.
    let uris: Vec<String> = (0..11)
        .map(|i| format!("https://app.example/cb{i}"))
        .collect();
    let v = register(&mut host, &with_uris(&uris[..10])).unwrap();
    assert_eq!(v["redirect_uris"].as_array().map(Vec::len), Some(10));
    assert_eq!(
        register(&mut host, &with_uris(&uris)).unwrap_err(),
        RegistrationError::InvalidRedirectUri("too many redirect_uris")
    );
    // A redirect URI of 2000 bytes, not 2001; never an empty one.
    let long = |len: usize| {
        let head = "https://app.example/";
        format!("{head}{}", "a".repeat(len - head.len()))
    };
    let v = register(&mut host, &with_uris(&[long(2000)])).unwrap();
    assert_eq!(v["redirect_uris"][0].as_str().map(str::len), Some(2000));
    for bad in [long(2001), String::new()] {
        assert_eq!(
            RedirectUri::parse(&bad).unwrap_err(),
            RedirectUriError("empty or too long"),
            "{} bytes",
            bad.len()
        );
    }
    // A client name of 100 characters (not bytes), not 101.
    let named = |name: &str| {
        serde_json::json!({
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "none",
            "client_name": name,
        })
        .to_string()
    };
    let v = register(&mut host, &named(&"é".repeat(100))).unwrap();
    assert_eq!(
        v["client_name"].as_str().map(|n| n.chars().count()),
        Some(100)
    );
    assert_eq!(
        register(&mut host, &named(&"n".repeat(101))).unwrap_err(),
        RegistrationError::InvalidClientMetadata("client_name too long")
    );
    assert_eq!(
        register(&mut host, &named("Claude\u{7}Desktop")).unwrap_err(),
        RegistrationError::InvalidClientMetadata("client_name has control characters")
    );
    // A blank name is no name: the page shows the redirect host alone.
    let v = register(&mut host, &named("  ")).unwrap();
    assert!(v.get("client_name").is_none(), "{v}");
}

#[test]
fn a_redirect_uri_is_refused_for_the_reason_it_fails() {
    for bad in [
        "https://app.example/c b",
        "https://app.example/c\tb",
        "https://app.example/c\u{7f}b",
        "https://app.example/caf\u{e9}",
        "https://app.example/cb\n",
    ] {
        assert_eq!(
            RedirectUri::parse(bad).unwrap_err(),
            RedirectUriError("whitespace, control or non-ASCII characters"),
            "{bad:?}"
        );
    }
    let r = registered("https://app.example/cb?x=1");
    assert_eq!(r.to_string(), "https://app.example/cb?x=1");
    assert_eq!(format!("{r:?}"), "\"https://app.example/cb?x=1\"");
}

#[test]
fn registration_echoes_the_token_endpoint_auth_method() {
    let mut host = Host::new();
    for (sent, echoed, secret) in [
        (Some("none"), "none", false),
        (Some("client_secret_post"), "client_secret_post", true),
        (Some("client_secret_basic"), "client_secret_basic", true),
        (None, "client_secret_basic", true),
    ] {
        let mut body = serde_json::json!({ "redirect_uris": ["https://app.example/cb"] });
        if let Some(m) = sent {
            body["token_endpoint_auth_method"] = m.into();
        }
        let v = register(&mut host, &body.to_string()).unwrap();
        assert_eq!(v["token_endpoint_auth_method"], echoed, "{sent:?}");
        assert_eq!(v.get("client_secret").is_some(), secret, "{sent:?}");
    }
}

#[test]
fn the_grant_records_when_the_upstream_token_expires() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let grant_after_login = |host: &mut Host, browser: &mut Browser, tag: &str| {
        let tokens = host.login(browser, &App::new(&client, tag));
        let key = *host.bearer(tokens.access()).unwrap().grant_key();
        host.store.get::<GrantRecord>(&key).unwrap()
    };
    let lasting = grant_after_login(&mut host, &mut browser, "lasting");
    assert_eq!(lasting.upstream_expires_at(), None);
    assert!(!lasting.upstream_expired(UnixTime(u64::MAX)));
    host.github.token_lifetime = Some(600);
    let expiring = grant_after_login(&mut host, &mut browser, "expiring");
    let at = host.now.plus(600);
    assert_eq!(expiring.upstream_expires_at(), Some(at));
    assert!(!expiring.upstream_expired(UnixTime(at.0 - 1)));
    assert!(expiring.upstream_expired(at));
}
