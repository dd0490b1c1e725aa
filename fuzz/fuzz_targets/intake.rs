//! The `intake` fuzz target: [`spacecore_fuzz::targets::intake`] (its doc says what it checks), also
//! replayed over `corpus/intake/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::intake::run(data));
