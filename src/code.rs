//! From a verified callback to an MCP authorization code: the upstream token exchange and
//! user lookup as data, then code issuance (R38, R41, R42, R47).

use core::fmt;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::authorize::AuthorizationDetails;
use crate::client::ClientRecord;
use crate::crypto::{
    MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, UpstreamToken, b64, fresh32,
};
use crate::error::{CallbackError, UpstreamError};
use crate::reply::{ClientRedirect, Reply};
use crate::upstream::{
    HttpRequest, UpstreamResponse, VerifiedCallback, parse_token_response, parse_user,
};
use crate::{Entropy, Gate, UnixTime};

impl VerifiedCallback {
    /// The upstream token request the host must send (RFC 6749 §4.1.3 + PKCE; GitHub's
    /// documented shape: credentials in the body, `Accept: application/json`).
    pub fn token_request(&self) -> &HttpRequest {
        &self.token_request
    }

    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.details
    }

    /// A record the host must store back: only ever with the A7 fault switched on, so only
    /// in builds with `--cfg consent_gate_faults`.
    #[cfg(consent_gate_faults)]
    pub fn reinsert(&self) -> Option<&crate::upstream::TransactionRecord> {
        self.reinsert.as_ref()
    }

    fn fail(&self, cause: UpstreamError) -> CallbackError {
        CallbackError::Upstream {
            cause,
            to_client: ClientRedirect::error(
                &self.details.redirect_uri,
                "server_error",
                self.details.client_state.as_deref(),
                &self.issuer,
            ),
        }
    }

    /// The host could not reach the upstream (connection error, timeout): the client is
    /// told `server_error`, with its `state` and our `iss`.
    pub fn upstream_unreachable(self) -> CallbackError {
        self.fail(UpstreamError::Unreachable)
    }

    /// Accepts the upstream's answer to [`token_request`](Self::token_request).
    pub fn accept_token_response(
        self,
        response: UpstreamResponse<'_>,
    ) -> Result<UpstreamAuthenticated, CallbackError> {
        match parse_token_response(&response) {
            Ok(tokens) => Ok(UpstreamAuthenticated {
                upstream_token: tokens.access_token,
                upstream_expires_in: tokens.expires_in,
                callback: self,
            }),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// The upstream accepted our code: we hold its access token (which never leaves the
/// server, R41) and must learn who the user is.
#[must_use]
pub struct UpstreamAuthenticated {
    callback: VerifiedCallback,
    upstream_token: UpstreamToken,
    upstream_expires_in: Option<u64>,
}

impl fmt::Debug for UpstreamAuthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamAuthenticated")
            .field("client_id", &self.callback.details.client_id)
            .finish_non_exhaustive()
    }
}

impl UpstreamAuthenticated {
    /// The user-document request the host must send (GitHub `GET /user` wants a
    /// `User-Agent`, F16).
    pub fn user_request(&self) -> HttpRequest {
        HttpRequest {
            method: "GET",
            url: self.callback.user_endpoint.clone(),
            headers: vec![
                (
                    "authorization",
                    Cow::Owned(format!("Bearer {}", self.upstream_token.secret())),
                ),
                ("accept", Cow::Borrowed("application/json")),
                ("user-agent", Cow::Borrowed("consent-gate")),
            ],
            body: Vec::new(),
        }
    }

    /// The host could not reach the upstream's user endpoint: the client is told
    /// `server_error`.
    pub fn upstream_unreachable(self) -> CallbackError {
        self.callback.fail(UpstreamError::Unreachable)
    }

    /// The client id whose registration the host must look up again (R38).
    pub fn client_key(&self) -> StoreKey {
        StoreKey::client(&self.callback.details.client_id)
    }

    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.callback.details
    }
}

/// A single-use MCP authorization code, keyed by its hash, bound to client, redirect URI,
/// PKCE challenge, resource, scope and subject (R42). After redemption it is stored back
/// as *redeemed* so that a replay revokes the grant (R43).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeRecord {
    pub(crate) key: StoreKey,
    pub(crate) details: AuthorizationDetails,
    pub(crate) subject: String,
    pub(crate) display_name: Option<String>,
    pub(crate) grant_id: [u8; 16],
    pub(crate) upstream_token: Option<UpstreamToken>,
    pub(crate) upstream_expires_at: Option<UnixTime>,
    pub(crate) expires_at: UnixTime,
    pub(crate) redeemed: bool,
    pub(crate) mac: RecordMac,
}

impl Sealed for CodeRecord {
    const LABEL: &'static str = "code v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0);
        self.details.feed(w);
        w.str(&self.subject)
            .opt_str(self.display_name.as_deref())
            .fixed(&self.grant_id)
            .opt_str(self.upstream_token.as_ref().map(UpstreamToken::secret))
            .u64(self.upstream_expires_at.map_or(0, |t| t.0 + 1))
            .u64(self.expires_at.0)
            .u64(u64::from(self.redeemed));
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl CodeRecord {
    /// The store key (a hash of the code).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// When it may be deleted.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// Whether it was already exchanged.
    pub fn is_redeemed(&self) -> bool {
        self.redeemed
    }
    /// The store key of the grant this code creates.
    pub fn grant_key(&self) -> StoreKey {
        StoreKey::derive("grant", &self.grant_id)
    }
}

/// A code on its way to the client.
#[must_use = "store the code record, then send the redirect"]
pub struct CodeIssued {
    record: CodeRecord,
    redirect: ClientRedirect,
    clear_cookie: String,
}

impl fmt::Debug for CodeIssued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeIssued")
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

impl CodeIssued {
    /// The record to store under its key.
    pub fn code_record(&self) -> &CodeRecord {
        &self.record
    }

    /// The client redirect (`code`, `state`, `iss`).
    pub fn redirect(&self) -> &ClientRedirect {
        &self.redirect
    }

    /// The 303 to the client, clearing this transaction's binding cookie.
    pub fn response(&self) -> Reply {
        self.redirect
            .response()
            .with_cookie(self.clear_cookie.clone())
    }

    /// Takes the record and the reply apart.
    pub fn into_parts(self) -> (CodeRecord, Reply) {
        let r = self.redirect.into_response().with_cookie(self.clear_cookie);
        (self.record, r)
    }
}

impl Gate {
    /// Learns the user from the upstream's user document and issues the MCP code.
    ///
    /// `client` is the registration looked up again by
    /// [`UpstreamAuthenticated::client_key`]: the redirect URI is re-validated against it
    /// before a code goes anywhere (R38, A16).
    pub fn issue_code(
        &self,
        authenticated: UpstreamAuthenticated,
        user_response: UpstreamResponse<'_>,
        client: Option<&ClientRecord>,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> Result<CodeIssued, CallbackError> {
        let UpstreamAuthenticated {
            callback,
            upstream_token,
            upstream_expires_in,
        } = authenticated;
        let details = &callback.details;
        let still_registered = client.is_some_and(|c| {
            c.mac_is_valid(&self.config.keys)
                && c.client_id() == details.client_id
                && c.redirect_matches(
                    details.redirect_uri.as_str(),
                    self.config.faults().redirect_prefix_match,
                )
        });
        if !still_registered {
            return Err(CallbackError::ClientChanged);
        }
        let user = match parse_user(&user_response, &self.config.upstream.subject_prefix) {
            Ok(u) => u,
            Err(e) => return Err(callback.fail(e)),
        };
        let code = b64(&fresh32(entropy));
        let grant_seed = fresh32(entropy);
        let mut grant_id = [0u8; 16];
        grant_id.copy_from_slice(&grant_seed[..16]);
        let mut record = CodeRecord {
            key: StoreKey::derive("code", code.as_bytes()),
            details: callback.details,
            subject: user.subject,
            display_name: user.display_name,
            grant_id,
            upstream_token: Some(upstream_token),
            upstream_expires_at: upstream_expires_in.map(|s| now.plus(s)),
            expires_at: now.plus(self.config.lifetimes.code),
            redeemed: false,
            mac: UNSEALED,
        };
        record.mac = record.compute_mac(&self.config.keys);
        let d = &record.details;
        let redirect = ClientRedirect::success(
            &d.redirect_uri,
            &code,
            d.client_state.as_deref(),
            &self.config.issuer,
        );
        Ok(CodeIssued {
            record,
            redirect,
            clear_cookie: callback.clear_cookie,
        })
    }
}
