//! The `bn254` fuzz target: [`spacecore_fuzz::targets::bn254`] (its doc says what it checks), also
//! replayed over `corpus/bn254/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::bn254::run(data));
