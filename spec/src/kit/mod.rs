//! The simulation kit: the pieces every checker of the workspace builds on, each defined
//! once (docs/conventions.md#one-kit).
//!
//! * [`Store`]: the in-memory store with atomic take, and [`Store::apply`], the one host
//!   loop (a generic executor of the core's `Step`s);
//! * [`GateSetup`]: the one gate builder (the real `Gate`, loopback or https, any policy,
//!   lifetimes and fault switches) and the [`FakeGithub`] it talks to;
//! * [`Host`]: the MCP server's handlers around the gate, one method per endpoint, each
//!   ending in [`Store::apply`];
//! * [`Browser`]: the one cookie jar, with the Fetch Metadata of each navigation ([`Nav`]);
//! * [`App`], [`Client`], [`ConsentFields`]: honest and attacker clients;
//! * [`FakeGithub`]: the one upstream double, in GitHub's wire shapes, or Google's OpenID
//!   shapes ([`GoogleShapes`]) when the gate is set up for an OpenID provider;
//! * entropy and the clock: [`SplitMix64`](crate::entropy::SplitMix64) and
//!   [`Draws`](crate::entropy::Draws) (crate::entropy), and `UnixTime` advanced by hand.
//!
//! The World (crate root) is built from the same store, jar, upstream and gate builder.

mod browser;
mod client;
mod gate;
mod github;
mod google;
mod host;
mod store;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consent_gate::Reply;
use sha2::{Digest, Sha256};

pub use browser::{Browser, Nav, Request};
pub use client::{App, Client, ConsentFields};
pub use gate::{Faults, GateSetup, HTTPS_ISSUER, ISSUER, RESOURCE, SERVER_KEY, T0};
pub use github::{
    ATTACKER, FakeGithub, GithubUser, HttpAnswer, UPSTREAM_CLIENT_ID, UPSTREAM_SECRET, USERS,
    VICTIM,
};
pub use google::{GoogleShapes, Spoil};
pub use host::{Host, Tokens, app_host};
pub use store::Store;

/// The RFC 7636 S256 transform, computed independently of the core.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Form-encodes name/value pairs.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (n, v) in pairs {
        s.append_pair(n, v);
    }
    s.finish()
}

/// One form-encoded component.
pub fn form_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The decoded query of a URL (everything after `?`); a repeated name is a test failure.
pub fn query_params(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut out = BTreeMap::new();
    for (n, v) in url::form_urlencoded::parse(query.as_bytes()) {
        assert!(
            out.insert(n.to_string(), v.to_string()).is_none(),
            "{n} repeated in {url}"
        );
    }
    out
}

/// The `Location` of a redirect (a test failure without one).
pub fn location(reply: &Reply) -> &str {
    reply
        .header("location")
        .expect("a redirect with a Location")
}

/// The body of a page as text (a test failure unless UTF-8).
pub fn html(reply: &Reply) -> String {
    String::from_utf8(reply.body.clone()).expect("UTF-8 page")
}
