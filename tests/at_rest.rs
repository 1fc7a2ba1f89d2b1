//! A stolen store yields nothing usable (R65, docs/design.md#at-rest): what a code or a grant
//! carries of the user is sealed under a secret only the client's tokens carry, and the
//! server key alone opens nothing. Key rotation keeps every grant working.

mod common;

use common::*;
use consent_gate::*;

/// Every string in `v`, and what it decodes to if it is base64url (a thief decodes too).
fn strings(v: &serde_json::Value, out: &mut String) {
    use base64::Engine as _;
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
            if let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s) {
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        other => out.push_str(&other.to_string()),
    }
}

/// Every record of every kind, as a thief reads the bytes a store holds.
fn dump(store: &Store) -> String {
    let mut out = String::new();
    for (_, bytes) in store.raw() {
        strings(&serde_json::from_slice(bytes).unwrap(), &mut out);
    }
    out
}

#[test]
fn r65_a_dumped_store_holds_no_upstream_token_identity_or_token() {
    let (mut host, mut browser, app) = app_host();
    // A code in flight holds the user too: look while it is stored.
    let code = host.code_for(&mut browser, &app);
    let in_flight = dump(&host.store);
    let tokens = host
        .redeem(&app.client, &code, &app.verifier, None)
        .unwrap();
    let refreshed = host
        .refresh(&app.client, tokens.refresh().unwrap(), None)
        .unwrap();
    let who = host.bearer(refreshed.access()).unwrap();
    let upstream = who.upstream_token().expect("kept for the server").secret();
    assert!(upstream.starts_with("gho_"));
    assert_eq!(who.display_name(), Some(VICTIM.login));
    let after = dump(&host.store);
    assert!(host.store.count(Kind::Grant) > 0 && host.store.count(Kind::Refresh) > 0);
    for (name, secret) in [
        ("upstream token", upstream),
        ("subject", &VICTIM.subject()),
        ("login", VICTIM.login),
        ("code", &code),
        ("access token", tokens.access()),
        ("refresh token", tokens.refresh().unwrap()),
        ("rotated refresh token", refreshed.refresh().unwrap()),
    ] {
        assert!(
            !in_flight.contains(secret),
            "{name} in the store: {in_flight}"
        );
        assert!(!after.contains(secret), "{name} in the store: {after}");
    }
}

#[test]
fn r65_grants_survive_a_key_rotation() {
    let (mut host, mut browser, app) = app_host();
    let before = host.login(&mut browser, &app);
    // A new current key; the old one kept for verification only.
    let rotated = GateSetup {
        key: [9; 32],
        previous_key: Some(SERVER_KEY),
        ..GateSetup::default()
    };
    host.gate = rotated.gate(&host.github);
    // The access token and the grant made under the old key still work, and the user's
    // upstream token still opens.
    let who = host.bearer(before.access()).unwrap();
    assert!(who.upstream_token().is_some());
    // A refresh re-seals nothing but writes its records under the new key.
    let after = host
        .refresh(&app.client, before.refresh().unwrap(), None)
        .unwrap();
    assert!(
        host.bearer(after.access())
            .unwrap()
            .upstream_token()
            .is_some()
    );
    // Without the old key, what it sealed is refused.
    let only_new = GateSetup {
        key: [9; 32],
        ..GateSetup::default()
    };
    host.gate = only_new.gate(&host.github);
    assert_eq!(host.bearer(before.access()), Err(BearerError::Invalid));
}
