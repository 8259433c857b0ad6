//! Finding and running the real etsy statsd (node) for the differential tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

const HINT: &str = "run scripts/install-test-deps.sh (it installs node, npm and statsd@0.9.0)";

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed etsy statsd package directory; fails the test naming the installer if absent.
pub fn statsd_dir() -> PathBuf {
    let oracles = std::env::var_os("CARBIDE_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/oracles"));
    let dir = oracles.join("statsd/node_modules/statsd");
    assert!(
        dir.join("stats.js").is_file(),
        "etsy statsd 0.9.0 is missing at {}: {HINT}",
        dir.display()
    );
    dir
}

/// `node` from PATH; fails the test naming the installer if absent.
pub fn node() -> PathBuf {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "`node` is not on PATH: {HINT}");
    PathBuf::from("node")
}
