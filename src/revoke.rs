//! `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
//!
//! Revoking either token of a grant deletes the grant, so every access and refresh token
//! of that grant stops working (RFC 7009 §2.1: "SHOULD also invalidate all access tokens
//! based on the same authorization grant"). An unknown, foreign or malformed token is
//! answered with 200 and revokes nothing (§2.2), so the endpoint cannot be used to probe
//! which tokens exist.

use core::fmt;

use crate::bearer::access_token_grant;
use crate::crypto::{Sealed, StoreKey};
use crate::error::TokenError;
use crate::grant::RefreshRecord;
use crate::params::Params;
use crate::register::ClientRecord;
use crate::reply::Reply;
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
        let client_id = request.credentials.id.as_str();
        let from_access = access_token_grant(self, &request.token, now)
            .filter(|(owner, _)| owner == client_id)
            .map(|(_, grant)| grant);
        let from_refresh = refresh
            .filter(|r| {
                r.mac_is_valid(&self.config.keys)
                    && *r.key() == request.refresh_key()
                    && r.client_id() == client_id
            })
            .map(RefreshRecord::grant_key);
        let mut reply = Reply::json(200, &serde_json::json!({}));
        reply.body.clear();
        reply.headers.retain(|(n, _)| *n != "content-type");
        Ok(Revocation {
            revoke_grant: from_access.or(from_refresh),
            reply,
        })
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
