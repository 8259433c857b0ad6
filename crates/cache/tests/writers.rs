//! The writer pool end to end on real whisper files: every point lands, a corrupt file costs only its
//! own metric, hostile names never touch the filesystem, creates wait instead of dropping points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbide_cache::persist::{CreateSpec, WhisperSettings};
use carbide_cache::{Cache, CacheConfig, Stats, StoragePolicy, WhisperPersister, WriteStrategy, WriterPool};
use carbide_core::{AggregationMethod, Retention};
use carbide_whisper::file;

struct Policy;
impl StoragePolicy for Policy {
    fn create_spec(&self, metric: &str) -> Option<CreateSpec> {
        if metric.starts_with("noschema.") {
            return None;
        }
        Some(CreateSpec {
            archives: Retention::parse_list("10s:1h,1m:1d").unwrap(),
            aggregation: AggregationMethod::Average,
            x_files_factor: 0.5,
        })
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn wait_empty(cache: &Cache, limit: Duration) {
    let start = Instant::now();
    while !cache.is_empty() {
        assert!(
            start.elapsed() < limit,
            "cache not drained: {} points left",
            cache.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn setup(root: &Path, strategy: WriteStrategy, settings: WhisperSettings) -> (Arc<Cache>, WriterPool) {
    let cache = Arc::new(Cache::new(CacheConfig {
        max_size: None,
        strategy,
        shards: 16,
    }));
    let persister = Arc::new(WhisperPersister::new(
        root.to_path_buf(),
        Arc::new(Policy),
        settings,
    ));
    let pool = WriterPool::start(cache.clone(), persister, 4, None).unwrap();
    (cache, pool)
}

#[test]
fn every_point_lands_and_a_corrupt_file_costs_only_itself() {
    for strategy in [
        WriteStrategy::Naive,
        WriteStrategy::Sorted,
        WriteStrategy::Max,
        WriteStrategy::TimeSorted,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("m")).unwrap();
        std::fs::write(root.join("m/bad.wsp"), b"").unwrap();
        let settings = WhisperSettings {
            lock: true,
            ..WhisperSettings::default()
        };
        let (cache, pool) = setup(root, strategy, settings);
        let t0 = now() - now() % 10 - 100;
        for i in 0..1000 {
            for k in 0..5 {
                cache
                    .insert(&format!("m.good{i}"), t0 + 10 * k, (i * 10 + k as usize) as f64)
                    .unwrap();
            }
        }
        for k in 0..5 {
            cache.insert("m.bad", t0 + 10 * k, 1.0).unwrap();
        }
        for name in ["../../etc/passwd", "a..b", "x/y", ".hidden", "noschema.x"] {
            cache.insert(name, t0, 1.0).unwrap();
        }
        wait_empty(&cache, Duration::from_secs(60));
        assert!(pool.shutdown(Duration::from_secs(5)));
        let st = &cache.stats;
        assert_eq!(Stats::get(&st.committed_points), 5000, "{strategy:?}");
        assert_eq!(Stats::get(&st.creates), 1000);
        assert_eq!(
            Stats::get(&st.errors),
            6,
            "1 corrupt file, 4 bad names, 1 without schema"
        );
        assert_eq!(Stats::get(&st.invalid_names), 4);
        assert_eq!(Stats::get(&st.dropped_points), 5 + 5);
        for i in (0..1000).step_by(37) {
            let f = file::fetch(
                &root.join(format!("m/good{i}.wsp")),
                t0 - 10,
                Some(t0 + 50),
                now(),
                None,
            )
            .unwrap()
            .unwrap();
            let got: Vec<f64> = f.values.iter().flatten().copied().collect();
            assert_eq!(got, (0..5).map(|k| (i * 10 + k) as f64).collect::<Vec<_>>());
        }
        assert!(!root.join("etc").exists() && !Path::new("/etc/passwd.wsp").exists());
        assert!(!root.join("x").exists() && !root.join("noschema").exists());
    }
}

#[test]
fn throttled_creates_keep_points_cached() {
    let dir = tempfile::tempdir().unwrap();
    let settings = WhisperSettings {
        max_creates_per_minute: Some(3.0),
        ..WhisperSettings::default()
    };
    let (cache, pool) = setup(dir.path(), WriteStrategy::Naive, settings);
    let t = now() - 20;
    for i in 0..10 {
        cache.insert(&format!("new.m{i}"), t, i as f64).unwrap();
    }
    let start = Instant::now();
    while Stats::get(&cache.stats.creates) < 3 {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(Stats::get(&cache.stats.creates), 3, "only three creates a minute");
    assert_eq!(cache.len(), 7, "the other points wait in the cache");
    assert!(Stats::get(&cache.stats.deferred_creates) > 0);
    assert_eq!(Stats::get(&cache.stats.dropped_points), 0);
    // A flush (and the shutdown drain) lifts the throttle: everything is written.
    pool.flush();
    wait_empty(&cache, Duration::from_secs(10));
    assert!(pool.shutdown(Duration::from_secs(5)));
    for i in 0..10 {
        assert!(dir.path().join(format!("new/m{i}.wsp")).exists());
    }
}

#[test]
fn writers_report_what_they_do() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, pool) = setup(dir.path(), WriteStrategy::Naive, WhisperSettings::default());
    cache.insert("a.b", now(), 1.0).unwrap();
    wait_empty(&cache, Duration::from_secs(10));
    let snap = pool.snapshot();
    assert_eq!(snap.len(), 4);
    assert!(snap.iter().all(|w| w.metric.is_none()));
    assert!(pool.shutdown(Duration::from_secs(1)));
}
