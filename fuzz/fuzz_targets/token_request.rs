#![no_main]
//! `POST /token` and `POST /revoke`: `Authorization` header and form body (R42–R46, R53).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::token_request(data);
});
