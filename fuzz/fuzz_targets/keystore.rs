//! The `keystore` fuzz target: [`spacecore_fuzz::targets::keystore`] (its doc says what it checks), also
//! replayed over `corpus/keystore/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::keystore::run(data));
