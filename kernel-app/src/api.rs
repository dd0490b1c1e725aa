//! The EigenLayer AVS Node API (spec version [`SPEC_VERSION`]) under `/eigen`:
//!
//! - `GET /eigen/node`: `200` with `{"node_name", "spec_version", "node_version"}`;
//! - `GET /eigen/node/health`: the node's [`Health`] as a status code (200, 206, 503), no body;
//! - `GET /eigen/node/services`: `200` with `{"services": [{"id", "name", "description",
//!   "status"}]}`, `status` being `Up`, `Down` or `Initializing`;
//! - `GET /eigen/node/services/{id}/health`: the service's [`Status`] as a status code (200, 503,
//!   206), 404 for an id that is not listed.
//!
//! A `version` query parameter other than the one served (`0.0.1` or `v0.0.1`) is answered 404
//! with `{"message": "API version not found"}`.
//!
//! The services ([`services`]): `signer` (the operator key and the signing history) and, when an
//! aggregator is configured, `aggregator` (whether the last call or probe reached it), and when
//! tasks are read from the chain, `ethereum` (whether the Ethereum node answers). The
//! signer is essential (down: unhealthy) only on an operator node, one with an aggregator.

pub use crate::status::{Health, Status};

use crate::avs::AvsNode;
use crate::chain::Watcher;
use crate::http::Response;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// The AVS Node Specification version this API implements.
pub const SPEC_VERSION: &str = "v0.0.1";

/// A backing service of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Its id in the API's paths.
    pub id: &'static str,
    /// A short name.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Its state now.
    pub status: Status,
    /// Whether the node is unhealthy (rather than partially healthy) while it is down.
    pub essential: bool,
}

/// The node's services now: `signer`, then `aggregator` when one is configured, then
/// `ethereum` when tasks are read from the chain.
pub fn services(avs: &AvsNode, chain: Option<&Watcher>) -> Vec<Service> {
    let mut list = Vec::with_capacity(3);
    list.push(Service {
        id: "signer",
        name: "Signer",
        description: "The operator's BLS key, decrypted from the keystore on the disk, and the \
                      slashing-protection signing history: Initializing while the key loads, Up while \
                      tasks are signed, Down when they cannot be.",
        status: avs.signer_status(),
        // Essential to an operator node (one with an aggregator, `[spec.avs]`); a spacecore
        // that is not one is only partially healthy without a key, not unhealthy.
        essential: avs.sends(),
    });
    if let Some(status) = avs.aggregator_status() {
        list.push(Service {
            id: "aggregator",
            name: "Aggregator",
            description: "The AVS aggregator's JSON-RPC server, where signed responses go: Up when the \
                          last call or probe reached it, Down when it failed, Initializing before any.",
            status,
            essential: false,
        });
    }
    if let Some(chain) = chain {
        list.push(Service {
            id: "ethereum",
            name: "Ethereum",
            description: "The Ethereum node the AVS's tasks are read from (NewTaskCreated logs of the \
                          TaskManager): Initializing before its first answer, Up while it answers, Down \
                          when a call failed (retried with backoff); GET /spacecore/chain says why.",
            status: chain.status(),
            essential: false,
        });
    }
    list
}

/// The node's health from its services: unhealthy if an essential one is down, partially
/// healthy if one is initializing or another is down, else healthy.
pub fn health(services: &[Service]) -> Health {
    if services.iter().any(|s| s.essential && s.status == Status::Down) {
        Health::Unhealthy
    } else if services.iter().any(|s| s.status != Status::Up) {
        Health::PartiallyHealthy
    } else {
        Health::Healthy
    }
}

/// A resource of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/eigen/node`.
    Node,
    /// `/eigen/node/health`.
    Health,
    /// `/eigen/node/services`.
    Services,
    /// `/eigen/node/services/{id}/health`, whatever the id.
    ServiceHealth(&'a str),
}

/// The resource at `path` (no query), if the API has one there; service ids are not checked.
pub fn resource(path: &str) -> Option<Resource<'_>> {
    match path {
        "/eigen/node" => Some(Resource::Node),
        "/eigen/node/health" => Some(Resource::Health),
        "/eigen/node/services" => Some(Resource::Services),
        _ => {
            let id = path.strip_prefix("/eigen/node/services/")?.strip_suffix("/health")?;
            (!id.is_empty() && !id.contains('/')).then_some(Resource::ServiceHealth(id))
        }
    }
}

/// Whether the `version` parameter of `query`, if any, names the version served.
pub fn version_supported(query: Option<&str>) -> bool {
    let Some(query) = query else { return true };
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("version="))
        .all(|v| v == SPEC_VERSION || v == &SPEC_VERSION[1..])
}

/// 404 for a `version` the API does not serve.
pub fn version_not_found() -> Response {
    json(404, String::from("{\"message\":\"API version not found\"}\n"))
}

/// Answers `GET` of `resource` for the node called `node_name` with these `services`.
pub fn answer(resource: Resource<'_>, node_name: &str, services: &[Service]) -> Response {
    match resource {
        Resource::Node => {
            let mut out = String::from("{\"node_name\":");
            json_string(&mut out, node_name);
            out.push_str(",\"spec_version\":");
            json_string(&mut out, SPEC_VERSION);
            out.push_str(",\"node_version\":");
            json_string(&mut out, env!("CARGO_PKG_VERSION"));
            out.push_str("}\n");
            json(200, out)
        }
        Resource::Health => empty(health(services).http_status()),
        Resource::Services => {
            let mut out = String::from("{\"services\":[");
            for (i, s) in services.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"id\":");
                json_string(&mut out, s.id);
                out.push_str(",\"name\":");
                json_string(&mut out, s.name);
                out.push_str(",\"description\":");
                json_string(&mut out, s.description);
                out.push_str(",\"status\":");
                json_string(&mut out, s.status.as_str());
                out.push('}');
            }
            out.push_str("]}\n");
            json(200, out)
        }
        Resource::ServiceHealth(id) => match services.iter().find(|s| s.id == id) {
            Some(s) => empty(s.status.http_status()),
            None => Response::error(404),
        },
    }
}

fn json(status: u16, body: String) -> Response {
    Response::new(status, "application/json", body.into_bytes())
}

/// A status with no body, as the health endpoints answer.
fn empty(status: u16) -> Response {
    Response::new(status, "text/plain; charset=utf-8", Vec::new())
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
