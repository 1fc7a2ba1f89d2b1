//! Client ID Metadata Documents in the core (R57, R59): which documents stand in for a
//! registration, for how long, what the consent page says of their clients, and that a
//! remembered consent never lets another installation of the same client in silently, and
//! that revoking one installation ends its grants and no one else's.
//! The fetching and its SSRF policy are the host's (`axum/tests/fetch.rs`,
//! `axum/tests/metadata_document.rs`).

use consent_gate::*;
use consent_gate_spec::entropy::SplitMix64;
use consent_gate_spec::kit::{
    ATTACKER, App, Client, GateSetup, GithubUser, Host, T0, Tokens, VICTIM,
};

const URL: &str = "https://client.example/oauth/metadata.json";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn gate(on: bool, policy: ConsentPolicy) -> Gate {
    let setup = GateSetup {
        https: true,
        github_com: true,
        metadata_documents: on,
        policy,
        ..GateSetup::default()
    };
    setup.build().0
}

fn document(client_id: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"client_id":"{client_id}","client_name":"Acme Agent","redirect_uris":["https://app.client.example/cb"],"grant_types":["authorization_code","refresh_token"],"client_uri":"https://client.example"{extra}}}"#
    )
    .into_bytes()
}

fn accept(gate: &Gate, doc: &[u8], cache: Option<&str>) -> Result<ClientRecord, RegistrationError> {
    gate.accept_metadata_document(URL, doc, cache, T0)
}

#[test]
fn a_valid_document_stands_in_for_a_registration_until_its_expiry_r57() {
    let gate = gate(true, ConsentPolicy::Always);
    let record = accept(&gate, &document(URL, ""), Some("public, max-age=3600")).unwrap();
    assert_eq!(record.client_id(), URL);
    assert_eq!(record.client_name(), Some("Acme Agent"));
    assert_eq!(record.auth_method(), TokenAuthMethod::None);
    assert!(record.refresh_allowed());
    assert_eq!(record.verified_domain().as_deref(), Some("client.example"));
    assert_eq!(record.key(), StoreKey::client(URL));
    let op = Op::put(&record);
    let Op::Put { expires_at, .. } = &op else {
        panic!("a put")
    };
    assert_eq!(
        *expires_at,
        Some(T0.plus(3600)),
        "cached as its headers say"
    );
    let short = accept(&gate, &document(URL, ""), Some("no-store")).unwrap();
    assert_eq!(
        short.store_key(),
        record.store_key(),
        "the same key: a later fetch replaces it"
    );
    assert_eq!(short.expiry(), Some(T0.plus(METADATA_DOCUMENT_MIN_SECONDS)));
    // A registration keeps no lifetime of its own.
    let body =
        br#"{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}"#;
    let mut rng = SplitMix64(1);
    let registered = gate
        .register(body, T0, &mut |b: &mut [u8]| rng.fill(b))
        .unwrap();
    assert_eq!(registered.record.expiry(), None);
    assert_eq!(registered.record.verified_domain(), None);
}

#[test]
fn documents_that_do_not_describe_their_own_url_or_break_the_rules_are_refused_r57() {
    let gate = gate(true, ConsentPolicy::Always);
    let refused = |doc: Vec<u8>| accept(&gate, &doc, None).is_err();
    assert!(
        refused(document("https://client.example/oauth/other.json", "")),
        "another id"
    );
    assert!(refused(document(
        "https://client.example/oauth/metadata.json/",
        ""
    )));
    assert!(refused(document(
        "https://CLIENT.example/oauth/metadata.json",
        ""
    )));
    assert!(refused(document(
        URL,
        r#","token_endpoint_auth_method":"client_secret_basic""#
    )));
    assert!(refused(document(
        URL,
        r#","grant_types":["client_credentials"]"#
    )));
    assert!(refused(
        br#"{"redirect_uris":["https://app.client.example/cb"]}"#.to_vec()
    ));
    assert!(refused(br#"[1,2]"#.to_vec()));
    assert!(refused(b"not json".to_vec()));
    let deceptive = format!(
        r#"{{"client_id":"{URL}","redirect_uris":["https://app.example\\@evil.example/cb"]}}"#
    );
    assert!(
        refused(deceptive.into_bytes()),
        "the registration rules apply (R61)"
    );
    let padded = document(
        URL,
        &format!(r#","padding":"{}""#, "x".repeat(MAX_METADATA_DOCUMENT)),
    );
    assert!(refused(padded), "too large");
    // Only an https URL with a path is a document's id, and only where they are on.
    let doc = document(URL, "");
    assert!(
        gate.accept_metadata_document("http://client.example/m.json", &doc, None, T0)
            .is_err()
    );
    let loopback =
        r#"{"client_id":"http://127.0.0.1:9/m.json","redirect_uris":["http://127.0.0.1/cb"]}"#;
    let plain =
        gate.accept_metadata_document("http://127.0.0.1:9/m.json", loopback.as_bytes(), None, T0);
    assert!(
        plain.is_err(),
        "plain-http loopback documents only in development mode"
    );
    let off = self::gate(false, ConsentPolicy::Always);
    assert!(
        accept(&off, &doc, None).is_err(),
        "documents are off by default"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&gate.authorization_server_metadata().body).unwrap();
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let meta: serde_json::Value =
        serde_json::from_slice(&off.authorization_server_metadata().body).unwrap();
    assert_eq!(meta["client_id_metadata_document_supported"], false);
}

#[test]
fn an_edited_expiry_is_refused_like_any_edited_record_a16() {
    let gate = gate(true, ConsentPolicy::Always);
    let record = accept(&gate, &document(URL, ""), Some("max-age=600")).unwrap();
    let text = String::from_utf8(record.encode()).unwrap();
    let at = T0.plus(600).0.to_string();
    assert!(text.contains(&at));
    for edited in [text.replace(&at, &T0.plus(86_400 * 365).0.to_string()), {
        let field = format!(r#""expires_at":{at},"#);
        text.replace(&field, "")
    }] {
        assert_ne!(edited, text, "the edit took");
        let Some(edited) = ClientRecord::decode(edited.as_bytes()) else {
            continue; // refused at decoding: as good
        };
        let request = authorize_request(URL);
        let answer = gate.authorize(
            request,
            Some(&edited),
            BrowserContext::default(),
            T0,
            &mut |_: &mut [u8]| {},
        );
        assert!(
            matches!(answer, Err(AuthorizeError::TamperedRecord)),
            "{answer:?}"
        );
    }
}

fn authorize_request(client_id: &str) -> AuthorizeRequest {
    let id: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri=https%3A%2F%2Fapp.client.example%2Fcb\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=s"
    );
    AuthorizeRequest::parse(query.as_bytes()).unwrap()
}

#[test]
fn the_consent_page_names_the_publishing_domain_and_remembering_never_applies_r59() {
    let gate = gate(true, ConsentPolicy::Remember);
    let record = accept(&gate, &document(URL, ""), None).unwrap();
    let mut rng = SplitMix64(3);
    let mut entropy = |b: &mut [u8]| rng.fill(b);
    let browser = BrowserContext {
        sec_fetch_site: Some("none"),
        ..BrowserContext::default()
    };
    let answer = gate.authorize(
        authorize_request(URL),
        Some(&record),
        browser,
        T0,
        &mut entropy,
    );
    let Ok(Authorization::NeedsConsent(prompt)) = answer else {
        panic!("a consent page: {answer:?}")
    };
    assert_eq!(
        prompt.view().client_domain.as_deref(),
        Some("client.example")
    );
    let page = String::from_utf8(prompt.page().body).unwrap();
    assert!(page.contains("id=\"client-name\">Acme Agent<"));
    assert!(page.contains("id=\"client-domain\">client.example<"));
    assert!(
        !page.contains("not verified"),
        "the name comes with its verified domain"
    );
    // Approve once, in this browser, with the remembering policy on: the remembered
    // approval is written, but a document's client still gets the page next time (its id
    // is shared by every installation of the client).
    let form = format!(
        "tx={}&csrf={}&decision=approve",
        prompt.view().form_tx,
        prompt.view().form_csrf
    );
    let cookie = prompt.set_cookie().split(';').next().unwrap().to_owned();
    let pending = prompt.pending_record().clone();
    let form = ConsentForm::parse(form.as_bytes()).unwrap();
    let decided = BrowserContext {
        cookies: &cookie,
        origin: Some(gate.config().issuer()),
        sec_fetch_site: Some("same-origin"),
    };
    let Ok(Decision::Approved(yes)) = gate.decide(form, Some(pending), decided, T0) else {
        panic!("approved")
    };
    let redirect = Step::from(gate.upstream_redirect(yes, T0, &mut entropy));
    let mut jar = vec![cookie];
    jar.extend(
        redirect
            .reply
            .set_cookies()
            .map(|c| c.split(';').next().unwrap().to_owned()),
    );
    let jar = jar.join("; ");
    let again = BrowserContext {
        cookies: &jar,
        sec_fetch_site: Some("none"),
        ..BrowserContext::default()
    };
    let answer = gate.authorize(
        authorize_request(URL),
        Some(&record),
        again,
        T0,
        &mut entropy,
    );
    assert!(
        matches!(answer, Ok(Authorization::NeedsConsent(_))),
        "{answer:?}"
    );
}

// --- revocation per installation (R59) ----------------------------------------------------

const NATIVE: &str = "http://127.0.0.1/cb";
const WEB: &str = "https://web.client.example/cb";

/// A loopback host that accepts documents, with the document of [`URL`] (a native and a
/// web redirect URI) fetched and stored, as the host crate does.
fn document_host() -> (Host, Client) {
    let setup = GateSetup {
        metadata_documents: true,
        ..GateSetup::default()
    };
    let mut host = Host::with(setup);
    let doc = format!(
        r#"{{"client_id":"{URL}","client_name":"Acme Agent","redirect_uris":["{NATIVE}","{WEB}"],"grant_types":["authorization_code","refresh_token"]}}"#
    );
    let record = host
        .gate
        .accept_metadata_document(URL, doc.as_bytes(), None, host.now)
        .expect("a valid document");
    host.store.put(&record);
    let client = Client {
        id: URL.to_owned(),
        secret: None,
        auth: "none",
        redirect_uri: NATIVE.to_owned(),
    };
    (host, client)
}

/// One installation's sign-in: the app at `redirect_uri`, signed in as `user`.
fn sign_in(
    host: &mut Host,
    client: &Client,
    user: GithubUser,
    redirect_uri: &str,
    tag: &str,
) -> Tokens {
    let mut app = App::new(client, tag);
    app.redirect_uri = redirect_uri.to_owned();
    let mut browser = host.browser(user);
    host.login(&mut browser, &app)
}

fn refresh_works(host: &mut Host, client: &Client, tokens: &Tokens) -> bool {
    host.refresh(client, tokens.refresh().expect("a refresh token"), None)
        .is_ok()
}

/// The operator revokes `subject`'s native installation of the document client now: the
/// number of marks stored (one per server key).
fn revoke_native(host: &mut Host, subject: &str) -> usize {
    let step = host
        .gate
        .revoke_installation(subject, URL, NATIVE, host.now);
    let marks = step.ops.len();
    let _revoked = host.store.apply(step);
    marks
}

#[test]
fn revoking_one_installation_ends_its_grants_and_no_others_r59() {
    let (mut host, client) = document_host();
    // The victim on two devices through the native redirect URI (two loopback ports),
    // and in the web client; another user through the native one.
    let device_a = sign_in(&mut host, &client, VICTIM, "http://127.0.0.1:50001/cb", "a");
    let device_b = sign_in(&mut host, &client, VICTIM, "http://127.0.0.1:50002/cb", "b");
    let web = sign_in(&mut host, &client, VICTIM, WEB, "web");
    let other = sign_in(
        &mut host,
        &client,
        ATTACKER,
        "http://127.0.0.1:50003/cb",
        "o",
    );
    let subject = host
        .bearer(device_a.access())
        .expect("signed in")
        .subject()
        .to_owned();
    for t in [&device_a, &device_b, &web, &other] {
        assert!(host.bearer(t.access()).is_ok());
    }

    host.advance(5);
    let step = host
        .gate
        .revoke_installation(&subject, URL, NATIVE, host.now);
    assert_eq!(step.ops.len(), 1, "one mark, under the one server key");
    assert_eq!(step.reply.status, 200);
    let _revoked = host.store.apply(step);

    // The victim's native installation is signed out, on both ports, for access and
    // refresh alike ...
    for t in [&device_a, &device_b] {
        assert_eq!(host.bearer(t.access()).err(), Some(BearerError::Revoked));
        assert!(!refresh_works(&mut host, &client, t));
    }
    // ... while the victim's web installation and the other user's native one keep
    // working (the whole client is not revoked: its id is every installation's).
    for t in [&web, &other] {
        assert!(host.bearer(t.access()).is_ok());
        assert!(refresh_works(&mut host, &client, t));
    }
    // A new approval after the mark starts a grant the mark does not reach.
    host.advance(1);
    let again = sign_in(
        &mut host,
        &client,
        VICTIM,
        "http://127.0.0.1:50004/cb",
        "again",
    );
    assert!(host.bearer(again.access()).is_ok());
    assert!(refresh_works(&mut host, &client, &again));
}

#[test]
fn a_code_approved_before_the_mark_is_revoked_even_when_redeemed_after_it_r59() {
    let (mut host, client) = document_host();
    let mut app = App::new(&client, "late");
    app.redirect_uri = "http://127.0.0.1:50005/cb".to_owned();
    let mut browser = host.browser(VICTIM);
    let code = host.code_for(&mut browser, &app);
    // The operator revokes while the code is on its way to the app.
    let early = sign_in(
        &mut host,
        &client,
        VICTIM,
        "http://127.0.0.1:50006/cb",
        "early",
    );
    let subject = host.bearer(early.access()).unwrap().subject().to_owned();
    revoke_native(&mut host, &subject);
    host.advance(2);
    let late = host
        .redeem(&app.client, &code, &app.verifier, Some(&app.redirect_uri))
        .expect("the code itself is still valid");
    assert_eq!(host.bearer(late.access()).err(), Some(BearerError::Revoked));
}

#[test]
fn a_host_that_does_not_read_the_mark_fails_closed_r59() {
    let (mut host, client) = document_host();
    let tokens = sign_in(&mut host, &client, VICTIM, "http://127.0.0.1:50001/cb", "a");
    let header = format!("Bearer {}", tokens.access());
    let claims = || host.gate.verify_bearer(Some(&header), host.now).unwrap();
    let (grant, mark) = host.store.grant(&claims().grant_key());
    let grant = grant.expect("the grant");
    assert!(
        grant.installation_key().is_some(),
        "a document client's grant"
    );
    assert!(mark.is_none());
    // Read with its (absent) mark: it stands. The grant alone: refused.
    let read = GrantLookup::with_installation(Some(&grant), None);
    assert!(claims().confirm(read, host.now).is_ok());
    assert_eq!(
        claims().confirm(Some(&grant), host.now).err(),
        Some(BearerError::Revoked)
    );
    // A registered client's grant has no installation: the grant alone is all there is.
    let (mut plain, _, app) = consent_gate_spec::kit::app_host();
    let mut browser = plain.browser(VICTIM);
    let tokens = plain.login(&mut browser, &app);
    let header = format!("Bearer {}", tokens.access());
    let claims = plain.gate.verify_bearer(Some(&header), plain.now).unwrap();
    let grant = plain.store.get::<GrantRecord>(&claims.grant_key()).unwrap();
    assert_eq!(grant.installation_key(), None);
    assert!(claims.confirm(Some(&grant), plain.now).is_ok());
}

#[test]
fn a_mark_made_after_a_key_rotation_reaches_grants_keyed_before_it_r59() {
    let (mut host, client) = document_host();
    let tokens = sign_in(&mut host, &client, VICTIM, "http://127.0.0.1:50001/cb", "a");
    let subject = host.bearer(tokens.access()).unwrap().subject().to_owned();
    // The server key is rotated: the old one only verifies.
    let setup = GateSetup {
        metadata_documents: true,
        key: [9; 32],
        previous_key: Some(GateSetup::default().key),
        ..GateSetup::default()
    };
    host.gate = setup.build().0;
    assert!(
        host.bearer(tokens.access()).is_ok(),
        "still valid after the rotation"
    );
    assert_eq!(
        revoke_native(&mut host, &subject),
        2,
        "a mark under each key"
    );
    assert_eq!(
        host.bearer(tokens.access()).err(),
        Some(BearerError::Revoked)
    );
}

#[test]
fn an_edited_or_misplaced_mark_revokes_nothing_a16() {
    let (mut host, client) = document_host();
    let tokens = sign_in(&mut host, &client, VICTIM, "http://127.0.0.1:50001/cb", "a");
    let subject = host.bearer(tokens.access()).unwrap().subject().to_owned();
    // A mark for another user is stored under another key; a mark made under a key the
    // gate does not know fails its MAC.
    revoke_native(&mut host, "github:2");
    assert!(host.bearer(tokens.access()).is_ok());
    // The real mark with its second edited (as someone with write access to the store
    // could): it fails its MAC and revokes nothing.
    let mut step = host
        .gate
        .revoke_installation(&subject, URL, NATIVE, host.now);
    let Op::Put { value, .. } = &mut step.ops[0] else {
        panic!("a put")
    };
    let mut mark: serde_json::Value = serde_json::from_slice(value).unwrap();
    mark["revoked_at"] = serde_json::json!(host.now.0 + 1);
    *value = serde_json::to_vec(&mark).unwrap();
    let _revoked = host.store.apply(step);
    assert!(
        host.bearer(tokens.access()).is_ok(),
        "an edited mark is no mark"
    );
    // Unedited, the same mark revokes.
    revoke_native(&mut host, &subject);
    assert_eq!(
        host.bearer(tokens.access()).err(),
        Some(BearerError::Revoked)
    );
}

#[test]
fn a_grant_whose_installation_was_edited_away_is_refused_a16() {
    let (mut host, client) = document_host();
    let tokens = sign_in(&mut host, &client, VICTIM, "http://127.0.0.1:50001/cb", "a");
    let header = format!("Bearer {}", tokens.access());
    let claims = host.gate.verify_bearer(Some(&header), host.now).unwrap();
    let key = claims.grant_key();
    // Someone with write access to the store drops the installation from the grant, so
    // that no mark would reach it: the grant's MAC covers the installation, so the grant
    // is refused instead.
    let grant = host.store.get::<GrantRecord>(&key).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&grant.encode()).unwrap();
    assert!(
        json.as_object_mut()
            .unwrap()
            .remove("installation")
            .is_some()
    );
    let edited = GrantRecord::decode(&serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(edited.installation_key(), None);
    host.store.put(&edited);
    assert_eq!(
        host.bearer(tokens.access()).err(),
        Some(BearerError::Revoked)
    );
}
