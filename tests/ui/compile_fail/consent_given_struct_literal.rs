// Guarantee (docs/design.md#typestate, R25): a `ConsentGiven` cannot be forged. Its fields are
// private, so a host (or an attacker-controlled code path) holding the details of a consent page
// that was shown but never approved cannot assemble the proof by hand.
// Expected: E0451 (private fields).
use consent_gate::{ConsentGiven, PendingConsent};

fn forge(pending: &PendingConsent) -> ConsentGiven {
    ConsentGiven {
        details: pending.details().clone(),
        remember_cookie: None,
    }
}

fn main() {
    let _ = forge;
}
