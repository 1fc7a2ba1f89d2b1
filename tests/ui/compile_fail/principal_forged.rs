// Guarantee (docs/design.md#typestate, R49, R50, R66): a `Principal` (who is calling the MCP
// endpoint) is only made by `BearerClaims::confirm` (or `confirm_refreshable`, and renewed
// by `Gate::accept_upstream_refresh`) after the token and its live grant were verified.
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
