//! Checks of the remembered-consent cookie that only the crate can reach: building a
//! validly MAC'd cookie needs the server key (issue 10, item 7). Each test names the
//! mutation of `consent.rs` it is there to notice.

use super::*;
use crate::config::{Config, UpstreamConfig};
use crate::crypto::{ClientSecret, Keys, ServerKey};
use crate::redirect::RedirectUri;
use crate::scope::ScopeSet;

const NOW: UnixTime = UnixTime(1_700_000_000);

fn gate(policy: ConsentPolicy) -> Gate {
    let upstream = UpstreamConfig::custom(
        "Demo",
        "http://127.0.0.1:8080/up/authorize",
        "http://127.0.0.1:8080/up/token",
        "http://127.0.0.1:8080/up/user",
        "static-id",
        ClientSecret::new("s"),
    );
    let keys = Keys::new(ServerKey::new(&[7; 32]).expect("32 bytes"));
    let config = Config::builder(
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/mcp",
        upstream,
        keys,
    )
    .dev_loopback_http(true)
    .consent_policy(policy)
    .build()
    .expect("a valid configuration");
    Gate::new(config)
}

fn remembering() -> Gate {
    gate(ConsentPolicy::Remember)
}

fn details(client_id: &str) -> AuthorizationDetails {
    AuthorizationDetails {
        client_id: client_id.to_owned(),
        client_name: Some("App".to_owned()),
        redirect_uri: RedirectUri::parse("https://app.example/cb").expect("a redirect URI"),
        scope: ScopeSet::parse("mcp").expect("a scope"),
        resource: "http://127.0.0.1:8080/mcp".to_owned(),
        client_state: None,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
    }
}

/// A digest that is recognisably entry `i`.
fn digest(i: u8) -> [u8; 16] {
    [i; 16]
}

fn body(entries: &[([u8; 16], u64)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (d, exp) in entries {
        b.extend_from_slice(d);
        b.extend_from_slice(&exp.to_be_bytes());
    }
    b
}

fn tag(g: &Gate, body: &[u8]) -> [u8; 32] {
    let mut w = g.config.keys.mac("remember cookie");
    w.bytes(body);
    w.finish()
}

/// The `Cookie` header of a browser holding `body` under a valid MAC.
fn signed(g: &Gate, body: &[u8]) -> String {
    format!("{REMEMBER_COOKIE}={}.{}", b64(body), b64(&tag(g, body)))
}

fn direct(cookies: &str) -> BrowserContext<'_> {
    BrowserContext {
        cookies,
        origin: None,
        sec_fetch_site: Some("none"),
    }
}

fn entries(g: &Gate, cookies: &str, now: UnixTime) -> Vec<([u8; 16], u64)> {
    g.remembered_entries(&direct(cookies), now)
}

/// The `Cookie` header a browser sends back after this `Set-Cookie`.
fn returned(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("name=value").to_owned()
}

#[test]
fn a_valid_cookie_yields_its_unexpired_entries() {
    let g = remembering();
    let list = [(digest(1), NOW.0 + 10), (digest(2), NOW.0 + 20)];
    assert_eq!(entries(&g, &signed(&g, &body(&list)), NOW), list.to_vec());
    // Not under the name of another cookie, and nothing without a cookie.
    let other = signed(&g, &body(&list)).replacen(REMEMBER_COOKIE, "cg-other", 1);
    assert!(entries(&g, &other, NOW).is_empty());
    assert!(entries(&g, "", NOW).is_empty());
}

#[test]
fn a_forged_cookie_of_plausible_length_is_ignored() {
    // `||` → `&&` before the MAC check: a cookie whose length is plausible would be
    // trusted without its MAC (the mutation the issue found alive).
    let g = remembering();
    let b = body(&[(digest(1), NOW.0 + 10)]);
    let forged = format!("{REMEMBER_COOKIE}={}.{}", b64(&b), b64(&[0u8; 32]));
    assert!(entries(&g, &forged, NOW).is_empty());
    // A MAC under another server key is a forgery too.
    let mut w = Keys::new(ServerKey::new(&[8; 32]).expect("32 bytes")).mac("remember cookie");
    w.bytes(&b);
    let foreign = format!("{REMEMBER_COOKIE}={}.{}", b64(&b), b64(&w.finish()));
    assert!(entries(&g, &foreign, NOW).is_empty());
    // Nor does a MAC under another label (the CSRF token's, say) stand in for it.
    let mut w = g.config.keys.mac("consent csrf");
    w.bytes(&b);
    let relabelled = format!("{REMEMBER_COOKIE}={}.{}", b64(&b), b64(&w.finish()));
    assert!(entries(&g, &relabelled, NOW).is_empty());
}

#[test]
fn an_edited_cookie_is_ignored() {
    // A later expiry written into a validly signed cookie.
    let g = remembering();
    let honest = body(&[(digest(1), NOW.0 + 10)]);
    let t = b64(&tag(&g, &honest));
    let later = body(&[(digest(1), NOW.0 + 10_000_000)]);
    let edited = format!("{REMEMBER_COOKIE}={}.{t}", b64(&later));
    assert!(entries(&g, &edited, NOW).is_empty());
    // The right body under a truncated tag.
    let short = format!("{REMEMBER_COOKIE}={}.{}", b64(&honest), &t[..20]);
    assert!(entries(&g, &short, NOW).is_empty());
    // Malformed: no tag, bad base64 in either part.
    for bad in [
        format!("{REMEMBER_COOKIE}={}", b64(&honest)),
        format!("{REMEMBER_COOKIE}={}.{t}!", b64(&honest)),
        format!("{REMEMBER_COOKIE}=!{}.{t}", b64(&honest)),
    ] {
        assert!(entries(&g, &bad, NOW).is_empty(), "{bad}");
    }
}

#[test]
fn a_truncated_cookie_is_ignored() {
    let g = remembering();
    let two = body(&[(digest(1), NOW.0 + 10), (digest(2), NOW.0 + 20)]);
    let t = b64(&tag(&g, &two));
    // Cut by one entry, or into an entry, under the original tag.
    for cut in [24, 5, 1] {
        let c = format!("{REMEMBER_COOKIE}={}.{t}", b64(&two[..two.len() - cut]));
        assert!(entries(&g, &c, NOW).is_empty(), "cut {cut}");
    }
    // A body that is not a whole number of entries is refused even under a valid MAC
    // (`%` and the first `||` of the length check).
    for len in [1, 23, 25, 47] {
        let c = signed(&g, &two[..len]);
        assert!(entries(&g, &c, NOW).is_empty(), "length {len}");
    }
}

#[test]
fn a_spliced_cookie_is_ignored() {
    // Two honest cookies (say, from two browsers of the attacker's) glued together: each
    // body is validly signed, the concatenation is not.
    let g = remembering();
    let a = body(&[(digest(1), NOW.0 + 10)]);
    let b = body(&[(digest(2), NOW.0 + 10)]);
    let ab: Vec<u8> = [a.clone(), b.clone()].concat();
    for t in [tag(&g, &a), tag(&g, &b)] {
        let c = format!("{REMEMBER_COOKIE}={}.{}", b64(&ab), b64(&t));
        assert!(entries(&g, &c, NOW).is_empty());
    }
    // Two cookies of that name are ambiguous: neither is trusted.
    let both = format!("{}; {}", signed(&g, &a), signed(&g, &b));
    assert!(entries(&g, &both, NOW).is_empty());
}

#[test]
fn sixteen_entries_are_read_seventeen_are_refused() {
    let g = remembering();
    let list: Vec<_> = (0..17u8).map(|i| (digest(i), NOW.0 + 100)).collect();
    // Exactly at the cap (`>` → `>=`, `*` → `+`, `*` → `/`).
    let sixteen = signed(&g, &body(&list[..16]));
    assert_eq!(entries(&g, &sixteen, NOW), list[..16].to_vec());
    // One over, validly MAC'd (`||` → `&&` of the length checks, `>` → `==` / `<`).
    let seventeen = signed(&g, &body(&list));
    assert!(entries(&g, &seventeen, NOW).is_empty());
    // Far over.
    let many: Vec<_> = (0..40u8).map(|i| (digest(i), NOW.0 + 100)).collect();
    assert!(entries(&g, &signed(&g, &body(&many)), NOW).is_empty());
}

#[test]
fn an_entry_expires_exactly_at_its_expiry() {
    // exp == now is expired; exp == now + 1 is not (`>` → `>=`, `==`, `<`).
    let g = remembering();
    let list = [
        (digest(1), NOW.0 - 1),
        (digest(2), NOW.0),
        (digest(3), NOW.0 + 1),
        (digest(4), u64::MAX),
    ];
    let c = signed(&g, &body(&list));
    assert_eq!(entries(&g, &c, NOW), vec![list[2], list[3]]);
    assert_eq!(entries(&g, &c, UnixTime(NOW.0 + 1)), vec![list[3]]);
    assert_eq!(entries(&g, &c, UnixTime(0)), list.to_vec());
}

#[test]
fn a_remembered_consent_applies_only_to_its_digest_until_it_expires() {
    let g = remembering();
    let d = details("client-a");
    let mine = g.remember_digest(&d);
    let c = signed(&g, &body(&[(mine, NOW.0 + 1)]));
    let given = remembered(&g, &d, direct(&c), NOW).expect("remembered");
    assert_eq!(given.details, d);
    assert!(given.remember_cookie.is_none());
    // Expired at exp == now.
    assert!(remembered(&g, &d, direct(&c), UnixTime(NOW.0 + 1)).is_none());
    // Another client, redirect URI, scope or resource has another digest.
    let mut other = details("client-b");
    assert!(remembered(&g, &other, direct(&c), NOW).is_none());
    other = details("client-a");
    other.redirect_uri = RedirectUri::parse("https://app.example/cb2").expect("uri");
    assert!(remembered(&g, &other, direct(&c), NOW).is_none());
    other = details("client-a");
    other.resource = "http://127.0.0.1:8080/other".to_owned();
    assert!(remembered(&g, &other, direct(&c), NOW).is_none());
    // The digest covers exactly client, redirect URI, scope and resource: the client's
    // `state`, name and PKCE challenge change on every request and must not matter.
    other = details("client-a");
    other.client_state = Some("s".to_owned());
    other.client_name = None;
    other.code_challenge = "x".repeat(43);
    assert_eq!(g.remember_digest(&other), mine);
    assert!(remembered(&g, &other, direct(&c), NOW).is_some());
}

#[test]
fn a_remembered_consent_needs_the_remember_policy_and_a_navigation_from_here() {
    let g = remembering();
    let d = details("client-a");
    let c = signed(&g, &body(&[(g.remember_digest(&d), NOW.0 + 100)]));
    // The `Always` policy ignores even a valid cookie (same key, same digest).
    let always = gate(ConsentPolicy::Always);
    assert_eq!(always.remember_digest(&d), g.remember_digest(&d));
    assert!(remembered(&always, &d, direct(&c), NOW).is_none());
    // Started here (`none`) or on our own pages (`same-origin`): applies.
    for site in ["none", "same-origin"] {
        let ctx = BrowserContext {
            sec_fetch_site: Some(site),
            ..direct(&c)
        };
        assert!(remembered(&g, &d, ctx, NOW).is_some(), "{site}");
    }
    // Cross-site, or no Fetch Metadata at all: prompts.
    for site in [Some("cross-site"), None] {
        let ctx = BrowserContext {
            sec_fetch_site: site,
            ..direct(&c)
        };
        assert!(remembered(&g, &d, ctx, NOW).is_none(), "{site:?}");
    }
}

#[test]
fn the_cookie_the_gate_writes_round_trips() {
    let g = remembering();
    let d = details("client-a");
    let set = g.remember_cookie(&d, &direct(""), NOW);
    assert!(set.starts_with(&format!("{REMEMBER_COOKIE}=")), "{set}");
    let lifetime = g.config.lifetimes.remembered_consent;
    assert!(set.contains(&format!("; Max-Age={lifetime};")), "{set}");
    let back = returned(&set);
    assert_eq!(
        entries(&g, &back, NOW),
        vec![(g.remember_digest(&d), NOW.0 + lifetime)]
    );
    assert!(remembered(&g, &d, direct(&back), NOW).is_some());
    assert!(remembered(&g, &d, direct(&back), NOW.plus(lifetime)).is_none());
}

#[test]
fn approving_again_renews_the_entry_and_keeps_the_others() {
    // `retain(… != digest)` → `==`: re-approving A would drop B and keep A twice.
    let g = remembering();
    let (a, b) = (details("client-a"), details("client-b"));
    let c1 = returned(&g.remember_cookie(&a, &direct(""), NOW));
    let c2 = returned(&g.remember_cookie(&b, &direct(&c1), NOW.plus(1)));
    let c3 = returned(&g.remember_cookie(&a, &direct(&c2), NOW.plus(2)));
    let lifetime = g.config.lifetimes.remembered_consent;
    assert_eq!(
        entries(&g, &c3, NOW),
        vec![
            (g.remember_digest(&b), NOW.0 + 1 + lifetime),
            (g.remember_digest(&a), NOW.0 + 2 + lifetime),
        ]
    );
}

#[test]
fn the_cookie_keeps_the_newest_sixteen() {
    let g = remembering();
    let old: Vec<_> = (0..16u8).map(|i| (digest(i), NOW.0 + 100)).collect();
    let full = signed(&g, &body(&old));
    let d = details("client-new");
    let next = returned(&g.remember_cookie(&d, &direct(&full), NOW));
    let kept = entries(&g, &next, NOW);
    assert_eq!(kept.len(), MAX_REMEMBERED);
    assert_eq!(kept[..15], old[1..]);
    assert_eq!(kept[15].0, g.remember_digest(&d));
    // Expired and forged entries are not carried over.
    let stale = signed(&g, &body(&[(digest(1), NOW.0)]));
    let next = returned(&g.remember_cookie(&d, &direct(&stale), NOW));
    assert_eq!(entries(&g, &next, NOW).len(), 1);
}

#[test]
fn consent_form_and_prompt_accessors() {
    // Cheap checks of the plumbing around the cookie (accessor mutants).
    let g = remembering();
    let mut n = 0u8;
    let mut entropy = |buf: &mut [u8]| {
        n = n.wrapping_add(1);
        buf.fill(n)
    };
    let prompt = g.prompt(details("client-a"), direct(""), NOW, &mut entropy);
    assert!(prompt.set_cookie().starts_with("cg-browser="));
    assert_eq!(
        prompt.page().set_cookies().next(),
        Some(prompt.set_cookie())
    );
    let pending = prompt.pending_record();
    assert_eq!(pending.details(), &details("client-a"));
    assert_eq!(pending.expires_at(), NOW.plus(g.config.lifetimes.consent));
    let view = prompt.view();
    assert_eq!(
        pending.key(),
        &StoreKey::derive("consent tx", view.form_tx.as_bytes())
    );
    let form = ConsentForm::parse(
        format!("tx={}&csrf={}&decision=deny", view.form_tx, view.form_csrf).as_bytes(),
    )
    .expect("the page's own form");
    assert_eq!(form.choice(), Choice::Deny);
    assert_eq!(form.pending_key(), *pending.key());
    assert!(!format!("{form:?}").contains(&view.form_csrf));
    assert!(format!("{prompt:?}").contains("client-a"));
}
