//! The parties around the server: the server's configuration and the upstream (the kit's
//! gate builder and GitHub double), the browsers (the kit's cookie jar), the links, and who
//! receives a client redirect.

use std::sync::Arc;

use consent_gate::Gate;
use url::Url;

use crate::kit::{self, FakeGithub, GateSetup};
use crate::world::{Browser, BrowserState, Party, Setup};

/// Our issuer; https, so cookies carry the `__Host-` prefix and `Secure` (R30).
pub const ISSUER: &str = kit::HTTPS_ISSUER;
/// The canonical MCP resource (R4).
pub const RESOURCE: &str = "https://mcp.example/mcp";
/// The upstream's authorization endpoint (the kit's GitHub in the https configuration).
pub const UPSTREAM_AUTHORIZE: &str = "https://github.example/login/oauth/authorize";
/// The honest client's one registered redirect URI: a bare origin, the registration under
/// which prefix matching (A10) lets `https://app.example.evil.example/…` through.
pub const HONEST_REDIRECT: &str = "https://app.example";
/// The attacker's registered redirect URI (A1).
pub const EVIL_REDIRECT: &str = "https://evil.example/cb";
/// The redirect URI the attacker puts into a link for the honest client (A10): it starts
/// with the honest registration but names a host the attacker owns.
pub const TRICK_REDIRECT: &str = "https://app.example.evil.example/cb";
/// Where the attacker publishes its clients' metadata documents (`{n}` its number), when
/// the gate accepts documents: the attacker owns the domain, so the document may say
/// anything it likes but is verified to come from there.
pub(crate) const EVIL_DOCUMENT: &str = "https://evil.example/clients/";
/// The issuer of the attacker's own authorization server, the World's second upstream
/// issuer (A13): its answers name it in RFC 9207 `iss`.
pub const EVIL_AS_ISSUER: &str = "https://as.evil.example";
/// The cross-site origin of the attacker's auto-submitting form.
pub const EVIL_ORIGIN: &str = "https://evil.example";

/// Start of time in every world.
pub const EPOCH: u64 = kit::T0.0;

/// The gate and upstream this world runs: the kit's builder in its https configuration,
/// with the setup's policy and faults. The upstream appends its RFC 9207 `iss` to every
/// callback and the gate knows that issuer, as with GitHub (docs/upstreams.md#github-callback):
/// only then can a callback from another issuer be told apart (A13).
pub(crate) fn build_server(setup: &Setup) -> (Arc<Gate>, Arc<FakeGithub>) {
    let (gate, github) = GateSetup {
        https: true,
        policy: setup.policy,
        upstream_issuer: true,
        faults: setup.faults,
        metadata_documents: setup.documents,
        ..GateSetup::default()
    }
    .build();
    (Arc::new(gate), Arc::new(github))
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
        kit::s256(self.verifier())
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
    /// A fresh browser of `owner`, signed in at the upstream as its account.
    pub(crate) fn new(owner: Browser) -> Self {
        let mut jar = kit::Browser::new(ISSUER, owner.identity().github());
        jar.ignores_deletion = owner == Browser::Attacker;
        jar.ignores_expiry = true;
        BrowserState {
            jar,
            pages: Vec::new(),
            upstream: Vec::new(),
            callbacks: Vec::new(),
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
