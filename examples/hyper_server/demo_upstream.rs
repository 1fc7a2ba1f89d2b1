//! The built-in demo upstream: a stand-in for github.com, served by the same process
//! under `/demo-upstream/`, for a user who authorized this server's OAuth app before.
//!
//! Like GitHub for a returning user, `/authorize` shows no screen: it redirects straight
//! back with a code (and `iss`, as GitHub does since 2026). That is what makes the
//! confused deputy real on a laptop: without the consent gate, anyone who registered an
//! MCP client could get a code for you by sending you a link. The other two endpoints
//! answer in GitHub's exact shapes (docs/upstreams.md#fixtures: F5, F7, F9, F10, F14, F15, F16), so
//! the code path that serves this demo is the one that serves real GitHub.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use hyper::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use consent_gate::{ClientSecret, Reply, UpstreamConfig};

use crate::{Req, header, now, random};

/// GitHub's documented code lifetime (docs/upstreams.md#github-lifetimes).
const CODE_LIFETIME: u64 = 600;
/// A bound on what the demo remembers (it must not be the easy memory exhaustion either).
/// Its tokens it does not remember at all: each carries a MAC under a key derived from the
/// server key, so that they stay valid across a restart with the same `CONSENT_GATE_KEY`,
/// as GitHub's tokens outlive a restart of our server.
const MAX_CODES: usize = 10_000;

/// The one user this upstream knows: F14 verbatim.
const USER: &str = r#"{"login":"octocat","id":1,"node_id":"MDQ6VXNlcjE=","avatar_url":"https://github.com/images/error/octocat_happy.gif","html_url":"https://github.com/octocat","type":"User","site_admin":false,"name":"monalisa octocat","email":null,"created_at":"2008-01-14T04:33:35Z","updated_at":"2008-01-14T04:33:35Z"}"#;

struct Grant {
    redirect_uri: Option<String>,
    challenge: Option<String>,
    scope: String,
    expires_at: u64,
}

/// A bounded map that forgets its oldest entries first. `order` holds every key inserted
/// and not yet forgotten (removed keys linger there until their turn), so bounding
/// `order` bounds both.
struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
    cap: usize,
}

impl<V> Bounded<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn insert(&mut self, k: String, v: V) {
        while self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(k.clone());
        self.map.insert(k, v);
    }
}

pub struct DemoUpstream {
    /// `http://host:port/demo-upstream`, also the RFC 9207 issuer it reports.
    base: String,
    client_id: String,
    client_secret: String,
    /// The one callback URL registered for "our OAuth app".
    callback: String,
    codes: Mutex<Bounded<Grant>>,
    token_key: [u8; 32],
}

impl DemoUpstream {
    /// The demo upstream served under `{base}/demo-upstream`, and the gate's configuration
    /// for it: our OAuth app there, with a secret drawn for this process.
    pub fn new(base: &str, server_key: &[u8]) -> (Self, UpstreamConfig) {
        let token_key = Sha256::new()
            .chain_update("demo upstream tokens\0")
            .chain_update(server_key);
        let demo = Self {
            base: format!("{base}/demo-upstream"),
            client_id: "Ov23liDEMO".into(),
            client_secret: hex::encode(random(20)),
            callback: format!("{base}/callback"),
            codes: Mutex::new(Bounded::new(MAX_CODES)),
            token_key: token_key.finalize().into(),
        };
        let mut up = UpstreamConfig::custom(
            "Demo GitHub",
            format!("{}/authorize", demo.base),
            format!("{}/token", demo.base),
            format!("{}/user", demo.base),
            demo.client_id.as_str(),
            ClientSecret::new(demo.client_secret.clone()),
        );
        up.issuer = Some(demo.base.clone());
        up.scopes = vec!["read:user".into()];
        up.subject_prefix = "demo-github:".into();
        (demo, up)
    }

    pub fn handle(&self, req: &Req) -> Reply {
        match (
            req.uri().path().strip_prefix("/demo-upstream"),
            req.method(),
        ) {
            (Some("/authorize"), &Method::GET) => self.authorize(req),
            (Some("/authorize"), _) => {
                Reply::text(405, "method not allowed").with_header("allow", "GET")
            }
            (Some("/token"), &Method::POST) => self.token(req),
            (Some("/token"), _) => {
                Reply::text(405, "method not allowed").with_header("allow", "POST")
            }
            (Some("/user"), &Method::GET) => self.user(req),
            (Some("/user"), _) => {
                Reply::text(405, "method not allowed").with_header("allow", "GET")
            }
            _ => Reply::text(404, "not found"),
        }
    }

    /// Silent approval: straight back to the callback with `code`, `state` and `iss`
    /// (F1). Unknown app → 404 page; foreign `redirect_uri` → an error page, no redirect
    /// (docs/upstreams.md#github-callback). The demo matches the registered callback exactly
    /// (GitHub would also accept subpaths of it).
    fn authorize(&self, req: &Req) -> Reply {
        let q = params(req.uri().query().unwrap_or("").as_bytes());
        let get = |k: &str| last(&q, k);
        if get("client_id") != Some(self.client_id.as_str()) {
            return page(404, "Not Found");
        }
        if get("redirect_uri").is_some_and(|r| r != self.callback) {
            return page(
                400,
                "Be careful! The redirect_uri is not associated with this application.",
            );
        }
        let challenge = match (get("code_challenge"), get("code_challenge_method")) {
            (None, None) => None,
            (Some(c), Some("S256")) if c.len() == 43 => Some(c.to_owned()),
            _ => return page(400, "Only the S256 code challenge method is accepted."),
        };
        let code = hex::encode(random(10));
        self.codes.lock().unwrap_or_else(|p| p.into_inner()).insert(
            code.clone(),
            Grant {
                redirect_uri: get("redirect_uri").map(str::to_owned),
                challenge,
                scope: get("scope")
                    .unwrap_or("")
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(","),
                expires_at: now().0 + CODE_LIFETIME,
            },
        );
        let mut back = url::form_urlencoded::Serializer::new(String::new());
        back.append_pair("code", &code);
        if let Some(state) = get("state") {
            back.append_pair("state", state);
        }
        back.append_pair("iss", &self.base);
        let location = format!("{}?{}", self.callback, back.finish());
        let mut r = respond(302, "text/html; charset=utf-8", "");
        r.headers.push(("location", location.into()));
        r
    }

    /// The token exchange, answered like GitHub: HTTP 200 for errors too (F7, F9, F10),
    /// JSON with `Accept: application/json`, form encoding otherwise (F5, F6, F8).
    fn token(&self, req: &Req) -> Reply {
        let json_wanted = header(req, "accept").is_some_and(|a| a.contains("application/json"));
        let answer = |fields: &[(&str, &str)]| -> Reply {
            if json_wanted {
                let object: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect();
                Reply::json(200, &object.into())
            } else {
                let mut s = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in fields {
                    s.append_pair(k, v);
                }
                respond(
                    200,
                    "application/x-www-form-urlencoded; charset=utf-8",
                    s.finish(),
                )
            }
        };
        let error = |code: &str, description: &str| {
            answer(&[
                ("error", code),
                ("error_description", description),
                (
                    "error_uri",
                    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/",
                ),
            ])
        };
        let f = params(req.body());
        let get = |k: &str| last(&f, k);
        let id_ok = get("client_id") == Some(self.client_id.as_str());
        let secret_ok = get("client_secret")
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.client_secret.as_bytes())));
        if !(id_ok && secret_ok) {
            return error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            );
        }
        // Single use: the code is gone whatever happens next (a second exchange is F7).
        let grant = get("code").and_then(|c| {
            self.codes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .map
                .remove(c)
        });
        let Some(grant) = grant.filter(|g| now().0 < g.expires_at) else {
            return error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            );
        };
        if grant.redirect_uri.is_some() && get("redirect_uri") != grant.redirect_uri.as_deref() {
            return error(
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            );
        }
        if let Some(challenge) = &grant.challenge {
            let computed = get("code_verifier").map(|v| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(v.as_bytes()))
            });
            if computed.as_deref() != Some(challenge.as_str()) {
                // GitHub does not document the code for this case
                // (docs/upstreams.md#github-token-request).
                return error(
                    "bad_verification_code",
                    "The code passed is incorrect or expired.",
                );
            }
        }
        let nonce = hex::encode(random(9));
        let token = format!("gho_{nonce}{}", self.token_mac(&nonce));
        answer(&[
            ("access_token", &token),
            ("token_type", "bearer"),
            ("scope", &grant.scope),
        ])
    }

    /// The MAC that makes `gho_{nonce}{mac}` a token this demo issued.
    fn token_mac(&self, nonce: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.token_key).expect("any key length");
        mac.update(nonce.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..9])
    }

    /// `GET /user`: F14 for a token we issued, F15 otherwise, F16 without `User-Agent`.
    fn user(&self, req: &Req) -> Reply {
        if header(req, "user-agent").is_none() {
            return respond(
                403,
                "text/html",
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
            );
        }
        let token = header(req, "authorization").and_then(|h| {
            let (scheme, t) = h.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                .then_some(t.trim())
        });
        let known = token.and_then(|t| t.strip_prefix("gho_")).is_some_and(|t| {
            let (nonce, mac) = t.split_at(t.len().min(18));
            bool::from(mac.as_bytes().ct_eq(self.token_mac(nonce).as_bytes()))
        });
        if !known {
            return Reply::json(
                401,
                &json!({ "message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401" }),
            );
        }
        respond(200, "application/json; charset=utf-8", USER)
    }
}

/// Form/query decoding (borrowing where nothing needs decoding).
fn params(raw: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    url::form_urlencoded::parse(raw).collect()
}

/// A parameter's value; the last one wins (the demo is not the strict party here).
fn last<'a>(params: &'a [(Cow<'_, str>, Cow<'_, str>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| &**v)
}

fn page(status: u16, message: &'static str) -> Reply {
    respond(status, "text/plain; charset=utf-8", message)
}

/// An answer of the demo's own: never cached, never sniffed.
fn respond(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
    let mut reply = Reply::text(status, "");
    reply.headers[0].1 = content_type.into();
    reply.body = body.into();
    reply
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn bounded_stays_bounded_when_entries_are_removed_early() {
        // Codes are removed on exchange; the order queue must not grow without end.
        let mut b = Bounded::new(4);
        for i in 0..100 {
            b.insert(i.to_string(), ());
            b.map.remove(&i.to_string());
        }
        assert!(b.order.len() <= 4 && b.map.is_empty());
        for i in 0..10 {
            b.insert(i.to_string(), ());
        }
        assert_eq!(b.map.len(), 4);
        assert!(b.map.contains_key("9") && !b.map.contains_key("5"));
    }
}
