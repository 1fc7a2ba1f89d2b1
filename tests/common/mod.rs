//! The integration tests' view of the simulation kit (`consent_gate_spec::kit`): the host,
//! browsers, apps and the GitHub double are the kit's, shared with the World, the fuzz
//! targets and the benchmarks (docs/conventions.md#one-kit). What is left here is only for
//! these tests.

// Each test crate uses a different subset of this module.
#![allow(dead_code, unused_imports)]

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use consent_gate_spec::entropy::SplitMix64;
pub use consent_gate_spec::kit::*;

/// The core's fault switches (in builds with `RUSTFLAGS="--cfg consent_gate_faults"`), or
/// in other builds the kit's one-valued stand-in, so that the attack scenarios read the same
/// in every build: one type for every checker.
pub use consent_gate_spec::Faults;

/// A record as its store would hold it, edited by someone with write access to the store
/// (A16): serialized, changed, deserialized, MAC untouched.
pub fn tamper<T: Serialize + DeserializeOwned>(
    record: &T,
    edit: impl FnOnce(&mut serde_json::Value),
) -> T {
    let mut v = serde_json::to_value(record).expect("records serialize");
    edit(&mut v);
    serde_json::from_value(v).expect("the edited record still deserializes")
}
