//! A grant: one user's approval of one client, kept server-side with the upstream token
//! (R41), and the refresh tokens that name it (R53). Access and refresh tokens name the
//! grant; deleting it revokes them all (R43, RFC 7009 §2.1).

use serde::{Deserialize, Serialize};

use crate::UnixTime;
use crate::crypto::{MacWriter, RecordMac, Sealed, StoreKey, UpstreamToken};
use crate::scope::ScopeSet;
use crate::step::{Kind, Record};

/// An authorization grant: one user's approval of one client, with the upstream token
/// kept server-side (R41). Access and refresh tokens name it; deleting it revokes them all.
/// Store it under [`GrantRecord::key`]; hosts should encrypt it at rest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantRecord {
    pub(crate) grant_id: [u8; 16],
    pub(crate) client_id: String,
    pub(crate) subject: String,
    pub(crate) display_name: Option<String>,
    pub(crate) scope: ScopeSet,
    pub(crate) resource: String,
    pub(crate) upstream_token: Option<UpstreamToken>,
    pub(crate) upstream_expires_at: Option<UnixTime>,
    pub(crate) expires_at: UnixTime,
    pub(crate) mac: RecordMac,
}

impl Sealed for GrantRecord {
    const LABEL: &'static str = "grant v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.grant_id)
            .str(&self.client_id)
            .str(&self.subject)
            .opt_str(self.display_name.as_deref())
            .str(self.scope.as_str())
            .str(&self.resource)
            .opt_str(self.upstream_token.as_ref().map(UpstreamToken::secret))
            .u64(self.upstream_expires_at.map_or(0, |t| t.0 + 1))
            .u64(self.expires_at.0);
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl GrantRecord {
    /// The store key.
    pub fn key(&self) -> StoreKey {
        StoreKey::derive("grant", &self.grant_id)
    }
    /// When it may be deleted.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// The upstream subject (`github:1`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The upstream login or name, for display.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    /// The client the grant is for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The upstream access token, for the server's own calls to the upstream API. Never
    /// send it to an MCP client (R41, R50).
    pub fn upstream_token(&self) -> Option<&UpstreamToken> {
        self.upstream_token.as_ref()
    }
    /// When the upstream token expires, if the upstream said (`expires_in`); `None` for
    /// tokens that do not expire (GitHub OAuth App tokens).
    pub fn upstream_expires_at(&self) -> Option<UnixTime> {
        self.upstream_expires_at
    }
    /// Whether the upstream token has expired at `now` (R66): the grant then no longer
    /// authorizes MCP calls until the upstream token is renewed.
    pub fn upstream_expired(&self, now: UnixTime) -> bool {
        self.upstream_expires_at.is_some_and(|at| now >= at)
    }
    pub(crate) fn grant_id(&self) -> &[u8; 16] {
        &self.grant_id
    }
}

/// A refresh token's record, keyed by its hash. Rotated on every use; a rotated token
/// presented again after the grace window revokes the grant (R53).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub(crate) key: StoreKey,
    pub(crate) grant_id: [u8; 16],
    pub(crate) client_id: String,
    pub(crate) scope: ScopeSet,
    pub(crate) expires_at: UnixTime,
    pub(crate) rotated_at: Option<UnixTime>,
    pub(crate) mac: RecordMac,
}

impl Sealed for RefreshRecord {
    const LABEL: &'static str = "refresh v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0)
            .fixed(&self.grant_id)
            .str(&self.client_id)
            .str(self.scope.as_str())
            .u64(self.expires_at.0)
            .u64(self.rotated_at.map_or(0, |t| t.0 + 1));
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl RefreshRecord {
    /// The store key (a hash of the refresh token).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// When it may be deleted.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// The store key of its grant.
    pub fn grant_key(&self) -> StoreKey {
        StoreKey::derive("grant", &self.grant_id)
    }
    /// The client it was issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// Whether it was already rotated.
    pub fn is_rotated(&self) -> bool {
        self.rotated_at.is_some()
    }
}

impl Record for GrantRecord {
    const KIND: Kind = Kind::Grant;
    fn store_key(&self) -> StoreKey {
        self.key()
    }
    fn expiry(&self) -> Option<UnixTime> {
        Some(self.expires_at)
    }
}

impl Record for RefreshRecord {
    const KIND: Kind = Kind::Refresh;
    fn store_key(&self) -> StoreKey {
        self.key
    }
    fn expiry(&self) -> Option<UnixTime> {
        Some(self.expires_at)
    }
}
