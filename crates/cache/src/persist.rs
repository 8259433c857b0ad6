//! Turning a metric's points into whisper writes: the file is found (or created by the storage
//! schemas), then `update_many` runs on it.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carbide_core::name::{NameError, validate_path_name};
use carbide_core::{AggregationMethod, Retention};
use carbide_whisper::file::{self, CreateOptions};
use carbide_whisper::{Point, WhisperFile};
use parking_lot::{Mutex, RwLock};

use crate::throttle::TokenBucket;

/// How a new metric's file is laid out: the first matching storage schema and aggregation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSpec {
    /// Archives from storage-schemas.conf.
    pub archives: Vec<Retention>,
    /// From storage-aggregation.conf.
    pub aggregation: AggregationMethod,
    /// From storage-aggregation.conf.
    pub x_files_factor: f64,
}

/// Decides where a metric lives and how its file is created; reloaded on SIGHUP.
pub trait StoragePolicy: Send + Sync {
    /// The layout for a new file, or `None` when no schema matches (the point cannot be stored).
    fn create_spec(&self, metric: &str) -> Option<CreateSpec>;
    /// The file for `metric` under `root`, or why the name is refused.
    fn path_for(&self, root: &Path, metric: &str) -> Result<PathBuf, NameError> {
        plain_path(root, metric)
    }
}

/// carbon's mapping for an untagged name: dots become directories, `.wsp` is appended.
pub fn plain_path(root: &Path, metric: &str) -> Result<PathBuf, NameError> {
    validate_path_name(metric)?;
    let mut p = root.to_path_buf();
    p.push(metric.replace('.', "/"));
    p.as_mut_os_string().push(".wsp");
    Ok(p)
}

/// What a persist call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The points are on disk; `created` if the file was new.
    Written {
        /// Whether the file had to be created first.
        created: bool,
    },
    /// The file does not exist and MAX_CREATES_PER_MINUTE is used up: keep the points and retry.
    CreateDeferred,
}

/// Why points could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The name would leave the storage tree or is otherwise unusable.
    #[error("invalid metric name: {0}")]
    InvalidName(#[from] NameError),
    /// No storage schema matches, so no file can be created.
    #[error("no storage schema matches")]
    NoSchema,
    /// The file exists but is damaged; retrying cannot help.
    #[error("{0}")]
    Corrupt(carbide_whisper::Error),
    /// Anything else (a full disk, permissions): retrying later may help.
    #[error("{0}")]
    Retryable(carbide_whisper::Error),
}

impl PersistError {
    /// Whether the writer should put the points back and try later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PersistError::Retryable(_))
    }
}

fn classify(e: carbide_whisper::Error) -> PersistError {
    if e.is_corrupt() {
        PersistError::Corrupt(e)
    } else {
        PersistError::Retryable(e)
    }
}

/// Writes points somewhere durable.
pub trait Persister: Send + Sync {
    /// Persists `points` (oldest first) for `metric`. `throttled` false lifts the create limit
    /// (flush and shutdown drain).
    fn persist(&self, metric: &str, points: &[Point], throttled: bool) -> Result<Outcome, PersistError>;
}

/// File-creation settings from carbon.conf.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhisperSettings {
    /// WHISPER_LOCK_WRITES: flock each file while writing.
    pub lock: bool,
    /// WHISPER_SPARSE_CREATE.
    pub sparse: bool,
    /// WHISPER_FALLOCATE_CREATE.
    pub fallocate: bool,
    /// MAX_CREATES_PER_MINUTE; `None` is unlimited.
    pub max_creates_per_minute: Option<f64>,
}

/// How many directories the persister remembers as existing.
const MAX_KNOWN_DIRS: usize = 65_536;

/// The whisper persister: one tree of files under `root`.
pub struct WhisperPersister {
    root: PathBuf,
    policy: RwLock<Arc<dyn StoragePolicy>>,
    settings: WhisperSettings,
    creates: TokenBucket,
    /// Directories known to exist: a create in one of them skips `create_dir_all`'s mkdir and stat
    /// (a metric tree has ~1 directory per 1 000 files). A directory removed behind our back only
    /// costs one failed create, which forgets it and retries.
    dirs: Mutex<HashSet<PathBuf>>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl WhisperPersister {
    /// A persister writing under `root`, creating files as `policy` says.
    pub fn new(root: PathBuf, policy: Arc<dyn StoragePolicy>, settings: WhisperSettings) -> Self {
        let creates = TokenBucket::new(settings.max_creates_per_minute, Duration::from_secs(60));
        WhisperPersister {
            root,
            policy: RwLock::new(policy),
            settings,
            creates,
            dirs: Mutex::new(HashSet::new()),
        }
    }

    /// Replaces the policy (SIGHUP reload); files already created keep their layout.
    pub fn set_policy(&self, policy: Arc<dyn StoragePolicy>) {
        *self.policy.write() = policy;
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `metric` is (or would be) stored.
    pub fn path_for(&self, metric: &str) -> Result<PathBuf, NameError> {
        let policy = self.policy.read().clone();
        policy.path_for(&self.root, metric)
    }

    /// Creates the file holding `points`; `false` when another writer created it first (the
    /// caller then updates it as usual).
    fn create(&self, path: &Path, metric: &str, points: &[Point]) -> Result<bool, PersistError> {
        let policy = self.policy.read().clone();
        let spec = policy.create_spec(metric).ok_or(PersistError::NoSchema)?;
        let dir = path.parent();
        if let Some(dir) = dir
            && !self.dirs.lock().contains(dir)
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| PersistError::Retryable(carbide_whisper::Error::Io(e).with_path(dir)))?;
            let mut dirs = self.dirs.lock();
            // A bound on the memory, for trees of very many directories: forgetting costs a stat.
            if dirs.len() >= MAX_KNOWN_DIRS {
                dirs.clear();
            }
            dirs.insert(dir.to_path_buf());
        }
        let opts = CreateOptions {
            x_files_factor: spec.x_files_factor,
            aggregation: spec.aggregation,
            sparse: self.settings.sparse,
            fallocate: self.settings.fallocate,
            lock: self.settings.lock,
        };
        match file::create_with_points(path, &spec.archives, &opts, points, now()) {
            Ok(()) => Ok(true),
            // Another writer won the race: the file is there, which is all we wanted.
            Err(carbide_whisper::Error::InvalidConfiguration(m)) if m.contains("already exists") => Ok(false),
            Err(e) => {
                if let Some(dir) = dir {
                    self.dirs.lock().remove(dir);
                }
                Err(classify(e))
            }
        }
    }
}

impl Persister for WhisperPersister {
    fn persist(&self, metric: &str, points: &[Point], throttled: bool) -> Result<Outcome, PersistError> {
        let path = self.path_for(metric)?;
        let mut db = match WhisperFile::open_path(&path, true, self.settings.lock) {
            Ok(db) => db,
            Err(carbide_whisper::Error::FileIo { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                if throttled && self.creates.try_take().is_err() {
                    return Ok(Outcome::CreateDeferred);
                }
                if self.create(&path, metric, points)? {
                    return Ok(Outcome::Written { created: true });
                }
                WhisperFile::open_path(&path, true, self.settings.lock).map_err(classify)?
            }
            Err(e) => return Err(classify(e)),
        };
        db.update_many(points, now())
            .map_err(|e| classify(e.with_path(&path)))?;
        Ok(Outcome::Written { created: false })
    }
}
