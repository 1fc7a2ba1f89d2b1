//! What a step hands the host: one shape for every step that touches state
//! (docs/design.md#steps).
//!
//! A [`Step`] is the store operations to apply and the reply to send, in that order. A host
//! writes one executor for it (apply the [`Op`]s, atomically where its store allows, then
//! send the [`Reply`]) instead of a case per step. The proofs of the flow stay objects
//! consumed by value; only what leaves the core for the host is uniform.
//!
//! Records cross the boundary as bytes under a [`Kind`] and a [`StoreKey`]: a host stores
//! them without knowing their types, and [`Record::decode`] turns what it read back into
//! the typed record a step takes. Every record carries a MAC that the step checks, so a
//! record edited in the store is refused there (A16).

use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::UnixTime;
use crate::crypto::StoreKey;
use crate::reply::{ClientRedirect, Reply};

/// The namespace of a stored record: one table, key prefix or map per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// A registered client ([`ClientRecord`](crate::ClientRecord)), read by key.
    Client,
    /// A consent page in flight ([`PendingConsent`](crate::PendingConsent)), taken once.
    Pending,
    /// An upstream trip in flight ([`TransactionRecord`](crate::TransactionRecord)), taken
    /// once.
    Transaction,
    /// An authorization code ([`CodeRecord`](crate::CodeRecord)), taken once; stored back
    /// redeemed so that a replay revokes the grant (R43).
    Code,
    /// A grant ([`GrantRecord`](crate::GrantRecord)): deleting it revokes every token of
    /// it.
    Grant,
    /// A refresh token's record ([`RefreshRecord`](crate::RefreshRecord)), read by key.
    Refresh,
    /// A metadata-document client installation's revocation mark
    /// ([`InstallationRevocation`](crate::InstallationRevocation)), read beside a grant
    /// (R59).
    Installation,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 7] = [
        Kind::Client,
        Kind::Pending,
        Kind::Transaction,
        Kind::Code,
        Kind::Grant,
        Kind::Refresh,
        Kind::Installation,
    ];

    /// A short stable name (a table name, a key prefix, a log field).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::Pending => "pending",
            Kind::Transaction => "transaction",
            Kind::Code => "code",
            Kind::Grant => "grant",
            Kind::Refresh => "refresh",
            Kind::Installation => "installation",
        }
    }
}

/// A record the core asks the host to keep: its kind, its key, its expiry and its bytes.
///
/// Implemented by the seven record types; the encoding is JSON (`serde`), the same a host
/// would write itself, so stores written by earlier hosts stay readable.
pub trait Record: Serialize + DeserializeOwned {
    /// Where records of this type live.
    const KIND: Kind;

    /// The key to store it under: a hash of its secret handle, never the handle.
    fn store_key(&self) -> StoreKey;

    /// When it stops being usable, if it ever does. A store may forget it after that.
    fn expiry(&self) -> Option<UnixTime>;

    /// The bytes to store.
    fn encode(&self) -> Vec<u8> {
        // Records are plain data with string keys: serializing them cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from stored bytes, or `None` when they are not one. The step that takes
    /// it still checks its MAC.
    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// One store operation.
#[derive(Clone, PartialEq, Eq)]
#[must_use = "a store operation does nothing until the host applies it"]
pub enum Op {
    /// Store or replace.
    Put {
        /// Where.
        kind: Kind,
        /// Under which key.
        key: StoreKey,
        /// The encoded record.
        value: Vec<u8>,
        /// When the store may forget it (`None`: never on its own).
        expires_at: Option<UnixTime>,
    },
    /// Store only if no live record is there; an existing one is kept (R63, A22).
    PutIfAbsent {
        /// Where.
        kind: Kind,
        /// Under which key.
        key: StoreKey,
        /// The encoded record.
        value: Vec<u8>,
        /// When the store may forget it (`None`: never on its own).
        expires_at: Option<UnixTime>,
    },
    /// Remove (nothing happens if it is absent).
    Delete {
        /// Where.
        kind: Kind,
        /// Which key.
        key: StoreKey,
    },
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value is a record, possibly with an upstream token in it: never printed.
        match self {
            Op::Put { kind, key, .. } => write!(f, "Put({}, {key:?})", kind.name()),
            Op::PutIfAbsent { kind, key, .. } => {
                write!(f, "PutIfAbsent({}, {key:?})", kind.name())
            }
            Op::Delete { kind, key } => write!(f, "Delete({}, {key:?})", kind.name()),
        }
    }
}

impl Op {
    /// Store `record` under its key until its expiry.
    pub fn put<R: Record>(record: &R) -> Self {
        Op::Put {
            kind: R::KIND,
            key: record.store_key(),
            value: record.encode(),
            expires_at: record.expiry(),
        }
    }

    /// Store `record` unless a live record is under its key.
    pub fn put_if_absent<R: Record>(record: &R) -> Self {
        Op::PutIfAbsent {
            kind: R::KIND,
            key: record.store_key(),
            value: record.encode(),
            expires_at: record.expiry(),
        }
    }

    /// Remove the record of `kind` under `key`.
    pub fn delete(kind: Kind, key: StoreKey) -> Self {
        Op::Delete { kind, key }
    }

    /// The kind it touches.
    pub fn kind(&self) -> Kind {
        match self {
            Op::Put { kind, .. } | Op::PutIfAbsent { kind, .. } | Op::Delete { kind, .. } => *kind,
        }
    }

    /// The key it touches.
    pub fn key(&self) -> &StoreKey {
        match self {
            Op::Put { key, .. } | Op::PutIfAbsent { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// What every step that touches state returns: apply `ops` (in order, atomically where
/// the store allows), then send `reply`.
///
/// The order matters: a code's 303 must not reach the client before the code is stored,
/// and a replayed code's grant must be deleted before the error is sent (R43).
#[derive(Debug)]
#[must_use = "apply the store operations, then send the reply"]
pub struct Step {
    /// The store operations, in order.
    pub ops: Vec<Op>,
    /// The HTTP response.
    pub reply: Reply,
}

impl Step {
    /// A reply that changes nothing in the store.
    pub fn reply(reply: Reply) -> Self {
        Step {
            ops: Vec::new(),
            reply,
        }
    }
}

impl From<Reply> for Step {
    fn from(reply: Reply) -> Self {
        Step::reply(reply)
    }
}

impl From<ClientRedirect> for Step {
    /// A redirect to the client (a denial, an upstream error): nothing to store.
    fn from(redirect: ClientRedirect) -> Self {
        Step::reply(redirect.into_response())
    }
}
