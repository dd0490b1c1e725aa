//! The `bls` fuzz target: [`spacecore_fuzz::targets::bls`] (its doc says what it checks), also
//! replayed over `corpus/bls/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::bls::run(data));
