#![no_main]
//! Redirect URI registration and matching, as a differential against R17/R18 (A10).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::redirect_uri(data);
});
