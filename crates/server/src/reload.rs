//! Noticing edited config files without a signal, as carbon does: carbon-cache re-reads
//! storage-schemas.conf and storage-aggregation.conf every 60 s and the white- and blacklist
//! every 10 s when their mtime changed, and ignores SIGHUP. Operators rely on that, so besides
//! SIGHUP the cache role polls its files' metadata and reloads when any of them changed.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How often the files are looked at (a `stat` each; carbon's fastest reload is every 10 s).
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What is compared: existence, mtime and size (an edit within the same mtime tick that changes
/// the size is still seen).
type Fingerprint = Option<(SystemTime, u64)>;

fn fingerprint(path: &PathBuf) -> Fingerprint {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// A set of files whose changes trigger a reload.
#[derive(Debug)]
pub struct ConfigWatch {
    files: Vec<(PathBuf, Fingerprint)>,
}

impl ConfigWatch {
    /// Watches `paths` from their current state (a file that does not exist yet counts as a state
    /// too: creating it is a change).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> ConfigWatch {
        ConfigWatch {
            files: paths
                .into_iter()
                .map(|p| {
                    let f = fingerprint(&p);
                    (p, f)
                })
                .collect(),
        }
    }

    /// Whether any file changed since the last call (or since `new`); records the new state, so a
    /// broken file is reported once per edit, not at every check.
    pub fn changed(&mut self) -> bool {
        let mut any = false;
        for (path, seen) in &mut self.files {
            let now = fingerprint(path);
            if now != *seen {
                *seen = now;
                any = true;
            }
        }
        any
    }

    /// Records the files' current state without reporting it (after a reload done for another
    /// reason, such as SIGHUP).
    pub fn mark_seen(&mut self) {
        let _ = self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_edits_creations_and_removals_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join("a.conf");
        let b = dir.path().join("b.conf");
        std::fs::write(&a, "x").unwrap_or_else(|e| panic!("{e}"));
        let mut w = ConfigWatch::new([a.clone(), b.clone()]);
        assert!(!w.changed());
        std::fs::write(&a, "xy").unwrap_or_else(|e| panic!("{e}"));
        assert!(w.changed());
        assert!(!w.changed(), "reported twice");
        std::fs::write(&b, "new").unwrap_or_else(|e| panic!("{e}"));
        assert!(w.changed());
        std::fs::remove_file(&a).unwrap_or_else(|e| panic!("{e}"));
        w.mark_seen();
        assert!(!w.changed());
    }
}
