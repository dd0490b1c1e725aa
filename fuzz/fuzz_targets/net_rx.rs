//! The `net_rx` fuzz target: [`spacecore_fuzz::targets::net_rx`] (its doc says what it checks),
//! also replayed over `corpus/net_rx/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::net_rx::run(data));
