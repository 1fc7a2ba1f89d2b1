#![no_main]
//! An OpenID provider's ID token and discovery document (docs/upstreams.md#google).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::openid_answer(data);
});
