// Guarantee (docs/design.md#typestate, R25): an `UpstreamRedirect` (the 303 to the provider with
// the binding cookie) can only come from `Gate::upstream_redirect`, which consumes a
// `ConsentGiven`. Its fields are private, so it cannot be assembled from a transaction
// record obtained elsewhere (say, replayed from the store).
// Expected: E0451 (private fields).
use consent_gate::{TransactionRecord, UpstreamRedirect};

fn skip_consent(record: TransactionRecord) -> UpstreamRedirect {
    UpstreamRedirect {
        transaction: record,
        location: String::from("https://github.com/login/oauth/authorize"),
        cookies: Vec::new(),
    }
}

fn main() {
    let _ = skip_consent;
}
