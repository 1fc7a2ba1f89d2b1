//! Typestate misuse does not compile (DESIGN §3, R25).
//!
//! Each file under `tests/ui/compile_fail/` is a minimal program that tries to obtain a
//! proof type (`ConsentGiven`, `UpstreamRedirect`, `VerifiedCallback`, `Principal`)
//! without running the check that proves it, or to spend one twice. The `.stderr` next
//! to each file pins the reason it fails (private field, moved value, missing method or
//! trait), so a case cannot start "passing" because of an unrelated typo.
//!
//! Regenerate the expected output after a toolchain upgrade with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, then read every diff.

#[test]
fn proof_types_cannot_be_forged_cloned_or_reused() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/compile_fail/*.rs");
}
