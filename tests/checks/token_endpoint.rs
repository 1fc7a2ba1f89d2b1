//! The token endpoint: code redemption, refresh rotation, client authentication.

use super::*;

#[test]
fn a_code_is_refused_for_every_binding_it_fails() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    // Expiry: one second before and at it.
    let app = App::new(&client, "exp");
    let code = host.code_for(&mut browser, &app);
    let key = host.store.all::<CodeRecord>()[0].key().to_owned();
    let record = host.store.get::<CodeRecord>(&key).unwrap();
    assert!(!record.is_redeemed());
    let exp = record.expires_at();
    host.now = UnixTime(exp.0 - 1);
    assert!(host.redeem(&client, &code, &app.verifier, None).is_ok());
    let stored = host.store.get::<CodeRecord>(&key).unwrap();
    assert!(stored.is_redeemed(), "stored back redeemed");
    assert!(host.store.get::<GrantRecord>(&record.grant_key()).is_some());
    host.now = T0;
    // A code record presented under another code's key.
    let app_a = App::new(&client, "a");
    let app_b = App::new(&client, "b");
    let code_a = host.code_for(&mut browser, &app_a);
    let _code_b = host.code_for(&mut browser, &app_b);
    let records = host.store.all::<CodeRecord>();
    let (req, _) = redeem_body(&client, &code_a, &app_a.verifier);
    let req = TokenRequest::parse(req.as_bytes(), None).unwrap();
    let wrong = records
        .iter()
        .find(|r| *r.key() != req.record_key() && !r.is_redeemed())
        .unwrap()
        .clone();
    let record_client = client_record(&host, &client);
    let err = host
        .gate
        .redeem_code(
            &req,
            Some(wrong),
            Some(&record_client),
            host.now,
            &mut host.entropy,
        )
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("unknown code"));
    // The wrong PKCE verifier, the wrong redirect URI, the wrong resource.
    let app = App::new(&client, "pkce");
    let code = host.code_for(&mut browser, &app);
    let err = host
        .redeem(&client, &code, &format!("x{}", &app.verifier[1..]), None)
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("PKCE verification failed"));
    let app = App::new(&client, "redir");
    let code = host.code_for(&mut browser, &app);
    let err = host
        .redeem(&client, &code, &app.verifier, Some("http://127.0.0.1:9/cc"))
        .unwrap_err();
    assert_eq!(err, TokenError::InvalidGrant("redirect_uri mismatch"));
    let app = App::new(&client, "res");
    let code = host.code_for(&mut browser, &app);
    let (mut body, _) = redeem_body(&client, &code, &app.verifier);
    body.push_str("&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fother");
    assert_eq!(
        host.post_token(&body, None).unwrap_err(),
        TokenError::InvalidTarget
    );
    let app = App::new(&client, "res-ok");
    let code = host.code_for(&mut browser, &app);
    let (mut body, _) = redeem_body(&client, &code, &app.verifier);
    body.push_str(&format!("&resource={}", form_component(RESOURCE)));
    assert!(host.post_token(&body, None).is_ok());
}

#[test]
fn token_requests_are_parsed_strictly() {
    let v = "v".repeat(43);
    let ok = |body: &str, auth: Option<&str>| TokenRequest::parse(body.as_bytes(), auth);
    // The verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
    let code = |verifier: &str| {
        ok(
            &encode([
                ("grant_type", "authorization_code"),
                ("code", "c"),
                ("code_verifier", verifier),
                ("client_id", "id"),
            ]),
            None,
        )
    };
    assert!(code(&v).is_ok());
    assert!(code(&"v".repeat(128)).is_ok());
    for bad in [
        "v".repeat(42),
        "v".repeat(129),
        format!("{}+", "v".repeat(43)),
    ] {
        assert!(code(&bad).is_err(), "{bad}");
    }
    let req = code(&v).unwrap();
    assert!(req.is_code_grant());
    assert_eq!(req.client_id(), "id");
    assert_eq!(req.client_key(), StoreKey::client("id"));
    let refresh = ok(
        "grant_type=refresh_token&refresh_token=r&client_id=id",
        None,
    )
    .unwrap();
    assert!(!refresh.is_code_grant());
    assert_ne!(refresh.record_key(), req.record_key());
    assert_eq!(
        ok("grant_type=password&client_id=id", None).unwrap_err(),
        TokenError::UnsupportedGrantType
    );
    // The client id: at most 256 bytes, never empty.
    let id = |id: &str| {
        ok(
            &encode([
                ("grant_type", "refresh_token"),
                ("refresh_token", "r"),
                ("client_id", id),
            ]),
            None,
        )
    };
    assert!(id(&"i".repeat(256)).is_ok());
    assert!(id(&"i".repeat(257)).is_err());
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        let creds = format!("{user}:{pass}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };
    let refresh_body = "grant_type=refresh_token&refresh_token=r";
    // Basic: both parts form-decoded; the scheme case-insensitive; one method only.
    let req = ok(refresh_body, Some(&basic("a%20b", "s"))).unwrap();
    assert_eq!(req.client_id(), "a b");
    assert!(
        ok(
            refresh_body,
            Some(&basic("id", "s").replace("Basic", "basic"))
        )
        .is_ok()
    );
    assert_eq!(
        ok(refresh_body, Some(&basic("", "s"))).unwrap_err(),
        TokenError::InvalidClient
    );
    assert_eq!(
        ok(refresh_body, Some("Basic !!!")).unwrap_err(),
        TokenError::InvalidClient
    );
    let no_colon = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("idonly")
        )
    };
    assert_eq!(
        ok(refresh_body, Some(&no_colon)).unwrap_err(),
        TokenError::InvalidClient
    );
    // Exactly 1024 characters of base64 are read; 1028 are not (`>` → `==`, `>=`).
    let at_limit = basic("id", &"s".repeat(765));
    assert_eq!(at_limit.len() - 6, 1024);
    assert_eq!(ok(refresh_body, Some(&at_limit)).unwrap().client_id(), "id");
    let over = basic("id", &"s".repeat(768));
    assert_eq!(over.len() - 6, 1028);
    assert_eq!(
        ok(refresh_body, Some(&over)).unwrap_err(),
        TokenError::InvalidClient
    );
    // Another scheme with valid Basic credentials after it (`||` → `&&`).
    let bearer = basic("id", "s").replace("Basic", "Bearer");
    assert_eq!(
        ok(refresh_body, Some(&bearer)).unwrap_err(),
        TokenError::InvalidClient
    );
    let with_body_id = format!("{refresh_body}&client_id=id");
    assert!(ok(&with_body_id, Some(&basic("id", "s"))).is_ok());
    assert!(ok(&with_body_id, Some(&basic("other", "s"))).is_err());
    let with_body_secret = format!("{refresh_body}&client_secret=s");
    assert!(ok(&with_body_secret, Some(&basic("id", "s"))).is_err());
}

#[test]
fn the_token_endpoint_refuses_a_client_record_that_is_not_the_clients() {
    // `!mac_is_valid || client_id != …`: each alone.
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let other = host.register_public("Other", "http://127.0.0.1:9/cb");
    let record = client_record(&host, &client);
    let other = client_record(&host, &other);
    let edited = tamper(&record, |v| v["client_name"] = "Edited".into());
    let mut browser = host.browser(VICTIM);
    for (what, bad) in [("another client", &other), ("edited", &edited)] {
        let app = App::new(&client, "auth");
        let code = host.code_for(&mut browser, &app);
        let (body, _) = redeem_body(&client, &code, &app.verifier);
        let req = TokenRequest::parse(body.as_bytes(), None).unwrap();
        let taken = host.store.take::<CodeRecord>(&req.record_key());
        let err = host
            .gate
            .redeem_code(&req, taken, Some(bad), host.now, &mut host.entropy)
            .unwrap_err();
        assert_eq!(err, TokenError::InvalidClient, "{what}");
    }
    // A public client that sends a secret anyway.
    let app = App::new(&client, "secret");
    let code = host.code_for(&mut browser, &app);
    let (mut body, _) = redeem_body(&client, &code, &app.verifier);
    body.push_str("&client_secret=s");
    assert_eq!(
        host.post_token(&body, None).unwrap_err(),
        TokenError::InvalidClient
    );
    // A confidential client with the wrong secret, or none.
    let conf = host.register_client("Conf", "http://127.0.0.1:9/cb", "client_secret_post");
    let app = App::new(&conf, "conf");
    for secret in [Some("wrong"), None] {
        let code = host.code_for(&mut browser, &app);
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", app.verifier.as_str()),
            ("client_id", conf.id.as_str()),
        ];
        pairs.extend(secret.map(|s| ("client_secret", s)));
        assert_eq!(
            host.post_token(&encode(pairs), None).unwrap_err(),
            TokenError::InvalidClient,
            "{secret:?}"
        );
    }
}

fn redeem_refresh_with(
    host: &Host,
    req: &TokenRequest,
    client: &ClientRecord,
    record: Option<RefreshRecord>,
    grant: Option<&GrantRecord>,
    now: UnixTime,
) -> Result<TokensIssued, TokenError> {
    host.gate
        .redeem_refresh(req, record, grant, Some(client), now)
}

/// A logged-in app whose client may refresh, with its first tokens.
fn refreshing() -> (Host, Browser, App, Tokens) {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let app = App::new(&client, "rt");
    let tokens = host.login(&mut browser, &app);
    (host, browser, app, tokens)
}

fn refresh_request(app: &App, token: &str) -> TokenRequest {
    let (body, auth) = app
        .client
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
    TokenRequest::parse(body.as_bytes(), auth.as_deref()).unwrap()
}

#[test]
fn a_rotated_refresh_token_is_honoured_to_the_end_of_the_grace_window_and_no_longer() {
    // `now > rotated_at + grace`: `>` → `>=` would revoke at the last second of the window.
    let (mut host, _, app, t0) = refreshing();
    let rt0 = t0.refresh().unwrap().to_owned();
    let first = host.refresh(&app.client, &rt0, None).unwrap();
    let old = host
        .store
        .get::<RefreshRecord>(&refresh_request(&app, &rt0).record_key())
        .unwrap();
    assert!(old.is_rotated());
    let grace = host.gate.config().lifetimes().refresh_grace;
    host.advance(grace);
    let second = host.refresh(&app.client, &rt0, None).unwrap();
    assert_eq!(first.refresh(), second.refresh());
    host.advance(1);
    let err = host.refresh(&app.client, &rt0, None).unwrap_err();
    assert!(matches!(err, TokenError::RefreshReused { .. }), "{err:?}");
}

#[test]
fn a_refresh_is_refused_for_every_check_it_fails() {
    let (mut host, mut browser, app, t0) = refreshing();
    let rt0 = t0.refresh().unwrap().to_owned();
    let client = client_record(&host, &app.client);
    let req = refresh_request(&app, &rt0);
    let record = host.store.get::<RefreshRecord>(&req.record_key()).unwrap();
    let grant = host.store.get::<GrantRecord>(&record.grant_key()).unwrap();
    assert_eq!(record.expires_at(), grant.expires_at());
    assert_eq!(*record.key(), req.record_key());
    // Another token's record (valid MAC, same client).
    let t1 = host.login(&mut browser, &App::new(&app.client, "rt1"));
    let other_req = refresh_request(&app, t1.refresh().unwrap());
    let other = host
        .store
        .get::<RefreshRecord>(&other_req.record_key())
        .unwrap();
    let other_grant = host.store.get::<GrantRecord>(&other.grant_key()).unwrap();
    let redeem = |host: &Host, r: Option<RefreshRecord>, g: Option<&GrantRecord>, now| {
        redeem_refresh_with(host, &req, &client, r, g, now)
    };
    assert_eq!(
        redeem(&host, Some(other.clone()), Some(&other_grant), host.now).unwrap_err(),
        TokenError::InvalidGrant("unknown refresh token")
    );
    // Its own record, but another grant (valid MAC, unexpired), an edited grant, none.
    let edited = tamper(&grant, |v| {
        v["resource"] = "http://127.0.0.1:8080/other".into()
    });
    for g in [Some(&other_grant), Some(&edited), None] {
        assert_eq!(
            redeem(&host, Some(record.clone()), g, host.now).unwrap_err(),
            TokenError::InvalidGrant("grant revoked")
        );
    }
    // The record expires at its expiry.
    assert_eq!(
        redeem(
            &host,
            Some(record.clone()),
            Some(&grant),
            record.expires_at()
        )
        .unwrap_err(),
        TokenError::InvalidGrant("refresh token expired")
    );
    // Another client presenting it.
    let thief = host.register_public("Thief", "http://127.0.0.1:9/cb");
    let stolen = App::new(&thief, "x");
    let (body, _) = stolen
        .client
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &rt0)]);
    assert_eq!(
        host.post_token(&body, None).unwrap_err(),
        TokenError::InvalidGrant("refresh token was issued to another client")
    );
    // A successor outlives the grant: refused once the grant expires, not a second before.
    host.advance(100);
    let t2 = host.refresh(&app.client, &rt0, None).unwrap();
    let rt2 = t2.refresh().unwrap().to_owned();
    let successor = host
        .store
        .get::<RefreshRecord>(&refresh_request(&app, &rt2).record_key())
        .unwrap();
    assert!(successor.expires_at() > grant.expires_at());
    assert_eq!(successor.grant_key(), grant.key());
    host.now = UnixTime(grant.expires_at().0 - 1);
    let t3 = host
        .refresh(&app.client, &rt2, None)
        .expect("a second before the grant expires");
    host.now = grant.expires_at();
    assert_eq!(
        host.refresh(&app.client, t3.refresh().unwrap(), None)
            .unwrap_err(),
        TokenError::InvalidGrant("grant revoked")
    );
}

#[test]
fn revocation_by_refresh_record_needs_its_mac_its_key_and_its_client() {
    // `mac_is_valid && key == refresh_key && client_id == …`: each alone.
    let (mut host, mut browser, app, t0) = refreshing();
    let rt0 = t0.refresh().unwrap().to_owned();
    let t1 = host.login(&mut browser, &App::new(&app.client, "second"));
    let client = client_record(&host, &app.client);
    let (body, _) = app.client.token_request(&[("token", &rt0)]);
    let req = RevocationRequest::parse(body.as_bytes(), None).unwrap();
    assert_eq!(req.client_key(), client.key());
    let record = host.store.get::<RefreshRecord>(&req.refresh_key()).unwrap();
    let other = refresh_request(&app, t1.refresh().unwrap()).record_key();
    let other = host.store.get::<RefreshRecord>(&other).unwrap();
    let edited = tamper(&record, |v| v["expires_at"] = 1.into());
    let revoke = |r: Option<&RefreshRecord>| {
        host.gate
            .revoke(&req, Some(&client), r, host.now)
            .unwrap()
            .revoke_grant
    };
    assert_eq!(revoke(Some(&record)), Some(record.grant_key()));
    assert_eq!(revoke(Some(&other)), None, "another token's record");
    assert_eq!(revoke(Some(&edited)), None, "an edited record");
    assert_eq!(revoke(None), None);
    // The reply: 200, empty, no content type.
    let done = host
        .gate
        .revoke(&req, Some(&client), None, host.now)
        .unwrap();
    assert_eq!((done.reply.status, done.reply.body.len()), (200, 0));
    assert!(done.reply.header("content-type").is_none());
    assert_eq!(done.reply.header("cache-control"), Some("no-store"));
    // Another client's record under this token's key cannot be made; a request from
    // another client for this token revokes nothing.
    let thief = host.register_public("Thief", "http://127.0.0.1:9/cb");
    let thief_record = client_record(&host, &thief);
    let (body, _) = thief.token_request(&[("token", &rt0)]);
    let stolen = RevocationRequest::parse(body.as_bytes(), None).unwrap();
    let done = host
        .gate
        .revoke(&stolen, Some(&thief_record), Some(&record), host.now)
        .unwrap();
    assert_eq!(done.revoke_grant, None);
}

#[test]
fn debug_output_names_the_value_and_never_a_secret() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let app = App::new(&client, "dbg");
    // The consent form and the proof of consent.
    let page = host.page(&mut browser, &app, Nav::Direct);
    let fields = ConsentFields::read(&page);
    let form = ConsentForm::parse(fields.body("approve").as_bytes()).unwrap();
    let shown = format!("{form:?}");
    assert!(
        shown.contains("ConsentForm") && shown.contains("Approve"),
        "{shown}"
    );
    assert!(
        !shown.contains(&fields.csrf) && !shown.contains(&fields.tx),
        "{shown}"
    );
    let pending = host.store.take::<PendingConsent>(&form.pending_key());
    let headers = browser.request(Nav::SameOrigin, host.now);
    let Decision::Approved(consent) = host
        .gate
        .decide(form, pending, headers.context(), host.now)
        .unwrap()
    else {
        panic!("approved")
    };
    let shown = format!("{consent:?}");
    assert!(
        shown.contains("ConsentGiven") && shown.contains(&client.id),
        "{shown}"
    );
    assert_eq!(consent.details().client_id(), client.id);
    // The redirect upstream: its accessors agree with the step the host executes.
    let up = host
        .gate
        .upstream_redirect(consent, host.now, &mut host.entropy);
    let shown = format!("{up:?}");
    assert!(
        shown.contains("UpstreamRedirect") && shown.contains(&client.id),
        "{shown}"
    );
    let location = up.location().to_owned();
    let record_key = *up.transaction_record().key();
    let reply = up.response();
    assert_eq!(reply.header("location"), Some(location.as_str()));
    let sent = host.store.apply(up);
    let txn = host.store.get::<TransactionRecord>(&record_key);
    let txn = txn.expect("stored under the key its accessor names");
    assert_eq!(*txn.key(), record_key);
    assert_eq!(sent.header("location"), Some(location.as_str()));
    assert_eq!(sent.set_cookies().count(), reply.set_cookies().count());
    assert_eq!(txn.details().client_id(), client.id);
    assert_eq!(txn.expires_at(), host.now.plus(600));
    browser.apply(&sent, host.now);
    let back = host.through_github(&browser, &sent);
    let query = back.split_once('?').unwrap().1;
    let cb = Callback::parse(query.as_bytes()).unwrap();
    let code = query_params(&back)["code"].clone();
    let shown = format!("{cb:?}");
    assert!(
        shown.contains("Callback") && !shown.contains(&code),
        "{shown}"
    );
    let verified = verify(&mut host, &browser, &back).unwrap();
    let shown = format!("{verified:?}");
    assert!(
        shown.contains("VerifiedCallback") && shown.contains(&client.id),
        "{shown}"
    );
    let shown = format!("{:?}", verified.token_request());
    assert!(
        shown.contains("HttpRequest") && shown.contains("POST"),
        "{shown}"
    );
    assert!(
        !shown.contains(&code) && !shown.contains(UPSTREAM_SECRET),
        "{shown}"
    );
    let answer = host.github.token(verified.token_request());
    let auth = verified
        .accept_token_response(answer.as_response())
        .unwrap();
    let record = client_record(&host, &client);
    let issued = issue(&mut host, auth, Some(&record)).unwrap();
    let ours = query_params(issued.redirect().location())["code"].clone();
    let shown = format!("{issued:?}");
    assert!(
        shown.contains("CodeIssued") && !shown.contains(&ours),
        "{shown}"
    );
    // Token and revocation requests name the client, not the code or token.
    let (body, _) = redeem_body(&client, &ours, &app.verifier);
    let req = TokenRequest::parse(body.as_bytes(), None).unwrap();
    let shown = format!("{req:?}");
    assert!(
        shown.contains("authorization_code") && shown.contains(&client.id),
        "{shown}"
    );
    assert!(!shown.contains(&ours), "{shown}");
    let (body, _) = client.token_request(&[("token", "tok-secret")]);
    let rev = RevocationRequest::parse(body.as_bytes(), None).unwrap();
    let shown = format!("{rev:?}");
    assert!(
        shown.contains("RevocationRequest") && shown.contains(&client.id),
        "{shown}"
    );
    assert!(!shown.contains("tok-secret"), "{shown}");
}

#[test]
fn a_callback_must_name_the_transaction_it_is_checked_against() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let back_a = host.back_from_github(&mut browser, &App::new(&client, "a"));
    let back_b = host.back_from_github(&mut browser, &App::new(&client, "b"));
    let parse = |url: &str| Callback::parse(url.split_once('?').unwrap().1.as_bytes()).unwrap();
    let (a, b) = (parse(&back_a), parse(&back_b));
    let txn_b = host
        .store
        .take::<TransactionRecord>(&b.transaction_key())
        .unwrap();
    let headers = browser.request(Nav::CrossSite, host.now);
    assert_eq!(
        host.gate
            .verify_callback(a, Some(txn_b), headers.context(), host.now)
            .unwrap_err(),
        CallbackError::UnknownTransaction
    );
    // The transaction expires at its expiry (R36), one second before it does not.
    let back_c = host.back_from_github(&mut browser, &App::new(&client, "c"));
    let c = parse(&back_c);
    let txn_c = host
        .store
        .take::<TransactionRecord>(&c.transaction_key())
        .unwrap();
    let headers = browser.request(Nav::CrossSite, host.now);
    let at = txn_c.expires_at();
    assert_eq!(
        host.gate
            .verify_callback(c.clone(), Some(txn_c.clone()), headers.context(), at)
            .unwrap_err(),
        CallbackError::Expired
    );
    assert!(
        host.gate
            .verify_callback(c, Some(txn_c), headers.context(), UnixTime(at.0 - 1))
            .is_ok()
    );
}
