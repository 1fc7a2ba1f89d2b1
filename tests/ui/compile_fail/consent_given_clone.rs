// Guarantee (docs/design.md#typestate, R25): one approval is worth one upstream redirect.
// `ConsentGiven` does not implement `Clone`, so a proof cannot be duplicated to start a second
// transaction the user never approved.
// Expected: E0599 (no method `clone`).
use consent_gate::ConsentGiven;

fn duplicate(consent: ConsentGiven) -> (ConsentGiven, ConsentGiven) {
    (consent.clone(), consent)
}

fn main() {
    let _ = duplicate;
}
