//! `carbide cache` against the real carbon-cache (Debian graphite-carbon 1.1.7): the same
//! carbon.conf, storage-schemas.conf and storage-aggregation.conf (throttles lifted), the same
//! line and pickle streams (bad lines, NaN, `-1` timestamps, tagged names, duplicate and
//! out-of-order timestamps), then the two whisper trees compared: the same relative file set
//! (including `_tagged/` hashed paths), the same fetch results for every file at a fixed `now`, and
//! the same bytes for every file whose points arrived in one write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::time::Duration;

use cache_common::{Kind, Server, Ts, fetch_all, files, pickle_frame, send, wait_until};

/// The line stream; `{T}` is a minute-aligned timestamp a few minutes ago.
fn line_stream(t: i64) -> String {
    let mut s = String::new();
    let mut add = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    add(format!("diff.plain.a 1.5 {t}"));
    add(format!("diff.plain.b -42 {}", t + 1));
    add(format!("diff.plain.sci 1e3 {}", t + 2));
    add(format!("diff.plain.floatts 7.25 {}.9", t + 3));
    // duplicate timestamps: the last value wins in both (cache dict, then whisper overwrite)
    add(format!("diff.dup 1 {t}"));
    add(format!("diff.dup 2 {t}"));
    add(format!("diff.dup 3 {t}"));
    // out of order
    for (i, dt) in [5, 1, 4, 2, 3, 0].iter().enumerate() {
        add(format!("diff.ooo {i} {}", t + dt));
    }
    // NaN values are dropped by both receivers
    add(format!("diff.nan nan {t}"));
    add(format!("diff.nan NaN {}", t + 1));
    add(format!("diff.nanmix 1 {t}"));
    add(format!("diff.nanmix nan {}", t + 1));
    // tagged names: normalised (tags sorted) and stored under _tagged/ by hash
    add(format!("diff.tagged;b=c;a=x 5 {t}"));
    add(format!("diff.tagged;a=x;b=c 6 {}", t + 1));
    add(format!("diff.tag2;env=prod 9 {t}"));
    // bad lines: no timestamp, not a number, garbage, empty, too many fields
    add("diff.bad.nots 1".into());
    add(format!("diff.bad.nan notanumber {t}"));
    add("garbage".into());
    add(String::new());
    add(format!("diff.bad.fields 1 {t} extra"));
    add(format!("diff.bad.ts 1 notatime{t}"));
    // too old for the retention (1 day max): dropped by whisper, but the file is still created
    add(format!("diff.old 1 {}", t - 200_000));
    // aggregation between archives: .count (sum, xff 0), .min, .max (xff 0.1), average (xff 0.5)
    for i in 0..60 {
        add(format!("diff.agg.count {} {}", i, t + i));
        add(format!("diff.agg.min {} {}", 100 - i, t + i));
        add(format!("diff.agg.max {} {}", i * 2, t + i));
        if i % 3 != 0 {
            add(format!("diff.agg.avg {} {}", i, t + i));
        }
        if i % 5 == 0 {
            add(format!("diff.agg.sparse {} {}", i, t + i));
        }
    }
    // the last line has no newline: carbon's LineOnlyReceiver drops it at end of stream (a
    // sender cut off mid-line would otherwise store a wrong value), and so must we
    s.push_str(&format!("diff.plain.last 3 {t}"));
    s
}

/// The pickle stream: int and float timestamps, duplicates, a tagged name, NaN.
fn pickle_stream(t: i64) -> Vec<u8> {
    let t32 = t as i32;
    let mut out = Vec::new();
    out.extend(pickle_frame(&[
        ("diff.pickle.a", Ts::Int(t32), 1.0),
        ("diff.pickle.a", Ts::Int(t32 + 1), 2.0),
        ("diff.pickle.b", Ts::Float(t as f64 + 0.5), -3.5),
        ("diff.pickle.dup", Ts::Int(t32), 1.0),
        ("diff.pickle.dup", Ts::Int(t32), 9.0),
        ("diff.pickle.nan", Ts::Int(t32), f64::NAN),
        ("diff.pickle.tag;z=1;y=2", Ts::Int(t32), 4.0),
    ]));
    let many: Vec<(String, i32, f64)> = (0..200)
        .map(|i| (format!("diff.pickle.many.m{}", i % 20), t32 + i / 20, i as f64))
        .collect();
    let refs: Vec<(&str, Ts, f64)> = many
        .iter()
        .map(|(n, ts, v)| (n.as_str(), Ts::Int(*ts), *v))
        .collect();
    out.extend(pickle_frame(&refs));
    out
}

#[test]
fn same_whisper_trees_as_carbon_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Server::start(Kind::Carbide, &tmp.path().join("carbide"), "", &[]);
    let theirs = Server::start(Kind::Carbon, &tmp.path().join("carbon"), "", &[]);
    let t = (cache_common::now() / 60) * 60 - 300;
    let lines = line_stream(t);
    let pickles = pickle_stream(t);
    for s in [&ours, &theirs] {
        send(s.ports.line, lines.as_bytes());
        send(s.ports.pickle, &pickles);
        // `-1` means "now" to both receivers: separate, so its timestamp is checked separately.
        send(s.ports.line, b"diff.now.a 7 -1\n");
    }
    // Every metric that should exist: poll both trees until each has all of them and carbide's
    // cache is empty; carbon has no cache-size endpoint, so its tree is polled until stable.
    let expected_files = 40;
    wait_until(Duration::from_secs(60), "carbide wrote everything", || {
        files(&ours.whisper()).len() >= expected_files && ours.cache_size() == 0
    });
    let mut last = (0, String::new());
    let mut stable = 0;
    wait_until(Duration::from_secs(60), "carbon-cache wrote everything", || {
        let f = files(&theirs.whisper());
        let sig = f
            .iter()
            .map(|p| {
                let m = std::fs::metadata(theirs.whisper().join(p)).map(|m| m.modified().ok());
                format!("{p}{m:?}")
            })
            .collect::<String>();
        if !f.is_empty() && (f.len(), sig.clone()) == last {
            stable += 1;
        } else {
            stable = 0;
        }
        last = (f.len(), sig);
        stable >= 15
    });

    let (a, b) = (files(&ours.whisper()), files(&theirs.whisper()));
    assert_eq!(a, b, "file sets differ");
    assert!(
        a.iter().any(|f| f.starts_with("_tagged/")),
        "no tagged files: {a:?}"
    );
    assert!(a.len() >= expected_files, "{a:?}");
    assert!(
        !a.contains(&"diff/plain/last.wsp".to_string()),
        "an unterminated last line was stored"
    );

    // A fixed now, after both wrote, so both fetches see the same windows.
    let now = cache_common::now() + 5;
    let fa = fetch_all(&ours.whisper(), now - 3000, now);
    let fb = fetch_all(&theirs.whisper(), now - 3000, now);
    for (path, theirs_v) in &fb {
        if path.starts_with("diff/now/") {
            continue;
        }
        assert_eq!(fa.get(path), Some(theirs_v), "fetch of {path} differs");
    }
    // The coarse archive too (aggregation between archives).
    let ca = fetch_all(&ours.whisper(), now - 80_000, now);
    let cb = fetch_all(&theirs.whisper(), now - 80_000, now);
    for (path, theirs_v) in &cb {
        if path.starts_with("diff/now/") {
            continue;
        }
        assert_eq!(ca.get(path), Some(theirs_v), "60 s archive of {path} differs");
    }
    // `-1`: one point of value 7 close to the send time in each.
    for tree in [&fa, &fb] {
        let (from, _, step, vals) = &tree["diff/now/a.wsp"];
        let got: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (from + i as i64 * step, v)))
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, 7.0);
        assert!((got[0].0 - now).abs() < 120, "{got:?} vs now {now}");
    }

    // Bytes: identical wherever every point of a file reached whisper in one update (a file's
    // archive layout depends on which point arrived first, and carbon drains its cache in its own
    // batches, so a metric whose points straddle two of its writes can be laid out differently
    // with the same contents). Every file is compared; the ones that differ must be multi-point
    // metrics and are listed.
    let mut differ = Vec::new();
    for f in &a {
        if f.starts_with("diff/now/") {
            continue;
        }
        let x = std::fs::read(ours.whisper().join(f)).unwrap();
        let y = std::fs::read(theirs.whisper().join(f)).unwrap();
        if x != y {
            differ.push(f.clone());
        }
    }
    let single_point = [
        "diff/plain/a.wsp",
        "diff/plain/b.wsp",
        "diff/dup.wsp",
        "diff/old.wsp",
        "diff/pickle/b.wsp",
    ];
    for f in single_point {
        assert!(!differ.contains(&f.to_string()), "{f} differs byte-wise");
    }
    eprintln!(
        "{} of {} files byte-identical; differing: {differ:?}",
        a.len() - differ.len(),
        a.len()
    );
    // In practice all are (both write a metric's whole queue in one update); allow a few splits.
    assert!(differ.len() <= 5, "too many files differ byte-wise: {differ:?}");
}
