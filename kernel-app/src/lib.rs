//! The Spacecore unikernel.
//!
//! It runs entirely at CPL3 (see `spacecore_abi::layout`): the launcher enters it in ring 3 and
//! ring 0 only holds the launcher's fatal-trap stubs. Pure logic (boot-information parsing,
//! command line, clock, the HTTP protocol and endpoints, the node API and the metrics; the crash-safe store is the `spacecore-store` crate) is unit-tested on
//! the host; the rest exists only on the target.
//!
//! It is a library, `spacecore_runtime`: an image is a small binary crate that links it with one
//! AVS (a crate implementing `spacecore_avs::Avs` and exporting it with `spacecore_avs::export!`)
//! and defines the entry point with [`entry!`]. `src/main.rs` is the image without an AVS (the
//! node API, metrics and echo only); `cargo xtask build-image --avs PATH` writes such a crate for
//! any AVS crate, incredible-squaring's (`avs/incredible-squaring`) included.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod api;
mod app;
mod avs;
mod boot;
mod clock;
mod cmdline;
mod diskbench;
mod http;
mod metrics;
mod status;

#[cfg(not(test))]
mod arch;
#[cfg(not(test))]
mod console;
#[cfg(not(test))]
mod heap;
#[cfg(not(test))]
mod hypercall;
#[cfg(not(test))]
mod netstack;
#[cfg(not(test))]
mod node;
#[cfg(not(test))]
#[doc(hidden)]
pub mod runtime;
#[cfg(not(test))]
mod selftest;
#[cfg(not(test))]
mod virtio;
// The virtio transport's register logic, tested on the host against a model of the launcher's
// window (the rest of `virtio` needs the target).
#[cfg(test)]
#[path = "virtio/transport.rs"]
mod virtio_transport;

mod sdk;
pub use sdk::NoAvs;

/// Defines the image's entry point: the first instruction of every vCPU (see `runtime::start`).
/// The binary crate of an image calls it once, next to the AVS crate it links.
#[macro_export]
macro_rules! entry {
    () => {
        #[unsafe(no_mangle)]
        pub extern "sysv64" fn _start(vcpu: u64, boot_params: u64) -> ! {
            $crate::runtime::start(vcpu, boot_params)
        }
    };
}
