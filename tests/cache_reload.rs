//! SIGHUP reloads storage-schemas.conf and blacklist.conf in a running `carbide cache`: metrics
//! created after the signal follow the new schema while existing files keep theirs, newly
//! blacklisted names are refused and counted, and a broken storage-schemas.conf is refused with
//! its file:line in the log while the previous settings stay in force. Edits also apply without
//! a signal, as carbon re-reads these files on its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cache_common::{Kind, SCHEMAS, Server, send, wait_until, wsp_path};

/// `(seconds_per_point, points)` of every archive of a whisper file.
fn layout(path: &Path) -> Vec<(u32, u32)> {
    carbide_whisper::file::info(path)
        .unwrap_or_else(|e| panic!("info {}: {e}", path.display()))
        .archives
        .iter()
        .map(|a| (a.seconds_per_point, a.points))
        .collect()
}

fn hup(s: &Server) {
    let ok = Command::new("kill")
        .arg("-HUP")
        .arg(s.pid().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
}

/// Sends `metric` and waits until its file exists.
fn create(s: &Server, metric: &str, t: i64) -> std::path::PathBuf {
    send(s.ports.line, format!("{metric} 1 {t}\n").as_bytes());
    let p = wsp_path(&s.whisper(), metric);
    wait_until(Duration::from_secs(30), &format!("{metric} created"), || {
        p.exists() && s.cache_size() == 0
    });
    p
}

/// Sends probe metrics until one is created with `want` (SIGHUP is asynchronous); returns it.
fn probe_until(s: &Server, prefix: &str, want: &[(u32, u32)], t: i64) -> std::path::PathBuf {
    for i in 0..50 {
        let p = create(s, &format!("{prefix}{i}"), t);
        if layout(&p) == want {
            return p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no {prefix}* metric was created with {want:?} after SIGHUP; log:\n{}",
        s.log()
    );
}

#[test]
fn sighup_reloads_schemas_and_blacklist() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(
        Kind::Carbide,
        &tmp.path().join("carbide"),
        "USE_WHITELIST = True",
        &[],
    );
    let conf = s.dir.join("conf");
    let t = cache_common::now() - 30;
    let old = [(1, 3600), (60, 1440)];

    let before = create(&s, "hup.before", t);
    assert_eq!(layout(&before), old);
    send(s.ports.line, format!("hup.blocked.x 1 {t}\n").as_bytes());

    // New schema for hup.new.*, and a blacklist.
    let new_schemas = format!("[hup]\npattern = ^hup\\.new\\.\nretentions = 5s:10m\n\n{SCHEMAS}");
    std::fs::write(conf.join("storage-schemas.conf"), &new_schemas).unwrap();
    std::fs::write(conf.join("blacklist.conf"), "# noisy\n^hup\\.blocked\\.\n").unwrap();
    hup(&s);
    let fresh = probe_until(&s, "hup.new.m", &[(5, 120)], t);
    assert!(s.alive(), "SIGHUP stopped the process");
    // The existing file keeps its layout; points still land in it.
    send(s.ports.line, format!("hup.before 2 {}\n", t + 1).as_bytes());
    wait_until(Duration::from_secs(30), "hup.before written", || {
        s.cache_size() == 0 && cache_common::points_of(&s.whisper(), "hup.before", t + 10).len() == 2
    });
    assert_eq!(layout(&before), old);
    assert_eq!(layout(&fresh), [(5, 120)]);

    // Blacklisted after the reload: refused and counted, never created.
    let matches = s.metric("carbide_blacklist_matches_total");
    send(
        s.ports.line,
        format!("hup.blocked.y 1 {t}\nhup.notblocked 1 {t}\n").as_bytes(),
    );
    create(&s, "hup.sentinel", t);
    assert!(wsp_path(&s.whisper(), "hup.notblocked").exists());
    assert!(!wsp_path(&s.whisper(), "hup.blocked.y").exists());
    assert!(
        s.metric("carbide_blacklist_matches_total") >= matches + 1.0,
        "blacklist match not counted"
    );

    // A broken storage-schemas.conf: the reload is refused with file:line, the last good schemas
    // stay (hup.new.* still 5s:10m), the process keeps running.
    let broken = format!("[hup]\npattern = ^hup\\.new\\.\nretentions = 5x:bogus\n\n{SCHEMAS}");
    std::fs::write(conf.join("storage-schemas.conf"), broken).unwrap();
    hup(&s);
    let where_ = format!("{}:3", conf.join("storage-schemas.conf").display());
    wait_until(Duration::from_secs(10), "the reload error in the log", || {
        s.log().contains(&where_)
    });
    assert!(s.alive(), "a broken file on SIGHUP stopped the process");
    let after_broken = create(&s, "hup.new.afterbroken", t);
    assert_eq!(layout(&after_broken), [(5, 120)], "old schemas not kept");
    // A blacklist that disappears is a reload too: the name is accepted again once fixed.
    std::fs::write(conf.join("storage-schemas.conf"), &new_schemas).unwrap();
    std::fs::remove_file(conf.join("blacklist.conf")).unwrap();
    hup(&s);
    wait_until(Duration::from_secs(20), "blacklist lifted", || {
        send(s.ports.line, format!("hup.blocked.z 1 {t}\n").as_bytes());
        std::thread::sleep(Duration::from_millis(200));
        wsp_path(&s.whisper(), "hup.blocked.z").exists()
    });
}

/// carbon re-reads its schemas and lists on its own (and ignores SIGHUP), so operators edit the
/// files and wait: without any signal, edits apply within a few seconds.
#[test]
fn edited_files_apply_without_a_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        Kind::Carbide,
        &tmp.path().join("carbide"),
        "USE_WHITELIST = True",
        &[],
    );
    let conf = s.dir.join("conf");
    let t = cache_common::now() - 30;
    assert_eq!(layout(&create(&s, "auto.before", t)), [(1, 3600), (60, 1440)]);
    let new_schemas = format!("[auto]\npattern = ^auto\\.new\\.\nretentions = 5s:10m\n\n{SCHEMAS}");
    std::fs::write(conf.join("storage-schemas.conf"), new_schemas).unwrap();
    std::fs::write(conf.join("blacklist.conf"), "^auto\\.blocked\\.\n").unwrap();
    let started = std::time::Instant::now();
    probe_until_within(&s, "auto.new.m", &[(5, 120)], t, Duration::from_secs(20));
    eprintln!("schemas applied after {:?} without a signal", started.elapsed());
    send(s.ports.line, format!("auto.blocked.x 1 {t}\n").as_bytes());
    create(&s, "auto.sentinel", t);
    assert!(
        !wsp_path(&s.whisper(), "auto.blocked.x").exists(),
        "blacklist not applied"
    );
}

/// Like [`probe_until`], for up to `limit`.
fn probe_until_within(s: &Server, prefix: &str, want: &[(u32, u32)], t: i64, limit: Duration) {
    let start = std::time::Instant::now();
    let mut i = 0;
    while start.elapsed() < limit {
        let p = create(s, &format!("{prefix}{i}"), t);
        if layout(&p) == want {
            return;
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "no {prefix}* metric was created with {want:?} within {limit:?}; log:\n{}",
        s.log()
    );
}

/// carbon reads blacklist.conf only when USE_WHITELIST is on: with it off, a blacklisted name is
/// stored by carbon-cache, and so by carbide (dropping it would lose data on the day of the swap).
#[test]
fn a_blacklist_without_use_whitelist_is_ignored_as_carbon_ignores_it() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [Kind::Carbide, Kind::Carbon] {
        let dir = tmp.path().join(format!("{kind:?}"));
        let ports = cache_common::Ports::free();
        cache_common::write_conf(&dir, ports, "");
        std::fs::write(dir.join("conf").join("blacklist.conf"), "^bl\\.blocked\\.\n").unwrap();
        let s = Server::start_with(kind, &dir, ports, &[]);
        let t = cache_common::now() - 30;
        send(s.ports.line, format!("bl.blocked.x 1 {t}\n").as_bytes());
        let p = wsp_path(&s.whisper(), "bl.blocked.x");
        wait_until(
            Duration::from_secs(60),
            &format!("{kind:?} stores bl.blocked.x"),
            || p.exists(),
        );
    }
}
