//! The `net_tx` fuzz target: [`spacecore_fuzz::targets::net_tx`] (its doc says what it checks), also
//! replayed over `corpus/net_tx/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::net_tx::run(data));
