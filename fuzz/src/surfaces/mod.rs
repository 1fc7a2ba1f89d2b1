//! One function per input surface: the thin wrappers of `fuzz_targets/*.rs`.
//!
//! Each runs the bytes through the real parser, then the real step, the way a host would
//! (lookups by the keys the core names, against the [`fixture`]), and asserts what the
//! outcome may be. A violated assertion is a crash: libFuzzer saves the input.
//!
//! Every function returns how far the input got ([`Reached`]), which the unit tests use
//! to prove that the committed seeds reach the deep paths.

mod backend;
mod browser;

pub use backend::{
    OIDC_CLIENT, OIDC_ISSUER, OIDC_NONCE, bearer_header, openid_answer, registration_json,
    token_request, upstream_token_response,
};
pub use browser::{authorize_query, callback_query, consent_form, cookie_header, redirect_uri};

use consent_gate::{
    Authorization, AuthorizeError, AuthorizeRequest, BrowserContext, Callback, CallbackError,
    ConsentForm, Decision, RedirectUri, Reply, RevocationRequest, TokenError, TokenRequest,
    UpstreamResponse,
};

use crate::fixture::{F5, F14, NOW, RESOURCE, SplitMix64, fixture, form_param, query_param};
use crate::oracle::{
    assert_client_redirect, assert_page_not_redirect, header, lines, redirect_acceptable,
};

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reached {
    /// The parser refused it.
    Rejected,
    /// Parsed, then refused by the step.
    Parsed,
    /// The step accepted it.
    Accepted,
}

fn rng() -> SplitMix64 {
    SplitMix64(0x5eed)
}

/// The value half of a `name=value` cookie pair.
fn value(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(_, v)| v)
}

/// Header values never carry CR, LF or NUL (response splitting), and every cookie we set
/// has the R30 attributes.
pub fn assert_headers_clean(reply: &Reply, what: &str) {
    for (name, v) in &reply.headers {
        assert!(
            !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
            "{what}: header {name} carries CR, LF or NUL"
        );
        if *name == "set-cookie" {
            assert!(
                v.starts_with("__Host-")
                    && v.contains("; Path=/;")
                    && v.contains("; Secure")
                    && v.contains("; HttpOnly")
                    && v.ends_with("; SameSite=Lax"),
                "{what}: cookie without the R30 attributes: {v}"
            );
            let pair = v.split(';').next().unwrap_or_default();
            assert!(
                value(pair)
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{what}: cookie value outside base64url: {pair}"
            );
        }
    }
}

/// R23: user-controlled text (client name, redirect URI) never adds markup. Every tag in
/// the page must be one the template writes.
pub fn assert_markup_is_ours(body: &[u8], what: &str) {
    const TAGS: &[&str] = &[
        "!doctype", "html", "head", "meta", "title", "style", "body", "h1", "strong", "div", "p",
        "span", "br", "code", "ul", "li", "form", "input", "button", "main",
    ];
    let body = String::from_utf8_lossy(body);
    for (i, _) in body.match_indices('<') {
        let name: String = body[i + 1..]
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(
            TAGS.contains(&name.as_str()),
            "{what}: page has a tag the template never writes: <{name}"
        );
    }
}

fn check_page(reply: &Reply, what: &str) {
    assert_headers_clean(reply, what);
    assert_markup_is_ours(&reply.body, what);
}

/// R11/R48/A17: https anywhere, http only on a loopback host; checked with the URL
/// parser's view of the host, independently of how `RedirectUri::parse` decided.
fn check_scheme(raw: &str) {
    let url =
        url::Url::parse(raw).unwrap_or_else(|_| panic!("registered URI {raw:?} does not parse"));
    match url.scheme() {
        "https" => assert!(raw.starts_with("https://")),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            assert!(
                loopback && raw.starts_with("http://"),
                "R11: http on a non-loopback host: {raw:?}"
            );
        }
        other => panic!("A17: scheme {other:?} registered: {raw:?}"),
    }
    assert!(url.fragment().is_none() && url.username().is_empty() && url.password().is_none());
    // R61/A19: the host the consent page shows is the host the browser goes to, and it is
    // what a reader sees right after `://`.
    let parsed = RedirectUri::parse(raw).expect("checked only for registered URIs");
    assert_eq!(
        Some(parsed.host()),
        url.host_str(),
        "A19: shown host differs: {raw:?}"
    );
    let shown = &raw[raw.find("://").map_or(0, |i| i + 3)..];
    assert!(
        shown.starts_with(parsed.host())
            && matches!(
                shown.as_bytes().get(parsed.host().len()),
                None | Some(b':' | b'/' | b'?')
            ),
        "A19: the text reads another host than the page shows: {raw:?}"
    );
}
