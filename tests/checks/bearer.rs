//! The bearer check and its boundaries (R49–R51).

use super::*;

/// A host whose tokens come out exactly `len` characters long (the scope set is sized to
/// fit: the token's payload names it).
fn host_with_token_length(len: usize) -> (Host, String) {
    // cga_ + base64url(payload): payload = version, key id, expiry, grant id, grant
    // secret, audience, then client id, subject and scope with two-byte lengths, then the
    // 32-byte MAC.
    let client_id_len = 22;
    let subject_len = VICTIM.subject().len();
    let fixed = 1 + 4 + 8 + 16 + 32 + 16 + 2 + client_id_len + 2 + subject_len + 2 + 32;
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
    let mut host = Host::with(GateSetup {
        scopes,
        ..GateSetup::default()
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
    let gate_with = |previous_key: Option<[u8; 32]>| {
        GateSetup {
            key: [9; 32],
            previous_key,
            ..GateSetup::default()
        }
        .gate(&host.github)
    };
    let rotated = gate_with(Some(SERVER_KEY));
    let claims = rotated
        .verify_bearer(Some(&format!("Bearer {}", tokens.access())), host.now)
        .expect("a retired key still verifies");
    assert_eq!(
        claims.grant_key(),
        *host.bearer(tokens.access()).unwrap().grant_key()
    );
    assert!(format!("{claims:?}").contains(&client.id));
    let stranger = gate_with(None);
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
        host.store.get::<GrantRecord>(&key).unwrap()
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
