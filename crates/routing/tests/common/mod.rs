//! Shared by the differential tests: finding the real programs and making metric names.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Fails (never skips) when a real program the test compares against is missing.
pub fn require(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} ({what}) is missing: the differential tests compare against it. \
         Install it with scripts/install-test-deps.sh"
    );
}

/// Pieces metric names are made of: plain components most of the time, and now and then the
/// characters that break naive implementations (quotes, backslashes, multi-byte UTF-8).
const ODD: &[&str] = &[
    "-", "_", ":", "#", "'", "\"", "\\", "=", ";", "%", "(", ")", "[", "]", "{", "}", "é", "ü", "ß", "中",
    "文", "😀", "\u{a0}", "\u{200b}", "~", "!", "$", "&", "*", "+", ",", "/", "<", ">", "?", "@", "^", "|",
];

/// `count` distinct metric names as UTF-8 text without whitespace, deterministic for a seed.
pub fn utf8_names(seed: u64, count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let parts = rng.random_range(1..=6);
        let mut name = String::new();
        for p in 0..parts {
            if p > 0 {
                name.push('.');
            }
            let len = rng.random_range(1..=12);
            for _ in 0..len {
                if rng.random_bool(0.9) {
                    let c = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        [rng.random_range(0..62)];
                    name.push(char::from(c));
                } else {
                    name.push_str(ODD[rng.random_range(0..ODD.len())]);
                }
            }
        }
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

/// `count` distinct names as raw bytes for carbon-c-relay's test mode: anything but NUL and
/// whitespace (which ends a name there), including bytes >= 0x80 that are not valid UTF-8.
pub fn byte_names(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let mut name: Vec<u8> = if rng.random_bool(0.7) {
            utf8_names(rng.random(), 1).remove(0).into_bytes()
        } else {
            (0..rng.random_range(1..=40))
                .map(|_| {
                    loop {
                        let b: u8 = rng.random();
                        if b != 0 && !b.is_ascii_whitespace() && b != 0x0b {
                            break b;
                        }
                    }
                })
                .collect()
        };
        // The ODD pieces include U+00A0, whose UTF-8 bytes are not whitespace to C's isspace: fine.
        name.retain(|b| !b.is_ascii_whitespace() && *b != 0x0b && *b != 0);
        if !name.is_empty() && seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}
