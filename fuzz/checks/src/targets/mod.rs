//! The fuzz targets' bodies, one module per target of `fuzz/fuzz_targets/`: each `run` takes one
//! input and panics when a check fails. libFuzzer calls them (`cargo xtask fuzz`, nightly); the
//! workspace's tests replay every committed seed of `fuzz/corpus/` through them on stable.

pub mod avs_json;
pub mod block_request;
pub mod bls;
pub mod bn254;
pub mod history;
pub mod http_request;
pub mod hypercall;
pub mod intake;
pub mod keystore;
pub mod mmio;
pub mod net_rx;
pub mod net_tx;
pub mod spec;
pub mod store;
pub mod web3_keyfile;

/// A target's body: checks one input, panics when a check fails.
pub type Body = fn(&[u8]);

/// Every target: its name (a `[[bin]]` of `fuzz/Cargo.toml` and a directory of `fuzz/corpus/`)
/// and its body.
pub const ALL: [(&str, Body); 15] = [
    ("spec", spec::run),
    ("block_request", block_request::run),
    ("net_tx", net_tx::run),
    ("mmio", mmio::run),
    ("store", store::run),
    ("avs_json", avs_json::run),
    ("keystore", keystore::run),
    ("bls", bls::run),
    ("bn254", bn254::run),
    ("web3_keyfile", web3_keyfile::run),
    ("history", history::run),
    ("intake", intake::run),
    ("hypercall", hypercall::run),
    ("net_rx", net_rx::run),
    ("http_request", http_request::run),
];
