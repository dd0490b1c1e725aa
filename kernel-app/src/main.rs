//! The Spacecore image without an AVS crate of its own: the runtime with the incredible-squaring
//! task path it has built in, and no AVS routes.
#![no_std]
#![no_main]

spacecore_runtime::entry!();
spacecore_avs::export!(spacecore_runtime::NoAvs::default);
