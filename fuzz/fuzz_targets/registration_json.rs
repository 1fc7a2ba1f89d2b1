#![no_main]
//! Dynamic client registration bodies (RFC 7591; R10–R15, A17).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    consent_gate_fuzz::surfaces::registration_json(data);
});
