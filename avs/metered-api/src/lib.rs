//! metered-api: an AVS of the API-service shape, written on the Spacecore AVS SDK only.
//!
//! Consumers buy calls from the AVS and get a **purchase token**: an id and a quota, signed by
//! the AVS's authority (the Ethereum key whose address the spec names in
//! `spec.avs.task_signer`). Each call presents the token and a nonce; the node checks the token,
//! counts the call against its quota **on the disk before answering**, computes the answer and
//! signs it with the operator's key. The ledger of usage survives restarts: a restart neither
//! forgets a call nor counts one twice.
//!
//! # API
//! `POST /api/call` with
//! `{"token":{"id":"0x<32 bytes>","quota":N,"signature":"0x<65 bytes>"},"nonce":K,"input":"..."}`:
//! - `200` `{"token","nonce","used","quota","output","repeated","operator_id","scheme","signature"}`:
//!   `output` is `0x` and keccak-256 of the input (the service this example sells);
//!   `signature` is the operator's attestation ([`spacecore_avs::Node::attest`]) of
//!   [`call_message`]. A call repeated with the same nonce and input (a retry after a lost
//!   answer) is answered again, `repeated: true`, and not counted again;
//! - `400` malformed; `401` a token the authority did not sign; `409` a nonce not above the
//!   token's last one (a replayed call), or the last nonce with another input; `429` the quota is
//!   spent; `507` the ledger is full ([`ledger::MAX_TOKENS`] tokens); `503` the operator key is
//!   not loaded, or the ledger on the disk cannot be read (nothing is served rather than usage
//!   forgotten); `500` the usage could not be written (the call is not counted).
//!
//! `GET /api/tokens/0x<id>`: `200` `{"token","used","nonce"}`, `404` for a token never used.
//!
//! # Messages
//! - The token the authority signs (EIP-191 `personal_sign`): [`token_message`] =
//!   `"metered-api token v1" ‖ id ‖ quota (u32, big-endian)`.
//! - The answer the operator attests: [`call_message`] = `"metered-api call v1" ‖ id ‖ nonce
//!   (u64, big-endian) ‖ keccak256(input) ‖ keccak256(output)`; the key signs
//!   `spacecore_avs::attestation_digest("metered-api", message)`.
//!
//! # Metrics
//! `metered_api_calls_total{outcome}`, `metered_api_tokens`, and `metered_api_performance_score`:
//! the share of valid calls the node served (served / (served + refused by the node's own
//! fault: key not loaded, ledger unreadable or unwritable)), 1 before any.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod ledger;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ledger::{Entry, Ledger};
use serde::{Deserialize, Serialize};
use spacecore_avs::{Avs, Health, Metrics, Node, Request, Response, Service, from_hex, keccak256, to_hex};

/// Longest input of a call.
pub const MAX_INPUT: usize = 64 * 1024;

/// The message the authority signs for token `id` with `quota` calls.
pub fn token_message(id: &[u8; 32], quota: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + 32 + 4);
    m.extend_from_slice(b"metered-api token v1");
    m.extend_from_slice(id);
    m.extend_from_slice(&quota.to_be_bytes());
    m
}

/// The message the operator attests for a call.
pub fn call_message(id: &[u8; 32], nonce: u64, input: &[u8], output: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(19 + 32 + 8 + 64);
    m.extend_from_slice(b"metered-api call v1");
    m.extend_from_slice(id);
    m.extend_from_slice(&nonce.to_be_bytes());
    m.extend_from_slice(&keccak256(input));
    m.extend_from_slice(&keccak256(output));
    m
}

/// Outcomes of calls, as the metrics label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    Repeated,
    BadRequest,
    BadToken,
    Replayed,
    Exhausted,
    Full,
    Unavailable,
    StorageError,
}

impl Outcome {
    const ALL: [Outcome; 9] = [
        Outcome::Served,
        Outcome::Repeated,
        Outcome::BadRequest,
        Outcome::BadToken,
        Outcome::Replayed,
        Outcome::Exhausted,
        Outcome::Full,
        Outcome::Unavailable,
        Outcome::StorageError,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Repeated => "repeated",
            Outcome::BadRequest => "bad_request",
            Outcome::BadToken => "bad_token",
            Outcome::Replayed => "replayed",
            Outcome::Exhausted => "exhausted",
            Outcome::Full => "full",
            Outcome::Unavailable => "unavailable",
            Outcome::StorageError => "storage_error",
        }
    }

    fn status(self) -> u16 {
        match self {
            Outcome::Served | Outcome::Repeated => 200,
            Outcome::BadRequest => 400,
            Outcome::BadToken => 401,
            Outcome::Replayed => 409,
            Outcome::Exhausted => 429,
            Outcome::Full => 507,
            Outcome::Unavailable => 503,
            Outcome::StorageError => 500,
        }
    }
}

/// The ledger as loaded at start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not started yet.
    Starting,
    /// Loaded.
    Ready(Ledger),
    /// The record on the disk cannot be read: why.
    Unusable(String),
}

/// The AVS.
#[derive(Debug)]
pub struct MeteredApi {
    state: State,
    counts: [u64; Outcome::ALL.len()],
}

impl Default for MeteredApi {
    fn default() -> Self {
        MeteredApi { state: State::Starting, counts: [0; Outcome::ALL.len()] }
    }
}

spacecore_avs::export!(MeteredApi::default);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    id: String,
    quota: u32,
    signature: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    token: Token,
    nonce: u64,
    input: String,
}

#[derive(Serialize)]
struct Answer {
    token: String,
    nonce: u64,
    used: u32,
    quota: u32,
    output: String,
    repeated: bool,
    operator_id: String,
    scheme: &'static str,
    signature: String,
}

impl MeteredApi {
    fn refuse(&mut self, outcome: Outcome, why: &str) -> Response {
        self.counts[outcome as usize] += 1;
        Response::error(outcome.status(), why)
    }

    fn call(&mut self, body: &[u8], node: &mut dyn Node) -> Response {
        let call = match serde_json::from_slice::<Call>(body) {
            Ok(call) => call,
            Err(e) => return self.refuse(Outcome::BadRequest, &format!("not a call: {e}")),
        };
        let Some(id) = from_hex(&call.token.id).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
            return self.refuse(Outcome::BadRequest, "token.id: not 0x and 64 hex digits");
        };
        if call.input.len() > MAX_INPUT {
            return self.refuse(Outcome::BadRequest, "input: over 64 KiB");
        }
        if call.nonce == 0 {
            return self.refuse(Outcome::BadRequest, "nonce: calls are numbered from 1");
        }
        let ledger = match &self.state {
            State::Ready(ledger) => ledger,
            State::Starting => return self.refuse(Outcome::Unavailable, "the ledger is not loaded yet"),
            State::Unusable(why) => {
                let why = format!("the usage ledger on the disk cannot be read ({why}): no call is served");
                return self.refuse(Outcome::Unavailable, &why);
            }
        };
        let signature = from_hex(&call.token.signature).unwrap_or_default();
        if !node.verify_authority(&token_message(&id, call.token.quota), &signature) {
            return self.refuse(Outcome::BadToken, "the token is not signed by this AVS's authority");
        }
        let Some(operator) = node.operator() else {
            return self.refuse(Outcome::Unavailable, "the operator key is not loaded: no call is counted");
        };
        let input_hash: [u8; 8] = keccak256(call.input.as_bytes())[..8].try_into().expect("8 bytes");
        let quota = call.token.quota;
        let (entry, repeated) = match ledger.get(&id) {
            Some(last) if call.nonce == last.nonce && last.input == input_hash => (*last, true),
            Some(last) if call.nonce <= last.nonce => {
                let why = format!("nonce {} is not above the token's last call ({})", call.nonce, last.nonce);
                return self.refuse(Outcome::Replayed, &why);
            }
            Some(last) if last.used >= quota => {
                return self.refuse(Outcome::Exhausted, &format!("the token's {quota} calls are spent"));
            }
            Some(last) => {
                (Entry { used: last.used + 1, nonce: call.nonce, input: input_hash, ..*last }, false)
            }
            None if quota == 0 => return self.refuse(Outcome::Exhausted, "the token's 0 calls are spent"),
            None => (Entry { id, used: 1, nonce: call.nonce, input: input_hash }, false),
        };
        if !repeated {
            let Some(next) = ledger.with(entry) else {
                return self.refuse(Outcome::Full, "the ledger holds as many tokens as it can");
            };
            // The call is counted on the disk before anything answers it.
            if let Err(e) = node.save(&next.encode()) {
                return self.refuse(Outcome::StorageError, &format!("the call could not be counted: {e}"));
            }
            self.state = State::Ready(next);
        }
        let output = to_hex(&keccak256(call.input.as_bytes()));
        let signature =
            match node.attest(&call_message(&id, call.nonce, call.input.as_bytes(), output.as_bytes())) {
                Ok(s) => s,
                Err(e) => {
                    // Counted: the same call again (same nonce and input) is answered, not counted.
                    return self
                        .refuse(Outcome::Unavailable, &format!("the answer could not be signed: {e}"));
                }
            };
        self.counts[if repeated { Outcome::Repeated } else { Outcome::Served } as usize] += 1;
        Response::json(
            200,
            &Answer {
                token: to_hex(&id),
                nonce: call.nonce,
                used: entry.used,
                quota,
                output,
                repeated,
                operator_id: to_hex(&operator.id),
                scheme: signature.scheme,
                signature: to_hex(&signature.bytes),
            },
        )
    }

    fn usage(&self, id: &str) -> Response {
        #[derive(Serialize)]
        struct Usage {
            token: String,
            used: u32,
            nonce: u64,
        }
        let Some(id) = from_hex(id).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
            return Response::error(400, "not 0x and 64 hex digits");
        };
        match &self.state {
            State::Ready(ledger) => match ledger.get(&id) {
                Some(e) => Response::json(200, &Usage { token: to_hex(&id), used: e.used, nonce: e.nonce }),
                None => Response::error(404, "this token was never used here"),
            },
            _ => Response::error(503, "the ledger is not loaded"),
        }
    }

    /// Served calls over valid calls the node itself failed or served.
    fn score(&self) -> f64 {
        let served = (self.counts[Outcome::Served as usize] + self.counts[Outcome::Repeated as usize]) as f64;
        let failed =
            (self.counts[Outcome::Unavailable as usize] + self.counts[Outcome::StorageError as usize]) as f64;
        if served + failed == 0.0 { 1.0 } else { served / (served + failed) }
    }
}

impl Avs for MeteredApi {
    fn start(&mut self, node: &mut dyn Node) {
        self.state = match node.load() {
            Ok(record) => match Ledger::decode(record.as_deref()) {
                Ok(ledger) => State::Ready(ledger),
                Err(e) => State::Unusable(e.0.into()),
            },
            Err(e) => State::Unusable(format!("{e}")),
        };
    }

    fn routes(&self) -> &'static [&'static str] {
        &["/api/call", "/api/tokens/"]
    }

    fn handle(&mut self, request: &Request<'_>, node: &mut dyn Node) -> Option<Response> {
        Some(match (request.method, request.path) {
            ("POST", "/api/call") => self.call(request.body, node),
            (_, "/api/call") => Response::error(405, "POST only"),
            ("GET", path) => self.usage(path.strip_prefix("/api/tokens/")?),
            _ => Response::error(405, "GET only"),
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let samples: Vec<([(&str, &str); 1], u64)> =
            Outcome::ALL.iter().map(|o| ([("outcome", o.label())], self.counts[*o as usize])).collect();
        let samples: Vec<(&[(&str, &str)], u64)> = samples.iter().map(|(l, v)| (&l[..], *v)).collect();
        out.counter("metered_api_calls_total", "Calls of POST /api/call, by outcome.", &samples);
        let tokens = match &self.state {
            State::Ready(ledger) => ledger.len() as f64,
            _ => 0.0,
        };
        out.gauge("metered_api_tokens", "Purchase tokens in the usage ledger.", &[(&[], tokens)]);
        out.gauge(
            "metered_api_performance_score",
            "Share of valid calls served rather than failed by the node (1 before any).",
            &[(&[], self.score())],
        );
    }

    fn services(&self) -> Vec<Service> {
        let status = match &self.state {
            State::Starting => Health::Initializing,
            State::Ready(_) => Health::Up,
            State::Unusable(_) => Health::Down,
        };
        alloc::vec![Service {
            id: "ledger".into(),
            name: "Usage ledger".into(),
            description: "The purchase tokens' usage on the disk: Down when the record cannot be read \
                          (then no call is served)."
                .into(),
            status,
        }]
    }
}

#[cfg(test)]
mod tests;
