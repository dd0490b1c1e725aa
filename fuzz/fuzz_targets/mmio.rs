//! The `mmio` fuzz target: [`spacecore_fuzz::targets::mmio`] (its doc says what it checks), also
//! replayed over `corpus/mmio/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::mmio::run(data));
