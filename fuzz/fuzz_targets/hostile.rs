#![no_main]
//! The whole flow with the attacker powers the spec World does not model yet (leaks,
//! spliced callbacks, lost replies, arbitrary redirect URIs): fuzzer-chosen actions,
//! properties checked after every step (`src/hostile/mod.rs`).

libfuzzer_sys::fuzz_target!(|input: consent_gate_fuzz::hostile::FlowInput| {
    consent_gate_fuzz::hostile::flow(&input);
});
