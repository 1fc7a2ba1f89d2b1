//! Browsers: a cookie jar per browser and the Fetch Metadata each kind of navigation
//! sends; and the MCP client apps that open `/authorize` in them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use consent_gate::*;

use super::{GithubUser, encode, form_component, html, location, query_params, s256};

/// How a request to our server came about, which decides the Fetch Metadata and which
/// SameSite=Lax cookies the browser sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug)]
struct StoredCookie {
    value: String,
    expires: UnixTime,
    lax: bool,
}

/// One browser: its cookie jar for our origin and the GitHub account it is signed in to.
#[derive(Clone, Debug)]
pub struct Browser {
    origin: String,
    https: bool,
    /// The GitHub account signed in in this browser.
    pub github: GithubUser,
    /// An old browser or embedded webview: no Fetch Metadata, no SameSite enforcement.
    pub legacy: bool,
    jar: BTreeMap<String, StoredCookie>,
}

impl Browser {
    /// A fresh browser for our server at `origin`, signed in to GitHub as `github`.
    pub fn new(origin: &str, github: GithubUser) -> Self {
        Self {
            origin: origin.to_owned(),
            https: origin.starts_with("https://"),
            github,
            legacy: false,
            jar: BTreeMap::new(),
        }
    }

    /// Applies every `Set-Cookie` of a reply as a browser does: `Max-Age=0` deletes, a
    /// `__Host-` cookie without `Secure`, with a `Domain` or a path other than `/` is
    /// refused (RFC 6265bis §4.1.3.2), and so is a `Secure` cookie over plain http.
    pub fn apply(&mut self, reply: &Reply, now: UnixTime) {
        for line in reply.set_cookies() {
            let mut parts = line.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|p| p.split_once('='))
                .expect("name=value");
            let (mut max_age, mut secure, mut path, mut domain, mut lax) =
                (None, false, None, false, false);
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.to_ascii_lowercase().as_str() {
                    "max-age" => max_age = Some(v.parse::<i64>().expect("numeric Max-Age")),
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
                continue;
            }
            match max_age {
                Some(age) if age <= 0 => {
                    self.jar.remove(name);
                }
                age => {
                    let cookie = StoredCookie {
                        value: value.to_owned(),
                        expires: now.plus(age.map_or(u64::MAX / 2, |a| a as u64)),
                        lax,
                    };
                    self.jar.insert(name.to_owned(), cookie);
                }
            }
        }
    }

    /// A cookie another site set for our host: a sibling subdomain's `Domain=` cookie, or
    /// on loopback any other port's (A21).
    pub fn plant(&mut self, name: &str, value: &str) {
        let cookie = StoredCookie {
            value: value.to_owned(),
            expires: UnixTime(u64::MAX / 2),
            lax: true,
        };
        self.jar.insert(name.to_owned(), cookie);
    }

    /// The value of one of our cookies, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(|c| c.value.as_str())
    }

    /// The names of the cookies held, for assertions.
    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.keys().cloned().collect()
    }

    /// Whether a binding cookie (any transaction's) is held.
    pub fn holds_binding_cookie(&self) -> bool {
        self.jar.keys().any(|n| n.contains("cg-bind-"))
    }

    /// The request headers for one request to our server.
    pub fn request(&self, nav: Nav, now: UnixTime) -> Request {
        let withhold_lax = matches!(nav, Nav::CrossSitePost(_)) && !self.legacy;
        let cookies = self
            .jar
            .iter()
            .filter(|(_, c)| now < c.expires && !(withhold_lax && c.lax))
            .map(|(n, c)| format!("{n}={}", c.value))
            .collect::<Vec<_>>()
            .join("; ");
        let sec_fetch_site = (!self.legacy).then_some(match nav {
            Nav::Direct => "none",
            Nav::SameOrigin => "same-origin",
            Nav::SameSite => "same-site",
            Nav::CrossSite | Nav::CrossSitePost(_) => "cross-site",
        });
        let origin = match nav {
            Nav::SameOrigin => Some(self.origin.clone()),
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

/// The hidden fields of the consent page's form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentFields {
    /// The transaction handle.
    pub tx: String,
    /// The CSRF token.
    pub csrf: String,
}

impl ConsentFields {
    /// Reads the form out of the page's HTML, as a browser (or an attacker) would.
    pub fn read(page: &Reply) -> Self {
        let text = html(page);
        let field = |name: &str| {
            let marker = format!("name=\"{name}\" value=\"");
            let rest = text.split_once(&marker).expect("the form field").1;
            rest.split('"').next().unwrap_or_default().to_owned()
        };
        Self {
            tx: field("tx"),
            csrf: field("csrf"),
        }
    }

    /// The form body with a click on `approve` or `deny`.
    pub fn body(&self, decision: &str) -> String {
        encode([
            ("tx", self.tx.as_str()),
            ("csrf", &self.csrf),
            ("decision", decision),
        ])
    }
}

/// A registered client, as its owner knows it.
#[derive(Clone, Debug)]
pub struct Client {
    /// The server-assigned id.
    pub id: String,
    /// The secret, for confidential clients.
    pub secret: Option<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub auth: &'static str,
    /// The first registered redirect URI.
    pub redirect_uri: String,
}

impl Client {
    /// A token request body (and `Authorization` header) authenticated the way the client
    /// registered (RFC 6749 §2.3.1: Basic credentials are form-encoded first).
    pub fn token_request(&self, pairs: &[(&str, &str)]) -> (String, Option<String>) {
        let mut body: Vec<(&str, &str)> = pairs.to_vec();
        let secret = self.secret.as_deref().unwrap_or_default();
        let header = match self.auth {
            "client_secret_basic" => {
                let creds = format!("{}:{}", form_component(&self.id), form_component(secret));
                Some(format!("Basic {}", STANDARD.encode(creds)))
            }
            "client_secret_post" => {
                body.push(("client_id", &self.id));
                body.push(("client_secret", secret));
                None
            }
            _ => {
                body.push(("client_id", &self.id));
                None
            }
        };
        (encode(body), header)
    }
}

/// An MCP client app about to authorize: its registration, a PKCE pair and a `state`.
#[derive(Clone, Debug)]
pub struct App {
    /// The registration.
    pub client: Client,
    /// The redirect URI it sends.
    pub redirect_uri: String,
    /// The PKCE verifier (its S256 is the challenge it sends).
    pub verifier: String,
    /// The `state` it sends and expects back.
    pub state: String,
}

impl App {
    /// A fresh authorization attempt; `tag` (unreserved characters) makes the PKCE pair
    /// and the state distinct per attempt.
    pub fn new(client: &Client, tag: &str) -> Self {
        Self {
            redirect_uri: client.redirect_uri.clone(),
            verifier: format!("{tag}.{}", "v".repeat(48)),
            state: format!("{tag}-state"),
            client: client.clone(),
        }
    }

    /// The `/authorize` parameters it sends (PKCE S256, R19).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", self.client.id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("state", self.state.clone()),
            ("code_challenge", s256(&self.verifier)),
            ("code_challenge_method", "S256".into()),
        ]
    }

    /// The `/authorize` query string.
    pub fn query(&self) -> String {
        self.query_with(|_| {})
    }

    /// The query string with some parameters changed (an attacker crafting a link).
    pub fn query_with(&self, edit: impl FnOnce(&mut Vec<(&'static str, String)>)) -> String {
        let mut p = self.params();
        edit(&mut p);
        encode(p.iter().map(|(n, v)| (*n, v.as_str())))
    }

    /// What the app does when the browser lands on its redirect URI: the redirect must
    /// go to its redirect URI and carry its `state` and the expected `iss` (RFC 9207 §2.4,
    /// R47); `Ok(code)` or `Err(error code)`.
    pub fn receive(&self, reply: &Reply, issuer: &str) -> Result<String, String> {
        assert_eq!(reply.status, 303, "a redirect to the app");
        let loc = location(reply);
        let (base, _) = loc.split_once('?').expect("a query");
        assert_eq!(base, self.redirect_uri, "lands on the app's redirect URI");
        let q = query_params(loc);
        assert_eq!(q.get("state"), Some(&self.state), "the app's state");
        assert_eq!(q.get("iss").map(String::as_str), Some(issuer), "our iss");
        match (q.get("code"), q.get("error")) {
            (Some(code), None) => Ok(code.clone()),
            (None, Some(e)) => Err(e.clone()),
            _ => panic!("exactly one of code and error: {loc}"),
        }
    }
}
