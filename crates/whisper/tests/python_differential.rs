//! Differential tests against Python whisper 1.1.10: the same operations with the same `now`, applied
//! by both implementations, must give byte-identical files and equal fetch results; each reads the
//! other's files.
//!
//! The oracle is the venv that `scripts/install-test-deps.sh` creates (or `CARBIDE_WHISPER_PYTHON`).
//! Without it these tests fail, naming the script: they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use carbide_core::{AggregationMethod, Retention};
use carbide_whisper::file::{self, CreateOptions, ResizeOptions};
use carbide_whisper::{Fetched, WhisperFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CARBIDE_WHISPER_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/oracles/venv/bin/python");
    assert!(
        p.exists(),
        "Python whisper 1.1.10 (the oracle) is missing at {}: run scripts/install-test-deps.sh",
        p.display()
    );
    p
}

/// Runs every case's ops through Python whisper in one interpreter; returns the results per case.
fn oracle(cases: &[Value]) -> Vec<Vec<Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/whisper_oracle.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the python oracle");
    let input = serde_json::to_vec(cases).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python oracle failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fetched_json(f: &Option<Fetched>) -> Value {
    match f {
        None => Value::Null,
        Some(f) => json!([[f.from, f.until, f.step], f.values]),
    }
}

/// The layout as the retention list the library takes.
fn retentions(layout: &[(u32, u32)]) -> Vec<Retention> {
    layout
        .iter()
        .map(|&(s, p)| Retention {
            seconds_per_point: s,
            points: p,
        })
        .collect()
}

/// The longest retention of a layout, in seconds (whisper's maxRetention).
fn max_retention(layout: &[(u32, u32)]) -> i64 {
    layout
        .iter()
        .map(|&(s, p)| i64::from(s) * i64::from(p))
        .max()
        .unwrap_or(0)
}

/// A random archive list that passes validateArchiveList, small enough to wrap often.
fn random_layout(rng: &mut StdRng) -> Vec<(u32, u32)> {
    let n = rng.random_range(1..=4);
    let mut spp = [1u32, 5, 10, 60][rng.random_range(0..4)];
    let mut points = rng.random_range(4..=120u32);
    let mut out = vec![(spp, points)];
    for _ in 1..n {
        let factor = rng.random_range(2..=6u32);
        let next_spp = spp * factor;
        let min_points = spp * points / next_spp + 1;
        let next_points = rng.random_range(min_points.max(2)..=min_points + 60);
        if points < factor {
            break;
        }
        out.push((next_spp, next_points));
        spp = next_spp;
        points = next_points;
    }
    out
}

fn random_value(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..5) {
        0 => f64::from(rng.random_range(-100..100)),
        1 => rng.random_range(-1e6..1e6),
        2 => 0.0,
        3 => rng.random::<f64>() * 1e-3,
        _ => (rng.random_range(0..1000) as f64) / 7.0,
    }
}

/// A stream with duplicates, disorder, future points and points too old for any archive.
fn random_points(rng: &mut StdRng, now: i64, max_ret: i64) -> Vec<(i64, f64)> {
    let n = rng.random_range(0..=80);
    let mut pts: Vec<(i64, f64)> = Vec::with_capacity(n);
    for _ in 0..n {
        let ts = match rng.random_range(0..10) {
            0 => now + rng.random_range(1..=50),
            1 => now - max_ret - rng.random_range(0..=100),
            2 if !pts.is_empty() => pts[rng.random_range(0..pts.len())].0,
            3 => now - rng.random_range(0..=max_ret),
            _ => now - rng.random_range(0..=(max_ret / 4).max(1)),
        };
        pts.push((ts, random_value(rng)));
    }
    pts
}

const METHODS: [&str; 8] = [
    "average", "sum", "last", "max", "min", "avg_zero", "absmax", "absmin",
];

#[test]
fn random_streams_give_identical_files_and_fetches() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut ours: Vec<Vec<Value>> = Vec::new();
    let mut dirs = Vec::new();
    let seed: u64 = std::env::var("CARBIDE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261122);
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..150 {
        let py_dir = tmp.path().join(format!("py{case}"));
        let rs_dir = tmp.path().join(format!("rs{case}"));
        std::fs::create_dir_all(&py_dir).unwrap();
        std::fs::create_dir_all(&rs_dir).unwrap();
        let layout = random_layout(&mut rng);
        let method = METHODS[rng.random_range(0..8)];
        let xff = [0.0, 0.1, 0.5, 0.75, 1.0][rng.random_range(0..5)];
        let sparse = rng.random_bool(0.3);
        let max_ret = max_retention(&layout);
        let mut now: i64 = 1_700_000_000 + rng.random_range(0..100_000);

        let path = rs_dir.join("a.wsp");
        let archives = retentions(&layout);
        let opts = CreateOptions {
            x_files_factor: xff,
            aggregation: method.parse::<AggregationMethod>().unwrap(),
            sparse,
            ..CreateOptions::default()
        };
        let mut ops =
            vec![json!({"op": "create", "archives": layout, "xff": xff, "method": method, "sparse": sparse})];
        let mut results = vec![Value::Null];
        file::create(&path, &archives, &opts).unwrap();

        for _ in 0..rng.random_range(1..=8) {
            now += rng.random_range(0..=max_ret / 3);
            if rng.random_bool(0.2) {
                let ts = now - rng.random_range(-5..=max_ret + 5);
                let v = random_value(&mut rng);
                ops.push(json!({"op": "update", "value": v, "timestamp": ts, "now": now}));
                results.push(match file::update(&path, v, Some(ts), now, false) {
                    Ok(()) => Value::Null,
                    Err(carbide_whisper::Error::TimestampNotCovered(_)) => {
                        json!({"error": "TimestampNotCovered"})
                    }
                    Err(e) => panic!("update: {e}"),
                });
            } else {
                let pts = random_points(&mut rng, now, max_ret);
                ops.push(json!({"op": "update_many", "points": pts, "now": now}));
                file::update_many(&path, &pts, now, false).unwrap();
                results.push(Value::Null);
            }
        }
        // Fetches: the whole retention, random windows, from == until, the future, archive selection.
        let db = WhisperFile::open_path(&path, false, false).unwrap();
        let mut windows = vec![
            (now - max_ret, None),
            (now, Some(now)),
            (now + 10, Some(now + 20)),
        ];
        for _ in 0..6 {
            let a = now - rng.random_range(0..=max_ret + 50);
            let b = a + rng.random_range(0..=max_ret / 2);
            windows.push((a, Some(b)));
        }
        for (from, until) in windows {
            ops.push(json!({"op": "fetch", "from": from, "until": until, "now": now}));
            results.push(fetched_json(&db.fetch(from, until, now, None).unwrap()));
        }
        let step = layout[layout.len() - 1].0;
        ops.push(json!({"op": "fetch", "from": now - max_ret, "now": now, "archive": step}));
        results.push(fetched_json(
            &db.fetch(now - max_ret, None, now, Some(step)).unwrap(),
        ));
        drop(db);
        cases.push(json!({"dir": py_dir, "ops": ops}));
        ours.push(results);
        dirs.push((py_dir, rs_dir));
    }
    let theirs = oracle(&cases);
    for (i, ((py_dir, rs_dir), (o, t))) in dirs.iter().zip(ours.iter().zip(theirs.iter())).enumerate() {
        let a = std::fs::read(rs_dir.join("a.wsp")).unwrap();
        let b = std::fs::read(py_dir.join("a.wsp")).unwrap();
        assert!(a == b, "case {i}: files differ (ops: {})", cases[i]["ops"]);
        assert_eq!(o, t, "case {i}: results differ (ops: {})", cases[i]["ops"]);
    }

    // And the other direction: Python reads the files we wrote, we read the files Python wrote.
    let cross: Vec<Value> = dirs
        .iter()
        .enumerate()
        .map(|(i, (_, rs_dir))| {
            let now = cases[i]["ops"].as_array().unwrap().last().unwrap()["now"].clone();
            json!({"dir": rs_dir, "ops": [{"op": "fetch", "from": 0, "now": now}, {"op": "info"}]})
        })
        .collect();
    let theirs = oracle(&cross);
    for (i, (py_dir, _)) in dirs.iter().enumerate() {
        let now = cross[i]["ops"][0]["now"].as_i64().unwrap();
        let ours = file::fetch(&py_dir.join("a.wsp"), 0, None, now, None).unwrap();
        assert_eq!(theirs[i][0], fetched_json(&ours), "case {i}: cross-read differs");
        let info = file::info(&py_dir.join("a.wsp")).unwrap();
        assert_eq!(theirs[i][1]["aggregationMethod"], json!(info.aggregation.name()));
        assert_eq!(theirs[i][1]["maxRetention"], json!(info.max_retention));
        assert_eq!(
            theirs[i][1]["xFilesFactor"].as_f64().unwrap(),
            f64::from(info.x_files_factor)
        );
        assert_eq!(
            theirs[i][1]["archives"].as_array().unwrap().len(),
            info.archives.len()
        );
    }
}

#[test]
fn set_order_matches_cpython() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut cases = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..200 {
        let n = rng.random_range(0..400);
        let step = [1i64, 10, 60, 300, 3600, 86400][rng.random_range(0..6)];
        let base = 1_700_000_000 - 1_700_000_000 % step;
        let values: Vec<i64> = (0..n).map(|_| base + step * rng.random_range(0..600)).collect();
        cases.push(json!({"op": "pyset", "values": values}));
        inputs.push(values);
    }
    let theirs = oracle(&[json!({"dir": "/tmp", "ops": cases})]);
    for (values, t) in inputs.iter().zip(theirs[0].iter()) {
        let ours = carbide_whisper::pyset::iteration_order(values);
        assert_eq!(json!(ours), *t);
    }
}

#[test]
fn merge_diff_fill_set_aggregation_match() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(99);
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    let mut dirs = Vec::new();
    for case in 0..60 {
        let py_dir = tmp.path().join(format!("py{case}"));
        let rs_dir = tmp.path().join(format!("rs{case}"));
        std::fs::create_dir_all(&py_dir).unwrap();
        std::fs::create_dir_all(&rs_dir).unwrap();
        let layout = random_layout(&mut rng);
        let max_ret = max_retention(&layout);
        let archives = retentions(&layout);
        let now: i64 = 1_700_000_000 + rng.random_range(0..100_000);
        let mut ops = Vec::new();
        let mut results = Vec::new();
        for f in ["a.wsp", "b.wsp", "c.wsp"] {
            ops.push(json!({"op": "create", "file": f, "archives": layout}));
            file::create(&rs_dir.join(f), &archives, &CreateOptions::default()).unwrap();
            results.push(Value::Null);
            let pts = random_points(&mut rng, now, max_ret);
            ops.push(json!({"op": "update_many", "file": f, "points": pts, "now": now}));
            file::update_many(&rs_dir.join(f), &pts, now, false).unwrap();
            results.push(Value::Null);
        }
        let later = now + rng.random_range(0..=max_ret / 4);
        ops.push(json!({"op": "diff", "file": "b.wsp", "other": "a.wsp", "now": later}));
        let d = file::diff(&rs_dir.join("a.wsp"), &rs_dir.join("b.wsp"), false, None, later).unwrap();
        results.push(json!(
            d.iter()
                .map(|a| json!([a.archive, a.diffs, a.total]))
                .collect::<Vec<_>>()
        ));
        ops.push(
            json!({"op": "diff", "file": "b.wsp", "other": "a.wsp", "now": later, "ignore_empty": true}),
        );
        let d = file::diff(&rs_dir.join("a.wsp"), &rs_dir.join("b.wsp"), true, None, later).unwrap();
        results.push(json!(
            d.iter()
                .map(|a| json!([a.archive, a.diffs, a.total]))
                .collect::<Vec<_>>()
        ));

        let (tf, tt) = if rng.random_bool(0.5) {
            (None, None)
        } else {
            (Some(now - max_ret / 2), Some(now))
        };
        ops.push(json!({"op": "merge", "file": "b.wsp", "from_file": "a.wsp", "time_from": tf, "time_to": tt, "now": later}));
        file::merge(&rs_dir.join("a.wsp"), &rs_dir.join("b.wsp"), tf, tt, later, false).unwrap();
        results.push(Value::Null);

        ops.push(json!({"op": "fill", "file": "c.wsp", "src": "a.wsp", "now": later}));
        file::fill(&rs_dir.join("a.wsp"), &rs_dir.join("c.wsp"), later, false).unwrap();
        results.push(Value::Null);

        let method = METHODS[rng.random_range(0..8)];
        ops.push(json!({"op": "set_agg", "file": "a.wsp", "method": method, "xff": 0.25}));
        let old =
            file::set_aggregation_method(&rs_dir.join("a.wsp"), method.parse().unwrap(), Some(0.25), false)
                .unwrap();
        results.push(json!(old.name()));
        ops.push(json!({"op": "set_xff", "file": "a.wsp", "xff": 0.75}));
        results.push(json!(f64::from(
            file::set_xfilesfactor(&rs_dir.join("a.wsp"), 0.75, false).unwrap()
        )));

        cases.push(json!({"dir": py_dir, "ops": ops}));
        ours.push(results);
        dirs.push((py_dir, rs_dir));
    }
    let theirs = oracle(&cases);
    for (i, ((py_dir, rs_dir), (o, t))) in dirs.iter().zip(ours.iter().zip(theirs.iter())).enumerate() {
        assert_eq!(o, t, "case {i}: results differ (ops: {})", cases[i]["ops"]);
        for f in ["a.wsp", "b.wsp", "c.wsp"] {
            let a = std::fs::read(rs_dir.join(f)).unwrap();
            let b = std::fs::read(py_dir.join(f)).unwrap();
            assert!(a == b, "case {i}: {f} differs (ops: {})", cases[i]["ops"]);
        }
    }
}

#[test]
fn resize_matches_whisper_resize() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let mut cases = Vec::new();
    let mut dirs = Vec::new();
    for case in 0..40 {
        let py_dir = tmp.path().join(format!("py{case}"));
        let rs_dir = tmp.path().join(format!("rs{case}"));
        std::fs::create_dir_all(&py_dir).unwrap();
        std::fs::create_dir_all(&rs_dir).unwrap();
        let layout = random_layout(&mut rng);
        let new_layout = random_layout(&mut rng);
        let max_ret = max_retention(&layout);
        let archives = retentions(&layout);
        let new_archives = retentions(&new_layout);
        let now: i64 = 1_700_000_000 + rng.random_range(0..100_000);
        let aggregate = rng.random_bool(0.5);
        let method = if rng.random_bool(0.5) {
            Some(METHODS[rng.random_range(0..8)])
        } else {
            None
        };
        let xff = if rng.random_bool(0.5) { Some(0.3) } else { None };
        let pts = random_points(&mut rng, now, max_ret);
        file::create(&rs_dir.join("a.wsp"), &archives, &CreateOptions::default()).unwrap();
        file::update_many(&rs_dir.join("a.wsp"), &pts, now, false).unwrap();
        let opts = ResizeOptions {
            x_files_factor: xff,
            aggregation: method.map(|m| m.parse().unwrap()),
            aggregate,
        };
        file::resize_into(
            &rs_dir.join("a.wsp"),
            &rs_dir.join("n.wsp"),
            &new_archives,
            &opts,
            now,
        )
        .unwrap();
        let defs: Vec<String> = new_layout.iter().map(|(s, p)| format!("{s}:{p}")).collect();
        cases.push(json!({"dir": py_dir, "ops": [
            {"op": "create", "archives": layout},
            {"op": "update_many", "points": pts, "now": now},
            {"op": "resize", "archives": defs, "newfile": "n.wsp", "aggregate": aggregate,
             "method": method, "xff": xff, "now": now},
        ]}));
        dirs.push((py_dir, rs_dir));
    }
    let theirs = oracle(&cases);
    for (i, (py_dir, rs_dir)) in dirs.iter().enumerate() {
        assert!(
            theirs[i].iter().all(Value::is_null),
            "case {i}: python failed: {:?}",
            theirs[i]
        );
        let a = std::fs::read(rs_dir.join("n.wsp")).unwrap();
        let b = std::fs::read(py_dir.join("n.wsp")).unwrap();
        assert!(a == b, "case {i}: resized files differ ({})", cases[i]);
    }
}
