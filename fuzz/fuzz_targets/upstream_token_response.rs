#![no_main]
//! The upstream's token response and user document (docs/upstreams.md#github-token-response,
//! docs/upstreams.md#parsing-rules).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::upstream_token_response(data);
});
