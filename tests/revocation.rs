//! RFC 7009 revocation through the gate: revoking either token of a grant deletes the grant
//! (every token of it stops working), a foreign or unknown token revokes nothing and still
//! answers 200 (§2.2), and client authentication is enforced (§2.1).

mod common;

use common::*;
use consent_gate::*;

fn logged_in(host: &mut Host, name: &str) -> (App, Tokens) {
    let client = host.register_public(name, "http://127.0.0.1:9/cb");
    let app = App::new(&client, name);
    let mut browser = host.browser(VICTIM);
    let tokens = host.login(&mut browser, &app);
    (app, tokens)
}

#[test]
fn revoking_the_access_token_revokes_the_grant() {
    let mut host = Host::new();
    let (app, tokens) = logged_in(&mut host, "acme");
    assert!(host.bearer(tokens.access()).is_ok());
    let reply = host.revoke(&app.client, tokens.access()).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(host.bearer(tokens.access()), Err(BearerError::Revoked));
    let refresh = tokens.refresh().expect("a refresh token");
    assert!(matches!(
        host.refresh(&app.client, refresh, None),
        Err(TokenError::InvalidGrant(_))
    ));
}

#[test]
fn revoking_the_refresh_token_revokes_the_grant() {
    let mut host = Host::new();
    let (app, tokens) = logged_in(&mut host, "acme");
    let refresh = tokens.refresh().expect("a refresh token").to_owned();
    assert_eq!(host.revoke(&app.client, &refresh).unwrap().status, 200);
    assert_eq!(host.bearer(tokens.access()), Err(BearerError::Revoked));
}

#[test]
fn another_clients_token_or_garbage_revokes_nothing_but_answers_200() {
    let mut host = Host::new();
    let (_, victim_tokens) = logged_in(&mut host, "acme");
    let (other, _) = logged_in(&mut host, "other");
    for token in [
        victim_tokens.access(),
        victim_tokens.refresh().unwrap(),
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "garbage",
    ] {
        let reply = host.revoke(&other.client, token).unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body.is_empty());
    }
    assert!(host.bearer(victim_tokens.access()).is_ok());
}

#[test]
fn client_authentication_is_enforced() {
    let mut host = Host::new();
    let confidential =
        host.register_client("conf", "https://app.example/cb", "client_secret_basic");
    let mut wrong = confidential.clone();
    wrong.secret = Some("not-the-secret".into());
    assert_eq!(
        host.revoke(&wrong, "anything").unwrap_err(),
        TokenError::InvalidClient
    );
    let mut unknown = confidential.clone();
    unknown.id = "nobody".into();
    assert_eq!(
        host.revoke(&unknown, "anything").unwrap_err(),
        TokenError::InvalidClient
    );
    assert_eq!(host.revoke(&confidential, "anything").unwrap().status, 200);
}
