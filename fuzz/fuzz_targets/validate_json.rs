#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsctx_fuzz::checks::validate_json(data));
