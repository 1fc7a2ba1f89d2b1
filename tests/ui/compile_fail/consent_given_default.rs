// Guarantee (docs/design.md#typestate, R25): `ConsentGiven` has no `Default`, so there is no
// "empty approval" to go upstream with.
// Expected: E0599 (no function or associated item `default`).
use consent_gate::ConsentGiven;

fn main() {
    let _consent: ConsentGiven = ConsentGiven::default();
}
