//! The `spec` fuzz target: [`spacecore_fuzz::targets::spec`] (its doc says what it checks), also
//! replayed over `corpus/spec/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::spec::run(data));
