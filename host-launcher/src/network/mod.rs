//! The host side of a spacecore's network: its private namespace, its tap, its published
//! ports, and its path to the AVS aggregator.

pub mod admission;
pub mod forward;
pub mod guest_http;
pub mod netns;
pub mod outbound;
pub mod relay;
