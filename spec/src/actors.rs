//! The parties around the server, as plain functions: the server's configuration,
//! browsers' cookie jars, the links, the auto-approving upstream and
//! who receives a client redirect.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consent_gate::{ClientSecret, Config, Gate, Keys, ServerKey, UpstreamConfig};
use sha2::{Digest, Sha256};
use url::Url;

use crate::world::{Browser, BrowserState, Identity, Party, SUBJECT_PREFIX, Setup};

/// Our issuer; https, so cookies carry the `__Host-` prefix and `Secure` (R30).
pub const ISSUER: &str = "https://mcp.example";
/// The canonical MCP resource (R4).
pub const RESOURCE: &str = "https://mcp.example/mcp";
/// The upstream's authorization endpoint.
pub const UPSTREAM_AUTHORIZE: &str = "https://upstream.example/login/oauth/authorize";
/// The honest client's one registered redirect URI: a bare origin, the registration under
/// which prefix matching (A10) lets `https://app.example.evil.example/…` through.
pub const HONEST_REDIRECT: &str = "https://app.example";
/// The attacker's registered redirect URI (A1).
pub const EVIL_REDIRECT: &str = "https://evil.example/cb";
/// The redirect URI the attacker puts into a link for the honest client (A10): it starts
/// with the honest registration but names a host the attacker owns.
pub const TRICK_REDIRECT: &str = "https://app.example.evil.example/cb";
/// The cross-site origin of the attacker's auto-submitting form.
pub const EVIL_ORIGIN: &str = "https://evil.example";

/// Start of time in every world.
pub const EPOCH: u64 = 1_700_000_000;

/// The server this world runs: the real core with the setup's faults and policy.
pub(crate) fn build_gate(setup: &Setup) -> Arc<Gate> {
    let Some(key) = ServerKey::new(&[7u8; 32]) else {
        unreachable!("a 32-byte key is always accepted");
    };
    let mut upstream = UpstreamConfig::custom(
        "Upstream",
        UPSTREAM_AUTHORIZE,
        "https://upstream.example/login/oauth/access_token",
        "https://api.upstream.example/user",
        "static-client-id",
        ClientSecret::new("upstream-secret"),
    );
    upstream.scopes = vec!["read:user".into()];
    upstream.subject_prefix = SUBJECT_PREFIX.into();
    let builder =
        Config::builder(ISSUER, RESOURCE, upstream, Keys::new(key)).consent_policy(setup.policy);
    // Without `--cfg consent_gate_faults` the setup's `Faults` has nothing to switch on.
    #[cfg(consent_gate_faults)]
    let builder = builder.faults(setup.faults);
    match builder.build() {
        Ok(c) => Arc::new(Gate::new(c)),
        Err(e) => panic!("the World's configuration is valid: {e}"),
    }
}

impl Party {
    /// The PKCE verifier this party uses for every link it makes.
    pub fn verifier(self) -> &'static str {
        match self {
            Party::Honest => "honest-client-verifier-0123456789abcdefghijklmnop",
            Party::Attacker => "attacker-verifier-0123456789abcdefghijklmnopqrstu",
        }
    }

    /// Its S256 challenge (RFC 7636 §4.2), computed independently of the core.
    pub fn challenge(self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier().as_bytes()))
    }

    /// Who receives a browser redirect to `uri`: the honest client only at its own host;
    /// every other host in this world is the attacker's (evil.example, and the A10 trick
    /// host under it).
    pub fn owning(uri: &str) -> Party {
        let host = Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        match host.as_deref() {
            Some("app.example") => Party::Honest,
            _ => Party::Attacker,
        }
    }
}

impl BrowserState {
    /// The `Cookie` header this browser sends to our origin.
    pub fn cookie_header(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.jar {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
        out
    }

    /// Applies a `Set-Cookie` value. `Max-Age=0` (or an empty value) deletes, except in
    /// the attacker's browser, which keeps whatever it was once given. Cookie expiry by
    /// time is not modelled: cookies outlive their `Max-Age`, so only the server's own
    /// expiry checks count (a stronger attacker).
    pub(crate) fn set_cookie(&mut self, owner: Browser, header: &str) {
        let Some((name, value)) = header.split(';').next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let deletes = value.is_empty()
            || header
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
        if deletes {
            if owner == Browser::Victim {
                self.jar.remove(name);
            }
        } else {
            self.jar.insert(Arc::from(name), Arc::from(value));
        }
    }
}

/// Appends `item` unless it is already there (what a party has seen is a set, kept in
/// first-seen order so indices stay stable). Returns whether it was new.
pub(crate) fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) -> bool {
    if list.contains(&item) {
        return false;
    }
    list.push(item);
    true
}

/// A query parameter of an absolute URL.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    let mut found = url.query_pairs().filter(|(k, _)| k == name);
    let value = found.next()?.1.into_owned();
    found.next().is_none().then_some(value)
}

/// The upstream, which (like GitHub for a returning user) approves any authorization
/// request for our static client instantly: the browser is sent back to our callback with
/// a code for the account it is logged in as. It does not enforce PKCE or single use of
/// its codes, so every protection checked here is the server's own.
pub(crate) mod upstream {
    use super::*;

    /// The callback URL the upstream sends `browser` to for authorization URL `url`, or
    /// why it refuses.
    pub(crate) fn authorize(url: &str, browser: Browser, callback_uri: &str) -> Option<String> {
        if !url.starts_with(UPSTREAM_AUTHORIZE) {
            return None;
        }
        if query_param(url, "client_id")?.as_str() != "static-client-id"
            || query_param(url, "redirect_uri")?.as_str() != callback_uri
        {
            return None;
        }
        let state = query_param(url, "state")?;
        let mut back = Url::parse(callback_uri).ok()?;
        back.query_pairs_mut()
            .append_pair("code", &code_for(browser.identity()))
            .append_pair("state", &state);
        Some(back.into())
    }

    fn code_for(who: Identity) -> String {
        format!("gh-code-{}", who.upstream_id())
    }

    /// The account an upstream code was issued for.
    pub(crate) fn identity_of_code(code: &str) -> Option<Identity> {
        [Identity::Victim, Identity::Attacker]
            .into_iter()
            .find(|i| code_for(*i) == code)
    }

    /// Answers the token exchange: an upstream token for the code's account.
    pub(crate) fn token(body: &[u8]) -> (u16, String) {
        let code = url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match identity_of_code(&code) {
            Some(who) => (
                200,
                format!(
                    r#"{{"access_token":"gho-{}","token_type":"bearer","scope":"read:user"}}"#,
                    who.upstream_id()
                ),
            ),
            None => (200, r#"{"error":"bad_verification_code"}"#.into()),
        }
    }

    /// Answers the user-document request for the bearer it carries.
    pub(crate) fn user(authorization: Option<&str>) -> (u16, String) {
        let who = [Identity::Victim, Identity::Attacker]
            .into_iter()
            .find(|i| authorization == Some(format!("Bearer gho-{}", i.upstream_id()).as_str()));
        match who {
            Some(i) => (
                200,
                format!(
                    r#"{{"id":{},"login":"user{}"}}"#,
                    i.upstream_id(),
                    i.upstream_id()
                ),
            ),
            None => (401, r#"{"message":"Bad credentials"}"#.into()),
        }
    }
}
