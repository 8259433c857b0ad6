//! update_many and fetch, Carbide against Python whisper 1.1.10 in the same run on the same files.
//!
//! Both sides create the same files (10s:1d,1m:7d, carbon's common layout), apply the same batches of
//! points with the same `now`, then fetch a day from every file. Only the loop is timed on each side
//! (Python's interpreter start-up is excluded). The files must come out byte-identical, which also
//! proves both did the same work.
//!
//! Run: `cargo bench --bench whisper` (needs `scripts/install-test-deps.sh`).
//! Knobs: BENCH_FILES (1000), BENCH_ROUNDS (20), BENCH_POINTS (60 points per update_many).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark reports by panicking

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use carbide_core::Retention;
use carbide_whisper::file::{self, CreateOptions};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n_files = knob("BENCH_FILES", 1000);
    let rounds = knob("BENCH_ROUNDS", 20);
    let per = knob("BENCH_POINTS", 60);
    let now0: i64 = 1_700_000_000;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/oracles/venv/bin/python");
    assert!(
        python.exists(),
        "Python whisper missing at {}: run scripts/install-test-deps.sh",
        python.display()
    );

    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("carbide"), tmp.path().join("python"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&theirs).unwrap();
    let layout = Retention::parse_list("10s:1d,1m:7d").unwrap();
    let paths: Vec<_> = (0..n_files).map(|i| format!("m{i:05}.wsp")).collect();
    for p in &paths {
        for dir in [&ours, &theirs] {
            file::create(&dir.join(p), &layout, &CreateOptions::default()).unwrap();
        }
    }

    // Carbide.
    let mut now = now0;
    let mut update_s = 0.0;
    for r in 0..rounds {
        let batch: Vec<(i64, f64)> = (0..per)
            .map(|j| {
                (
                    now - 10 * (per - 1 - j) as i64,
                    ((r * per + j) % 1000) as f64 / 7.0,
                )
            })
            .collect();
        let t = Instant::now();
        for p in &paths {
            file::update_many(&ours.join(p), &batch, now, false).unwrap();
        }
        update_s += t.elapsed().as_secs_f64();
        now += 10 * per as i64;
    }
    let t = Instant::now();
    let mut fetched = 0;
    for p in &paths {
        fetched += file::fetch(&ours.join(p), now - 86400, Some(now), now, None)
            .unwrap()
            .unwrap()
            .values
            .len();
    }
    let fetch_s = t.elapsed().as_secs_f64();

    // Python whisper, same files, same points.
    let script = root.join("benches/oracle/whisper_bench.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&theirs)
        .args([
            n_files.to_string(),
            rounds.to_string(),
            per.to_string(),
            now0.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (py_update_s, py_fetch_s) = (py["update_s"].as_f64().unwrap(), py["fetch_s"].as_f64().unwrap());
    assert_eq!(
        py["fetched"].as_u64().unwrap() as usize,
        fetched,
        "both sides must fetch the same points"
    );
    for p in &paths {
        assert!(
            std::fs::read(ours.join(p)).unwrap() == std::fs::read(theirs.join(p)).unwrap(),
            "{p}: the two implementations wrote different bytes"
        );
    }

    let points = (n_files * rounds * per) as f64;
    let rows = [
        ("update_many", points / update_s, points / py_update_s),
        (
            "fetch (1 day)",
            fetched as f64 / fetch_s,
            fetched as f64 / py_fetch_s,
        ),
    ];
    println!("whisper: {n_files} files (10s:1d,1m:7d), {rounds} update_many calls each of {per} points");
    println!(
        "{:<16} {:>16} {:>16} {:>8}",
        "operation", "carbide pts/s", "python pts/s", "ratio"
    );
    for (name, a, b) in rows {
        println!("{name:<16} {a:>16.0} {b:>16.0} {:>7.1}x", a / b);
    }
}
