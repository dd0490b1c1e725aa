//! `hac-launch`: boots a Spacecore unikernel on KVM as a hac.toml spec says.
//!
//! The boot recipe is [`vmm::boot`]; everything the guest may touch is checked in
//! [`vmm::hypercall`]; [`output`] prints the launcher's and the guest's lines.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod check;
pub mod devices;
pub mod host;
pub mod image;
pub mod keystore_password;
pub mod network;
pub mod output;
pub mod vmm;
