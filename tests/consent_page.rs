//! The consent page people decide on (R69, R27): the host that receives access is the
//! headline, the client's own name is labelled as unverified, the page speaks the
//! browser's language, and a host rendering its own page gets the exact CSP.

use consent_gate::*;
use consent_gate_spec::entropy::SplitMix64;
use consent_gate_spec::kit::{GateSetup, T0};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A consent prompt for a client registered with `name` and `redirect_uri`.
fn prompt(name: Option<&str>, redirect_uri: &str) -> ConsentPrompt {
    let (gate, _) = GateSetup {
        https: true,
        github_com: true,
        ..GateSetup::default()
    }
    .build();
    let mut rng = SplitMix64(7);
    let mut entropy = |buf: &mut [u8]| rng.fill(buf);
    let name = name.map_or(String::new(), |n| format!(r#","client_name":"{n}""#));
    let body = format!(
        r#"{{"redirect_uris":["{redirect_uri}"],"token_endpoint_auth_method":"none"{name}}}"#
    );
    let client = gate
        .register(body.as_bytes(), T0, &mut entropy)
        .unwrap()
        .record;
    let uri: String = url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={uri}&code_challenge={CHALLENGE}\
         &code_challenge_method=S256&state=xyz",
        client.client_id()
    );
    let request = AuthorizeRequest::parse(query.as_bytes()).unwrap();
    let browser = BrowserContext::default();
    match gate.authorize(request, Some(&client), browser, T0, &mut entropy) {
        Ok(Authorization::NeedsConsent(prompt)) => prompt,
        other => panic!("a consent page, not {other:?}"),
    }
}

fn text(reply: &Reply) -> String {
    String::from_utf8(reply.body.clone()).unwrap()
}

#[test]
fn the_receiving_host_is_the_headline_and_the_name_is_labelled_unverified_r69() {
    let page = text(&prompt(Some("Acme Desktop"), "https://app.example/cb").page());
    let h1 = page
        .split("<h1>")
        .nth(1)
        .unwrap()
        .split("</h1>")
        .next()
        .unwrap();
    assert!(h1.contains("id=\"redirect-host\">app.example<"), "{h1}");
    assert!(
        !h1.contains("Acme"),
        "the self-asserted name is not the headline: {h1}"
    );
    let name_line = page.split("id=\"client-name\">").nth(1).unwrap();
    assert!(name_line.starts_with("Acme Desktop</strong>"));
    assert!(
        name_line.contains("not verified"),
        "the name is labelled as the client's own"
    );
    assert!(page.contains("id=\"redirect-uri\">https://app.example/cb<"));
    let unnamed = text(&prompt(None, "https://app.example/cb").page());
    assert!(unnamed.contains("gives no name") && !unnamed.contains("client-name"));
}

#[test]
fn the_page_has_landmarks_a_labelled_form_and_a_dark_scheme_without_external_resources() {
    let page = text(&prompt(Some("Acme"), "https://app.example/cb").page());
    assert!(page.contains("<main>") && page.contains("</main>"));
    assert!(page.contains("<form method=\"post\" aria-label=\"Your decision\">"));
    assert!(page.contains("@media (prefers-color-scheme:dark)"));
    assert!(page.contains("<meta name=\"color-scheme\" content=\"light dark\">"));
    assert!(page.contains("button:focus-visible"));
    for external in ["src=", "href=", "url(", "@import"] {
        assert!(!page.contains(external), "no external resource: {external}");
    }
    let loopback = text(&prompt(Some("CLI"), "http://127.0.0.1:7777/cb").page());
    assert!(loopback.contains("role=\"note\"") && loopback.contains("Local application."));
}

#[test]
fn the_page_speaks_the_browsers_language() {
    let english = text(&prompt(Some("Acme"), "https://app.example/cb").page());
    assert!(english.starts_with("<!doctype html><html lang=\"en\">"));
    assert!(english.contains(">Approve</button>") && english.contains(">Deny</button>"));
    let language = Language::negotiate(Some("de-CH, de;q=0.9, en;q=0.5"));
    assert_eq!(language, Language::German);
    let german = prompt(Some("Acme"), "http://127.0.0.1:7777/cb").in_language(language);
    let german = text(&german.page());
    assert!(german.starts_with("<!doctype html><html lang=\"de\">"));
    assert!(german.contains("Zugriff für <span class=\"uri\" id=\"redirect-host\">127.0.0.1<"));
    assert!(german.contains("nicht überprüft"));
    assert!(german.contains("Lokale Anwendung."));
    assert!(german.contains("value=\"approve\">Zustimmen<"));
    assert!(german.contains("value=\"deny\">Ablehnen<"));
    // The form contract does not change with the language.
    for field in ["name=\"tx\"", "name=\"csrf\"", "name=\"decision\""] {
        assert!(german.contains(field) && english.contains(field), "{field}");
    }
}

#[test]
fn a_host_rendering_its_own_page_gets_the_exact_csp_and_the_view() {
    let prompt = prompt(Some("Acme"), "https://app.example/cb");
    let page = prompt.page();
    let csp = prompt.content_security_policy();
    assert_eq!(page.header("content-security-policy"), Some(csp.as_str()));
    assert!(
        csp.contains("form-action 'self' https://github.com https://app.example;"),
        "{csp}"
    );
    let view = prompt.view();
    assert_eq!(view.redirect_host, "app.example");
    assert_eq!(view.client_name.as_deref(), Some("Acme"));
    let html = text(&page);
    assert!(html.contains(&format!("name=\"tx\" value=\"{}\"", view.form_tx)));
    assert!(html.contains(&format!("name=\"csrf\" value=\"{}\"", view.form_csrf)));
}
