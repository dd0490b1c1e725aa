//! The `store` fuzz target: [`spacecore_fuzz::targets::store`] (its doc says what it checks), also
//! replayed over `corpus/store/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::store::run(data));
