//! Runs graphite-web's own code (Debian graphite-web under /usr/bin/python3) on batches of inputs.
//!
//! One python process per test: the script reads a JSON list on stdin and prints a JSON list.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

/// The interpreter Debian's graphite-web is installed for.
pub const PYTHON: &str = "/usr/bin/python3";

/// Lines every helper starts with: graphite-web's own default settings, logging to stderr, no
/// settings module, database or temp directory.
pub const PRELUDE: &str = r#"
import json, sys, warnings
warnings.simplefilter("ignore")
from django.conf import settings
import graphite.settings as graphite_defaults
settings.configure(default_settings=graphite_defaults, UTF8_METRICS=False, TIME_ZONE='UTC',
                   LOG_FILE_INFO='-', LOG_FILE_EXCEPTION='-', LOG_FILE_CACHE='-', LOG_FILE_RENDERING='-')
"#;

/// Runs `script` (after [`PRELUDE`]) with `input` as JSON on stdin and parses its stdout as JSON.
/// Fails (never skips) when graphite-web is not installed.
pub fn run_graphite(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let probe = Command::new(PYTHON)
        .args(["-c", "import graphite.render.attime, pyparsing, pytz"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "graphite-web is not importable by {PYTHON} ({}); run scripts/install-test-deps.sh",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            panic!("{PYTHON} is missing ({e}); run scripts/install-test-deps.sh to install graphite-web")
        }
    }
    let mut child = Command::new(PYTHON)
        .args(["-c", &format!("{PRELUDE}\n{script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(std::env::temp_dir())
        .spawn()
        .expect("spawn python");
    let data = serde_json::to_vec(input).expect("encode input");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        stdin.write_all(&data).expect("write to python");
    });
    let out = child.wait_with_output().expect("python output");
    writer.join().expect("writer thread");
    assert!(
        out.status.success(),
        "python helper failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// A small deterministic generator, so that every run compares the same random-looking inputs.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            | 1)
    }

    /// The next number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// A random element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
