//! Tests that notice a broken check (issue 10, item 7: mutation testing).
//!
//! `cargo mutants` over the security-critical modules showed checks whose mutation no
//! test noticed: a condition of a conjunction dropped, a boundary moved by one, a field
//! left out of a record's MAC. Each test here pins one such check through the public
//! surface, with each condition refused *on its own* and each boundary tried on both
//! sides. Checks only the crate can reach (the remembered-consent cookie, the upstream
//! parsers) have unit tests in `src/tests/`. `.ci/mutants` runs the whole comparison.

mod common;

use common::*;
use consent_gate::*;

// ---------------------------------------------------------------- helpers

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// The flow up to the point where the gate holds the upstream token: `app`'s request
/// approved in `browser`, GitHub's callback verified, its code exchanged.
fn authenticated(host: &mut Host, browser: &mut Browser, app: &App) -> UpstreamAuthenticated {
    let back = host.back_from_github(browser, app);
    let verified = verify(host, browser, &back).expect("a verified callback");
    let answer = host.github.token(verified.token_request());
    verified
        .accept_token_response(answer.as_response())
        .expect("the token exchange")
}

/// `GET /callback?…` up to the verification (the transaction taken first).
fn verify(
    host: &mut Host,
    browser: &Browser,
    url: &str,
) -> Result<VerifiedCallback, CallbackError> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let cb = Callback::parse(query.as_bytes())?;
    let txn = host.store.txns.take(&cb.transaction_key());
    let headers = browser.request(Nav::CrossSite, host.now);
    host.gate
        .verify_callback(cb, txn, headers.context(), host.now)
}

/// GitHub's answer to the user request of `auth`.
fn user_of(host: &Host, auth: &UpstreamAuthenticated) -> Vec<u8> {
    host.github.user(&auth.user_request()).body
}

fn json_200(body: &[u8]) -> UpstreamResponse<'_> {
    UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body,
    }
}

/// `issue_code` with the registration `client` (looked up again, R38).
fn issue(
    host: &mut Host,
    auth: UpstreamAuthenticated,
    client: Option<&ClientRecord>,
) -> Result<CodeIssued, CallbackError> {
    let user = user_of(host, &auth);
    host.gate
        .issue_code(auth, json_200(&user), client, host.now, &mut host.entropy)
}

fn client_record(host: &Host, client: &Client) -> ClientRecord {
    host.store
        .clients
        .get(&StoreKey::client(&client.id))
        .expect("registered")
}

fn redeem_body(client: &Client, code: &str, verifier: &str) -> (String, Option<String>) {
    client.token_request(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
    ])
}

// ---------------------------------------------------------------- issue_code (R38)

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
        assert!(host.store.codes.is_empty(), "{what}");
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
    let (record, again) = issued.into_parts();
    assert_eq!(again.header("location"), reply.header("location"));
    host.store.codes.put(record);
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
    host.store.codes.put(issued.code_record().clone());
    let tokens = host
        .redeem(&client, &code, &app.verifier, None)
        .expect("tokens");
    let who = host.bearer(tokens.access()).unwrap();
    assert_eq!(who.subject(), "github:abc");
    let grant = host.store.grants.get(who.grant_key()).unwrap();
    assert_eq!(grant.display_name(), Some("octo"));
    assert_eq!(grant.subject(), "github:abc");
    assert_eq!(grant.client_id(), client.id);
    assert!(grant.upstream_token().is_some());
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
        let key = host.store.codes.all()[0].key().to_owned();
        let record = host.store.codes.take(&key).unwrap();
        let edited = tamper(&record, |v| {
            assert!(v["upstream_expires_at"].is_null());
            v["upstream_expires_at"] = value.into();
        });
        host.store.codes.put(edited);
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
        let grant = host.store.grants.get(who.grant_key()).unwrap();
        let edited = tamper(&grant, |v| {
            assert!(v["upstream_expires_at"].is_null());
            v["upstream_expires_at"] = value.into();
        });
        host.store.grants.put(edited);
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
        let record = host.store.refresh.get(&key).unwrap();
        assert!(!record.is_rotated());
        assert_eq!(record.client_id(), client.id);
        let edited = tamper(&record, |v| {
            assert!(v["rotated_at"].is_null());
            v["rotated_at"] = value.into();
        });
        host.store.refresh.put(edited);
        let err = host.refresh(&client, &refresh, None).unwrap_err();
        assert_eq!(
            err,
            TokenError::InvalidGrant("unknown refresh token"),
            "refresh, {value}"
        );
    }
}

// ---------------------------------------------------------------- bearer (R49–R51)

/// A host whose tokens come out exactly `len` characters long (the scope set is sized to
/// fit: the token's payload names it).
fn host_with_token_length(len: usize) -> (Host, String) {
    // cga_ + base64url(payload): payload = version, key id, expiry, grant id, audience,
    // then client id, subject and scope with two-byte lengths, then the 32-byte MAC.
    let client_id_len = 22;
    let subject_len = VICTIM.subject().len();
    let fixed = 1 + 4 + 8 + 16 + 16 + 2 + client_id_len + 2 + subject_len + 2 + 32;
    let raw = (len - 4) * 3 / 4;
    assert_eq!((raw * 4).div_ceil(3), len - 4, "a reachable length");
    let mut budget = raw - fixed;
    let mut scopes: Vec<&'static str> = Vec::new();
    let mut i = 0;
    while budget > 0 {
        let sep = usize::from(!scopes.is_empty());
        let n = (budget - sep).min(120);
        assert!(n >= 3, "tokens of at least 3 characters");
        let tok = format!("{:03}{}", i, "s".repeat(n - 3));
        scopes.push(tok.leak());
        budget -= n + sep;
        i += 1;
    }
    let mut host = Host::with(Setup {
        scopes,
        ..Setup::default()
    });
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let tokens = host.login(&mut browser, &App::new(&client, "big"));
    (host, tokens.access().to_owned())
}

#[test]
fn a_bearer_token_of_exactly_the_size_limit_is_read_one_more_byte_is_not() {
    // `token.len() > MAX_TOKEN` → `>=` or `==` would refuse a valid 4096-byte token.
    let (host, token) = host_with_token_length(4096);
    assert_eq!(token.len(), 4096);
    assert!(host.bearer(&token).is_ok());
    let (host, token) = host_with_token_length(4100);
    assert_eq!(token.len(), 4100);
    assert_eq!(host.bearer(&token), Err(BearerError::Invalid));
}

#[test]
fn short_or_foreign_bearer_tokens_are_invalid_not_a_panic() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let tokens = host.login(&mut browser, &App::new(&client, "t"));
    let raw = base64_decode(&tokens.access()[4..]);
    // Every length a truncation can have, shortest first: `raw.len() < 1 + 4 + 32`.
    for n in 0..raw.len() {
        let t = format!("cga_{}", base64_encode(&raw[..n]));
        assert_eq!(host.bearer(&t), Err(BearerError::Invalid), "{n} bytes");
    }
    // Another version byte under the same MAC, a flipped MAC byte.
    for i in [0, raw.len() - 1] {
        let mut edited = raw.clone();
        edited[i] ^= 1;
        let t = format!("cga_{}", base64_encode(&edited));
        assert_eq!(host.bearer(&t), Err(BearerError::Invalid), "byte {i}");
    }
    // Without the prefix, with garbage, huge.
    for t in [
        tokens.access()[4..].to_owned(),
        "cga_!!".to_owned(),
        format!("cga_{}", "A".repeat(100_000)),
        String::new(),
    ] {
        assert_eq!(host.bearer(&t), Err(BearerError::Invalid));
    }
    // The scheme is case-insensitive; extra spaces before the token are tolerated; no
    // space at all is not a bearer header.
    let (gate, now) = (&host.gate, host.now);
    for h in [
        format!("bearer {}", tokens.access()),
        format!("BEARER   {}", tokens.access()),
    ] {
        assert!(gate.verify_bearer(Some(&h), now).is_ok(), "{h}");
    }
    assert_eq!(
        gate.verify_bearer(Some("Bearer"), now).unwrap_err(),
        BearerError::Invalid
    );
}

#[test]
fn a_token_under_an_unknown_key_is_invalid_under_a_retired_key_valid() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let tokens = host.login(&mut browser, &App::new(&client, "k"));
    let gate_with = |keys: Keys| {
        let up = host.gate.config().upstream().clone();
        let config = Config::builder(ISSUER, RESOURCE, up, keys)
            .dev_loopback_http(true)
            .build()
            .unwrap();
        Gate::new(config)
    };
    let old = ServerKey::new(&SERVER_KEY).unwrap();
    let new = ServerKey::new(&[9; 32]).unwrap();
    let rotated = gate_with(Keys::new(new.clone()).with_previous(old));
    let claims = rotated
        .verify_bearer(Some(&format!("Bearer {}", tokens.access())), host.now)
        .expect("a retired key still verifies");
    assert_eq!(
        claims.grant_key(),
        *host.bearer(tokens.access()).unwrap().grant_key()
    );
    assert!(format!("{claims:?}").contains(&client.id));
    let stranger = gate_with(Keys::new(new));
    assert_eq!(
        stranger
            .verify_bearer(Some(&format!("Bearer {}", tokens.access())), host.now)
            .unwrap_err(),
        BearerError::Invalid
    );
}

#[test]
fn confirm_refuses_a_grant_that_fails_any_one_check() {
    // `grant_id == … && now < expires_at && mac_is_valid`: each alone.
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let mine = host.login(&mut browser, &App::new(&client, "mine"));
    let other = host.login(&mut browser, &App::new(&client, "other"));
    let grant_of = |host: &Host, access: &str| {
        let key = host.bearer(access).unwrap().grant_key().to_owned();
        host.store.grants.get(&key).unwrap()
    };
    let my_grant = grant_of(&host, mine.access());
    let other_grant = grant_of(&host, other.access());
    let claims = || {
        host.gate
            .verify_bearer(Some(&format!("Bearer {}", mine.access())), host.now)
            .unwrap()
    };
    // Valid and unexpired, but another grant.
    assert_eq!(
        claims().confirm(Some(&other_grant), host.now),
        Err(BearerError::Revoked)
    );
    // The grant itself, at its expiry and one second before.
    let exp = my_grant.expires_at();
    assert_eq!(
        claims().confirm(Some(&my_grant), exp),
        Err(BearerError::Revoked)
    );
    let who = claims()
        .confirm(Some(&my_grant), UnixTime(exp.0 - 1))
        .expect("one second before expiry");
    assert_eq!(who.client_id(), client.id);
    assert_eq!(who.subject(), VICTIM.subject());
    assert_eq!(who.scope().to_scope_string(), "mcp");
    assert_eq!(*who.grant_key(), my_grant.key());
    assert!(format!("{who:?}").contains(&client.id));
    // An edited grant (handed to another client in the store).
    let edited = tamper(&my_grant, |v| v["client_id"] = "x".into());
    assert_eq!(
        claims().confirm(Some(&edited), host.now),
        Err(BearerError::Revoked)
    );
    assert_eq!(claims().confirm(None, host.now), Err(BearerError::Revoked));
}

#[test]
fn the_step_up_challenge_names_the_scope() {
    let host = Host::new();
    let required = ScopeSet::parse("mcp").unwrap();
    let r = host.gate.insufficient_scope(&required);
    assert_eq!(r.status, 403);
    let www = r.header("www-authenticate").unwrap();
    assert!(www.starts_with("Bearer resource_metadata=\""), "{www}");
    assert!(www.contains(", scope=\"mcp\""), "{www}");
    assert!(www.ends_with(", error=\"insufficient_scope\""), "{www}");
}

// ---------------------------------------------------------------- the token endpoint

#[test]
fn a_code_is_refused_for_every_binding_it_fails() {
    let mut host = Host::new();
    let client = host.register_public("App", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    // Expiry: one second before and at it.
    let app = App::new(&client, "exp");
    let code = host.code_for(&mut browser, &app);
    let key = host.store.codes.all()[0].key().to_owned();
    let record = host.store.codes.get(&key).unwrap();
    assert!(!record.is_redeemed());
    let exp = record.expires_at();
    host.now = UnixTime(exp.0 - 1);
    assert!(host.redeem(&client, &code, &app.verifier, None).is_ok());
    let stored = host.store.codes.get(&key).unwrap();
    assert!(stored.is_redeemed(), "stored back redeemed");
    assert!(host.store.grants.get(&record.grant_key()).is_some());
    host.now = T0;
    // A code record presented under another code's key.
    let app_a = App::new(&client, "a");
    let app_b = App::new(&client, "b");
    let code_a = host.code_for(&mut browser, &app_a);
    let _code_b = host.code_for(&mut browser, &app_b);
    let records = host.store.codes.all();
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
        let taken = host.store.codes.take(&req.record_key());
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
        .refresh
        .get(&refresh_request(&app, &rt0).record_key())
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
    let record = host.store.refresh.get(&req.record_key()).unwrap();
    let grant = host.store.grants.get(&record.grant_key()).unwrap();
    assert_eq!(record.expires_at(), grant.expires_at());
    assert_eq!(*record.key(), req.record_key());
    // Another token's record (valid MAC, same client).
    let t1 = host.login(&mut browser, &App::new(&app.client, "rt1"));
    let other_req = refresh_request(&app, t1.refresh().unwrap());
    let other = host.store.refresh.get(&other_req.record_key()).unwrap();
    let other_grant = host.store.grants.get(&other.grant_key()).unwrap();
    let redeem = |host: &Host, r: Option<RefreshRecord>, g: Option<&GrantRecord>, now| {
        redeem_refresh_with(host, &req, &client, r, g, now)
    };
    assert_eq!(
        redeem(&host, Some(other.clone()), Some(&other_grant), host.now).unwrap_err(),
        TokenError::InvalidGrant("unknown refresh token")
    );
    // Its own record, but another grant (valid MAC, unexpired), an edited grant, none.
    let edited = tamper(&grant, |v| v["subject"] = "github:666".into());
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
        .refresh
        .get(&refresh_request(&app, &rt2).record_key())
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
    let record = host.store.refresh.get(&req.refresh_key()).unwrap();
    let other = refresh_request(&app, t1.refresh().unwrap()).record_key();
    let other = host.store.refresh.get(&other).unwrap();
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
    let pending = host.store.pending.take(&form.pending_key());
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
    // The redirect upstream: its accessors agree with its parts.
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
    let (txn, sent) = up.into_parts();
    assert_eq!(*txn.key(), record_key);
    assert_eq!(sent.header("location"), Some(location.as_str()));
    assert_eq!(sent.set_cookies().count(), reply.set_cookies().count());
    assert_eq!(txn.details().client_id(), client.id);
    assert_eq!(txn.expires_at(), host.now.plus(600));
    host.store.txns.put(txn);
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
    let txn_b = host.store.txns.take(&b.transaction_key()).unwrap();
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
    let txn_c = host.store.txns.take(&c.transaction_key()).unwrap();
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

// ---------------------------------------------------------------- redirect matching (R17, R18)

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
            RegistrationError::InvalidRedirectUri("empty or too long"),
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
            RegistrationError::InvalidRedirectUri("whitespace, control or non-ASCII characters"),
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
        host.store.grants.get(&key).unwrap()
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
