#![no_main]
//! `Authorization: Bearer` at the MCP endpoint (R49–R51, A14).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::bearer_header(data);
});
