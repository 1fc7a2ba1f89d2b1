#![no_main]
//! The whole flow in a hostile world: fuzzer-chosen actions, properties P1–P5
//! (`src/world.rs`) checked after every step.

libfuzzer_sys::fuzz_target!(|input: consent_gate_fuzz::world::FlowInput| {
    consent_gate_fuzz::world::flow(&input);
});
