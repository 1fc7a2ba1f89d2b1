// Guarantee (docs/design.md#typestate, R25): `UpstreamRedirect` has no public constructor and no
// `Default`; `Gate::upstream_redirect(ConsentGiven, ..)` is the only way to get one.
// Expected: E0599 (no associated function `new` / `default`).
use consent_gate::{TransactionRecord, UpstreamRedirect};

fn skip_consent(record: TransactionRecord) -> UpstreamRedirect {
    UpstreamRedirect::new(record)
}

fn from_nothing() -> UpstreamRedirect {
    UpstreamRedirect::default()
}

fn main() {
    let _ = (skip_consent, from_nothing);
}
