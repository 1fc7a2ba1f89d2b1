//! From a verified callback to an MCP authorization code: the upstream token exchange and
//! user lookup as data, then code issuance (R38, R41, R42, R47).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::at_rest::{Ciphertext, UserData};
use crate::authorize::AuthorizationDetails;
use crate::callback::UpstreamAuthenticated;
use crate::crypto::{MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, b64, fresh32};
use crate::error::{CallbackError, UpstreamError};
use crate::register::ClientRecord;
use crate::reply::UpstreamResponse;
use crate::reply::{ClientRedirect, Reply};
use crate::step::{Kind, Op, Record, Step};
use crate::upstream_json::parse_user;
use crate::{Entropy, Gate, UnixTime};

/// What a code's user data is sealed for (docs/design.md#at-rest).
pub(crate) const CODE_USER: &str = "code user data";

/// A single-use MCP authorization code, keyed by its hash, bound to client, redirect URI,
/// PKCE challenge, resource, scope and subject (R42). After redemption it is stored back
/// as *redeemed* so that a replay revokes the grant (R43).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeRecord {
    pub(crate) key: StoreKey,
    pub(crate) details: AuthorizationDetails,
    pub(crate) grant_id: [u8; 16],
    /// The user (subject, display name, upstream token), sealed under the code itself
    /// (docs/design.md#at-rest); empty once redeemed.
    pub(crate) user: Ciphertext,
    pub(crate) upstream_expires_at: Option<UnixTime>,
    pub(crate) expires_at: UnixTime,
    pub(crate) redeemed: bool,
    pub(crate) mac: RecordMac,
}

impl Sealed for CodeRecord {
    const LABEL: &'static str = "code v2";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0);
        self.details.feed(w);
        w.fixed(&self.grant_id)
            .bytes(self.user.as_bytes())
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
        let (callback, upstream, id_subject) = authenticated.into_parts();
        let details = callback.details();
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
        // OpenID Connect Core §5.3.2: the userinfo's `sub` must be the ID token's, or none
        // of the userinfo may be used (R67).
        if let Some(sub) = id_subject {
            let prefix = &self.config.upstream.subject_prefix;
            if user.subject.strip_prefix(prefix.as_str()) != Some(sub.as_str()) {
                return Err(callback.fail(UpstreamError::SubjectMismatch));
            }
        }
        let (details, clear_cookie) = callback.into_parts();
        let code = b64(&fresh32(entropy));
        let grant_seed = fresh32(entropy);
        let mut grant_id = [0u8; 16];
        grant_id.copy_from_slice(&grant_seed[..16]);
        let key = StoreKey::derive("code", code.as_bytes());
        let user = UserData {
            subject: user.subject,
            display_name: user.display_name,
            upstream_token: Some(upstream.token),
            upstream_refresh: upstream.refresh,
        };
        let mut record = CodeRecord {
            key,
            details,
            grant_id,
            user: user.seal(code.as_bytes(), CODE_USER, &key.0),
            upstream_expires_at: upstream.expires_in.map(|s| now.plus(s)),
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
            clear_cookie,
        })
    }
}

impl Record for CodeRecord {
    const KIND: Kind = Kind::Code;
    fn store_key(&self) -> StoreKey {
        self.key
    }
    fn expiry(&self) -> Option<UnixTime> {
        Some(self.expires_at)
    }
}

impl From<CodeIssued> for Step {
    /// Store the code, then send the client its 303.
    fn from(issued: CodeIssued) -> Self {
        let (code, reply) = issued.into_parts();
        Step {
            ops: vec![Op::put(&code)],
            reply,
        }
    }
}
