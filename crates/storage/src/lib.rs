//! Finders and fetchers for the render API: which metrics exist, and what their points are.
//!
//! graphite-web walks the whisper tree with `glob` on every find. Here the tree is walked once at
//! start into a sorted in-memory index of metric names; a find is a per-segment glob over that index,
//! and a name that is asked for but not known yet is looked up on disk and added (a cheap re-scan on
//! miss), so a metric created by another process is found on its first query. The cache, which knows
//! the moment it creates a file, can call [`Storage::on_create`] instead.
//!
//! A fetch reads the whisper file with graphite-web's archive choice (whisper's own `fetch`), then
//! merges the points a [`HotPoints`] provider still holds (the in-process cache), exactly as
//! graphite-web merges carbonlink's answer (`readers/utils.py merge_with_cache`).
//!
//! # Layout
//! - [`index`]: the metric-name index and find over it.
//! - [`hot`]: the hot-points provider trait and the carbonlink-style merge.
//! - [`tags`]: the tagged-series index (from `_tagged/` files, a small log and the create hook)
//!   with graphite-web's local tag database queries over it.
//! - this file: [`Storage`], tying the index, whisper files and hot points together.

pub mod hot;
pub mod index;
pub mod tags;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carbide_core::AggregationMethod;

pub use hot::{HotPoints, merge_hot_points};
pub use index::{Index, Node};
pub use tags::{TagIndex, TagIndexError, TagLog};

/// Why a find or fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The find pattern is not a valid glob.
    #[error("invalid pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Reading the tree failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A whisper file could not be read.
    #[error(transparent)]
    Whisper(#[from] carbide_whisper::Error),
}

/// One fetched metric: whisper's `(start, end, step), values`, after the hot-point merge.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedSeries {
    /// The metric name (`a.b.c`).
    pub name: String,
    /// Timestamp of the first value.
    pub start: i64,
    /// End of the range (exclusive, as whisper reports it).
    pub end: i64,
    /// Seconds per value.
    pub step: i64,
    /// One value per step.
    pub values: Vec<Option<f64>>,
    /// The file's aggregation method, which hot points are consolidated with.
    pub aggregation: AggregationMethod,
}

/// The metric store over one whisper tree.
pub struct Storage {
    root: PathBuf,
    index: Index,
    hot: Option<Arc<dyn HotPoints>>,
    tags: TagIndex,
    tag_log: TagLog,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root)
            .field("metrics", &self.index.len())
            .field("hot", &self.hot.is_some())
            .finish()
    }
}

impl Storage {
    /// Walks `root` for `*.wsp` files and builds the index. A missing root is an empty tree (as
    /// graphite-web, which serves nothing rather than failing).
    pub fn open(root: &Path) -> Result<Storage, StorageError> {
        let index = Index::default();
        if root.is_dir() {
            index.scan(root)?;
        }
        let storage = Storage {
            root: root.to_path_buf(),
            index,
            hot: None,
            tags: TagIndex::default(),
            tag_log: TagLog::new(root),
        };
        storage.tags.replace_series(&storage.tagged_names()?);
        Ok(storage)
    }

    /// Every tagged name the tree and the log know, sorted: readable `_tagged/` files, then the
    /// log's additions and removals in order.
    fn tagged_names(&self) -> Result<Vec<String>, StorageError> {
        let mut known: std::collections::BTreeSet<String> = self
            .index
            .find("_tagged.**")?
            .into_iter()
            .filter_map(|n| tags::decode_tagged_entry(&n.path))
            .collect();
        self.tag_log
            .replay(&mut known)
            .map_err(|source| StorageError::Io {
                path: self.tag_log.path().to_path_buf(),
                source,
            })?;
        Ok(known.into_iter().collect())
    }

    /// The tagged-series index (seriesByTag, `/tags`).
    pub fn tags(&self) -> &TagIndex {
        &self.tags
    }

    /// graphite-web's `tagSeries`: remembers a tagged series (in the index and the log, so a
    /// hash-named file is known after a restart) and returns its normalised name.
    pub fn tag_series(&self, path: &str) -> Result<String, TagIndexError> {
        let fresh = !self.tags.contains(path);
        let normal = self.tags.add(path)?;
        if fresh || normal != path {
            self.log_tag(&normal, true);
        }
        Ok(normal)
    }

    /// graphite-web's `delSeries`: forgets a tagged series (its file stays, as in graphite-web).
    pub fn del_series(&self, path: &str) -> Result<(), TagIndexError> {
        let (normal, _) = tags::parse_series(path)?;
        if self.tags.remove(&normal)? {
            self.log_tag(&normal, false);
        }
        Ok(())
    }

    fn log_tag(&self, name: &str, added: bool) {
        if let Err(e) = self.tag_log.record(name, added) {
            // A read-only tree still serves; the series is known until the process ends.
            tracing::warn!(log = %self.tag_log.path().display(), error = %e, "cannot record tagged series");
        }
    }

    /// Sets the provider of points not yet on disk (the in-process cache).
    pub fn with_hot_points(mut self, hot: Arc<dyn HotPoints>) -> Storage {
        self.hot = Some(hot);
        self
    }

    /// The whisper tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The index (for `/metrics/index.json` and for tests).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Tells the index a metric now exists: the cache's hook for "known the moment it is created".
    pub fn on_create(&self, name: &str) {
        if name.contains(';') && !name.starts_with("_tagged.") {
            if let Some(entry) = self.tagged_entry(name) {
                self.index.insert(&entry);
            }
            if !self.tags.contains(name) && self.tags.add(name).is_ok() {
                self.log_tag(name, true);
            }
            return;
        }
        self.index.insert(name);
    }

    /// The index entry (`_tagged.<h>.<h>.<leaf>`) of a tagged name's existing file, hashed
    /// name first, as graphite-web's finder looks for it.
    fn tagged_entry(&self, name: &str) -> Option<String> {
        [true, false].into_iter().find_map(|hash_only| {
            let rel = carbide_protocol::tags::encode(name, '/', hash_only);
            self.root
                .join(format!("{rel}.wsp"))
                .is_file()
                .then(|| rel.replace('/', "."))
        })
    }

    /// Re-walks the tree, adding files created since the last walk and dropping deleted ones.
    pub fn rescan(&self) -> Result<(), StorageError> {
        let fresh = Index::default();
        if self.root.is_dir() {
            fresh.scan(&self.root)?;
        }
        self.index.replace_with(&fresh);
        self.tags.replace_series(&self.tagged_names()?);
        Ok(())
    }

    /// The file a metric lives in. A tagged name (`a.b;k=v`) lives under `_tagged/`, by hash or by
    /// its readable encoding, whichever exists (the hashed one when neither does).
    pub fn path_of(&self, name: &str) -> PathBuf {
        if name.contains(';') && !name.starts_with("_tagged.") {
            let entry = self
                .tagged_entry(name)
                .unwrap_or_else(|| carbide_protocol::tags::encode(name, '.', true));
            return self.path_of(&entry);
        }
        let mut p = self.root.clone();
        for part in name.split('.') {
            p.push(part);
        }
        p.set_extension("wsp");
        p
    }

    /// The nodes matching `pattern`, sorted by path. Literal names missing from the index are
    /// looked up on disk first, so a metric created behind our back is found.
    pub fn find(&self, pattern: &str) -> Result<Vec<Node>, StorageError> {
        if pattern.contains(';') && !pattern.starts_with("_tagged.") {
            // A tagged name is looked up as graphite-web's finder does: its encoded file, no glob.
            let found = self.path_of(pattern).is_file();
            return Ok(found
                .then(|| Node {
                    path: pattern.to_string(),
                    is_leaf: true,
                })
                .into_iter()
                .collect());
        }
        self.learn_literal(pattern);
        self.index.find(pattern)
    }

    fn learn_literal(&self, pattern: &str) {
        let literal = !pattern.contains(['*', '?', '[', '{', '\\']);
        if literal && !self.index.contains(pattern) && self.path_of(pattern).is_file() {
            self.index.insert(pattern);
        }
    }

    /// Fetches one metric (whisper's archive choice and clamping), with hot points merged. `None`
    /// when whisper has nothing for the range (wholly in the future or beyond retention).
    pub fn fetch(
        &self,
        name: &str,
        from: i64,
        until: i64,
        now: i64,
    ) -> Result<Option<FetchedSeries>, StorageError> {
        let path = self.path_of(name);
        // One open for the header and the read: a render of 1 000 series opened every file twice.
        let db = open_settled(&path)?;
        let fetched = db
            .fetch(from, Some(until), now, None)
            .map_err(|e| e.with_path(&path))?;
        let header = db.header();
        let Some(fetched) = fetched else {
            return Ok(None);
        };
        let mut values = fetched.values;
        if let Some(hot) = &self.hot {
            let points = hot.points(name);
            if !points.is_empty() {
                let raw_step = header.archives.first().map(|a| a.step()).unwrap_or(fetched.step);
                merge_hot_points(
                    &points,
                    fetched.from,
                    fetched.step,
                    &mut values,
                    header.aggregation,
                    raw_step,
                );
            }
        }
        Ok(Some(FetchedSeries {
            name: name.to_string(),
            start: fetched.from,
            end: fetched.until,
            step: fetched.step,
            values,
            aggregation: header.aggregation,
        }))
    }

    /// `(start, end)` of the data a leaf may hold, as graphite-web's whisper reader reports it:
    /// from `now - max_retention` to the file's modification time.
    pub fn intervals(&self, name: &str, now: i64) -> Result<(i64, i64), StorageError> {
        let path = self.path_of(name);
        let db = open_settled(&path)?;
        let header = db.header();
        let start = now - i64::from(header.max_retention);
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(start);
        Ok((start, mtime.max(start)))
    }
}

/// Tries to open a whisper file this many times before its error stands.
const OPEN_ATTEMPTS: u32 = 5;

/// Opens a whisper file for reading, allowing for one a writer is creating at this moment: between
/// the create and the end of its header and preallocation (tens of microseconds) the file is too
/// short to read. Such a file is tried again a few milliseconds later instead of failing the
/// request; a file that stays unreadable (truly damaged) is reported after ~10 ms.
fn open_settled(path: &Path) -> Result<carbide_whisper::WhisperFile, carbide_whisper::Error> {
    let mut attempt = 1;
    loop {
        match carbide_whisper::WhisperFile::open_path(path, false, false) {
            Ok(db) => return Ok(db),
            Err(e) if attempt < OPEN_ATTEMPTS && e.is_corrupt() => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_core::Retention;

    fn make(root: &Path, name: &str) {
        let s = Storage {
            root: root.to_path_buf(),
            index: Index::default(),
            hot: None,
            tags: TagIndex::default(),
            tag_log: TagLog::new(root),
        };
        let path = s.path_of(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let r = Retention::parse_list("60:100").unwrap();
        carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
    }

    #[test]
    fn finds_walked_and_later_created_files() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "a.b.c");
        make(dir.path(), "a.d");
        let s = Storage::open(dir.path()).unwrap();
        let found: Vec<_> = s
            .find("a.*")
            .unwrap()
            .into_iter()
            .map(|n| (n.path, n.is_leaf))
            .collect();
        assert_eq!(found, vec![("a.b".into(), false), ("a.d".into(), true)]);
        make(dir.path(), "a.e");
        assert_eq!(s.find("a.e").unwrap().len(), 1, "literal miss re-checks the disk");
        make(dir.path(), "x.y");
        assert!(s.find("x.*").unwrap().is_empty());
        s.on_create("x.y");
        assert_eq!(s.find("x.*").unwrap().len(), 1);
    }

    fn make_at(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let r = Retention::parse_list("60:100").unwrap();
        carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
    }

    #[test]
    fn tagged_series_from_files_log_and_create_hook() {
        use carbide_protocol::tags::filesystem_path;
        let dir = tempfile::tempdir().unwrap();
        // readable file: decoded by the scan; hashed file: only known through the log.
        make_at(dir.path(), &filesystem_path("cpu.user;dc=a;host=web1", false));
        make_at(dir.path(), &filesystem_path("cpu.user;dc=b;host=web2", true));
        let s = Storage::open(dir.path()).unwrap();
        assert_eq!(
            s.tags().find_series(&["name=cpu.user"]).unwrap(),
            vec!["cpu.user;dc=a;host=web1"]
        );
        assert_eq!(
            s.tag_series("cpu.user;host=web2;dc=b").unwrap(),
            "cpu.user;dc=b;host=web2"
        );
        assert!(s.path_of("cpu.user;dc=b;host=web2").is_file());
        assert!(s.path_of("cpu.user;dc=a;host=web1").is_file());
        make_at(dir.path(), &filesystem_path("mem;host=web1", true));
        s.on_create("mem;host=web1");
        let s2 = Storage::open(dir.path()).unwrap();
        assert_eq!(
            s2.tags().find_series(&["host=~web"]).unwrap(),
            vec![
                "cpu.user;dc=a;host=web1",
                "cpu.user;dc=b;host=web2",
                "mem;host=web1"
            ],
            "a restart knows hashed files from the log"
        );
        s2.del_series("cpu.user;dc=a;host=web1").unwrap();
        let s3 = Storage::open(dir.path()).unwrap();
        assert_eq!(
            s3.tags().len(),
            2,
            "a deleted series stays deleted though its file exists"
        );
        assert!(
            s3.find("_tagged.*").unwrap().len() == 3,
            "the raw tree is still listed"
        );
    }

    struct Fixed(Vec<(i64, f64)>);
    impl HotPoints for Fixed {
        fn points(&self, _name: &str) -> Vec<(i64, f64)> {
            self.0.clone()
        }
    }

    #[test]
    fn fetch_merges_hot_points() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "m");
        let now = 1_000_020;
        let path = dir.path().join("m.wsp");
        carbide_whisper::file::update(&path, 1.0, Some(now - 120), now, false).unwrap();
        let s = Storage::open(dir.path())
            .unwrap()
            .with_hot_points(Arc::new(Fixed(vec![(now - 60, 7.0)])));
        let f = s.fetch("m", now - 300, now, now).unwrap().unwrap();
        assert_eq!(f.step, 60);
        let pts: Vec<_> = f.values.iter().flatten().copied().collect();
        assert_eq!(pts, vec![1.0, 7.0]);
    }

    /// A render that meets a file its writer is creating (empty for a moment) waits for the
    /// header instead of failing the request (serve's web API raced its own writers).
    #[test]
    fn a_file_being_created_is_read_once_its_header_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let donor = tempfile::tempdir().unwrap();
        make(donor.path(), "m");
        let bytes = std::fs::read(donor.path().join("m.wsp")).unwrap();
        let path = dir.path().join("m.wsp");
        std::fs::write(&path, b"").unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(3));
            std::fs::write(&path, bytes).unwrap();
        });
        let got = storage.fetch("m", 0, 60, 60);
        writer.join().unwrap();
        assert!(got.is_ok(), "{got:?}");
        // A file that stays empty is still an error.
        std::fs::write(dir.path().join("empty.wsp"), b"").unwrap();
        assert!(storage.fetch("empty", 0, 60, 60).is_err());
    }
}
