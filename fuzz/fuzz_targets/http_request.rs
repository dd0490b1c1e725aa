//! The `http_request` fuzz target: [`spacecore_fuzz::targets::http_request`] (its doc says what
//! it checks), also replayed over `corpus/http_request/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::http_request::run(data));
