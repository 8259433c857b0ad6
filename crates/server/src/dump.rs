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

/// How many damaged lines of a dump are logged one by one (the rest are only counted).
const LOGGED_BAD_LINES: usize = 5;

/// One line of a dump: `name value timestamp\n`, exactly as [`write`] makes it.
fn parse_dump_line(raw: &[u8]) -> Result<(&str, f64, i64), &'static str> {
    let Some(body) = raw.strip_suffix(b"\n") else {
        return Err("truncated: no newline at the end of the file");
    };
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8")?;
    let mut it = text.split(' ');
    let (Some(name), Some(v), Some(ts), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err("not three space-separated fields");
    };
    if name.is_empty() {
        return Err("empty metric name");
    }
    let v = v.parse::<f64>().map_err(|_| "the value is not a number")?;
    if v.is_nan() {
        return Err("the value is NaN");
    }
    let ts = ts.parse::<i64>().map_err(|_| "the timestamp is not an integer")?;
    Ok((name, v, ts))
}

/// Renames a damaged dump out of the way (never deletes it), so an operator can inspect it and the
/// next shutdown dump cannot overwrite it. Returns where it went.
fn keep_aside(path: &Path) -> io::Result<std::path::PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".corrupt-{stamp}"));
    let mut aside = std::path::PathBuf::from(&name);
    let mut i = 1;
    while aside.exists() {
        let mut n = name.clone();
        n.push(format!(".{i}"));
        aside = n.into();
        i += 1;
    }
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Loads a dump into the cache and removes it; returns how many points were replayed.
///
/// A damaged dump never stops the start: every readable line is replayed, each bad line is counted
/// (the first few logged with their line numbers), and the file is renamed aside
/// (`<dump>.corrupt-<unix time>`) with an error in the log, never silently deleted. Replaying it
/// again later (e.g. to the line port) is safe: a point for a timestamp already stored overwrites.
///
/// A dump bigger than MAX_CACHE_SIZE still replays whole: when the cache is full, `make_room`
/// is called (the writers are already running; it waits until they have written enough) and the
/// point is tried again. Only when it returns false (it gave up) are points refused, and then the
/// dump is kept aside like a damaged one.
pub fn replay(path: &Path, cache: &Cache, make_room: &dyn Fn(&Cache) -> bool) -> io::Result<usize> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            tracing::error!(dump = %path.display(), error = %e, "cannot open the cache dump; starting without it");
            set_aside(path, 0, 0, 0, Some(&e));
            return Ok(0);
        }
    };
    let mut reader = BufReader::new(file);
    let mut raw = Vec::new();
    let (mut n, mut bad, mut refused, mut lineno) = (0usize, 0usize, 0usize, 0usize);
    let mut read_error = None;
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
        lineno += 1;
        match parse_dump_line(&raw) {
            Ok((name, v, ts)) => {
                if cache.should_pause() && !make_room(cache) {
                    refused += 1;
                    continue;
                }
                match cache.insert(name, ts, v) {
                    Ok(()) => n += 1,
                    Err(_) => refused += 1,
                }
            }
            Err(why) => {
                bad += 1;
                if bad <= LOGGED_BAD_LINES {
                    let shown = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
                    tracing::warn!(dump = %path.display(), line = lineno, problem = why, text = shown.trim_end(), "unreadable line in the cache dump; skipped");
                }
            }
        }
    }
    if bad > 0 || refused > 0 || read_error.is_some() {
        set_aside(path, n, bad, refused, read_error.as_ref());
    } else {
        fs::remove_file(path)?;
    }
    Ok(n)
}

/// Logs what was wrong with a dump and renames it aside.
fn set_aside(path: &Path, replayed: usize, bad: usize, refused: usize, error: Option<&io::Error>) {
    let error = error.map(|e| e.to_string());
    match keep_aside(path) {
        Ok(aside) => tracing::error!(
            dump = %path.display(),
            kept_as = %aside.display(),
            replayed,
            bad_lines = bad,
            refused_cache_full = refused,
            error,
            "the cache dump was damaged: its readable points were replayed and the file is kept for inspection (sending it to the line port again is safe)"
        ),
        Err(e) => tracing::error!(
            dump = %path.display(),
            replayed,
            bad_lines = bad,
            refused_cache_full = refused,
            error,
            rename_error = %e,
            "the cache dump was damaged and could not be renamed aside; move it away before the next shutdown, which would overwrite it"
        ),
    }
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
        assert_eq!(replay(&p, &cache, &|_| false).ok(), Some(4));
        assert_eq!(cache.get("a.b"), pts[0].1);
        assert_eq!(cache.get("c;t=v"), vec![(40, 7.0)]);
        assert!(!p.exists());
    }

    #[test]
    fn damaged_dump_replays_the_good_lines_and_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("cache.dump");
        let bytes =
            b"a.b 1 10\n\xff\xfe 2 20\nc.d x 30\n\ne.f 4 40 extra\ng.h nan 50\na.b 6 60\nz.z 7 7".to_vec();
        std::fs::write(&p, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let cache = Cache::new(CacheConfig::default());
        assert_eq!(replay(&p, &cache, &|_| false).ok(), Some(2));
        assert_eq!(cache.get("a.b"), vec![(10, 1.0), (60, 6.0)]);
        assert!(cache.get("z.z").is_empty(), "a truncated last line was replayed");
        assert!(!p.exists());
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(
            kept[0].to_string_lossy().contains("cache.dump.corrupt-"),
            "{kept:?}"
        );
        assert_eq!(std::fs::read(&kept[0]).ok(), Some(bytes));
        // A second damaged dump in the same second gets its own name.
        std::fs::write(&p, b"\0\0\0").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(replay(&p, &cache, &|_| false).ok(), Some(0));
        assert_eq!(std::fs::read_dir(dir.path()).map(|d| d.count()).ok(), Some(2));
    }
}
