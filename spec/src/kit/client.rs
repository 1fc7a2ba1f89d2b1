//! The clients of the gate: an MCP client's registration as its owner knows it, the app
//! that opens `/authorize` with its PKCE pair and `state` and checks what comes back (R47),
//! and the consent form's fields as a browser (or an attacker) reads them off the page.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use consent_gate::Reply;

use super::{encode, form_component, html, location, query_params, s256};

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
