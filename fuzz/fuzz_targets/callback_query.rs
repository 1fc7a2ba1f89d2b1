#![no_main]
//! The upstream callback: `Cookie` and query (R35, R36; A2, A6, A7).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::callback_query(data);
});
