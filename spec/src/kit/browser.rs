//! A browser: a cookie jar for our origin and the Fetch Metadata each kind of navigation
//! sends (docs/design.md#cookies, docs/design.md#consent-post).
//!
//! The one cookie jar of the kit. It applies every `Set-Cookie` as a browser does
//! (`Max-Age=0` deletes, `__Host-` rules, `Secure` only over https) and sends `SameSite=Lax`
//! cookies on everything but a cross-site POST. Two settings make it the World's
//! attacker-grade browser: [`Browser::ignores_deletion`] (the attacker keeps every cookie it
//! was once given) and [`Browser::ignores_expiry`] (cookies outlive their `Max-Age`, so only
//! the server's own expiry checks count; no clock in the jar's state for a model checker to
//! explore).

use std::collections::BTreeMap;
use std::sync::Arc;

use consent_gate::{BrowserContext, Reply, UnixTime};

use super::github::GithubUser;

/// How a request to our server came about, which decides the Fetch Metadata and which
/// SameSite=Lax cookies the browser sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Nav {
    /// Typed, bookmarked, or opened from another application (an MCP client opening the
    /// system browser, a link in a mail app): `Sec-Fetch-Site: none`.
    Direct,
    /// From one of our own pages (the consent form): `same-origin`, `Origin` = our origin.
    SameOrigin,
    /// A link or redirect from a sibling subdomain (or, on loopback, another port):
    /// `same-site`; not our origin, so not our page (R71, A20).
    SameSite,
    /// A link or redirect from another site (the upstream's redirect back, a link on the
    /// attacker's page): `cross-site`; Lax cookies are sent on this top-level GET.
    CrossSite,
    /// A form on another site submitted by script: a cross-site POST with this `Origin`
    /// (`null` from a `no-referrer` page); Lax cookies are withheld.
    CrossSitePost(&'static str),
}

/// The headers of one browser request that the gate reads.
#[derive(Clone, Debug)]
pub struct Request {
    cookies: String,
    origin: Option<String>,
    sec_fetch_site: Option<&'static str>,
}

impl Request {
    /// As the gate takes it.
    pub fn context(&self) -> BrowserContext<'_> {
        BrowserContext {
            cookies: &self.cookies,
            origin: self.origin.as_deref(),
            sec_fetch_site: self.sec_fetch_site,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StoredCookie {
    value: Arc<str>,
    expires: UnixTime,
    lax: bool,
}

/// Never, for a jar that does not track expiry.
const FOREVER: UnixTime = UnixTime(u64::MAX / 2);

/// One browser: its cookie jar for our origin and the GitHub account it is signed in to.
/// Plain data, so that a World holding it can be fingerprinted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Browser {
    origin: Arc<str>,
    https: bool,
    /// The GitHub account signed in in this browser.
    pub github: GithubUser,
    /// An old browser or embedded webview: no Fetch Metadata, no SameSite enforcement.
    pub legacy: bool,
    /// A hostile browser that keeps every cookie it was given, deletions notwithstanding
    /// (the World's attacker, `spec/README.md`).
    pub ignores_deletion: bool,
    /// Cookies outlive their `Max-Age` (the World: only the server's expiry checks count).
    pub ignores_expiry: bool,
    jar: BTreeMap<Arc<str>, StoredCookie>,
}

impl Browser {
    /// A fresh browser for our server at `origin`, signed in to GitHub as `github`.
    pub fn new(origin: &str, github: GithubUser) -> Self {
        Self {
            origin: Arc::from(origin),
            https: origin.starts_with("https://"),
            github,
            legacy: false,
            ignores_deletion: false,
            ignores_expiry: false,
            jar: BTreeMap::new(),
        }
    }

    /// Applies every `Set-Cookie` of a reply as a browser does: `Max-Age=0` (or an empty
    /// value) deletes, a `__Host-` cookie without `Secure`, with a `Domain` or a path other
    /// than `/` is refused (RFC 6265bis §4.1.3.2), and so is a `Secure` cookie over plain
    /// http.
    pub fn apply(&mut self, reply: &Reply, now: UnixTime) {
        for line in reply.set_cookies() {
            self.set_cookie(line, now);
        }
    }

    /// Applies one `Set-Cookie` value (ignored when it is not `name=value; …`).
    pub fn set_cookie(&mut self, line: &str, now: UnixTime) {
        let mut parts = line.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (mut max_age, mut secure, mut path, mut domain, mut lax) =
            (None, false, None, false, false);
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.to_ascii_lowercase().as_str() {
                "max-age" => max_age = v.parse::<i64>().ok(),
                "secure" => secure = true,
                "path" => path = Some(v.to_owned()),
                "domain" => domain = true,
                "samesite" => lax = !v.eq_ignore_ascii_case("none"),
                _ => {}
            }
        }
        let host_ok =
            !name.starts_with("__Host-") || (secure && !domain && path.as_deref() == Some("/"));
        if !host_ok || (secure && !self.https) {
            return;
        }
        if value.is_empty() || max_age.is_some_and(|a| a <= 0) {
            if !self.ignores_deletion {
                self.jar.remove(name);
            }
            return;
        }
        let expires = match max_age {
            Some(a) if !self.ignores_expiry => now.plus(u64::try_from(a).unwrap_or(0)),
            _ => FOREVER,
        };
        let cookie = StoredCookie {
            value: Arc::from(value),
            expires,
            lax,
        };
        self.jar.insert(Arc::from(name), cookie);
    }

    /// A cookie another site set for our host: a sibling subdomain's `Domain=` cookie, or
    /// on loopback any other port's (A21).
    pub fn plant(&mut self, name: &str, value: &str) {
        let cookie = StoredCookie {
            value: Arc::from(value),
            expires: FOREVER,
            lax: true,
        };
        self.jar.insert(Arc::from(name), cookie);
    }

    /// The value of one of our cookies, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(|c| &*c.value)
    }

    /// The names of the cookies held, for assertions.
    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.keys().map(|n| n.to_string()).collect()
    }

    /// Whether a binding cookie (any transaction's) is held.
    pub fn holds_binding_cookie(&self) -> bool {
        self.jar.keys().any(|n| n.contains("cg-bind-"))
    }

    /// The request headers for one request to our server.
    pub fn request(&self, nav: Nav, now: UnixTime) -> Request {
        self.request_from(nav, now, self.legacy)
    }

    /// The same request sent by an old browser or webview holding this jar: no Fetch
    /// Metadata, and its Lax cookies go out even on a cross-site POST (A3).
    pub fn legacy_request(&self, nav: Nav, now: UnixTime) -> Request {
        self.request_from(nav, now, true)
    }

    fn request_from(&self, nav: Nav, now: UnixTime, legacy: bool) -> Request {
        let withhold_lax = matches!(nav, Nav::CrossSitePost(_)) && !legacy;
        let cookies = self
            .jar
            .iter()
            .filter(|(_, c)| now < c.expires && !(withhold_lax && c.lax))
            .map(|(n, c)| format!("{n}={}", c.value))
            .collect::<Vec<_>>()
            .join("; ");
        let sec_fetch_site = (!legacy).then_some(match nav {
            Nav::Direct => "none",
            Nav::SameOrigin => "same-origin",
            Nav::SameSite => "same-site",
            Nav::CrossSite | Nav::CrossSitePost(_) => "cross-site",
        });
        let origin = match nav {
            Nav::SameOrigin => Some(self.origin.to_string()),
            Nav::CrossSitePost(o) => Some(o.to_owned()),
            Nav::Direct | Nav::SameSite | Nav::CrossSite => None,
        };
        Request {
            cookies,
            origin,
            sec_fetch_site,
        }
    }
}
