//! The incredible-squaring AVS aggregator: it generates tasks and sends them to the operators'
//! nodes ([`generator`]), takes their signed responses over JSON-RPC 2.0 ([`rpc`]), verifies and
//! aggregates the BLS signatures (BN254, EigenLayer's scheme, or BLS12-381) per quorum until
//! every quorum of a task reaches its threshold ([`service`]), logs every decision ([`decision_log`]) and exposes Prometheus metrics
//! ([`metrics`]). [`app::Aggregator`] runs all of it; `docs/aggregator.md` is the manual.
//!
//! Everything on the wire and all cryptography comes from `avs-protocol`.
#![forbid(unsafe_code)]

pub mod app;
pub mod chain;
pub mod decision;
pub mod decision_log;
pub mod generator;
pub mod http;
pub mod metrics;
pub mod operators;
pub mod rpc;
pub mod service;

pub use app::{Aggregator, Config, parse_duration};
pub use chain::ChainConfig;
pub use decision_log::DecisionLog;
pub use generator::{GeneratorConfig, Numbers};
pub use operators::{OperatorSet, OperatorSetError};
pub use service::{
    Aggregate, AggregatedResponse, AggregationService, Bn254Aggregate, QuorumStake, Rejection, TaskError,
};
