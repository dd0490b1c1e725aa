//! The Spacecore unikernel.
//!
//! It runs entirely at CPL3 (see `spacecore_abi::layout`): the launcher enters it in ring 3 and
//! ring 0 only holds the launcher's fatal-trap stubs. Pure logic (boot-information parsing,
//! command line, clock, the HTTP protocol and endpoints, the node API and the metrics; the crash-safe store is the `spacecore-store` crate) is unit-tested on
//! the host; the rest exists only on the target.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

mod api;
mod app;
mod avs;
mod boot;
mod chain;
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
mod runtime;
#[cfg(not(test))]
mod selftest;
#[cfg(not(test))]
mod virtio;
