// Guarantee (docs/design.md#typestate, R43, R53): verified bearer claims are not yet a `Principal`:
// revocation is the grant's existence, so the only way from `BearerClaims` to a
// `Principal` is `confirm(grant, now)`. There is no conversion that skips it.
// Expected: E0277 (`Principal: From<BearerClaims>` not satisfied).
use consent_gate::{BearerClaims, Principal};

fn skip_revocation_check(claims: BearerClaims) -> Principal {
    claims.into()
}

fn main() {
    let _ = skip_revocation_check;
}
