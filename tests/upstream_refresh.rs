//! The upstream token's whole life (R66): renewed with the upstream's refresh token shortly
//! before it expires (or after), transparently for the MCP client, whose tokens keep
//! working; a refusal by the upstream ends the grant; a token that never expires is never
//! renewed; and the upstream refresh token never leaves the server (R41, R65). Driven
//! through the real gate and the kit's upstream double (Google's shapes, and GitHub's with
//! expiring, rotating tokens).

mod common;

use common::*;
use consent_gate::*;

/// A host whose upstream is the double in Google's shapes (`expires_in` 3599, a refresh
/// token that stays), or in GitHub's with `lifetime` and rotating refresh tokens.
fn host(google: bool, lifetime: Option<u64>) -> (Host, Browser, App) {
    let mut host = Host::with(GateSetup {
        openid: google,
        ..GateSetup::default()
    });
    host.github.token_lifetime = lifetime;
    host.github.refresh_tokens = true;
    let client = host.register_public("Acme Agent", "http://127.0.0.1:9/cb");
    let browser = host.browser(VICTIM);
    let app = App::new(&client, "acme");
    (host, browser, app)
}

fn upstream_token(p: &Principal) -> String {
    p.upstream_token()
        .expect("an upstream token")
        .secret()
        .to_owned()
}

/// The upstream's user API, called with the principal's upstream token, knows the victim.
fn upstream_knows_the_victim(host: &Host, p: &Principal) {
    let request = host.gate.upstream_user_request(p).expect("a request");
    assert_eq!(host.github.user(&request).status, 200);
}

#[test]
fn near_expiry_the_upstream_token_is_renewed_and_the_clients_tokens_keep_working_r66() {
    let (mut host, mut browser, app) = host(true, None);
    let tokens = host.login(&mut browser, &app);
    let first = host.bearer_renewing(tokens.access()).unwrap();
    let original = upstream_token(&first);
    assert!(!first.upstream_refresh_due(host.now));
    assert_eq!(host.github.refresh_hits, 0, "nothing to renew yet");
    // Within the margin of its expiry: renewed on this request, before the server uses it.
    host.advance(3599 - UPSTREAM_REFRESH_MARGIN);
    assert!(host.bearer(tokens.access()).is_ok(), "not expired yet");
    let renewed = host.bearer_renewing(tokens.access()).unwrap();
    assert_eq!(host.github.refresh_hits, 1);
    assert_ne!(upstream_token(&renewed), original, "a new upstream token");
    assert_eq!(renewed.upstream_expires_at(), Some(host.now.plus(3599)));
    assert_eq!(renewed.subject(), first.subject());
    upstream_knows_the_victim(&host, &renewed);
    // The renewed grant is stored: the next request reads the new token without renewing,
    // and so does a host that does not renew.
    let again = host.bearer_renewing(tokens.access()).unwrap();
    assert_eq!(upstream_token(&again), upstream_token(&renewed));
    assert_eq!(
        upstream_token(&host.bearer(tokens.access()).unwrap()),
        upstream_token(&renewed)
    );
    assert_eq!(host.github.refresh_hits, 1, "renewed once");
    // The client's refresh token still opens the grant, and its new access token carries
    // the renewed upstream token (sealed under the same grant secret, R65).
    host.advance(10);
    let refreshed = host
        .refresh(&app.client, tokens.refresh().unwrap(), None)
        .expect("our refresh still works");
    let p = host.bearer_renewing(refreshed.access()).unwrap();
    assert_eq!(upstream_token(&p), upstream_token(&renewed));
    // Past the renewed token's expiry (and our first access token's): renewed again, with
    // the refresh token Google did not replace.
    host.advance(3590);
    assert_eq!(
        host.bearer(refreshed.access()).err(),
        Some(BearerError::UpstreamExpired),
        "a host that does not renew refuses an expired upstream token"
    );
    let p = host.bearer_renewing(refreshed.access()).unwrap();
    assert_eq!(host.github.refresh_hits, 2);
    upstream_knows_the_victim(&host, &p);
}

#[test]
fn an_expired_upstream_token_is_renewed_and_a_rotated_refresh_token_kept_r66() {
    let (mut host, mut browser, app) = host(false, Some(600));
    let tokens = host.login(&mut browser, &app);
    let original = upstream_token(&host.bearer(tokens.access()).unwrap());
    host.advance(700);
    // Our refresh no longer refuses an expired upstream token the grant can renew.
    let tokens = host
        .refresh(&app.client, tokens.refresh().unwrap(), None)
        .expect("the grant can still be renewed");
    // A principal confirmed without its expired upstream token: never handed out (R66).
    let claims = host
        .gate
        .verify_bearer(Some(&format!("Bearer {}", tokens.access())), host.now)
        .unwrap();
    let grant = host.store.get::<GrantRecord>(&claims.grant_key());
    let stale = claims
        .confirm_refreshable(grant.as_ref(), host.now)
        .unwrap();
    assert!(
        stale.upstream_token().is_none(),
        "an expired upstream token"
    );
    assert!(stale.upstream_refresh_due(host.now));
    assert!(host.gate.upstream_user_request(&stale).is_none());
    let renewed = host.bearer_renewing(tokens.access()).unwrap();
    assert_ne!(upstream_token(&renewed), original);
    upstream_knows_the_victim(&host, &renewed);
    let salt = |host: &Host| {
        let grant = host.store.get::<GrantRecord>(renewed.grant_key()).unwrap();
        serde_json::to_value(&grant).unwrap()["user_salt"].clone()
    };
    let first_salt = salt(&host);
    // GitHub's refresh tokens are one-time: the rotated one was stored, or this second
    // renewal would be refused and end the grant.
    host.advance(600);
    let again = host.bearer_renewing(tokens.access()).unwrap();
    assert_eq!(host.github.refresh_hits, 2);
    assert_ne!(upstream_token(&again), upstream_token(&renewed));
    // Each renewal sealed the user under a key of its own (a fresh salt): one secret, two
    // plaintexts, and AES-GCM's constant nonce would otherwise repeat under one key.
    assert!(first_salt.is_array(), "{first_salt}");
    assert_ne!(salt(&host), first_salt);
}

#[test]
fn an_upstream_refusal_ends_the_grant_r66() {
    for google in [true, false] {
        let (mut host, mut browser, app) = host(google, Some(600));
        let tokens = host.login(&mut browser, &app);
        host.advance(if google { 3599 } else { 600 });
        // The user revoked our app upstream.
        host.github.fail_next_refresh = Some("invalid_grant");
        assert_eq!(
            host.bearer_renewing(tokens.access()).err(),
            Some(BearerError::Revoked)
        );
        assert_eq!(host.store.count(Kind::Grant), 0, "the grant is gone");
        assert_eq!(
            host.bearer_renewing(tokens.access()).err(),
            Some(BearerError::Revoked)
        );
        assert_eq!(
            host.bearer(tokens.access()).err(),
            Some(BearerError::Revoked)
        );
        let err = host
            .refresh(&app.client, tokens.refresh().unwrap(), None)
            .unwrap_err();
        assert_eq!(err, TokenError::InvalidGrant("grant revoked"));
        assert_eq!(host.github.refresh_hits, 1, "no second try");
    }
}

#[test]
fn the_refusal_is_a_401_with_its_challenge_and_a_passing_failure_keeps_the_grant_r66() {
    let (mut host, mut browser, app) = host(true, None);
    let tokens = host.login(&mut browser, &app);
    host.advance(3599 - 30);
    // Confirmed, not yet renewed: its renewal is due.
    let p = host.bearer(tokens.access()).unwrap();
    assert!(p.upstream_refresh_due(host.now));
    let now = host.now.plus(0);
    let grant = host.store.get::<GrantRecord>(p.grant_key());
    let refused = UpstreamResponse {
        status: 400,
        content_type: Some("application/json"),
        body:
            br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
    };
    let e = host
        .gate
        .accept_upstream_refresh(&p, grant.as_ref(), refused, now, &mut host.entropy)
        .unwrap_err();
    assert!(matches!(e, UpstreamRefreshError::Refused { .. }), "{e:?}");
    assert_eq!(e.oauth_error(), "invalid_token");
    let step = host.gate.upstream_refresh_failed(&e);
    assert!(
        matches!(step.ops[..], [Op::Delete { kind: Kind::Grant, key }] if key == *p.grant_key()),
        "{:?}",
        step.ops
    );
    assert_eq!(step.reply.status, 401);
    assert!(
        step.reply
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // A 503 or a broken answer may pass: nothing is deleted, and the principal serves
    // while its upstream token is valid.
    for (status, body) in [(503, &b"busy"[..]), (200, &b"{"[..])] {
        let answer = UpstreamResponse {
            status,
            content_type: Some("application/json"),
            body,
        };
        let e = host
            .gate
            .accept_upstream_refresh(&p, grant.as_ref(), answer, now, &mut host.entropy)
            .unwrap_err();
        assert!(matches!(e, UpstreamRefreshError::Unavailable(_)), "{e:?}");
        assert!(host.gate.upstream_refresh_failed(&e).ops.is_empty());
        assert_eq!(e.bearer_error(), BearerError::UpstreamExpired);
    }
    assert!(p.upstream_valid(now));
    assert!(!p.upstream_valid(now.plus(30)));
    // A grant that is not the principal's (deleted, or another) changes nothing.
    let answer = UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body: br#"{"access_token":"x"}"#,
    };
    let e = host
        .gate
        .accept_upstream_refresh(&p, None, answer, now, &mut host.entropy);
    assert_eq!(e.err(), Some(UpstreamRefreshError::GrantChanged));
}

#[test]
fn a_refusal_of_a_refresh_token_the_grant_no_longer_holds_does_not_end_it_r66() {
    // Two requests confirmed before one of them renewed (another server, with no shared
    // lock): the second's refresh token was rotated away, so GitHub refuses it. That
    // refusal says nothing about the grant, which holds a newer token.
    let (mut host, mut browser, app) = host(false, Some(600));
    let tokens = host.login(&mut browser, &app);
    host.advance(600);
    let header = format!("Bearer {}", tokens.access());
    let confirm = |host: &Host| {
        let claims = host.gate.verify_bearer(Some(&header), host.now).unwrap();
        let grant = host.store.get::<GrantRecord>(&claims.grant_key());
        claims
            .confirm_refreshable(grant.as_ref(), host.now)
            .unwrap()
    };
    let late = confirm(&host);
    let renewed = host.bearer_renewing(tokens.access()).unwrap();
    let request = host.gate.upstream_refresh_request(&late).unwrap();
    let answer = host.github.token(&request);
    let grant = host.store.get::<GrantRecord>(late.grant_key());
    let now = host.now;
    let e = host
        .gate
        .accept_upstream_refresh(
            &late,
            grant.as_ref(),
            answer.as_response(),
            now,
            &mut host.entropy,
        )
        .unwrap_err();
    assert_eq!(e, UpstreamRefreshError::GrantChanged);
    assert!(host.gate.upstream_refresh_failed(&e).ops.is_empty());
    assert_eq!(
        upstream_token(&host.bearer(tokens.access()).unwrap()),
        upstream_token(&renewed)
    );
}

#[test]
fn a_github_oauth_app_token_never_expires_and_is_never_renewed_r66() {
    // An OAuth App's token has no `expires_in` and no refresh token.
    let (mut host, mut browser, app) = host(false, None);
    let tokens = host.login(&mut browser, &app);
    let first = host.bearer_renewing(tokens.access()).unwrap();
    assert_eq!(first.upstream_expires_at(), None);
    assert!(host.gate.upstream_refresh_request(&first).is_none());
    let mut access = tokens.access().to_owned();
    let mut refresh = tokens.refresh().unwrap().to_owned();
    for _ in 0..5 {
        host.advance(3000);
        let p = host.bearer_renewing(&access).unwrap();
        assert!(!p.upstream_refresh_due(host.now));
        assert!(p.upstream_valid(host.now));
        assert_eq!(upstream_token(&p), upstream_token(&first));
        let next = host.refresh(&app.client, &refresh, None).unwrap();
        (access, refresh) = (next.access().to_owned(), next.refresh().unwrap().to_owned());
    }
    assert_eq!(host.github.refresh_hits, 0);
    upstream_knows_the_victim(&host, &host.bearer(&access).unwrap());
}

#[test]
fn the_upstream_refresh_token_never_leaves_the_server_r41_r65_r66() {
    for google in [true, false] {
        let (mut host, mut browser, app) = host(google, Some(600));
        let tokens = host.login(&mut browser, &app);
        let mut seen = vec![
            format!("{:?}", tokens.reply),
            String::from_utf8_lossy(&tokens.reply.body).into(),
        ];
        seen.extend(tokens.reply.headers.iter().map(|(_, v)| v.to_string()));
        host.advance(3599);
        let p = host.bearer_renewing(tokens.access()).unwrap();
        seen.push(format!("{p:?}"));
        let next = host
            .refresh(&app.client, tokens.refresh().unwrap(), None)
            .unwrap();
        seen.push(String::from_utf8_lossy(&next.reply.body).into());
        let grant = host.store.get::<GrantRecord>(p.grant_key()).unwrap();
        seen.push(format!("{grant:?}"));
        let request = host.gate.upstream_refresh_request(&p).unwrap();
        seen.push(format!("{request:?}"));
        let now = host.now;
        let answer = host.github.token(&request);
        let (renewed, step) = host
            .gate
            .accept_upstream_refresh(
                &p,
                Some(&grant),
                answer.as_response(),
                now,
                &mut host.entropy,
            )
            .unwrap();
        seen.push(format!("{renewed:?} {step:?}"));
        seen.push(String::from_utf8_lossy(&step.reply.body).into());
        let refused = UpstreamRefreshError::Refused {
            cause: UpstreamError::ErrorResponse("invalid_grant".into()),
            revoke_grant: *p.grant_key(),
        };
        let failed = host.gate.upstream_refresh_failed(&refused);
        seen.push(format!("{refused:?} {refused} {failed:?}"));
        seen.push(String::from_utf8_lossy(&failed.reply.body).into());
        seen.extend(failed.reply.headers.iter().map(|(_, v)| v.to_string()));
        let _nothing_to_send = host.store.apply(step);
        // At rest too: a dump of the store holds no upstream refresh token (R65).
        seen.extend(
            host.store
                .raw()
                .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned()),
        );
        let issued = host.github.issued_refresh_tokens();
        assert!(!issued.is_empty(), "the double issued refresh tokens");
        for secret in issued {
            for text in &seen {
                assert!(!text.contains(&secret), "{secret} in {text}");
            }
        }
        // Yet the request carries it, to the upstream only.
        assert!(String::from_utf8_lossy(&request.body).contains("refresh_token="));
    }
}

#[test]
fn revoking_our_grant_revokes_the_upstream_grant_where_it_can_r66() {
    // Google has an RFC 7009 endpoint: the refresh token is revoked there, and with it
    // every upstream token of the grant.
    for by_refresh in [true, false] {
        let (mut host, mut browser, app) = host(true, None);
        let tokens = host.login(&mut browser, &app);
        let upstream = upstream_token(&host.bearer(tokens.access()).unwrap());
        assert!(host.github.is_live(&upstream));
        let presented = if by_refresh {
            tokens.refresh().unwrap()
        } else {
            tokens.access()
        };
        let reply = host.revoke(&app.client, presented).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(host.github.revocation_hits, 1);
        assert!(!host.github.is_live(&upstream), "revoked upstream too");
        assert!(host.github.issued_refresh_tokens().is_empty());
        assert_eq!(
            host.bearer(tokens.access()).err(),
            Some(BearerError::Revoked)
        );
    }
    // Another client's token, or a token that is no one's, revokes nothing, here or there.
    let (mut host, mut browser, app) = host(true, None);
    let tokens = host.login(&mut browser, &app);
    let other = host.register_public("Other", "http://127.0.0.1:9/other");
    // Even handed the grant, the gate builds no upstream revocation for a token that is
    // not the requesting client's.
    let grant = host.store.all::<GrantRecord>().pop();
    for token in [tokens.refresh().unwrap(), tokens.access()] {
        let (body, auth) = other.token_request(&[("token", token)]);
        let request = RevocationRequest::parse(body.as_bytes(), auth.as_deref()).unwrap();
        let client = host.store.get::<ClientRecord>(&request.client_key());
        let refresh = host.store.get::<RefreshRecord>(&request.refresh_key());
        let upstream = host.gate.upstream_revocation_request(
            &request,
            client.as_ref(),
            refresh.as_ref(),
            grant.as_ref(),
            host.now,
        );
        assert!(upstream.is_none(), "another client's token");
    }
    let _ = host.revoke(&other, tokens.refresh().unwrap()).unwrap();
    let _ = host.revoke(&app.client, "cga_not-a-token").unwrap();
    assert_eq!(host.github.revocation_hits, 0);
    assert!(host.bearer(tokens.access()).is_ok());
    // GitHub: its token deletion (`DELETE /applications/{id}/token`, HTTP Basic, JSON);
    // the double answers 204 only to that exact shape, so a live token afterwards means
    // the request was wrong.
    let (mut host, mut browser, app) = host_github();
    let tokens = host.login(&mut browser, &app);
    let upstream = upstream_token(&host.bearer(tokens.access()).unwrap());
    assert!(host.github.is_live(&upstream));
    let _ = host.revoke(&app.client, tokens.access()).unwrap();
    assert_eq!(host.github.revocation_hits, 1);
    assert!(!host.github.is_live(&upstream), "deleted at GitHub too");
    assert_eq!(
        host.bearer(tokens.access()).err(),
        Some(BearerError::Revoked)
    );
}

#[test]
fn github_token_deletion_has_githubs_shape_r66() {
    let (mut host, mut browser, app) = host_github();
    let tokens = host.login(&mut browser, &app);
    let upstream = upstream_token(&host.bearer(tokens.access()).unwrap());
    let (body, auth) = app.client.token_request(&[("token", tokens.access())]);
    let request = RevocationRequest::parse(body.as_bytes(), auth.as_deref()).unwrap();
    let client = host.store.get::<ClientRecord>(&request.client_key());
    let grant = host.store.all::<GrantRecord>().pop();
    let sent = host
        .gate
        .upstream_revocation_request(&request, client.as_ref(), None, grant.as_ref(), host.now)
        .expect("a token deletion");
    assert_eq!(sent.method, "DELETE");
    assert_eq!(sent.url, host.github.token_deletion_endpoint);
    let header = |name: &str| {
        let found = sent.headers.iter().find(|(n, _)| *n == name);
        found.map(|(_, v)| v.to_string()).unwrap_or_default()
    };
    // `Ov23liEXAMPLE:upstream-secret`, not form-encoded: GitHub's REST Basic auth.
    assert_eq!(
        header("authorization"),
        "Basic T3YyM2xpRVhBTVBMRTp1cHN0cmVhbS1zZWNyZXQ="
    );
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("accept"), "application/vnd.github+json");
    assert_eq!(header("user-agent"), "consent-gate");
    let json: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(json, serde_json::json!({ "access_token": upstream }));
    // The real preset: api.github.com, the app's client id as the path segment.
    let preset = UpstreamConfig::github("Ov23li/x y", ClientSecret::new("s"));
    assert_eq!(
        preset.revocation_endpoint.as_deref(),
        Some("https://api.github.com/applications/Ov23li%2Fx%20y/token")
    );
    assert_eq!(preset.revocation_shape, RevocationShape::GithubToken);
}

fn host_github() -> (Host, Browser, App) {
    host(false, Some(600))
}
