#![no_main]
//! Any `Cookie` header through every step that reads cookies (R28, R31, R35).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::cookie_header(data);
});
