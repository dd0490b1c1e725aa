//! The guest's HTTP/1.1 server core, `kernel-app/src/http/`, compiled from the guest's own
//! sources so that the `http_request` fuzz target runs the code the guest runs: [`http::Conn`]
//! and the request-head parser [`http::request::parse`], with the guest's limits.
#![no_std]

extern crate alloc;

#[path = "../../../kernel-app/src/http/mod.rs"]
pub mod http;
