//! Bad input gets a typed error, never a panic, and never leaves a lock, a handle or a half-written
//! file behind (the whisper #129 deadlock: a corrupt file kept flock'ed after an exception).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::fs::{self, File};
use std::path::Path;

use carbide_core::Retention;
use carbide_whisper::file::{self, CreateOptions};
use carbide_whisper::{Error, WhisperFile};

const NOW: i64 = 1_700_000_000;

fn ret(spp: u32, points: u32) -> Retention {
    Retention {
        seconds_per_point: spp,
        points,
    }
}

/// Tests in this file run one at a time, so that counting open descriptors sees only one test's.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The file is not locked by anyone: a non-blocking exclusive lock succeeds at once.
fn assert_unlocked(path: &Path) {
    let f = File::open(path).unwrap();
    f.try_lock()
        .expect("the file must not stay locked after an error");
}

fn good_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("good.wsp");
    file::create(&p, &[ret(60, 1440), ret(300, 2016)], &CreateOptions::default()).unwrap();
    p
}

fn expect_corrupt(path: &Path, needle: &str) {
    let before = open_fds();
    for lock in [false, true] {
        let err = WhisperFile::open_path(path, true, lock).expect_err("must be refused");
        assert!(err.is_corrupt(), "{path:?}: expected corruption, got {err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err} names no file"
        );
        let err = file::update_many(path, &[(NOW - 10, 1.0)], NOW, lock).expect_err("must be refused");
        assert!(err.is_corrupt());
        assert!(file::fetch(path, NOW - 100, None, NOW, None).is_err());
        assert_unlocked(path);
    }
    assert_eq!(open_fds(), before, "a handle leaked");
}

#[test]
fn zero_length_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.wsp");
    File::create(&p).unwrap();
    expect_corrupt(&p, "Unable to read header");
}

#[test]
fn truncated_header_and_data() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let good = fs::read(good_file(dir.path())).unwrap();
    for (name, len, needle) in [
        ("meta.wsp", 10, "Unable to read header"),
        ("info.wsp", 20, "Unable to read archive0 metadata"),
        ("info2.wsp", 30, "Unable to read archive1 metadata"),
        ("data.wsp", 5000, "archive0 ends at byte"),
        ("tail.wsp", good.len() - 1, "archive1 ends at byte"),
    ] {
        let p = dir.path().join(name);
        fs::write(&p, &good[..len]).unwrap();
        expect_corrupt(&p, needle);
    }
}

#[test]
fn impossible_headers() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let good = fs::read(good_file(dir.path())).unwrap();
    let patch = |name: &str, at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        let p = dir.path().join(name);
        fs::write(&p, b).unwrap();
        p
    };
    expect_corrupt(
        &patch("agg.wsp", 0, &99u32.to_be_bytes()),
        "Unable to read header",
    );
    expect_corrupt(
        &patch("xff.wsp", 8, &2.0f32.to_bits().to_be_bytes()),
        "Unable to read header",
    );
    expect_corrupt(
        &patch("nan.wsp", 8, &f32::NAN.to_bits().to_be_bytes()),
        "Unable to read header",
    );
    expect_corrupt(
        &patch("count.wsp", 12, &1_000_000_000u32.to_be_bytes()),
        "archive count",
    );
    expect_corrupt(&patch("count3.wsp", 12, &3u32.to_be_bytes()), "archive");
    expect_corrupt(
        &patch("offset.wsp", 16, &u32::MAX.to_be_bytes()),
        "archive0 ends at byte",
    );
    expect_corrupt(
        &patch("inside.wsp", 16, &4u32.to_be_bytes()),
        "starts inside the header",
    );
    expect_corrupt(
        &patch("spp0.wsp", 20, &0u32.to_be_bytes()),
        "zero seconds per point",
    );
    expect_corrupt(&patch("pts0.wsp", 24, &0u32.to_be_bytes()), "zero points");
}

#[test]
fn a_corrupt_file_among_good_ones_stalls_nothing() {
    let _serial = serial();
    // The seed story: one bad file must not keep the writer from the rest.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..20 {
        let p = dir.path().join(format!("m{i}.wsp"));
        file::create(&p, &[ret(60, 100)], &CreateOptions::default()).unwrap();
        paths.push(p);
    }
    fs::write(&paths[7], b"").unwrap();
    let before = open_fds();
    let mut errors = 0;
    for p in &paths {
        match file::update_many(p, &[(NOW - 60, 1.0), (NOW, 2.0)], NOW, true) {
            Ok(()) => {}
            Err(e) => {
                assert!(e.is_corrupt());
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 1);
    assert_eq!(open_fds(), before);
    for (i, p) in paths.iter().enumerate() {
        assert_unlocked(p);
        if i != 7 {
            let f = file::fetch(p, NOW - 120, Some(NOW), NOW, None).unwrap().unwrap();
            assert_eq!(f.values.iter().flatten().count(), 2, "{p:?}");
        }
    }
}

#[test]
fn create_refuses_and_leaves_things_as_they_were() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path());
    let before = fs::read(&p).unwrap();
    let err = file::create(&p, &[ret(60, 10)], &CreateOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfiguration(ref m) if m.contains("already exists")),
        "{err}"
    );
    assert_eq!(
        fs::read(&p).unwrap(),
        before,
        "an existing file must never be touched"
    );

    let bad: &[(&[Retention], &str)] = &[
        (&[], "at least one archive"),
        (&[ret(60, 10), ret(60, 20)], "same precision"),
        (&[ret(60, 100), ret(90, 100)], "evenly divide"),
        (&[ret(60, 100), ret(120, 50)], "larger time intervals"),
        (&[ret(60, 2), ret(300, 100)], "enough points"),
    ];
    for (i, (archives, needle)) in bad.iter().enumerate() {
        let q = dir.path().join(format!("bad{i}.wsp"));
        let err = file::create(&q, archives, &CreateOptions::default()).unwrap_err();
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        assert!(!q.exists(), "a refused create must not leave a file");
    }
    let q = dir.path().join("xff.wsp");
    let opts = CreateOptions {
        x_files_factor: 1.5,
        ..CreateOptions::default()
    };
    assert!(matches!(
        file::create(&q, &[ret(60, 10)], &opts),
        Err(Error::InvalidXFilesFactor(_))
    ));
    assert!(!q.exists());
    let q = dir.path().join("huge.wsp");
    let err = file::create(&q, &[ret(1, u32::MAX)], &CreateOptions::default()).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    assert!(!q.exists());
}

#[test]
fn points_outside_retention() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = good_file(dir.path());
    let before = fs::read(&p).unwrap();
    // update() refuses the future and the too-old, as whisper.py does.
    for ts in [NOW + 1, NOW - 300 * 2016, NOW - 10_000_000] {
        let err = file::update(&p, 1.0, Some(ts), NOW, true).unwrap_err();
        assert!(matches!(err, Error::TimestampNotCovered(t) if t == ts), "{err}");
    }
    // update_many() drops points older than every archive without touching the file.
    file::update_many(&p, &[(NOW - 10_000_000, 1.0)], NOW, true).unwrap();
    assert_eq!(fs::read(&p).unwrap(), before);
    assert_unlocked(&p);
    // A timestamp that no u32 can hold is an error, not a wrapped value.
    let err = file::update_many(&p, &[(NOW - 1, 1.0)], 5_000_000_000, false);
    assert!(
        err.is_ok(),
        "too old for the archives: dropped like whisper drops it"
    );
    let q = dir.path().join("neg.wsp");
    file::create(&q, &[ret(60, 1440)], &CreateOptions::default()).unwrap();
    let err = file::update_many(&q, &[(-120, 1.0)], 0, false).unwrap_err();
    assert!(matches!(err, Error::TimestampOutOfRange(_)), "{err}");
    assert!(matches!(
        file::fetch(&p, NOW, Some(NOW - 5), NOW, None),
        Err(Error::InvalidTimeInterval { .. })
    ));
    assert!(matches!(
        file::fetch(&p, NOW - 100, None, NOW, Some(7)),
        Err(Error::InvalidGranularity(7))
    ));
}

#[test]
fn missing_and_unreadable_files_name_the_path() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.wsp");
    let err = file::info(&p).unwrap_err();
    assert!(err.to_string().contains("nope.wsp"), "{err}");
    let err = file::update_many(&dir.path().join("d"), &[(NOW, 1.0)], NOW, false).unwrap_err();
    assert!(matches!(err, Error::FileIo { .. }), "{err}");
    // A directory in place of a file.
    fs::create_dir(dir.path().join("isdir.wsp")).unwrap();
    assert!(WhisperFile::open_path(&dir.path().join("isdir.wsp"), true, true).is_err());
}
