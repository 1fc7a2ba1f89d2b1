//! The one executor of the core's [`Step`]s against a [`Store`]: a step's operations in
//! one atomic batch, then its reply. Every handler ends here, so the store rules
//! (docs/design.md#store-contract) are written once.

use std::sync::Arc;

use axum::response::Response;
use consent_gate::{
    AuthorizeError, CallbackError, ClientRecord, ConsentError, Record, RegistrationError, Step,
    StoreKey, TokenError, UnixTime,
};
use consent_gate_store::{self as store, Store, StoreError};
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

/// The store's time: the same seconds the core was given.
pub fn secs(t: UnixTime) -> store::UnixTime {
    t.into()
}

/// The store side of a host: the store crate's [`store::Executor`], its replies as axum
/// responses and its failures as [`Stop`]s.
#[derive(Clone)]
pub struct Executor(store::Executor);

impl Executor {
    /// An executor over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Executor(store::Executor::new(store))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.0.store()
    }

    /// A step's store operations in one atomic batch, then its reply.
    pub async fn apply(&self, step: impl Into<Step>, now: UnixTime) -> Result<Response, Stop> {
        Ok(reply(self.0.apply(step.into(), now).await?))
    }

    /// The live record under `key`; one that does not decode counts as absent.
    pub async fn get<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        Ok(self.0.get(key, now).await?)
    }

    /// The live record under `key`, removed in the same atomic step: single use.
    pub async fn take<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        Ok(self.0.take(key, now).await?)
    }

    /// A registration, decoded at most once a minute ([`store::Executor::client`]).
    pub async fn client(
        &self,
        key: &StoreKey,
        now: UnixTime,
    ) -> Result<Option<Arc<ClientRecord>>, Stop> {
        Ok(self.0.client(key, now).await?)
    }
}
