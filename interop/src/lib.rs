//! Interoperability tests: this project's EigenLayer-facing code checked against what EigenLayer
//! publishes (the eigensdk-rs crates, and the contracts' bytecode they carry, run on a local
//! Anvil), never only against itself. The tests are in `tests/`; this library holds the
//! test-chain tooling they share ([`chain`]: the pinned Anvil and solc-js; [`avs`]: EigenLayer's
//! registries and checker with this project's coordinator and TaskManager deployed, operators
//! registered; see `docs/chain.md`).

pub mod avs;
pub mod chain;
