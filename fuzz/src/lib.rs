//! Fuzzing harness for consent-gate: one function per input surface ([`surfaces`]), the
//! spec crate's World for the whole flow ([`flow`]), and a hostile harness, built from the
//! spec crate's kit, with the attacker powers the World does not model yet ([`hostile`], the
//! `hostile` target), each wrapped
//! by a 1–3 line target in `fuzz_targets/` (str0m's layout, docs/conventions.md#fuzz-layout).
//!
//! The logic lives here, not in the targets, so that `cargo test` (on stable, without
//! libFuzzer) replays the committed seed corpus and every saved regression, and proves
//! that the seeds still reach the deep paths of the code under test.
//!
//! `CG_FAULT=<name>` (a name from `consent_gate::Faults::ALL`) turns one fault switch on
//! for the whole process: CI runs the `flow` target once per fault and requires a violated property.
//! The switches exist only in builds with `RUSTFLAGS="--cfg consent_gate_faults"`, which
//! `.ci/fuzz` sets for every build (cargo-fuzz appends it to its own flags).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod fixture;
pub mod flow;
pub mod hostile;
pub mod oracle;
pub mod surfaces;

#[cfg(test)]
mod tests;
