//! `GET /authorize`: strict parsing and validation against the client registration.
//!
//! Order matters (R16): the client and its redirect URI are established first; every error
//! is an HTML page, never a redirect, because the user has not yet seen on our consent
//! page where the browser would be sent (A10, A15).

use serde::{Deserialize, Serialize};

use crate::Gate;
use crate::crypto::{MacWriter, Sealed, StoreKey};
use crate::error::AuthorizeError;
use crate::params::{ParamError, Params, is_unreserved, is_vschar_or_space};
use crate::redirect::{MAX_REDIRECT_URI, RedirectUri};
use crate::register::ClientRecord;
use crate::scope::ScopeSet;

/// Longest client id we look up.
pub(crate) const MAX_CLIENT_ID: usize = 256;
/// Longest client `state` we carry.
pub(crate) const MAX_STATE: usize = 512;

/// A strictly parsed `/authorize` query, not yet validated against a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    client_id: String,
    redirect_uri: Option<String>,
    response_type: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    state: Option<String>,
}

impl AuthorizeRequest {
    /// Parses a raw query string (without `?`). Repeated parameters are errors (R22).
    pub fn parse(query: &[u8]) -> Result<Self, AuthorizeError> {
        let p = Params::parse(query)?;
        let client_id = p.required("client_id", MAX_CLIENT_ID)?;
        if !is_vschar_or_space(client_id) {
            return Err(ParamError::Invalid("client_id").into());
        }
        let state = p.optional("state", MAX_STATE)?;
        if state.is_some_and(|s| !is_vschar_or_space(s)) {
            return Err(ParamError::Invalid("state").into());
        }
        Ok(Self {
            client_id: client_id.to_owned(),
            redirect_uri: p
                .optional("redirect_uri", MAX_REDIRECT_URI)?
                .map(str::to_owned),
            response_type: p.required("response_type", 64)?.to_owned(),
            code_challenge: p.optional("code_challenge", 128)?.map(str::to_owned),
            code_challenge_method: p.optional("code_challenge_method", 16)?.map(str::to_owned),
            scope: p.optional("scope", 2048)?.map(str::to_owned),
            resource: p.optional("resource", 2048)?.map(str::to_owned),
            state: state.map(str::to_owned),
        })
    }

    /// The client id to look the registration up by.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The store key of the client registration.
    pub fn client_key(&self) -> StoreKey {
        StoreKey::client(&self.client_id)
    }
}

/// What an authorization is about, once validated: exactly what the consent page shows
/// and what every later record and the code are bound to (R42).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthorizationDetails {
    pub(crate) client_id: String,
    pub(crate) client_name: Option<String>,
    pub(crate) redirect_uri: RedirectUri,
    pub(crate) scope: ScopeSet,
    pub(crate) resource: String,
    pub(crate) client_state: Option<String>,
    pub(crate) code_challenge: String,
}

impl AuthorizationDetails {
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The client's self-asserted name.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }
    /// The validated redirect URI the code will go to.
    pub fn redirect_uri(&self) -> &RedirectUri {
        &self.redirect_uri
    }
    /// The MCP scopes granted.
    pub fn scope(&self) -> &ScopeSet {
        &self.scope
    }
    /// The MCP resource (token audience).
    pub fn resource(&self) -> &str {
        &self.resource
    }
    /// The client's `state`, echoed back on the redirect.
    pub fn client_state(&self) -> Option<&str> {
        self.client_state.as_deref()
    }

    pub(crate) fn feed(&self, w: &mut MacWriter) {
        w.str(&self.client_id)
            .opt_str(self.client_name.as_deref())
            .str(self.redirect_uri.as_str())
            .str(self.scope.as_str())
            .str(&self.resource)
            .opt_str(self.client_state.as_deref())
            .str(&self.code_challenge);
    }
}

impl Gate {
    /// Validates a request against the client's registration (R16–R21): what the consent
    /// page will show and every later record is bound to.
    pub(crate) fn validate(
        &self,
        req: AuthorizeRequest,
        client: Option<&ClientRecord>,
    ) -> Result<AuthorizationDetails, AuthorizeError> {
        // 1. The client, and that its record is ours and unedited.
        let client = client.ok_or(AuthorizeError::UnknownClient)?;
        if !client.mac_is_valid(&self.config.keys) {
            return Err(AuthorizeError::TamperedRecord);
        }
        if client.client_id() != req.client_id {
            return Err(AuthorizeError::UnknownClient);
        }
        // 2. The redirect URI (R16, R17, R18). Omitted only if exactly one is registered.
        let prefix_fault = self.config.faults().redirect_prefix_match;
        let redirect_uri = match req.redirect_uri {
            Some(presented) => client.match_redirect(presented, prefix_fault),
            None => match client.redirect_uris() {
                [only] => Some(only.clone()),
                _ => None,
            },
        }
        .ok_or(AuthorizeError::RedirectUriMismatch)?;
        // 3. Everything else. Still a page: the user has not seen the consent page yet.
        if req.response_type != "code" {
            return Err(AuthorizeError::UnsupportedResponseType);
        }
        // R19, A12: S256 only; `plain` and a missing method are refused.
        let code_challenge = match (req.code_challenge, req.code_challenge_method.as_deref()) {
            (Some(c), Some("S256")) if (43..=128).contains(&c.len()) && is_unreserved(&c) => c,
            _ => return Err(AuthorizeError::PkceRequired),
        };
        let scope = match &req.scope {
            None => self.config.scopes_supported.clone(),
            Some(s) => ScopeSet::parse(s)
                .filter(|s| s.is_subset_of(&self.config.scopes_supported))
                .ok_or(AuthorizeError::InvalidScope)?,
        };
        // R21: absent means this resource; anything else must be it exactly.
        let resource = match req.resource {
            None => self.config.resource.clone(),
            Some(r) if r == self.config.resource => r,
            Some(_) => return Err(AuthorizeError::InvalidTarget),
        };
        Ok(AuthorizationDetails {
            client_id: req.client_id,
            client_name: client.client_name().map(str::to_owned),
            redirect_uri,
            scope,
            resource,
            client_state: req.state,
            code_challenge,
        })
    }
}
