//! The `avs_json` fuzz target: [`spacecore_fuzz::targets::avs_json`] (its doc says what it checks), also
//! replayed over `corpus/avs_json/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::avs_json::run(data));
