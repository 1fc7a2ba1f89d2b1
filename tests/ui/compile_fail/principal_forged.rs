// Guarantee (docs/design.md#typestate, R49, R50): a `Principal` (who is calling the MCP endpoint)
// is only made by `BearerClaims::confirm`, after the token's MAC, expiry and audience were
// verified and its grant was found live. Its fields are private.
// Expected: E0451 (private fields).
use consent_gate::{GrantRecord, Principal, ScopeSet};

fn impersonate(grant: &GrantRecord) -> Principal {
    Principal {
        subject: String::from("github:1"),
        client_id: grant.client_id().to_owned(),
        scope: ScopeSet::default(),
        grant_key: grant.key(),
    }
}

fn main() {
    let _ = impersonate;
}
