//! Interoperability tests: this project's EigenLayer-facing code checked against the crates
//! EigenLayer publishes (eigensdk-rs), never only against itself. The crate has no code; its
//! tests are in `tests/`.
