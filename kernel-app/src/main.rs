//! The Spacecore image without an AVS: the runtime alone (node API, metrics, echo), no AVS
//! routes.
#![no_std]
#![no_main]

spacecore_runtime::entry!();
spacecore_avs::export!(spacecore_runtime::NoAvs::default);
