//! One user's installation of a metadata-document client: the user, the client id *and*
//! the registered redirect URI it signed in with, and its revocation (R59).
//!
//! A registration's client id belongs to one installation; a metadata document's client id
//! is its URL, shared by every installation of that client. Revoking "the client" would
//! sign the user out on every device, and revoking nothing would leave an operator no way
//! to end one device's access. So a document client's grant records the installation it
//! was approved for (the user, the client and the registered redirect URI: a web client's
//! redirect URI is the same for all its users, a native client's loopback one differs
//! only by port) and when; [`Gate::revoke_installation`] stores a mark under that
//! installation's key, and every grant of the installation approved up to the mark's
//! second stops working: at the bearer check and at the refresh, which both read the mark
//! beside the grant ([`GrantLookup`](crate::GrantLookup)). Other installations of the
//! same client keep their grants; a new approval after the mark starts a new grant.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::{Keys, MacWriter, RecordMac, Sealed, StoreKey, UNSEALED};
use crate::reply::Reply;
use crate::step::{Kind, Op, Record, Step};
use crate::{Gate, UnixTime};

/// Which installation a grant belongs to and when it was approved; only a metadata
/// document client's grants have one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Installation {
    /// One of [`installation_keys`]: the one under the key that sealed the grant.
    pub(crate) key: StoreKey,
    /// The second the user approved (the code's issue), compared with a revocation mark.
    pub(crate) approved_at: UnixTime,
}

impl Installation {
    pub(crate) fn feed(&self, w: &mut MacWriter) {
        w.str("installation")
            .fixed(&self.key.0)
            .u64(self.approved_at.0);
    }
}

/// The store keys of one user's installation of a client under each server key (the
/// current first): a MAC of the upstream subject, the client id and the registered
/// redirect URI, so that the store learns nothing of the user from a key (R65) and a
/// revocation after a key rotation still finds the grants keyed before it.
pub(crate) fn installation_keys<'k>(
    keys: &'k Keys,
    subject: &'k str,
    client_id: &'k str,
    redirect_uri: &'k str,
) -> impl Iterator<Item = StoreKey> + 'k {
    keys.ids().filter_map(move |id| {
        let mut w = keys.mac_with(id, "installation")?;
        w.str(subject).str(client_id).str(redirect_uri);
        Some(StoreKey(w.finish()))
    })
}

/// The mark that revokes one user's installation of a client (R59): every grant of that
/// user, client and redirect URI approved at or before `revoked_at`. Store it under
/// [`InstallationRevocation::key`]; it lives as long as the longest grant it can revoke.
/// It names the client and redirect URI, not the user (its key is a MAC of the user).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallationRevocation {
    key: StoreKey,
    client_id: String,
    redirect_uri: String,
    revoked_at: UnixTime,
    expires_at: UnixTime,
    mac: RecordMac,
}

impl fmt::Debug for InstallationRevocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationRevocation")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl Sealed for InstallationRevocation {
    const LABEL: &'static str = "installation revocation v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0)
            .str(&self.client_id)
            .str(&self.redirect_uri)
            .u64(self.revoked_at.0)
            .u64(self.expires_at.0);
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl InstallationRevocation {
    /// The store key (a MAC of the user, client id and redirect URI).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The redirect URI.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
    /// Grants approved at or before this second are revoked.
    pub fn revoked_at(&self) -> UnixTime {
        self.revoked_at
    }
    /// When it may be deleted: no grant it revokes outlives it.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// Whether this mark revokes a grant of `installation`. A mark that fails its MAC or
    /// names another installation revokes nothing: a forged mark could only end access,
    /// but a mark is never trusted unverified.
    pub(crate) fn revokes(&self, installation: &Installation, keys: &Keys) -> bool {
        self.key == installation.key
            && installation.approved_at <= self.revoked_at
            && self.mac_is_valid(keys)
    }
}

impl Record for InstallationRevocation {
    const KIND: Kind = Kind::Installation;
    fn store_key(&self) -> StoreKey {
        self.key
    }
    fn expiry(&self) -> Option<UnixTime> {
        Some(self.expires_at)
    }
}

/// Whether the grant of `installation` stands given what the host read: a grant without
/// an installation always does; one with an installation only when the mark was read and
/// does not revoke it.
pub(crate) fn installation_stands(
    installation: Option<&Installation>,
    mark: Option<Option<&InstallationRevocation>>,
    keys: &Keys,
) -> bool {
    match (installation, mark) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(None)) => true,
        (Some(i), Some(Some(m))) => !m.revokes(i, keys),
    }
}

impl Gate {
    /// Revokes one user's installation of a client (R59): every grant of the upstream
    /// user `subject` ([`Principal::subject`](crate::Principal::subject)) for
    /// `client_id` through the registered `redirect_uri` approved at or before `now`
    /// stops working at its next bearer check or refresh, while the user's other
    /// installations and other users of the client keep theirs. Meant for
    /// metadata-document clients, whose id every installation shares (a registered
    /// client's grants have no installation: revoke them by token, RFC 7009). Apply the
    /// step's puts, one mark under each server key; its reply is a `200` with a line of
    /// text.
    pub fn revoke_installation(
        &self,
        subject: &str,
        client_id: &str,
        redirect_uri: &str,
        now: UnixTime,
    ) -> Step {
        let (keys, lifetimes) = (&self.config.keys, &self.config.lifetimes);
        // The longest a grant approved now could live: its code's lifetime, then the
        // grant's own (which starts at the code's redemption).
        let longest = lifetimes.code.saturating_add(lifetimes.refresh_token);
        let ops = installation_keys(keys, subject, client_id, redirect_uri)
            .map(|key| {
                let mut mark = InstallationRevocation {
                    key,
                    client_id: client_id.to_owned(),
                    redirect_uri: redirect_uri.to_owned(),
                    revoked_at: now,
                    expires_at: now.plus(longest),
                    mac: UNSEALED,
                };
                mark.mac = mark.compute_mac(keys);
                Op::put(&mark)
            })
            .collect();
        Step {
            ops,
            reply: Reply::text(200, "installation revoked"),
        }
    }
}
