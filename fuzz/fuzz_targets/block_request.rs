//! The `block_request` fuzz target: [`spacecore_fuzz::targets::block_request`] (its doc says what it checks), also
//! replayed over `corpus/block_request/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::block_request::run(data));
