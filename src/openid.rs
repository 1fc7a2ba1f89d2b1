//! OpenID Connect upstreams (R67, R68): the provider's discovery document read and checked
//! against the issuer we were configured with, and the ID token of a token response
//! checked claim by claim.
//!
//! The ID token's signature is not verified, and that is deliberate: OpenID Connect Core
//! §3.1.3.7 (step 6) lets a client that receives the ID token *directly from the token
//! endpoint over TLS* rely on the TLS server check in place of the signature, and the code
//! flow is the only flow the gate speaks. The host sends the token request; it must use
//! https with certificate verification (`consent-gate-axum` does; [`ConfigBuilder::build`]
//! refuses a plain-http token endpoint outside loopback development mode). Everything the
//! signature would not tell us anyway is checked: `iss`, `aud` (and `azp`), `exp`, `iat`,
//! the `nonce` bound to this transaction, and, when configured, Google's `hd`.
//!
//! [`ConfigBuilder::build`]: crate::ConfigBuilder::build

use std::borrow::Cow;

use serde::Deserialize;

use crate::UnixTime;
use crate::crypto::{ct_eq, unb64};
use crate::error::{DiscoveryError, UpstreamError};
use crate::params::is_vschar_or_space;
use crate::reply::{HttpRequest, UpstreamResponse};

/// Largest ID token we decode.
pub const MAX_ID_TOKEN: usize = 16 * 1024;

/// How an OpenID provider's ID tokens are judged (R67).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdTokenPolicy {
    /// The values `iss` may take: the provider's issuer (Google also issues the legacy
    /// `accounts.google.com`).
    pub issuers: Vec<String>,
    /// A Google Workspace domain the `hd` claim must equal, when set (R68).
    pub hosted_domain: Option<String>,
    /// Seconds of clock difference tolerated on `exp` and `iat` (default 120).
    pub leeway: u64,
    /// How old `iat` may be when the token arrives (default 600 s: it comes straight
    /// from the token endpoint).
    pub max_age: u64,
}

impl IdTokenPolicy {
    /// ID tokens from `issuer`, with the default leeway and age.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuers: vec![issuer.into()],
            hosted_domain: None,
            leeway: 120,
            max_age: 600,
        }
    }

    /// The check the callback runs on a token response's ID token (R67): its `sub` if it
    /// passes. Public for hosts that receive an ID token from a token endpoint themselves,
    /// and for the fuzz crate.
    pub fn check(
        &self,
        id_token: &str,
        client_id: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<String, UpstreamError> {
        let expect = IdTokenExpectation {
            policy: self,
            client_id,
            nonce,
            now,
        };
        check_id_token(id_token, &expect).map(|c| c.subject)
    }
}

/// What an ID token told us, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdClaims {
    /// The provider's stable user id (`sub`), 1–255 visible ASCII characters.
    pub(crate) subject: String,
}

/// What one check of an ID token expects besides the policy.
pub(crate) struct IdTokenExpectation<'a> {
    pub(crate) policy: &'a IdTokenPolicy,
    pub(crate) client_id: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) now: UnixTime,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims we read; serde refuses a repeated member of these (`duplicate field`), and
/// ignores the others.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    nonce: Option<String>,
    hd: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
}

/// A JSON object and nothing else: a derived struct would also take an array, member by
/// position. The members it skips are read too, as a tree: skipping does not check their
/// escapes, and a document with a lone surrogate in one is not well-formed JSON (found by
/// the fuzz crate's `openid_answer`). The derived read refuses a repeated member it knows;
/// the tree alone would keep the last.
fn json_object<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    serde_json::from_slice(bytes).ok()
}

/// Checks an ID token from a token response (OpenID Connect Core §3.1.3.7, R67).
pub(crate) fn check_id_token(
    token: &str,
    expect: &IdTokenExpectation<'_>,
) -> Result<IdClaims, UpstreamError> {
    let bad = UpstreamError::IdToken;
    if token.len() > MAX_ID_TOKEN {
        return Err(bad("too large"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a signed JWT"));
    };
    let header: Header = unb64(header)
        .as_deref()
        .and_then(json_object)
        .ok_or(bad("header"))?;
    // Core §2: ID tokens are signed. An unsigned one is refused even though the TLS check
    // carries the trust here: a provider that sends one is not the provider we know.
    match header.alg.as_deref() {
        Some(alg) if !alg.eq_ignore_ascii_case("none") && !signature.is_empty() => {}
        _ => return Err(bad("unsigned")),
    }
    let claims: Claims = unb64(payload)
        .as_deref()
        .and_then(json_object)
        .ok_or(bad("payload"))?;
    let policy = expect.policy;
    // Simple string comparison (Core §3.1.3.7 step 2); mix-up: another provider's token
    // names another issuer.
    let iss = claims.iss.as_deref().ok_or(bad("no iss"))?;
    if !policy.issuers.iter().any(|i| i == iss) {
        return Err(bad("iss"));
    }
    // Step 3: we are an audience; with several, `azp` must name us (step 4); an `azp`
    // present must name us in any case.
    let audiences: Cow<'_, [String]> = match &claims.aud {
        Some(Audience::One(a)) => Cow::Owned(vec![a.clone()]),
        Some(Audience::Many(a)) => Cow::Borrowed(a),
        None => return Err(bad("no aud")),
    };
    if !audiences.iter().any(|a| a == expect.client_id) {
        return Err(bad("aud"));
    }
    match claims.azp.as_deref() {
        Some(azp) if azp != expect.client_id => return Err(bad("azp")),
        None if audiences.len() > 1 => return Err(bad("azp")),
        _ => {}
    }
    let now = expect.now.0;
    let exp = claims.exp.ok_or(bad("no exp"))?;
    if now >= exp.saturating_add(policy.leeway) {
        return Err(bad("expired"));
    }
    let iat = claims.iat.ok_or(bad("no iat"))?;
    if iat > now.saturating_add(policy.leeway) || iat.saturating_add(policy.max_age) < now {
        return Err(bad("iat"));
    }
    // Step 11: the nonce we sent for this transaction, and no other (a token from another
    // sign-in, injected with its code, names another nonce).
    let nonce = claims.nonce.as_deref().ok_or(bad("no nonce"))?;
    if !ct_eq(nonce.as_bytes(), expect.nonce.as_bytes()) {
        return Err(bad("nonce"));
    }
    if let Some(domain) = &policy.hosted_domain {
        if claims.hd.as_deref() != Some(domain.as_str()) {
            return Err(bad("hd"));
        }
    }
    let subject = claims.sub.ok_or(bad("no sub"))?;
    if subject.is_empty() || subject.len() > 255 || !is_vschar_or_space(&subject) {
        return Err(bad("sub"));
    }
    Ok(IdClaims { subject })
}

/// An OpenID provider's discovery document, checked (OpenID Connect Discovery §3, §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer, byte for byte the one asked for.
    pub issuer: String,
    /// The browser-facing authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The userinfo endpoint (required here: the gate reads the user from it and checks
    /// its `sub` against the ID token's).
    pub userinfo_endpoint: String,
    /// The revocation endpoint (RFC 7009), when the provider has one.
    pub revocation_endpoint: Option<String>,
    /// `authorization_response_iss_parameter_supported`: the callback must then carry
    /// `iss` (RFC 9207 §2.4).
    pub iss_parameter_supported: bool,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    response_types_supported: Option<Vec<String>>,
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// Largest discovery document we parse.
pub const MAX_DISCOVERY_DOCUMENT: usize = 64 * 1024;

impl ProviderMetadata {
    /// The request that fetches `issuer`'s discovery document: the issuer with
    /// `/.well-known/openid-configuration` appended (Discovery §4).
    pub fn discovery_request(issuer: &str) -> HttpRequest {
        HttpRequest {
            method: "GET",
            url: format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
            headers: vec![
                ("accept", Cow::Borrowed("application/json")),
                ("user-agent", Cow::Borrowed("consent-gate")),
            ],
            body: Vec::new(),
        }
    }

    /// Reads the answer to [`discovery_request`](Self::discovery_request). The
    /// document's `issuer` must equal `issuer` exactly (Discovery §4.3: otherwise another
    /// provider speaks for this one); the endpoints must be absolute URLs (whether they
    /// may be plain http is [`ConfigBuilder::build`](crate::ConfigBuilder::build)'s
    /// judgement: loopback in development mode only); the code flow and PKCE S256 must
    /// not be ruled out.
    pub fn parse(issuer: &str, response: UpstreamResponse<'_>) -> Result<Self, DiscoveryError> {
        if response.status != 200 {
            return Err(DiscoveryError::Status(response.status));
        }
        if response.body.len() > MAX_DISCOVERY_DOCUMENT {
            return Err(DiscoveryError::Malformed);
        }
        let d: Discovery = json_object(response.body).ok_or(DiscoveryError::Malformed)?;
        if d.issuer.as_deref() != Some(issuer) {
            return Err(DiscoveryError::IssuerMismatch);
        }
        let endpoint = |v: Option<String>, what: &'static str| {
            v.filter(|u| url::Url::parse(u).is_ok_and(|u| !u.cannot_be_a_base()))
                .ok_or(DiscoveryError::Endpoint(what))
        };
        if d.response_types_supported
            .is_some_and(|t| !t.iter().any(|t| t == "code"))
        {
            return Err(DiscoveryError::NoCodeFlow);
        }
        if d.code_challenge_methods_supported
            .is_some_and(|m| !m.iter().any(|m| m == "S256"))
        {
            return Err(DiscoveryError::NoPkce);
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: endpoint(d.authorization_endpoint, "authorization_endpoint")?,
            token_endpoint: endpoint(d.token_endpoint, "token_endpoint")?,
            userinfo_endpoint: endpoint(d.userinfo_endpoint, "userinfo_endpoint")?,
            revocation_endpoint: match d.revocation_endpoint {
                None => None,
                some => Some(endpoint(some, "revocation_endpoint")?),
            },
            iss_parameter_supported: d.authorization_response_iss_parameter_supported,
        })
    }
}

#[cfg(test)]
#[path = "tests/openid_checks.rs"]
mod checks;
