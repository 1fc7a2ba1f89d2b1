// Guarantee (docs/design.md#typestate, R25; docs/design.md#records: proof types are never records
// and never stored): `ConsentGiven` does not implement `Deserialize`, so it cannot be read back
// from a store, a cookie or a request body that an attacker may control.
// Expected: E0277 (`ConsentGiven: Deserialize` not satisfied).
use consent_gate::ConsentGiven;

fn main() {
    let _consent: ConsentGiven =
        serde_json::from_str(r#"{"details":{},"remember_cookie":null}"#).unwrap();
}
