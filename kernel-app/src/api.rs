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
//! The services: the runtime's `signer` (the operator key and the signing history; [`services`]),
//! then the linked AVS's own (`spacecore_avs::Avs::services`, never essential). The signer is
//! essential (down: unhealthy) only on an operator node, one with an aggregator.

use crate::status::{Health, Status};
pub use alloc::borrow::Cow;

use crate::avs::AvsNode;
use crate::http::Response;
use alloc::vec::Vec;

/// The AVS Node Specification version this API implements.
pub const SPEC_VERSION: &str = "v0.0.1";

/// A backing service of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its id in the API's paths.
    pub id: Cow<'static, str>,
    /// A short name.
    pub name: Cow<'static, str>,
    /// What it is.
    pub description: Cow<'static, str>,
    /// Its state now.
    pub status: Status,
    /// Whether the node is unhealthy (rather than partially healthy) while it is down.
    pub essential: bool,
}

/// The runtime's services now: `signer`.
pub fn services(avs: &AvsNode) -> Vec<Service> {
    let mut list = Vec::with_capacity(3);
    list.push(Service {
        id: "signer".into(),
        name: "Signer".into(),
        description: "The operator's BLS key, decrypted from the keystore on the disk, and the \
                      slashing-protection signing history: Initializing while the key loads, Up while \
                      tasks are signed, Down when they cannot be."
            .into(),
        status: avs.signer_status(),
        // Essential to an operator node (one with an aggregator, `[spec.avs]`); a spacecore
        // that is not one is only partially healthy without a key, not unhealthy.
        essential: avs.sends(),
    });
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
    json(404, &Message { message: "API version not found" })
}

/// `{"message": ...}`.
#[derive(serde::Serialize)]
struct Message<'a> {
    message: &'a str,
}

/// `GET /eigen/node`.
#[derive(serde::Serialize)]
struct NodeInfo<'a> {
    node_name: &'a str,
    spec_version: &'a str,
    node_version: &'a str,
}

/// One entry of `GET /eigen/node/services`.
#[derive(serde::Serialize)]
struct ServiceInfo<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    status: &'a str,
}

/// `GET /eigen/node/services`.
#[derive(serde::Serialize)]
struct Services<'a> {
    services: Vec<ServiceInfo<'a>>,
}

/// Answers `GET` of `resource` for the node called `node_name` with these `services`.
pub fn answer(resource: Resource<'_>, node_name: &str, services: &[Service]) -> Response {
    match resource {
        Resource::Node => json(
            200,
            &NodeInfo { node_name, spec_version: SPEC_VERSION, node_version: env!("CARGO_PKG_VERSION") },
        ),
        Resource::Health => empty(health(services).http_status()),
        Resource::Services => {
            let services = services
                .iter()
                .map(|s| ServiceInfo {
                    id: &s.id,
                    name: &s.name,
                    description: &s.description,
                    status: s.status.as_str(),
                })
                .collect();
            json(200, &Services { services })
        }
        Resource::ServiceHealth(id) => match services.iter().find(|s| s.id == id) {
            Some(s) => empty(s.status.http_status()),
            None => Response::error(404),
        },
    }
}

/// `value` as a JSON body (one line, ended by a newline) with `status`.
pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
    // Serialising these types of strings and numbers cannot fail.
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    Response::new(status, "application/json", body)
}

/// `{"error": message}` with `status`.
pub fn error(status: u16, message: &str) -> Response {
    #[derive(serde::Serialize)]
    struct Error<'a> {
        error: &'a str,
    }
    json(status, &Error { error: message })
}

/// A status with no body, as the health endpoints answer.
fn empty(status: u16) -> Response {
    Response::new(status, "text/plain; charset=utf-8", Vec::new())
}

#[cfg(test)]
mod tests;
