//! The `history` fuzz target: [`spacecore_fuzz::targets::history`] (its doc says what it checks), also
//! replayed over `corpus/history/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::history::run(data));
