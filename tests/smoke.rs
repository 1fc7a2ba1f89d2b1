use consent_gate::*;

#[test]
fn whole_flow_smoke() {
    let key = ServerKey::new(&[7u8; 32]).unwrap();
    let upstream = UpstreamConfig::custom(
        "Demo",
        "http://127.0.0.1:8080/up/authorize",
        "http://127.0.0.1:8080/up/token",
        "http://127.0.0.1:8080/up/user",
        "static-id",
        ClientSecret::new("s"),
    );
    let config = Config::builder(
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/mcp",
        upstream,
        Keys::new(key),
    )
    .dev_loopback_http(true)
    .build()
    .unwrap();
    let gate = Gate::new(config);
    let mut n = 0u8;
    let mut entropy = |buf: &mut [u8]| {
        n = n.wrapping_add(1);
        buf.fill(n)
    };
    let now = UnixTime(1_700_000_000);
    let reg = gate.register(br#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}"#, now, &mut entropy).unwrap();
    let client = reg.record;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let query = format!(
        "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=xyz&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        client.client_id()
    );
    let req = AuthorizeRequest::parse(query.as_bytes()).unwrap();
    let Authorization::NeedsConsent(prompt) = gate
        .authorize(
            req,
            Some(&client),
            BrowserContext::default(),
            now,
            &mut entropy,
        )
        .unwrap()
    else {
        panic!()
    };
    let (pending, page) = prompt.into_parts();
    let cookie = page
        .set_cookies()
        .next()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = String::from_utf8(page.body).unwrap();
    let field = |name: &str| {
        html.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let body = format!("tx={}&csrf={}&decision=approve", field("tx"), field("csrf"));
    let form = ConsentForm::parse(body.as_bytes()).unwrap();
    let Decision::Approved(consent) = gate
        .decide(
            form,
            Some(pending),
            BrowserContext::with_cookies(&cookie),
            now,
        )
        .unwrap()
    else {
        panic!()
    };
    let (txn, redirect) = gate
        .upstream_redirect(consent, now, &mut entropy)
        .into_parts();
    let loc = redirect.header("location").unwrap().to_owned();
    let state = loc
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let bind = redirect
        .set_cookies()
        .next()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let cb = Callback::parse(format!("code=abc&state={state}").as_bytes()).unwrap();
    assert_eq!(cb.transaction_key(), *txn.key());
    let verified = gate
        .verify_callback(
            cb,
            Some(txn),
            BrowserContext::with_cookies(&format!("{cookie}; {bind}")),
            now,
        )
        .unwrap();
    let auth = verified
        .accept_token_response(UpstreamResponse {
            status: 200,
            content_type: Some("application/json"),
            body: br#"{"access_token":"gho_x","token_type":"bearer","scope":""}"#,
        })
        .unwrap();
    let issued = gate
        .issue_code(
            auth,
            UpstreamResponse {
                status: 200,
                content_type: Some("application/json"),
                body: br#"{"login":"octocat","id":1}"#,
            },
            Some(&client),
            now,
            &mut entropy,
        )
        .unwrap();
    let (code_rec, reply) = issued.into_parts();
    let loc = reply.header("location").unwrap();
    assert!(loc.starts_with("http://127.0.0.1:9/cb?code="), "{loc}");
    assert!(
        loc.contains("&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A8080"),
        "{loc}"
    );
    let code = loc
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let treq = TokenRequest::parse(format!("grant_type=authorization_code&code={code}&code_verifier={verifier}&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb", client.client_id()).as_bytes(), None).unwrap();
    assert_eq!(treq.record_key(), *code_rec.key());
    let tokens = gate
        .redeem_code(&treq, Some(code_rec), Some(&client), now, &mut entropy)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&tokens.reply.body).unwrap();
    let at = v["access_token"].as_str().unwrap();
    let claims = gate
        .verify_bearer(Some(&format!("Bearer {at}")), now)
        .unwrap();
    let grant = tokens.grant.unwrap();
    assert_eq!(claims.grant_key(), grant.key());
    let p = claims.confirm(Some(&grant), now).unwrap();
    assert_eq!(p.subject(), "1");
    assert!(v["refresh_token"].is_string());
}
