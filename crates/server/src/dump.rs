//! The shutdown dump: what the writers could not persist before the deadline, kept in the
//! plaintext protocol so an operator can read it, and replayed into the cache at the next start.

use std::fs;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use carbide_cache::Cache;

/// A metric and its points, as the cache hands them over at shutdown.
pub type MetricPoints = (std::sync::Arc<str>, Vec<carbide_whisper::Point>);

/// Writes every point held by `points` to `path` (via a temporary file, fsynced, then renamed, so
/// a crash mid-dump never leaves a truncated dump where a good one is expected). Returns the count.
pub fn write(path: &Path, points: &[MetricPoints]) -> io::Result<usize> {
    let tmp = path.with_extension("dump.tmp");
    let mut out = BufWriter::new(fs::File::create(&tmp)?);
    let mut n = 0;
    for (name, pts) in points {
        for (ts, v) in pts {
            // `{}` of an f64 is the shortest text that reads back to the same bits.
            writeln!(out, "{name} {v} {ts}")?;
            n += 1;
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    Ok(n)
}

/// Loads a dump into the cache and removes it; returns how many points were replayed.
pub fn replay(path: &Path, cache: &Cache) -> io::Result<usize> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for line in BufReader::new(file).lines() {
        let line = line?;
        let mut it = line.split(' ');
        let (Some(name), Some(v), Some(ts), None) = (it.next(), it.next(), it.next(), it.next()) else {
            tracing::warn!(line, "unreadable line in the cache dump; skipped");
            continue;
        };
        match (v.parse::<f64>(), ts.parse::<i64>()) {
            (Ok(v), Ok(ts)) => {
                if cache.insert(name, ts, v).is_ok() {
                    n += 1;
                }
            }
            _ => tracing::warn!(line, "unreadable line in the cache dump; skipped"),
        }
    }
    fs::remove_file(path)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_cache::CacheConfig;

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("cache.dump");
        let pts = vec![
            (
                std::sync::Arc::from("a.b"),
                vec![(10, 0.1 + 0.2), (20, -1e300), (30, 5e-324)],
            ),
            (std::sync::Arc::from("c;t=v"), vec![(40, 7.0)]),
        ];
        assert_eq!(write(&p, &pts).ok(), Some(4));
        let cache = Cache::new(CacheConfig::default());
        assert_eq!(replay(&p, &cache).ok(), Some(4));
        assert_eq!(cache.get("a.b"), pts[0].1);
        assert_eq!(cache.get("c;t=v"), vec![(40, 7.0)]);
        assert!(!p.exists());
    }
}
