//! `promtool`, Prometheus' own checker of the text exposition format, for the tests that check
//! metrics output. It ships in Debian's `prometheus` package; rather than install that package
//! (and its server and service), only its `usr/bin/promtool` is extracted, at a pinned upstream version,
//! under `target/tools/` ([`DebTool`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::deb_tool::DebTool;

/// Debian's `prometheus` package, for its promtool.
const PROMTOOL: DebTool = DebTool { package: "prometheus", upstream: "2.42.0", binary: "usr/bin/promtool" };

/// promtool of the pinned version.
pub fn provide() -> Result<PathBuf> {
    PROMTOOL.provide()
}
