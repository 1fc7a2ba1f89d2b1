#![no_main]
//! The spec crate's World, one fuzzer byte per step, its properties P1–P7 checked after
//! every step (`src/flow.rs`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| consent_gate_fuzz::flow::flow(data));
