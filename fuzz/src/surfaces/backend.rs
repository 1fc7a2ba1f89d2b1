//! The back-channel surfaces: registration, the token and revocation endpoints, bearer
//! tokens at the MCP endpoint, and the upstream's responses.

use super::*;
use consent_gate::{IdTokenPolicy, ProviderMetadata, UnixTime, UpstreamError};

/// `POST /register` (RFC 7591; R10–R15, A17). A registered URI must then be usable at
/// `/authorize` exactly as registered.
pub fn registration_json(body: &[u8]) -> Reached {
    let fx = fixture();
    let mut rng = rng();
    let reg = match fx.gate.register(body, NOW, &mut |b: &mut [u8]| rng.fill(b)) {
        Ok(r) => r,
        Err(e) => {
            let r = e.response();
            assert!(!e.redirect_allowed());
            assert_eq!(r.status, 400);
            assert_page_not_redirect(&r, "registration error");
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("error body is JSON");
            assert_eq!(v["error"], e.oauth_error());
            return Reached::Rejected;
        }
    };
    assert_eq!(reg.reply.status, 201);
    assert_headers_clean(&reg.reply, "registration");
    let v: serde_json::Value = serde_json::from_slice(&reg.reply.body).expect("reply is JSON");
    let rec = &reg.record;
    assert_eq!(v["client_id"], rec.client_id());
    let echoed: Vec<&str> = v["redirect_uris"]
        .as_array()
        .expect("redirect_uris")
        .iter()
        .filter_map(|u| u.as_str())
        .collect();
    let stored: Vec<&str> = rec
        .redirect_uris()
        .iter()
        .map(RedirectUri::as_str)
        .collect();
    assert_eq!(
        echoed, stored,
        "the reply must echo the registered redirect URIs"
    );
    for uri in rec.redirect_uris() {
        let raw = uri.as_str();
        assert_eq!(
            RedirectUri::parse(raw).as_ref().map(RedirectUri::as_str),
            Ok(raw),
            "R11: re-validation differs"
        );
        check_scheme(raw);
        // Registration and authorization agree: a registered URI is accepted as is.
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
            rec.client_id(),
            url::form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>(),
            crate::fixture::CHALLENGE
        );
        let req = AuthorizeRequest::parse(q.as_bytes()).expect("a registered URI fits a query");
        match fx.gate.authorize(
            req,
            Some(rec),
            BrowserContext::default(),
            NOW,
            &mut |b: &mut [u8]| rng.fill(b),
        ) {
            Ok(Authorization::NeedsConsent(p)) => {
                assert_eq!(p.view().redirect_uri, raw);
                check_page(&p.page(), "consent page of a registered client");
            }
            Ok(Authorization::Remembered(_)) => {
                panic!("remembered consent under ConsentPolicy::Always")
            }
            Err(e) => panic!("registered redirect URI {raw:?} refused at /authorize: {e}"),
        }
    }
    Reached::Accepted
}

/// `POST /token` and `POST /revoke`, with an `Authorization` header. Input:
/// `authorization\nbody` (an empty first line: no header).
pub fn token_request(data: &[u8]) -> Reached {
    let fx = fixture();
    let ([auth], body) = lines::<1>(data);
    let auth = header(auth);
    let revoked = revoke(body, auth.as_deref());
    let req = match TokenRequest::parse(body, auth.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            check_token_error(&e);
            return revoked.max(Reached::Rejected);
        }
    };
    let client = fx.client(&req.client_key());
    let mut rng = rng();
    let out = if req.is_code_grant() {
        let record = fx.code(&req.record_key());
        let owner = record.as_ref().map(|r| {
            if r.key() == fx.code.key() {
                &fx.public
            } else {
                &fx.confidential
            }
        });
        let out = fx
            .gate
            .redeem_code(&req, record, client, NOW, &mut |b: &mut [u8]| rng.fill(b));
        if let Ok(t) = &out {
            let owner = owner.expect("tokens without a code record");
            assert_eq!(
                req.client_id(),
                owner.client_id(),
                "A9: a code redeemed by another client"
            );
            let code = t
                .code
                .as_ref()
                .expect("the code record goes back to the store");
            assert!(
                code.is_redeemed(),
                "R43/A8: a redeemed code is stored back unredeemed"
            );
        }
        out
    } else {
        let record = (req.record_key() == *fx.refresh.key()).then(|| fx.refresh.clone());
        let out = fx
            .gate
            .redeem_refresh(&req, record, Some(&fx.grant), client, NOW);
        if out.is_ok() {
            assert_eq!(
                req.client_id(),
                fx.public.client_id(),
                "a refresh by another client"
            );
        }
        out
    };
    match out {
        Err(e) => {
            check_token_error(&e);
            assert!(
                e.revoke_grant().is_none(),
                "a fresh record cannot be a reuse"
            );
            Reached::Parsed
        }
        Ok(t) => {
            assert_eq!(t.reply.status, 200);
            assert_eq!(t.reply.header("cache-control"), Some("no-store"), "R46");
            let v: serde_json::Value = serde_json::from_slice(&t.reply.body).expect("JSON");
            let at = v["access_token"].as_str().expect("access_token");
            let claims = fx
                .gate
                .verify_bearer(Some(&format!("Bearer {at}")), NOW)
                .expect("a fresh token verifies");
            let grant = t.grant.as_ref().unwrap_or(&fx.grant);
            let p = claims
                .confirm(Some(grant), NOW)
                .expect("its grant confirms it");
            assert_eq!((p.subject(), p.client_id()), ("github:1", req.client_id()));
            Reached::Accepted
        }
    }
}

fn check_token_error(e: &TokenError) {
    assert!(!e.redirect_allowed());
    let r = e.response();
    assert_eq!(r.status, e.status());
    assert_page_not_redirect(&r, "token error");
    assert_eq!(
        r.status == 401,
        r.header("www-authenticate").is_some(),
        "RFC 6749 §5.2 challenge"
    );
}

fn revoke(body: &[u8], auth: Option<&str>) -> Reached {
    let fx = fixture();
    let req = match RevocationRequest::parse(body, auth) {
        Ok(r) => r,
        Err(e) => {
            check_token_error(&e);
            return Reached::Rejected;
        }
    };
    let refresh = (req.refresh_key() == *fx.refresh.key()).then_some(&fx.refresh);
    match fx
        .gate
        .revoke(&req, fx.client(&req.client_key()), refresh, NOW)
    {
        Err(e) => {
            check_token_error(&e);
            Reached::Parsed
        }
        Ok(rev) => {
            assert_eq!(rev.reply.status, 200, "RFC 7009 §2.2");
            if let Some(g) = rev.revoke_grant {
                assert_eq!(g, fx.grant.key(), "revoked a grant no token named");
                let token = form_param(body, "token").unwrap_or_default();
                assert!(
                    token == fx.access_token || token == fx.refresh_token,
                    "revocation without the token"
                );
                assert!(
                    req.client_key() == fx.public.key(),
                    "a foreign client revoked the grant"
                );
            }
            Reached::Accepted
        }
    }
}

/// `Authorization: Bearer …` at the MCP endpoint (R49–R51, A14).
pub fn bearer_header(data: &[u8]) -> Reached {
    let fx = fixture();
    let h = String::from_utf8_lossy(data);
    match fx.gate.verify_bearer(Some(&h), NOW) {
        Err(e) => {
            assert!(!e.redirect_allowed());
            let r = fx.gate.unauthorized(e);
            assert_eq!(r.status, 401);
            let www = r
                .header("www-authenticate")
                .expect("R2: a 401 carries a challenge");
            assert!(www.starts_with("Bearer resource_metadata=\""));
            assert_eq!(
                www.contains("error=\"invalid_token\""),
                e.oauth_error().is_some()
            );
            assert_headers_clean(&r, "401");
            Reached::Parsed
        }
        Ok(claims) => {
            // Only the fixture minted tokens under this key: nothing else may verify.
            assert_eq!(
                claims.grant_key(),
                fx.grant.key(),
                "a token for a grant nobody made"
            );
            assert!(
                h.contains(&fx.access_token),
                "a token the server never minted verifies"
            );
            let p = claims.confirm(Some(&fx.grant), NOW).expect("live grant");
            assert_eq!(p.subject(), "github:1");
            Reached::Accepted
        }
    }
}

/// The upstream's token response and user document (docs/upstreams.md#github-token-response,
/// docs/upstreams.md#parsing-rules). Input:
/// `status\ncontent-type\nuser-status\ntoken body\n\nuser body`.
pub fn upstream_token_response(data: &[u8]) -> Reached {
    let fx = fixture();
    let ([token_status, ctype, user_status], rest) = lines::<3>(data);
    let status = |l: &[u8]| {
        core::str::from_utf8(l)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(200)
    };
    let (token_status, user_status) = (status(token_status), status(user_status));
    let ctype = header(ctype);
    let split = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(rest.len());
    let (token_body, user_body) = (&rest[..split], rest.get(split + 2..).unwrap_or_default());
    let cb = Callback::parse(fx.callback_query.as_bytes()).expect("fixture callback");
    let verified = fx
        .gate
        .verify_callback(
            cb,
            Some(fx.txn.clone()),
            BrowserContext::with_cookies(&fx.binding_cookie),
            NOW,
        )
        .expect("fixture callback verifies");
    let resp = UpstreamResponse {
        status: token_status,
        content_type: ctype.as_deref(),
        body: token_body,
    };
    let auth = match verified.accept_token_response(resp) {
        Ok(a) => a,
        Err(e) => {
            check_upstream_failure(&e);
            return Reached::Rejected;
        }
    };
    assert_eq!(
        token_status, 200,
        "a token accepted from a non-200 response"
    );
    if let Ok(serde_json::Value::Object(o)) =
        serde_json::from_slice::<serde_json::Value>(token_body)
    {
        let is_json = ctype.as_deref().is_none_or(|c| {
            !c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
                && !c.to_ascii_lowercase().starts_with("text/plain")
        });
        assert!(
            !(is_json && o.get("error").is_some_and(|e| e.is_string())),
            "docs/upstreams.md#parsing-rules: an `error` member was accepted"
        );
    }
    let user = UpstreamResponse {
        status: user_status,
        content_type: Some("application/json"),
        body: user_body,
    };
    let mut rng = rng();
    match fx
        .gate
        .issue_code(auth, user, Some(&fx.public), NOW, &mut |b: &mut [u8]| {
            rng.fill(b)
        }) {
        Err(e) => {
            assert!(
                !matches!(e, CallbackError::ClientChanged),
                "the client did not change"
            );
            check_upstream_failure(&e);
            Reached::Parsed
        }
        Ok(issued) => {
            assert_eq!(user_status, 200, "a user accepted from a non-200 response");
            assert_client_redirect(&issued.response(), &fx.public, "code redirect");
            assert_headers_clean(&issued.response(), "code redirect");
            Reached::Accepted
        }
    }
}

/// After a verified binding, an upstream failure goes back to the client as
/// `server_error` (or `access_denied`), never with the upstream's own text.
fn check_upstream_failure(e: &CallbackError) {
    let fx = fixture();
    assert!(
        e.redirect_allowed(),
        "an upstream failure after the binding must tell the client"
    );
    let r = e.response();
    assert_client_redirect(&r, &fx.public, "upstream failure");
    let loc = r.header("location").unwrap_or_default();
    assert!(
        query_param(loc, "error").is_some_and(|c| c == "server_error" || c == "access_denied"),
        "the client learns only server_error/access_denied: {loc}"
    );
}

// --- An OpenID provider's answers (docs/upstreams.md#google) ---------------------------

/// The provider the fuzzed answers claim to come from.
pub const OIDC_ISSUER: &str = "https://accounts.google.com";
/// Our client id there.
pub const OIDC_CLIENT: &str = "fuzz-client.apps.googleusercontent.com";
/// The nonce of the trip the token must belong to.
pub const OIDC_NONCE: &str = "n-0S6_WzA2Mj-fuzz-nonce-of-this-trip-00000";

fn b64_json(part: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The ID token check (R67) and the discovery document's (Discovery §4.3). An accepted
/// token must, read independently, name our issuer, us as an audience, this trip's nonce,
/// an unexpired `exp`, a signing algorithm, and the subject the core returned; an accepted
/// document must name exactly our issuer.
pub fn openid_answer(data: &[u8]) -> Reached {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (token, document) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let policy = IdTokenPolicy::new(OIDC_ISSUER);
    let token = String::from_utf8_lossy(token);
    let reached = match policy.check(&token, OIDC_CLIENT, OIDC_NONCE, NOW) {
        Ok(subject) => {
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "an accepted ID token is a three-part JWS");
            let header = b64_json(parts[0]).expect("an accepted header decodes");
            let alg = header["alg"]
                .as_str()
                .expect("an accepted header names alg");
            assert!(
                !alg.eq_ignore_ascii_case("none"),
                "an unsigned token accepted"
            );
            let c = b64_json(parts[1]).expect("accepted claims decode");
            assert_eq!(
                c["iss"], OIDC_ISSUER,
                "R67: another issuer's token accepted"
            );
            let aud_ok = c["aud"] == OIDC_CLIENT
                || c["aud"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == OIDC_CLIENT));
            assert!(aud_ok, "R67: a token for another client accepted");
            assert_eq!(c["nonce"], OIDC_NONCE, "R67: another trip's token accepted");
            let exp = c["exp"]
                .as_u64()
                .expect("an accepted token has a numeric exp");
            assert!(
                NOW < UnixTime(exp.saturating_add(policy.leeway)),
                "expired token accepted"
            );
            assert_eq!(c["sub"], subject.as_str(), "the subject is the token's sub");
            Reached::Accepted
        }
        Err(UpstreamError::IdToken(
            "too large" | "not a signed JWT" | "header" | "payload" | "unsigned",
        )) => Reached::Rejected,
        Err(UpstreamError::IdToken(_)) => Reached::Parsed,
        Err(other) => panic!("an ID token refused for a reason of another kind: {other:?}"),
    };
    let response = UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body: document,
    };
    if let Ok(m) = ProviderMetadata::parse(OIDC_ISSUER, response) {
        let v: serde_json::Value = serde_json::from_slice(document).expect("accepted JSON");
        assert_eq!(
            v["issuer"], OIDC_ISSUER,
            "R67: another issuer's document accepted"
        );
        for e in [
            &m.authorization_endpoint,
            &m.token_endpoint,
            &m.userinfo_endpoint,
        ] {
            assert!(
                url::Url::parse(e).is_ok(),
                "an endpoint that is not a URL: {e}"
            );
        }
    }
    reached
}
