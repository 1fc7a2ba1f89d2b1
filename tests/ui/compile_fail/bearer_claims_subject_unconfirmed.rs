// Guarantee (docs/design.md#typestate, R43, R53): the caller's identity is not readable from
// unconfirmed `BearerClaims`, so a host cannot act on a token whose grant was revoked (a replayed
// code or a reused refresh token deletes the grant). Only `Principal` exposes the subject.
// Expected: E0599 (no method `subject` / `principal` on `BearerClaims`).
use consent_gate::BearerClaims;

fn who(claims: &BearerClaims) -> String {
    claims.subject().to_owned()
}

fn principal(claims: BearerClaims) {
    let _ = claims.principal();
}

fn main() {
    let _ = (who, principal);
}
