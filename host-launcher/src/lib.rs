//! `hac-launch`: boots a Spacecore unikernel on KVM as a hac.toml spec says.
//!
//! The boot recipe is [`vmm::Shell::boot`]; everything the guest may touch is checked in
//! `vmm::hypercall`; [`supervisor`] boots, watches and restarts the guest; [`metrics`] serves
//! the launcher's Prometheus metrics; [`output`] prints the launcher's and the guest's lines.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod capacity;
pub mod check;
pub mod devices;
pub mod host;
pub mod image;
pub mod jail;
pub mod keystore_password;
pub mod launch;
pub mod metrics;
pub mod network;
pub mod output;
pub mod scale;
pub mod supervisor;
pub mod update;
pub mod vmm;
