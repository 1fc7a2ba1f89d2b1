//! `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
//!
//! Revoking either token of a grant deletes the grant, so every access and refresh token
//! of that grant stops working (RFC 7009 §2.1: "SHOULD also invalidate all access tokens
//! based on the same authorization grant"). An unknown, foreign or malformed token is
//! answered with 200 and revokes nothing (§2.2), so the endpoint cannot be used to probe
//! which tokens exist.
//!
//! Where the upstream has a revocation endpoint (Google's and discovered providers' RFC
//! 7009 one, GitHub's token deletion), revoking our grant revokes the upstream's tokens it
//! holds too (R66): the presented token carries (or unwraps) the grant secret, so the
//! grant's user data opens for this one request.

use core::fmt;
use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::at_rest::GrantSecret;
use crate::bearer::access_token_grant;
use crate::callback::upstream_token_request;
use crate::config::{RevocationShape, UpstreamConfig};
use crate::crypto::{Sealed, StoreKey};
use crate::error::TokenError;
use crate::grant::{GrantRecord, RefreshRecord};
use crate::params::{Params, append_pair};
use crate::register::ClientRecord;
use crate::reply::{HttpRequest, Reply};
use crate::step::{Kind, Op, Step};
use crate::token::ClientCredentials;
use crate::{Gate, UnixTime};

/// A parsed revocation request.
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationRequest {
    token: String,
    credentials: ClientCredentials,
}

impl fmt::Debug for RevocationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationRequest")
            .field("client_id", &self.credentials.id)
            .finish_non_exhaustive()
    }
}

impl RevocationRequest {
    /// Parses the form body (`token`, optional `token_type_hint`) and the optional
    /// `Authorization` header.
    pub fn parse(body: &[u8], authorization: Option<&str>) -> Result<Self, TokenError> {
        let p = Params::parse(body)?;
        let credentials = ClientCredentials::parse(&p, authorization)?;
        // The hint is optional and only an optimisation (§2.1): both kinds are tried.
        p.optional("token_type_hint", 32)?;
        Ok(Self {
            token: p.required("token", 4096)?.to_owned(),
            credentials,
        })
    }

    /// The client id it authenticates as.
    pub fn client_id(&self) -> &str {
        &self.credentials.id
    }

    /// The store key of the client's record.
    pub fn client_key(&self) -> StoreKey {
        StoreKey::client(&self.credentials.id)
    }

    /// The key under which the host should *get* a refresh record, in case the token is
    /// a refresh token.
    pub fn refresh_key(&self) -> StoreKey {
        StoreKey::derive("refresh", self.token.as_bytes())
    }
}

/// The outcome of a revocation.
#[derive(Debug)]
#[must_use = "delete the grant, then send the reply"]
pub struct Revocation {
    /// The grant the host must delete, if the token was a live token of this client.
    pub revoke_grant: Option<StoreKey>,
    /// `200 OK` with an empty body.
    pub reply: Reply,
}

impl Gate {
    /// Revokes a token (RFC 7009). `client` is the registration under
    /// [`RevocationRequest::client_key`]; `refresh` is the record under
    /// [`RevocationRequest::refresh_key`], if any. Client authentication failures are
    /// errors (`invalid_client`, §2.2.1); a token that is not this client's is not.
    pub fn revoke(
        &self,
        request: &RevocationRequest,
        client: Option<&ClientRecord>,
        refresh: Option<&RefreshRecord>,
        now: UnixTime,
    ) -> Result<Revocation, TokenError> {
        self.authenticate(&request.credentials, client)?;
        let revoke_grant = self
            .revoked_grant(request, refresh, now)
            .map(|(key, _)| key);
        let mut reply = Reply::json(200, &serde_json::json!({}));
        reply.body.clear();
        reply.headers.retain(|(n, _)| *n != "content-type");
        Ok(Revocation {
            revoke_grant,
            reply,
        })
    }

    /// The grant a live token of the requesting client names, and its secret.
    fn revoked_grant(
        &self,
        request: &RevocationRequest,
        refresh: Option<&RefreshRecord>,
        now: UnixTime,
    ) -> Option<(StoreKey, GrantSecret)> {
        let client_id = request.credentials.id.as_str();
        let from_access = access_token_grant(self, &request.token, now)
            .filter(|(owner, _, _)| owner == client_id)
            .map(|(_, grant, secret)| (grant, secret));
        from_access.or_else(|| {
            let r = refresh.filter(|r| {
                r.mac_is_valid(&self.config.keys)
                    && *r.key() == request.refresh_key()
                    && r.client_id() == client_id
            })?;
            let secret = GrantSecret::unwrap(&request.token, &r.key.0, &r.wrapped)?;
            Some((r.grant_key(), secret))
        })
    }

    /// The upstream revocation (RFC 7009 §2.1: `token`, its type hint, our upstream
    /// client's credentials) that goes with revoking `request`'s grant, when the upstream
    /// has a revocation endpoint (R66): the grant's upstream refresh token where it holds
    /// one (revoking it ends the whole upstream grant at Google), else its access token.
    /// `grant` is the record the revocation deletes, read before it is deleted. `None`
    /// when the client does not authenticate, the token is not a live one of this client,
    /// or there is nothing to revoke upstream. The host sends it after deleting the grant,
    /// as a courtesy: our grant is gone whatever the upstream answers.
    pub fn upstream_revocation_request(
        &self,
        request: &RevocationRequest,
        client: Option<&ClientRecord>,
        refresh: Option<&RefreshRecord>,
        grant: Option<&GrantRecord>,
        now: UnixTime,
    ) -> Option<HttpRequest> {
        let up = &self.config.upstream;
        let endpoint = up.revocation_endpoint.as_ref()?;
        self.authenticate(&request.credentials, client).ok()?;
        let (key, secret) = self.revoked_grant(request, refresh, now)?;
        let grant = grant.filter(|g| g.key() == key && g.mac_is_valid(&self.config.keys))?;
        let user = grant.open_user(&secret)?;
        if up.revocation_shape == RevocationShape::GithubToken {
            let access = user.upstream_token.as_ref()?;
            return Some(github_token_deletion(endpoint, up, access.secret()));
        }
        let (token, hint) = match (&user.upstream_refresh, &user.upstream_token) {
            (Some(refresh), _) => (refresh.secret(), "refresh_token"),
            (None, Some(access)) => (access.secret(), "access_token"),
            (None, None) => return None,
        };
        let mut body = String::with_capacity(256 + token.len());
        append_pair(&mut body, "token", token);
        append_pair(&mut body, "token_type_hint", hint);
        append_pair(&mut body, "client_id", &up.client_id);
        append_pair(&mut body, "client_secret", up.client_secret.secret());
        Some(upstream_token_request(endpoint, body))
    }
}

/// GitHub's deletion of one OAuth-app token (docs/upstreams.md#github-revocation): a REST
/// call, so HTTP Basic with our app's credentials as they are (not form-encoded as in
/// RFC 6749 §2.3.1), a JSON body, GitHub's REST media type and a `User-Agent`.
fn github_token_deletion(endpoint: &str, up: &UpstreamConfig, token: &str) -> HttpRequest {
    let credentials = format!("{}:{}", up.client_id, up.client_secret.secret());
    let body = serde_json::json!({ "access_token": token }).to_string();
    HttpRequest {
        method: "DELETE",
        url: endpoint.to_owned(),
        headers: vec![
            (
                "authorization",
                Cow::Owned(format!("Basic {}", STANDARD.encode(credentials))),
            ),
            ("accept", Cow::Borrowed("application/vnd.github+json")),
            ("content-type", Cow::Borrowed("application/json")),
            ("user-agent", Cow::Borrowed("consent-gate")),
        ],
        body: body.into_bytes(),
    }
}

impl From<Revocation> for Step {
    /// Delete the grant (every token of it stops working), then answer 200.
    fn from(r: Revocation) -> Self {
        Step {
            ops: r
                .revoke_grant
                .map(|g| Op::delete(Kind::Grant, g))
                .into_iter()
                .collect(),
            reply: r.reply,
        }
    }
}
