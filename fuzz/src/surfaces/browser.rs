//! The browser-facing surfaces: `/authorize`, the consent form, the callback, the
//! `Cookie` header, and redirect URI matching.

use super::*;

/// `GET /authorize?…` against the fixture's clients (R16–R22).
pub fn authorize_query(query: &[u8]) -> Reached {
    let fx = fixture();
    let req = match AuthorizeRequest::parse(query) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.redirect_allowed(), "authorize parse error may redirect");
            assert_page_not_redirect(&e.response(), "authorize parse error");
            return Reached::Rejected;
        }
    };
    // The parser refused repeats, so the lenient decoder sees the same single value.
    let presented = form_param(query, "redirect_uri").filter(|v| !v.is_empty());
    let client = fx.client(&req.client_key());
    let mut rng = rng();
    let out = fx.gate.authorize(
        req,
        client,
        BrowserContext::default(),
        NOW,
        &mut |b: &mut [u8]| rng.fill(b),
    );
    match out {
        Err(e) => {
            assert!(
                !e.redirect_allowed(),
                "R16: an authorize error may redirect"
            );
            let r = e.response();
            assert_eq!(r.status, e.status());
            assert_page_not_redirect(&r, "authorize error");
            check_page(&r, "authorize error");
            Reached::Parsed
        }
        Ok(Authorization::Remembered(_)) => {
            panic!("remembered consent under ConsentPolicy::Always")
        }
        Ok(Authorization::NeedsConsent(prompt)) => {
            let client = client.expect("a consent page for an unknown client");
            let d = prompt.pending_record().details();
            assert_eq!(d.client_id(), client.client_id());
            let accepted = d.redirect_uri().as_str();
            match &presented {
                Some(p) => assert_eq!(
                    accepted, p,
                    "the accepted redirect_uri is not the presented one"
                ),
                None => assert_eq!(
                    client.redirect_uris().len(),
                    1,
                    "redirect_uri omitted with several registered"
                ),
            }
            assert!(
                client
                    .redirect_uris()
                    .iter()
                    .any(|r| redirect_acceptable(r.as_str(), accepted)),
                "R17/R18: {accepted:?} accepted for {:?}",
                client.redirect_uris()
            );
            assert_eq!(d.resource(), RESOURCE, "R21");
            assert!(d.scope().is_subset_of(fx.gate.config().scopes_supported()));
            let v = prompt.view();
            assert_eq!(
                v.redirect_uri, accepted,
                "R27: the page must show the exact redirect URI"
            );
            assert_eq!(
                v.loopback_warning,
                accepted.starts_with("http://"),
                "R27/A11 warning"
            );
            let page = prompt.page();
            assert_eq!(page.status, 200);
            assert_page_not_redirect(&page, "consent page");
            check_page(&page, "consent page");
            Reached::Accepted
        }
    }
}

/// `POST /authorize` (the consent decision) with a `Cookie`, `Origin` and
/// `Sec-Fetch-Site` (R28, A3). Input: `cookie\norigin\nsec-fetch-site\nbody`.
pub fn consent_form(data: &[u8]) -> Reached {
    let fx = fixture();
    let ([cookie, origin, site], body) = lines::<3>(data);
    let cookies = String::from_utf8_lossy(cookie);
    let (origin, site) = (header(origin), header(site));
    let form = match ConsentForm::parse(body) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.redirect_allowed());
            assert_page_not_redirect(&e.response(), "consent parse error");
            return Reached::Rejected;
        }
    };
    let pending = (form.pending_key() == *fx.pending.key()).then(|| fx.pending.clone());
    let ctx = BrowserContext {
        cookies: &cookies,
        origin: origin.as_deref(),
        sec_fetch_site: site.as_deref(),
    };
    let out = fx.gate.decide(form, pending, ctx, NOW);
    if out.is_ok() {
        // R28: only the browser the page was rendered for can answer it.
        assert!(
            cookies.contains(value(&fx.browser_cookie)),
            "A3: a decision was accepted without the page's browser cookie"
        );
        assert!(
            origin
                .as_deref()
                .is_none_or(|o| o == "null" || o == crate::fixture::ISSUER),
            "A3: cross-origin POST accepted"
        );
        assert!(
            site.as_deref()
                .is_none_or(|s| s == "same-origin" || s == "none"),
            "A3: cross-site POST accepted"
        );
    }
    match out {
        Err(e) => {
            assert!(!e.redirect_allowed());
            assert_page_not_redirect(&e.response(), "consent error");
            Reached::Parsed
        }
        Ok(Decision::Denied(to_client)) => {
            let r = to_client.response();
            assert_client_redirect(&r, &fx.public, "deny");
            assert_eq!(to_client.error_code(), Some("access_denied"));
            Reached::Accepted
        }
        Ok(Decision::Approved(consent)) => {
            let mut rng = rng();
            let up = fx
                .gate
                .upstream_redirect(consent, NOW, &mut |b: &mut [u8]| rng.fill(b));
            let r = up.response();
            assert_eq!(r.status, 303, "R24");
            let loc = r.header("location").unwrap_or_default();
            assert!(
                loc.starts_with("https://github.com/login/oauth/authorize?"),
                "upstream redirect to {loc}"
            );
            assert_headers_clean(&r, "upstream redirect");
            assert!(
                r.set_cookies().any(|c| c.starts_with("__Host-cg-bind-")),
                "R34: no binding cookie"
            );
            Reached::Accepted
        }
    }
}

/// `GET /callback?…` with a `Cookie` (R35, R36; A2, A6, A7). Input: `cookie\nquery`.
pub fn callback_query(data: &[u8]) -> Reached {
    let fx = fixture();
    let ([cookie], query) = lines::<1>(data);
    let cookies = String::from_utf8_lossy(cookie);
    let cb = match Callback::parse(query) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.redirect_allowed(), "a callback parse error may redirect");
            assert_page_not_redirect(&e.response(), "callback parse error");
            return Reached::Rejected;
        }
    };
    let txn = (cb.transaction_key() == *fx.txn.key()).then(|| fx.txn.clone());
    let bound = cookies.contains(value(&fx.binding_cookie));
    match fx
        .gate
        .verify_callback(cb, txn, BrowserContext::with_cookies(&cookies), NOW)
    {
        Err(e) => {
            let r = e.response();
            if e.redirect_allowed() {
                assert!(bound, "A2: an unbound callback redirects to the client");
                assert_client_redirect(&r, &fx.public, "callback upstream error");
            } else {
                assert_page_not_redirect(&r, "callback error");
            }
            Reached::Parsed
        }
        Ok(verified) => {
            assert!(
                bound,
                "R35/A2: a callback verified without the binding cookie"
            );
            let tr = verified.token_request();
            assert_eq!(
                (tr.method, tr.url.as_str()),
                ("POST", "https://github.com/login/oauth/access_token")
            );
            let json = |body| UpstreamResponse {
                status: 200,
                content_type: Some("application/json"),
                body,
            };
            let auth = verified
                .accept_token_response(json(F5))
                .expect("F5 is a success");
            let mut rng = rng();
            let issued = fx
                .gate
                .issue_code(
                    auth,
                    json(F14),
                    Some(&fx.public),
                    NOW,
                    &mut |b: &mut [u8]| rng.fill(b),
                )
                .expect("F14 names a user");
            assert_client_redirect(&issued.response(), &fx.public, "code redirect");
            Reached::Accepted
        }
    }
}

/// Any `Cookie` header, through every step that reads cookies: the consent page (browser
/// secret reuse), a remembered consent, the decision and the callback.
pub fn cookie_header(data: &[u8]) -> Reached {
    let fx = fixture();
    let cookies = String::from_utf8_lossy(data);
    let mut reached = Reached::Parsed;
    let mut rng = rng();
    for (redirect, minted) in [
        ("https://app.example/cb", true),
        ("http://127.0.0.1/cb", false),
    ] {
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={redirect}&code_challenge={}&code_challenge_method=S256",
            fx.public.client_id(),
            crate::fixture::CHALLENGE
        );
        let req = AuthorizeRequest::parse(q.as_bytes()).expect("fixed query");
        let ctx = BrowserContext {
            cookies: &cookies,
            origin: None,
            sec_fetch_site: Some("none"),
        };
        match fx
            .remember_gate
            .authorize(req, Some(&fx.public), ctx, NOW, &mut |b: &mut [u8]| {
                rng.fill(b)
            }) {
            Ok(Authorization::Remembered(c)) => {
                // A4/R31: only the exact approval the cookie's MAC covers.
                assert!(
                    minted,
                    "A1/A4: remembered consent for {redirect}, which was never approved"
                );
                assert!(
                    cookies.contains(value(&fx.remember_cookie)),
                    "remembered consent without the cookie"
                );
                assert_eq!(c.details().redirect_uri().as_str(), redirect);
                reached = Reached::Accepted;
            }
            Ok(Authorization::NeedsConsent(p)) => check_page(&p.page(), "consent page"),
            // A21: an oversized header is refused with a page that says so, never read as
            // "no cookies".
            Err(AuthorizeError::CookieHeaderTooLarge) if cookies.len() > 8 * 1024 => {
                check_page(
                    &AuthorizeError::CookieHeaderTooLarge.response(),
                    "cookie page",
                );
            }
            Err(e) => panic!("fixed authorize request refused: {e}"),
        }
    }
    let form = ConsentForm::parse(fx.consent_body.as_bytes()).expect("fixture form");
    if fx
        .gate
        .decide(
            form,
            Some(fx.pending.clone()),
            BrowserContext::with_cookies(&cookies),
            NOW,
        )
        .is_ok()
    {
        assert!(
            cookies.contains(value(&fx.browser_cookie)),
            "R28: decision without the browser cookie"
        );
        reached = Reached::Accepted;
    }
    let cb = Callback::parse(fx.callback_query.as_bytes()).expect("fixture callback");
    if fx
        .gate
        .verify_callback(
            cb,
            Some(fx.txn.clone()),
            BrowserContext::with_cookies(&cookies),
            NOW,
        )
        .is_ok()
    {
        assert!(
            cookies.contains(value(&fx.binding_cookie)),
            "R35: callback without the binding cookie"
        );
        reached = Reached::Accepted;
    }
    reached
}

/// R17/R18 as a differential: `RedirectUri::matching` and the Gate's `/authorize` both
/// accept exactly what [`redirect_acceptable`] accepts. Input: `registered\npresented`.
pub fn redirect_uri(data: &[u8]) -> Reached {
    let fx = fixture();
    let ([registered], presented) = lines::<1>(data);
    let registered = String::from_utf8_lossy(registered);
    let presented = String::from_utf8_lossy(presented);
    let Ok(r) = RedirectUri::parse(&registered) else {
        return Reached::Rejected;
    };
    assert_eq!(
        r.as_str(),
        registered,
        "a registered URI is stored as presented"
    );
    check_scheme(&registered);
    let expected = redirect_acceptable(&registered, &presented);
    let matched = r.matching(&presented);
    if let Some(m) = &matched {
        assert_eq!(
            m.as_str(),
            presented,
            "matching hands out another string than presented"
        );
        assert!(
            RedirectUri::parse(m.as_str()).is_ok(),
            "an accepted URI fails registration rules"
        );
    }
    assert_eq!(
        matched.is_some(),
        expected,
        "R17/R18: RedirectUri::matching({registered:?}, {presented:?})"
    );
    // The same through the Gate, which is where the A10 fault would live.
    let mut rng = rng();
    let json =
        serde_json::json!({"redirect_uris": [registered], "token_endpoint_auth_method": "none"});
    let Ok(reg) = fx
        .gate
        .register(json.to_string().as_bytes(), NOW, &mut |b: &mut [u8]| {
            rng.fill(b)
        })
    else {
        return Reached::Parsed;
    };
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        reg.record.client_id(),
        url::form_urlencoded::byte_serialize(presented.as_bytes()).collect::<String>(),
        crate::fixture::CHALLENGE
    );
    let Ok(req) = AuthorizeRequest::parse(q.as_bytes()) else {
        return Reached::Parsed;
    };
    let out = fx.gate.authorize(
        req,
        Some(&reg.record),
        BrowserContext::default(),
        NOW,
        &mut |b: &mut [u8]| rng.fill(b),
    );
    // An empty `redirect_uri` is an absent one: the only registered URI applies.
    let gate_expected = expected || presented.is_empty();
    assert_eq!(
        out.is_ok(),
        gate_expected,
        "A10: /authorize with redirect_uri={presented:?} for {registered:?}"
    );
    if gate_expected {
        Reached::Accepted
    } else {
        Reached::Parsed
    }
}
