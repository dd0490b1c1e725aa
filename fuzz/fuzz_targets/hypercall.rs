//! The `hypercall` fuzz target: [`spacecore_fuzz::targets::hypercall`] (its doc says what it
//! checks), also replayed over `corpus/hypercall/` by the workspace's tests.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spacecore_fuzz::targets::hypercall::run(data));
