//! `umoci`, an OCI image tool, for the test that hands it a layout written by
//! `spacecore image export` (an OCI tool other than ours must accept it). Debian's `umoci`
//! package depends only on libc6; only its `usr/bin/umoci` is extracted, at a pinned upstream version,
//! under `target/tools/` ([`DebTool`]). The tests find it through [`ENV`].

use std::path::PathBuf;

use anyhow::Result;

use crate::deb_tool::DebTool;

/// The variable through which the tests find the binary.
pub const ENV: &str = "SPACECORE_UMOCI";

/// Debian's `umoci` package.
const UMOCI: DebTool = DebTool { package: "umoci", upstream: "0.4.7", binary: "usr/bin/umoci" };

/// umoci of the pinned version.
pub fn provide() -> Result<PathBuf> {
    UMOCI.provide()
}
