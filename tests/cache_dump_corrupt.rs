//! A damaged shutdown dump at start: `carbide cache` logs a clear error naming the dump and the bad
//! lines, replays every good line, keeps the whole file aside (renamed, byte for byte, never
//! deleted) and starts. A dump that is nothing but zeros (a torn write after a crash) is kept aside
//! the same way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cache_common::{Kind, Ports, Server, points_of, send, wait_until, write_conf};

fn kept_aside(whisper: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(whisper)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".carbide-cache-a.dump.corrupt-"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_damaged_dump_is_replayed_where_readable_and_kept_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, "");
    let whisper = dir.join("whisper");
    let dump = whisper.join(".carbide-cache-a.dump");
    let t = cache_common::now() - 120;
    let mut bytes = format!("dump.good.a 1 {t}\ndump.good.b 2.5 {t}\n").into_bytes();
    bytes.extend_from_slice(b"dump.bad.utf8\xff\xfe 1 1\n");
    bytes.extend(
        format!(
            "dump.bad.fields 1\ndump.bad.value x {t}\n\ndump.good.a 3 {}\n",
            t + 1
        )
        .bytes(),
    );
    bytes.extend(format!("dump.trunc 4 {}", t / 1000).bytes());
    std::fs::write(&dump, &bytes).unwrap();

    let mut s = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    let now = cache_common::now() + 1;
    wait_until(Duration::from_secs(30), "the good points on disk", || {
        points_of(&whisper, "dump.good.a", now).len() == 2
            && points_of(&whisper, "dump.good.b", now).len() == 1
    });
    assert_eq!(
        points_of(&whisper, "dump.good.a", now)
            .into_iter()
            .collect::<Vec<_>>(),
        vec![(t, 1.0), (t + 1, 3.0)]
    );
    assert_eq!(
        points_of(&whisper, "dump.good.b", now)
            .into_iter()
            .collect::<Vec<_>>(),
        vec![(t, 2.5)]
    );
    let all = cache_common::files(&whisper);
    assert!(
        all.iter()
            .all(|f| f.starts_with("dump/good/") || f.starts_with(".carbide-cache-a.dump.corrupt-")),
        "a bad line was stored: {all:?}"
    );
    assert!(
        !dump.exists(),
        "the damaged dump is still where the next start would replay it"
    );
    let aside = kept_aside(&whisper);
    assert_eq!(aside.len(), 1, "{all:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        bytes,
        "the kept file is not the original"
    );
    let log = s.log();
    assert!(log.contains("the cache dump was damaged"), "{log}");
    assert!(
        log.contains(&aside[0].display().to_string()),
        "the log does not say where it went:\n{log}"
    );
    assert!(log.contains("bad_lines=5"), "{log}");
    assert!(log.contains("line=3") && log.contains("not UTF-8"), "{log}");
    assert!(log.contains("truncated"), "{log}");
    // The cache works normally afterwards.
    send(ports.line, format!("dump.after 9 {t}\n").as_bytes());
    wait_until(
        Duration::from_secs(30),
        "a new point after the damaged replay",
        || points_of(&whisper, "dump.after", now).len() == 1,
    );
    assert!(s.stop());

    // All zeros: nothing to replay, kept aside, the cache starts.
    std::fs::write(&dump, vec![0u8; 4096]).unwrap();
    let s = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    assert_eq!(s.cache_size(), 0);
    assert!(!dump.exists());
    let aside = kept_aside(&whisper);
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside.iter().any(|p| std::fs::read(p).unwrap() == vec![0u8; 4096]));
}

/// A dump bigger than MAX_CACHE_SIZE (a shutdown under a backlog) replays whole: the writers run
/// while it is read and make room, no point is refused, and the dump is removed, not kept aside.
#[test]
fn a_dump_bigger_than_the_cache_replays_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, "MAX_CACHE_SIZE = 1000");
    let whisper = dir.join("whisper");
    let dump = whisper.join(".carbide-cache-a.dump");
    let t = cache_common::now() - 3000;
    let mut text = String::new();
    for m in 0..50 {
        for i in 0..100 {
            text.push_str(&format!("dump.big.m{m} {i} {}\n", t + i));
        }
    }
    std::fs::write(&dump, text).unwrap();
    let _s = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    let now = cache_common::now() + 1;
    wait_until(Duration::from_secs(60), "all 5 000 dumped points on disk", || {
        (0..50).all(|m| points_of(&whisper, &format!("dump.big.m{m}"), now).len() == 100)
    });
    assert!(!dump.exists(), "the dump was not removed after a full replay");
    assert!(
        kept_aside(&whisper).is_empty(),
        "a complete replay was kept aside"
    );
}
