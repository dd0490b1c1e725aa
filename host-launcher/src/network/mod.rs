//! The host side of a spacecore's network: its private namespace, its tap, and its published
//! ports.

pub mod forward;
pub mod netns;
