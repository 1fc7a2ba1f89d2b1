//! The end of every handler: the step the store crate's `Endpoints` returned, applied (its
//! store operations in one atomic batch, then its reply), or the store's failure said
//! plainly. Every handler ends here, so the store rules (docs/design.md#store-contract)
//! and the answers to a failing store are written once.

use axum::response::Response;
use consent_gate::UnixTime;
use consent_gate_store::{Endpoints, Stepped, StoreError};
use tracing::warn;

use crate::io::{reply, text, with};

/// The store's time: the same seconds the core was given.
pub fn secs(t: UnixTime) -> consent_gate_store::UnixTime {
    t.into()
}

/// Applies a step and turns its reply into a response; a store failure into `429` or
/// `503`.
pub async fn finish(endpoints: &Endpoints, stepped: Stepped, now: UnixTime) -> Response {
    let applied = match stepped {
        Ok(step) => endpoints.apply(step, now).await,
        Err(failed) => Err(failed),
    };
    applied.map_or_else(store_failed, reply)
}

/// A full store is the newcomer's problem, said plainly (`429` with `Retry-After`), never
/// a reason to push out someone already stored (R64); any other store failure is a `503`.
pub fn store_failed(error: StoreError) -> Response {
    match error {
        StoreError::QuotaExceeded(kind) => {
            warn!(event = "store_quota_reached", kind = %kind);
            let message = "too many sign-ins or registrations right now, try again later";
            with(text(429, message), &[("retry-after", "60")])
        }
        error => {
            warn!(event = "store_failed", %error);
            with(
                text(503, "storage unavailable, try again"),
                &[("retry-after", "5")],
            )
        }
    }
}
