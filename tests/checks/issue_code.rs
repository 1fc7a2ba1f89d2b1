//! `issue_code`'s re-check of the client (R38), and every field of a record under its MAC
//! (A16).

use super::*;

#[test]
fn issue_code_refuses_a_client_that_fails_any_one_of_the_three_checks_r38() {
    // `&&` → `||` in either place of `mac_is_valid && id == … && redirect_matches(…)`:
    // any one condition would then suffice. Each record below fails exactly one.
    let mut host = Host::new();
    let before = host.entropy.clone();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let record = client_record(&host, &client);
    // 1. Same id, intact MAC, the redirect URI no longer registered: the client was
    //    registered again under the same id (deterministic entropy replayed) with another
    //    redirect URI, and the store holds that record now.
    let mut replay = before;
    let body =
        br#"{"redirect_uris":["http://127.0.0.1:9/other"],"token_endpoint_auth_method":"none"}"#;
    let moved = host
        .gate
        .register(body, host.now, &mut replay)
        .expect("registration")
        .record;
    assert_eq!(moved.client_id(), record.client_id());
    // 2. Intact MAC, same redirect URI, another client's record.
    let twin = host.register_public("Twin", "http://127.0.0.1:9/cb");
    let twin = client_record(&host, &twin);
    assert_ne!(twin.client_id(), record.client_id());
    // 3. Same id, same redirect URI, an edited record (MAC broken).
    let edited = tamper(&record, |v| v["client_name"] = "Edited".into());
    assert_eq!(
        (edited.client_id(), edited.redirect_uris()),
        (record.client_id(), record.redirect_uris())
    );
    let mut browser = host.browser(VICTIM);
    for (what, bad) in [
        ("redirect URI gone", Some(&moved)),
        ("another client", Some(&twin)),
        ("edited record", Some(&edited)),
        ("registration deleted", None),
    ] {
        let app = App::new(&client, "r38");
        let auth = authenticated(&mut host, &mut browser, &app);
        assert_eq!(auth.client_key(), record.key());
        assert_eq!(auth.details().client_id(), client.id);
        let err = issue(&mut host, auth, bad).expect_err(what);
        assert_eq!(err, CallbackError::ClientChanged, "{what}");
        assert!(!err.redirect_allowed(), "{what}: no code, no redirect");
        assert!(host.store.count(Kind::Code) == 0, "{what}");
    }
    // The record as registered still works, including on another loopback port (R18).
    let mut app = App::new(&client, "ok");
    app.redirect_uri = "http://127.0.0.1:4242/cb".into();
    let auth = authenticated(&mut host, &mut browser, &app);
    let issued = issue(&mut host, auth, Some(&record)).expect("a code");
    assert_eq!(issued.code_record().expires_at(), host.now.plus(60));
    assert!(!issued.code_record().is_redeemed());
    assert_eq!(issued.redirect().redirect_uri(), app.redirect_uri);
    let reply = issued.response();
    assert_eq!(reply.status, 303);
    assert!(reply.set_cookies().any(|c| c.contains("Max-Age=0")));
    let code = app.receive(&reply, &host.issuer()).expect("a code");
    // The step the host executes stores the code and sends the same redirect.
    let again = host.store.apply(issued);
    assert_eq!(again.header("location"), reply.header("location"));
    let tokens = host
        .redeem(&client, &code, &app.verifier, Some(&app.redirect_uri))
        .expect("tokens");
    let who = host.bearer(tokens.access()).expect("a principal");
    assert_eq!(who.subject(), VICTIM.subject());
}

#[test]
fn the_user_document_decides_the_subject_and_a_bad_one_fails_to_the_client() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let record = client_record(&host, &client);
    let mut browser = host.browser(VICTIM);
    // OIDC userinfo: `sub` wins over `id`, and the display name is the login.
    let app = App::new(&client, "sub");
    let auth = authenticated(&mut host, &mut browser, &app);
    let body = br#"{"sub":"abc","id":5,"login":"octo"}"#;
    let issued = host
        .gate
        .issue_code(
            auth,
            json_200(body),
            Some(&record),
            host.now,
            &mut host.entropy,
        )
        .expect("a code");
    let code = app.receive(&issued.response(), &host.issuer()).unwrap();
    host.store.put(&issued.code_record().clone());
    let tokens = host
        .redeem(&client, &code, &app.verifier, None)
        .expect("tokens");
    let who = host.bearer(tokens.access()).unwrap();
    assert_eq!(who.subject(), "github:abc");
    assert_eq!(who.display_name(), Some("octo"));
    assert!(who.upstream_token().is_some());
    let grant = host.store.get::<GrantRecord>(who.grant_key()).unwrap();
    assert_eq!(grant.client_id(), client.id);
    // No subject: the client is told `server_error`, with its state and our iss.
    let app = App::new(&client, "nosub");
    let auth = authenticated(&mut host, &mut browser, &app);
    let err = host
        .gate
        .issue_code(
            auth,
            json_200(br#"{"login":"octo"}"#),
            Some(&record),
            host.now,
            &mut host.entropy,
        )
        .unwrap_err();
    let CallbackError::Upstream { cause, to_client } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(cause, &UpstreamError::NoSubject);
    assert_eq!(to_client.error_code(), Some("server_error"));
    assert_eq!(
        app.receive(&err.response(), &host.issuer()),
        Err("server_error".into())
    );
    // The upstream unreachable at the user endpoint, or at the token endpoint.
    let app = App::new(&client, "down");
    let auth = authenticated(&mut host, &mut browser, &app);
    let err = auth.upstream_unreachable();
    assert!(matches!(
        &err,
        CallbackError::Upstream {
            cause: UpstreamError::Unreachable,
            ..
        }
    ));
    assert_eq!(
        app.receive(&err.response(), &host.issuer()),
        Err("server_error".into())
    );
    let app = App::new(&client, "down2");
    let back = host.back_from_github(&mut browser, &app);
    let verified = verify(&mut host, &browser, &back).unwrap();
    assert_eq!(verified.details().client_id(), client.id);
    let err = verified.upstream_unreachable();
    assert_eq!(
        app.receive(&err.response(), &host.issuer()),
        Err("server_error".into())
    );
}

#[test]
fn the_upstream_requests_carry_what_the_upstream_needs() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let app = App::new(&client, "req");
    let back = host.back_from_github(&mut browser, &app);
    let verified = verify(&mut host, &browser, &back).unwrap();
    let req = verified.token_request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, host.github.token_endpoint);
    assert!(!format!("{req:?}").contains(UPSTREAM_SECRET), "{req:?}");
    let answer = host.github.token(req);
    let auth = verified
        .accept_token_response(answer.as_response())
        .unwrap();
    let user = auth.user_request();
    assert_eq!(
        (user.method, user.url.as_str()),
        ("GET", &*host.github.user_endpoint)
    );
    let bearer = user.headers.iter().find(|(n, _)| *n == "authorization");
    let token = host.github.issued_tokens().pop().unwrap();
    assert_eq!(
        bearer.map(|(_, v)| v.to_string()),
        Some(format!("Bearer {token}"))
    );
    assert!(!format!("{auth:?}").contains(&token));
    assert!(format!("{auth:?}").contains(&client.id));
}

// ---------------------------------------------------------------- record MACs (A16)

#[test]
fn an_absent_upstream_expiry_cannot_be_edited_into_a_present_one() {
    // `map_or(0, |t| t.0 + 1)` in the MACs of code and grant records, and of a refresh
    // record's rotation time: `+` → `-` or `*` would let `null` and `0` (or `1`) share a
    // MAC, so an edited store entry would verify.
    for value in [0u64, 1] {
        let mut host = Host::new();
        let client = host.register_public("App", "http://127.0.0.1:9/cb");
        let mut browser = host.browser(VICTIM);
        let app = App::new(&client, "mac");
        let code = host.code_for(&mut browser, &app);
        let key = host.store.all::<CodeRecord>()[0].key().to_owned();
        let record = host.store.take::<CodeRecord>(&key).unwrap();
        let edited = tamper(&record, |v| {
            assert!(v["upstream_expires_at"].is_null());
            v["upstream_expires_at"] = value.into();
        });
        host.store.put(&edited);
        let err = host
            .redeem(&client, &code, &app.verifier, None)
            .unwrap_err();
        assert_eq!(
            err,
            TokenError::InvalidGrant("unknown code"),
            "code, {value}"
        );

        let tokens = host.login(&mut browser, &App::new(&client, "grant"));
        let who = host.bearer(tokens.access()).unwrap();
        let grant = host.store.get::<GrantRecord>(who.grant_key()).unwrap();
        let edited = tamper(&grant, |v| {
            assert!(v["upstream_expires_at"].is_null());
            v["upstream_expires_at"] = value.into();
        });
        host.store.put(&edited);
        assert_eq!(
            host.bearer(tokens.access()),
            Err(BearerError::Revoked),
            "grant, {value}"
        );

        let tokens = host.login(&mut browser, &App::new(&client, "refresh"));
        let refresh = tokens.refresh().unwrap().to_owned();
        let body = format!(
            "grant_type=refresh_token&refresh_token={refresh}&client_id={}",
            client.id
        );
        let key = TokenRequest::parse(body.as_bytes(), None)
            .unwrap()
            .record_key();
        let record = host.store.get::<RefreshRecord>(&key).unwrap();
        assert!(!record.is_rotated());
        assert_eq!(record.client_id(), client.id);
        let edited = tamper(&record, |v| {
            assert!(v["rotated_at"].is_null());
            v["rotated_at"] = value.into();
        });
        host.store.put(&edited);
        let err = host.refresh(&client, &refresh, None).unwrap_err();
        assert_eq!(
            err,
            TokenError::InvalidGrant("unknown refresh token"),
            "refresh, {value}"
        );
    }
}
