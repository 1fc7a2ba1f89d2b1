//! An OpenID provider upstream in Google's shapes (R67, R68): the whole flow, then each
//! lie the provider's answers or the callback could tell, refused before a code reaches
//! the MCP client; and the mix-up defences: the callback's `iss`, required where the
//! provider advertises it, and the upstream recorded in each transaction.

mod common;

use common::*;
use consent_gate::*;

fn openid_host(setup: GateSetup) -> (Host, Browser, App) {
    let mut host = Host::with(GateSetup {
        openid: true,
        ..setup
    });
    let client = host.register_public("Acme Agent", "http://127.0.0.1:9/cb");
    let browser = host.browser(VICTIM);
    let app = App::new(&client, "acme");
    (host, browser, app)
}

#[test]
fn a_google_sign_in_completes_with_the_id_tokens_subject_r67_r68() {
    let (mut host, mut browser, app) = openid_host(GateSetup::default());
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let to_google = host.click(&mut browser, &page, "approve").unwrap();
    let q = query_params(location(&to_google));
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["nonce"].len(), 43, "a nonce per trip (R67)");
    assert_eq!(
        (q["access_type"].as_str(), q["prompt"].as_str()),
        ("offline", "consent"),
        "R68: a refresh token on every sign-in"
    );
    assert!(!q.contains_key("resource"), "R68: our resource stays ours");
    let back = host.through_github(&browser, &to_google);
    let to_app = host.callback(&mut browser, &back).unwrap();
    let code = app.receive(&to_app, ISSUER).unwrap();
    let tokens = host
        .redeem(&app.client, &code, &app.verifier, Some(&app.redirect_uri))
        .unwrap();
    let principal = host.bearer(tokens.access()).unwrap();
    assert_eq!(principal.subject(), GoogleShapes::subject(VICTIM));
    assert!(
        principal
            .upstream_token()
            .is_some_and(|t| t.secret().starts_with("gho_")),
        "the upstream's access token, for the tools"
    );
    // Two trips, two nonces.
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let again = host.click(&mut browser, &page, "approve").unwrap();
    assert_ne!(query_params(location(&again))["nonce"], q["nonce"]);
}

/// The callback after `spoil`: refused with the client told `server_error`, and no code
/// stored.
fn refused_after(spoil: Spoil, setup: GateSetup) -> UpstreamError {
    let (mut host, mut browser, app) = openid_host(setup);
    let back = host.back_from_github(&mut browser, &app);
    if let Some(google) = &mut host.github.openid {
        google.spoil = Some(spoil);
    }
    match host.callback(&mut browser, &back) {
        Err(CallbackError::Upstream { cause, to_client }) => {
            assert_eq!(to_client.error_code(), Some("server_error"));
            assert_eq!(host.store.count(Kind::Code), 0, "no code for {spoil:?}");
            cause
        }
        other => panic!("{spoil:?} was not refused as an upstream failure: {other:?}"),
    }
}

#[test]
fn an_id_token_that_lies_is_refused_r67() {
    let d = GateSetup::default;
    assert_eq!(
        refused_after(Spoil::Nonce, d()),
        UpstreamError::IdToken("nonce")
    );
    assert_eq!(
        refused_after(Spoil::Issuer, d()),
        UpstreamError::IdToken("iss")
    );
    assert_eq!(
        refused_after(Spoil::Audience, d()),
        UpstreamError::IdToken("aud")
    );
    assert_eq!(
        refused_after(Spoil::Expired, d()),
        UpstreamError::IdToken("expired")
    );
    assert_eq!(
        refused_after(Spoil::NoIdToken, d()),
        UpstreamError::IdToken("missing")
    );
    assert_eq!(
        refused_after(Spoil::UserinfoSubject, d()),
        UpstreamError::SubjectMismatch
    );
}

#[test]
fn a_hosted_domain_restriction_refuses_accounts_outside_it_r68() {
    let workspace = || GateSetup {
        hosted_domain: Some("example.com"),
        ..GateSetup::default()
    };
    // In the domain: signed in, and `hd` was sent as the hint.
    let (mut host, mut browser, app) = openid_host(workspace());
    let page = host
        .get_authorize(&mut browser, &app.query(), Nav::Direct)
        .unwrap();
    let to_google = host.click(&mut browser, &page, "approve").unwrap();
    assert_eq!(query_params(location(&to_google))["hd"], "example.com");
    let back = host.through_github(&browser, &to_google);
    assert!(host.callback(&mut browser, &back).is_ok());
    // A personal account (no `hd` claim): the hint alone restricts nothing.
    assert_eq!(
        refused_after(Spoil::NoHostedDomain, workspace()),
        UpstreamError::IdToken("hd")
    );
}

#[test]
fn the_callbacks_iss_is_required_where_the_provider_advertises_it_r67() {
    let (mut host, mut browser, app) = openid_host(GateSetup::default());
    let back = host.back_from_github(&mut browser, &app);
    // The provider's document says it sends `iss`; this callback has none (stripped, or
    // from another provider that does not send one: mix-up).
    let stripped = without_iss(&back);
    let strict = strict_issuer_gate(&host);
    let mut strict_host = host;
    strict_host.gate = strict;
    assert_eq!(
        strict_host.callback(&mut browser, &stripped).err(),
        Some(CallbackError::IssuerMismatch)
    );
    assert_eq!(strict_host.store.count(Kind::Code), 0);
}

/// The callback URL without its `iss` parameter.
fn without_iss(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "iss")
        .collect();
    let pairs = kept.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    format!("{base}?{}", encode(pairs))
}

/// The same gate, key and upstream, with `require_callback_issuer` on, as
/// `UpstreamConfig::openid` sets it from a document that advertises
/// `authorization_response_iss_parameter_supported`.
fn strict_issuer_gate(host: &Host) -> Gate {
    let g = &host.github;
    let document = serde_json::json!({
        "issuer": g.issuer,
        "authorization_endpoint": g.authorize_endpoint,
        "token_endpoint": g.token_endpoint,
        "userinfo_endpoint": g.user_endpoint,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    })
    .to_string();
    let provider = ProviderMetadata::parse(
        &g.issuer,
        UpstreamResponse {
            status: 200,
            content_type: Some("application/json"),
            body: document.as_bytes(),
        },
    )
    .expect("the double's document");
    let mut upstream = UpstreamConfig::openid(
        &provider,
        UPSTREAM_CLIENT_ID,
        ClientSecret::new(UPSTREAM_SECRET),
    );
    assert!(upstream.require_callback_issuer);
    upstream.subject_prefix = "google:".into();
    let keys = Keys::new(ServerKey::new(&SERVER_KEY).unwrap());
    let config = Config::builder(ISSUER, RESOURCE, upstream, keys)
        .dev_loopback_http(true)
        .build()
        .unwrap();
    Gate::new(config)
}

#[test]
fn a_discovered_provider_with_the_iss_flag_completes_a_flow_with_iss_r67() {
    let (host, mut browser, app) = openid_host(GateSetup::default());
    let strict = strict_issuer_gate(&host);
    let mut host = host;
    host.gate = strict;
    let back = host.back_from_github(&mut browser, &app);
    assert!(query_params(&back).contains_key("iss"));
    let to_app = host.callback(&mut browser, &back).unwrap();
    let code = app.receive(&to_app, ISSUER).unwrap();
    let tokens = host
        .redeem(&app.client, &code, &app.verifier, Some(&app.redirect_uri))
        .unwrap();
    assert_eq!(
        host.bearer(tokens.access()).unwrap().subject(),
        GoogleShapes::subject(VICTIM)
    );
}

#[test]
fn a_transaction_sent_to_another_upstream_is_refused_on_the_callback_r67() {
    // Mix-up across a configuration change, or two deployments sharing one store under
    // one key: the trip went to GitHub, the callback arrives at a gate whose upstream is
    // now the OpenID provider. The `state` and binding cookie are genuine; the upstream
    // recorded in the transaction is not this one.
    let (mut host, mut browser, app) = app_host();
    let back = host.back_from_github(&mut browser, &app);
    let issuer_of = |g: &Gate| g.config().upstream().issuer.clone();
    // Another provider has another issuer.
    let mut upstream = host.gate.config().upstream().clone();
    upstream.issuer = Some("https://accounts.google.example".into());
    let keys = Keys::new(ServerKey::new(&SERVER_KEY).unwrap());
    let moved = Config::builder(ISSUER, RESOURCE, upstream, keys)
        .dev_loopback_http(true)
        .build()
        .unwrap();
    assert_ne!(issuer_of(&host.gate), moved.upstream().issuer.clone());
    host.gate = Gate::new(moved);
    // Without the callback's `iss` (which would already differ), the record decides.
    let stripped = without_iss(&back);
    assert_eq!(
        host.callback(&mut browser, &stripped).err(),
        Some(CallbackError::IssuerMismatch)
    );
    assert_eq!(host.store.count(Kind::Code), 0);
}

#[test]
fn the_gates_own_authorization_parameters_cannot_be_overridden_r68() {
    for name in [
        "state",
        "nonce",
        "redirect_uri",
        "resource",
        "code_challenge",
        "client_id",
    ] {
        let mut upstream = UpstreamConfig::google("id", ClientSecret::new("secret"));
        upstream.authorize_params.push((name.into(), "x".into()));
        let keys = Keys::new(ServerKey::new(&SERVER_KEY).unwrap());
        let built =
            Config::builder(HTTPS_ISSUER, "https://mcp.example/mcp", upstream, keys).build();
        assert_eq!(
            built.err(),
            Some(ConfigError::InvalidUpstream("authorize_params")),
            "{name}"
        );
    }
    let google =
        UpstreamConfig::google("id", ClientSecret::new("secret")).hosted_domain("example.com");
    let keys = Keys::new(ServerKey::new(&SERVER_KEY).unwrap());
    assert!(
        Config::builder(HTTPS_ISSUER, "https://mcp.example/mcp", google, keys)
            .build()
            .is_ok()
    );
}
