#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsctx_fuzz::checks::close_reason(data));
