//! Client ID Metadata Documents in the core (R57, R59): which documents stand in for a
//! registration, for how long, what the consent page says of their clients, and that a
//! remembered consent never lets another installation of the same client in silently.
//! The fetching and its SSRF policy are the host's (`axum/tests/fetch.rs`,
//! `axum/tests/metadata_document.rs`).

use consent_gate::*;
use consent_gate_spec::entropy::SplitMix64;
use consent_gate_spec::kit::{GateSetup, T0};

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
