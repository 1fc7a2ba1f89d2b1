#![no_main]
//! `GET /authorize` query strings (R16–R22, A10, A12, A15).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::authorize_query(data);
});
