//! The `web3_keyfile` fuzz target: [`spacecore_fuzz::targets::web3_keyfile`] (its doc says what it checks), also
//! replayed over `corpus/web3_keyfile/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::web3_keyfile::run(data));
