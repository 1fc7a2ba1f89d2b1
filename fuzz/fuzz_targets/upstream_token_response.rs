#![no_main]
//! The upstream's token response and user document (UPSTREAMS §1.7, §6).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::upstream_token_response(data);
});
