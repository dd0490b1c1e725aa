//! stateless-echo: a stateless AVS on the Spacecore AVS SDK, the one the scaling tests run as
//! replicas. It keeps nothing on a disk (it never calls `Node::load` or `Node::save`) and signs
//! no tasks (never `Node::sign_task`); its crate says so in `[package.metadata.spacecore]
//! stateless = true`, which `cargo xtask build-image --avs` records in the image's manifest.
//!
//! # API
//! - `GET /whoami`: `200` `{"instance":"<16 hex digits>","boot":B,"uptime_ms":N,"served":K}`.
//!   `instance` is drawn once per boot from the CPU's time-stamp counter when the first request
//!   comes: two replicas (or two boots of one) answer with different values, so a client can
//!   tell which replica answered. `served` counts this boot's requests.
//! - `POST /echo-attest`: `200` `{"instance","echo":"<body as text>","digest":"0x..","scheme",
//!   "signature"}`: the body back, the digest the operator key would sign for it
//!   ([`spacecore_avs::attestation_digest`] of `"stateless-echo"` and the body), and the
//!   attestation ([`spacecore_avs::Node::attest`]) when the node has a key; without one (a
//!   stateless node usually has no disk to hold it) `scheme` and `signature` are `null`.
//!
//! # Metrics
//! `stateless_echo_requests_total{path}`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use spacecore_avs::{Avs, Metrics, Node, Request, Response};

/// The AVS.
#[derive(Debug, Default)]
pub struct Echo {
    /// This boot's identity, drawn at the first request.
    instance: Option<u64>,
    /// `GET /whoami` answered.
    whoami: u64,
    /// `POST /echo-attest` answered.
    echoed: u64,
}

spacecore_avs::export!(Echo::default);

/// The routes.
const ROUTES: &[&str] = &["/whoami", "/echo-attest"];

/// A value that differs between boots: the time-stamp counter, mixed.
fn draw() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC reads a counter; it has no memory effect (the runtime reads it in ring 3).
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    let tsc = 0u64;
    let digest = spacecore_avs::keccak256(&tsc.to_le_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

impl Echo {
    fn instance(&mut self) -> String {
        format!("{:016x}", *self.instance.get_or_insert_with(draw))
    }
}

impl Avs for Echo {
    fn routes(&self) -> &'static [&'static str] {
        ROUTES
    }

    fn handle(&mut self, request: &Request<'_>, node: &mut dyn Node) -> Option<Response> {
        let instance = self.instance();
        match (request.method, request.path) {
            ("GET", "/whoami") => {
                self.whoami += 1;
                Some(Response::json(
                    200,
                    &serde_json::json!({
                        "instance": instance,
                        "boot": node.boot_count(),
                        "uptime_ms": node.now_ms(),
                        "served": self.whoami + self.echoed,
                    }),
                ))
            }
            ("POST", "/echo-attest") => {
                self.echoed += 1;
                let digest = spacecore_avs::attestation_digest("stateless-echo", request.body);
                let (scheme, signature) = match node.attest(request.body) {
                    Ok(s) => (Some(s.scheme), Some(spacecore_avs::to_hex(&s.bytes))),
                    Err(_) => (None, None),
                };
                Some(Response::json(
                    200,
                    &serde_json::json!({
                        "instance": instance,
                        "echo": String::from_utf8_lossy(request.body),
                        "digest": spacecore_avs::to_hex(&digest),
                        "scheme": scheme,
                        "signature": signature,
                    }),
                ))
            }
            (_, "/whoami" | "/echo-attest") => Some(Response::error(405, "method not allowed")),
            _ => None,
        }
    }

    fn metrics(&self, out: &mut Metrics) {
        out.counter(
            "stateless_echo_requests_total",
            "Requests answered by stateless-echo in this boot, by path.",
            &[(&[("path", "/whoami")], self.whoami), (&[("path", "/echo-attest")], self.echoed)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spacecore_avs::testing::MemoryNode;

    fn json(response: Response) -> serde_json::Value {
        assert_eq!(response.status, 200);
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn whoami_keeps_one_identity_per_boot_and_touches_no_disk() {
        let mut node = MemoryNode::default();
        let mut echo = Echo::default();
        let first = json(echo.handle(&Request::new("GET", "/whoami", b""), &mut node).unwrap());
        let second = json(echo.handle(&Request::new("GET", "/whoami", b""), &mut node).unwrap());
        assert_eq!(first["instance"], second["instance"]);
        assert_eq!(second["served"], 2);
        assert_eq!(node.saves, 0, "nothing was saved");
    }

    #[test]
    fn echo_attest_returns_the_body_and_its_digest() {
        let mut node = MemoryNode::default();
        let mut echo = Echo::default();
        let answer = json(echo.handle(&Request::new("POST", "/echo-attest", b"hello"), &mut node).unwrap());
        assert_eq!(answer["echo"], "hello");
        let digest = spacecore_avs::attestation_digest("stateless-echo", b"hello");
        assert_eq!(answer["digest"], spacecore_avs::to_hex(&digest));
        assert!(answer["signature"].is_string() || answer["signature"].is_null());
        assert_eq!(node.saves, 0, "nothing was saved");
        let wrong = echo.handle(&Request::new("GET", "/echo-attest", b""), &mut node).unwrap();
        assert_eq!(wrong.status, 405);
        assert!(echo.handle(&Request::new("GET", "/other", b""), &mut node).is_none());
    }
}
