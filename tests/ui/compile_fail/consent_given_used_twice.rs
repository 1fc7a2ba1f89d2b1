// Guarantee (docs/design.md#typestate, R25, R34): `Gate::upstream_redirect` consumes the proof, so
// one approval cannot be spent on two upstream transactions.
// Expected: E0382 (use of moved value).
use consent_gate::{ConsentGiven, Entropy, Gate, UnixTime};

fn spend_twice<E: Entropy>(gate: &Gate, consent: ConsentGiven, entropy: &mut E) {
    let now = UnixTime(1_700_000_000);
    let _first = gate.upstream_redirect(consent, now, entropy);
    let _second = gate.upstream_redirect(consent, now, entropy);
}

fn main() {
    let _ = spend_twice::<fn(&mut [u8])>;
}
