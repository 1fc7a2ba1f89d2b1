#![no_main]
//! The consent decision: `Cookie`, `Origin`, `Sec-Fetch-Site` and the form body (R28, A3).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::consent_form(data);
});
