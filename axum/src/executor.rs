//! The one executor of the core's [`Step`]s against a [`Store`]: a step's operations in
//! one atomic batch, then its reply. Every handler ends here, so the store rules
//! (docs/design.md#store-contract) are written once.

use std::sync::Arc;

use axum::response::Response;
use consent_gate::{
    AuthorizeError, CallbackError, ConsentError, Op, Record, RegistrationError, Step, StoreKey,
    TokenError, UnixTime,
};
use consent_gate_store::{self as store, Kind, Store, StoreError};
use tracing::warn;

use crate::io::{reply, text, variant};

/// Why a handler stopped early: the core refused (its reply is the answer, and each
/// refusal a security event in the log), or the store failed.
pub enum Stop {
    /// The core's refusal, sent as it is.
    Refused(Response),
    /// The store failed or is full.
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

macro_rules! refusals {
    ($($error:ty),*) => {$(
        impl From<$error> for Stop {
            fn from(e: $error) -> Self {
                warn!(security = true, event = %variant(&e), reason = %e);
                Stop::Refused(reply(e.response()))
            }
        }
    )*};
}
refusals!(
    AuthorizeError,
    ConsentError,
    CallbackError,
    TokenError,
    RegistrationError
);

impl Stop {
    /// The answer. A full store is the newcomer's problem, said plainly (429 with
    /// `Retry-After`), never a reason to push out someone already stored (R64); any other
    /// store failure is a 503.
    pub fn into_response(self) -> Response {
        match self {
            Stop::Refused(resp) => resp,
            Stop::Store(StoreError::QuotaExceeded(kind)) => {
                warn!(event = "store_quota_reached", kind = %kind);
                crate::io::with(
                    text(
                        429,
                        "too many sign-ins or registrations right now, try again later",
                    ),
                    &[("retry-after", "60")],
                )
            }
            Stop::Store(error) => {
                warn!(event = "store_failed", %error);
                crate::io::with(
                    text(503, "storage unavailable, try again"),
                    &[("retry-after", "5")],
                )
            }
        }
    }
}

/// The core's namespaces in the store crate's terms.
pub fn kind(kind: consent_gate::Kind) -> Kind {
    match kind {
        consent_gate::Kind::Client => Kind::Client,
        consent_gate::Kind::Pending => Kind::Consent,
        consent_gate::Kind::Transaction => Kind::Transaction,
        consent_gate::Kind::Code => Kind::Code,
        consent_gate::Kind::Grant => Kind::Grant,
        consent_gate::Kind::Refresh => Kind::Refresh,
        other => Kind::Other(other.name()),
    }
}

/// The store's time: the same seconds the core was given.
pub fn secs(t: UnixTime) -> store::UnixTime {
    store::UnixTime::from_secs(t.0)
}

/// The core gives registrations no expiry; a store must. A client whose registration is
/// gone registers again.
pub const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

/// The store side of a host: executes steps, reads and takes records.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
}

impl Executor {
    /// An executor over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Executor { store }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A step's store operations in one atomic batch, then its reply. A record already
    /// expired needs no storing (the store refuses one).
    pub async fn apply(&self, step: impl Into<Step>, now: UnixTime) -> Result<Response, Stop> {
        let step = step.into();
        let until = |at: Option<UnixTime>| secs(at.unwrap_or(now.plus(CLIENT_LIFETIME)));
        let ops: Vec<store::Op> = step
            .ops
            .into_iter()
            .filter_map(|op| {
                let (k, key) = (kind(op.kind()), *op.key().as_bytes());
                match op {
                    Op::Put {
                        value, expires_at, ..
                    } if until(expires_at) > secs(now) => Some(store::Op::Put {
                        kind: k,
                        key,
                        value,
                        expires_at: until(expires_at),
                    }),
                    Op::PutIfAbsent {
                        value, expires_at, ..
                    } if until(expires_at) > secs(now) => Some(store::Op::PutIfAbsent {
                        kind: k,
                        key,
                        value,
                        expires_at: until(expires_at),
                    }),
                    Op::Delete { .. } => Some(store::Op::Delete { kind: k, key }),
                    _ => None,
                }
            })
            .collect();
        if !ops.is_empty() {
            self.store.apply(ops, secs(now)).await?;
        }
        Ok(reply(step.reply))
    }

    /// The live record under `key`; one that does not decode counts as absent.
    pub async fn get<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        let found = self
            .store
            .get(kind(R::KIND), *key.as_bytes(), secs(now))
            .await?;
        Ok(found.and_then(|bytes| R::decode(&bytes)))
    }

    /// The live record under `key`, removed in the same atomic step: single use.
    pub async fn take<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        let found = self
            .store
            .take(kind(R::KIND), *key.as_bytes(), secs(now))
            .await?;
        Ok(found.and_then(|bytes| R::decode(&bytes)))
    }
}
