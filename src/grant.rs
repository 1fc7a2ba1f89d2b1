//! A grant: one user's approval of one client, kept server-side with the upstream token
//! (R41), and the refresh tokens that name it (R53). Access and refresh tokens name the
//! grant; deleting it revokes them all (R43, RFC 7009 §2.1).

use serde::{Deserialize, Serialize};

use crate::UnixTime;
use crate::at_rest::{Ciphertext, GrantSecret, UserData};
use crate::crypto::{MacWriter, RecordMac, Sealed, StoreKey};
use crate::installation::{Installation, InstallationRevocation, installation_stands};
use crate::scope::ScopeSet;
use crate::step::{Kind, Record};

/// An authorization grant: one user's approval of one client, with the upstream token
/// kept server-side (R41). Access and refresh tokens name it; deleting it revokes them all.
/// Store it under [`GrantRecord::key`]. What it carries of the user is encrypted under the
/// grant secret, which only the client's tokens carry (docs/design.md#at-rest).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantRecord {
    pub(crate) grant_id: [u8; 16],
    pub(crate) client_id: String,
    pub(crate) scope: ScopeSet,
    pub(crate) resource: String,
    /// The user (subject, display name, upstream token), sealed under the grant secret.
    pub(crate) user: Ciphertext,
    /// Set when `user` was sealed again after an upstream refresh (R66): the fresh salt
    /// of that sealing's key (docs/design.md#at-rest).
    #[serde(default)]
    pub(crate) user_salt: Option<[u8; 16]>,
    pub(crate) upstream_expires_at: Option<UnixTime>,
    pub(crate) expires_at: UnixTime,
    /// A metadata-document client's installation and the approval's second (R59); `None`
    /// for a registered client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) installation: Option<Installation>,
    pub(crate) mac: RecordMac,
}

impl Sealed for GrantRecord {
    // v3: the salt of a renewed user (R66) is under the MAC.
    const LABEL: &'static str = "grant v3";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.grant_id)
            .str(&self.client_id)
            .str(self.scope.as_str())
            .str(&self.resource)
            .bytes(self.user.as_bytes())
            .u64(u64::from(self.user_salt.is_some()))
            .fixed(&self.user_salt.unwrap_or_default())
            .u64(self.upstream_expires_at.map_or(0, |t| t.0 + 1))
            .u64(self.expires_at.0);
        // Only document clients' grants have one, so other grants keep their MACs.
        if let Some(installation) = &self.installation {
            installation.feed(w);
        }
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
    /// The client the grant is for.
    pub fn client_id(&self) -> &str {
        &self.client_id
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
    /// Where the revocation mark of this grant's installation would be (R59): read it
    /// beside the grant and pass both as [`GrantLookup::with_installation`]. `None` for a
    /// registered client's grant, which has no installation to revoke.
    pub fn installation_key(&self) -> Option<StoreKey> {
        self.installation.map(|i| i.key)
    }
    pub(crate) fn grant_id(&self) -> &[u8; 16] {
        &self.grant_id
    }
    /// What the grant carries of the user, given its secret.
    pub(crate) fn open_user(&self, secret: &GrantSecret) -> Option<UserData> {
        match &self.user_salt {
            None => UserData::open(&secret.0, GRANT_USER, &self.grant_id, &self.user),
            Some(salt) => UserData::open(
                &secret.salted(salt)[..],
                GRANT_USER_RENEWED,
                &self.grant_id,
                &self.user,
            ),
        }
    }
    /// This grant with `user` sealed again under the same grant secret (so every token
    /// of the grant still opens it) with a fresh `salt`, and the upstream token's new
    /// expiry (R66). The caller recomputes the MAC.
    pub(crate) fn renewed(
        &self,
        secret: &GrantSecret,
        salt: [u8; 16],
        user: &UserData,
        upstream_expires_at: Option<UnixTime>,
    ) -> GrantRecord {
        let sealed = user.seal(
            &secret.salted(&salt)[..],
            GRANT_USER_RENEWED,
            &self.grant_id,
        );
        GrantRecord {
            user: sealed,
            user_salt: Some(salt),
            upstream_expires_at,
            ..self.clone()
        }
    }
}

/// What a host read for a bearer check or a refresh: the grant and, for a grant of a
/// metadata-document client, the revocation mark of its installation (R59).
///
/// Made from the grant alone (`Option<&GrantRecord>` converts into it) by a host that did
/// not read the mark: a grant that *has* an installation is then refused, so a host that
/// forgets the second read fails closed. Read the mark under
/// [`GrantRecord::installation_key`] and use [`GrantLookup::with_installation`].
#[derive(Clone, Copy, Debug)]
pub struct GrantLookup<'a> {
    pub(crate) grant: Option<&'a GrantRecord>,
    /// `None`: not read; `Some(None)`: read, no mark; `Some(Some(m))`: the mark.
    pub(crate) mark: Option<Option<&'a InstallationRevocation>>,
}

impl<'a> GrantLookup<'a> {
    /// The grant and what the host found under its
    /// [`installation_key`](GrantRecord::installation_key) (`None`: no mark); for a grant
    /// without an installation, `mark` is not consulted.
    pub fn with_installation(
        grant: Option<&'a GrantRecord>,
        mark: Option<&'a InstallationRevocation>,
    ) -> Self {
        GrantLookup {
            grant,
            mark: Some(mark),
        }
    }

    /// The grant, if it stands as far as its installation goes: none, or one whose
    /// installation's mark was read and does not revoke it.
    pub(crate) fn standing(&self, keys: &crate::crypto::Keys) -> Option<&'a GrantRecord> {
        self.grant
            .filter(|g| installation_stands(g.installation.as_ref(), self.mark, keys))
    }
}

impl<'a> From<Option<&'a GrantRecord>> for GrantLookup<'a> {
    /// The grant without its installation's mark: a grant that has an installation is
    /// then refused (fails closed).
    fn from(grant: Option<&'a GrantRecord>) -> Self {
        GrantLookup { grant, mark: None }
    }
}

/// What a grant's user data is sealed for (docs/design.md#at-rest).
pub(crate) const GRANT_USER: &str = "grant user data";
/// What a grant's user data is sealed for after an upstream refresh, under the salted
/// grant secret (R66): a purpose of its own, so the two derivations never meet.
const GRANT_USER_RENEWED: &str = "grant user data renewed";

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
    /// The grant secret, wrapped under this refresh token (docs/design.md#at-rest).
    pub(crate) wrapped: Ciphertext,
    pub(crate) mac: RecordMac,
}

impl Sealed for RefreshRecord {
    const LABEL: &'static str = "refresh v2";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0)
            .fixed(&self.grant_id)
            .str(&self.client_id)
            .str(self.scope.as_str())
            .u64(self.expires_at.0)
            .u64(self.rotated_at.map_or(0, |t| t.0 + 1))
            .bytes(self.wrapped.as_bytes());
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
