//! Typestate misuse does not compile (docs/design.md#typestate, R25).
//!
//! Each file under `tests/ui/compile_fail/` is a minimal program that tries to obtain a
//! proof type (`ConsentGiven`, `UpstreamRedirect`, `VerifiedCallback`, `Principal`)
//! without running the check that proves it, or to spend one twice. The `.stderr` next
//! to each file pins the reason it fails (private field, moved value, missing method or
//! trait), so a case cannot start "passing" because of an unrelated typo.
//! `faults_not_public.rs` pins that a normal build has no fault switch in its API.
//!
//! Regenerate the expected output after a toolchain upgrade with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, then read every diff.

/// The expected output is that of a normal build: the fault switches
/// (`--cfg consent_gate_faults`) add API (`Faults`, `VerifiedCallback::reinsert`) and fields,
/// so these cases, `faults_not_public.rs` above all, are checked only without them.
#[test]
#[cfg_attr(
    consent_gate_faults,
    ignore = "checks the API of a normal build, without --cfg consent_gate_faults"
)]
fn proof_types_cannot_be_forged_cloned_or_reused() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/compile_fail/*.rs");
}
