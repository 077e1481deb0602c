#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsctx_fuzz::checks_http::token_extraction(data));
