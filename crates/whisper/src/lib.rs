//! The whisper file format, byte-compatible with Python whisper 1.1.
//!
//! Files written here are identical, byte for byte, to the files whisper.py writes for the same
//! operations with the same `now`, and either implementation reads the other's files. Every operation
//! takes `now` as a parameter so that tests are deterministic.
//!
//! Handles are plain [`std::fs::File`]s owned by the operation that opened them, so they close on every
//! path, the error path included: the stuck-flock deadlock of whisper issue #129 cannot happen here.
//!
//! # Layout
//! - [`header`]: parsing and writing the header, `validateArchiveList`.
//! - [`db`]: the algorithms (update, update_many, propagation, fetch, merge, diff) over any [`Storage`].
//! - [`file`]: the path-level API the CLI and the cache use: create, open with optional flock, and
//!   the operations of the whisper-*.py scripts (resize, fill).
//! - [`aggregate`] and [`pyset`]: the two places where Python's arithmetic and iteration order have to be
//!   reproduced exactly for the bytes to match.
//! - [`storage`]: positioned IO over files or memory.

pub mod aggregate;
pub mod db;
pub mod file;
pub mod header;
pub mod pyset;
pub mod storage;

use std::io;
use std::path::PathBuf;

pub use db::{ArchiveDiff, Fetched, Point, Whisper};
pub use file::{CreateOptions, WhisperFile};
pub use header::{ArchiveInfo, Header, validate_archive_list};
pub use storage::Storage;

/// Everything that can go wrong with a whisper file; the texts follow whisper.py's exceptions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error (permissions, full disk, …).
    #[error("{0}")]
    Io(#[source] io::Error),
    /// The file is truncated, zero-length or has an impossible header.
    #[error("{0}")]
    Corrupt(String),
    /// The same, with the file it concerns.
    #[error("{reason} ({})", path.display())]
    CorruptFile {
        /// What was wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },
    /// An IO error with the file it concerns.
    #[error("{}: {source}", path.display())]
    FileIo {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A bad archive list, or a file that already exists.
    #[error("{0}")]
    InvalidConfiguration(String),
    /// An xFilesFactor outside 0..=1.
    #[error("Invalid xFilesFactor {0}, not between 0 and 1")]
    InvalidXFilesFactor(f64),
    /// update() with a timestamp in the future or beyond the longest retention.
    #[error("Timestamp not covered by any archives in this database.")]
    TimestampNotCovered(i64),
    /// A timestamp that the format's 32-bit unsigned field cannot hold.
    #[error("timestamp {0} cannot be stored in a whisper file")]
    TimestampOutOfRange(i64),
    /// fetch() with from after until.
    #[error("Invalid time interval: from time '{from}' is after until time '{until}'")]
    InvalidTimeInterval {
        /// The requested start.
        from: i64,
        /// The requested end.
        until: i64,
    },
    /// fetch() for an archive step the file does not have.
    #[error("Invalid granularity: {0}")]
    InvalidGranularity(u32),
    /// merge/diff of files whose archives differ.
    #[error("archive configurations are unalike. {0}")]
    LayoutMismatch(&'static str),
}

impl Error {
    /// A corruption error with whisper.py's wording.
    pub fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt(reason.into())
    }

    /// Attaches the file name to errors that lack one, for messages an operator can act on.
    pub fn with_path(self, path: impl Into<PathBuf>) -> Self {
        match self {
            Error::Corrupt(reason) => Error::CorruptFile {
                reason,
                path: path.into(),
            },
            Error::Io(source) => Error::FileIo {
                path: path.into(),
                source,
            },
            other => other,
        }
    }

    /// Whether the file itself is damaged (as opposed to a bad request or an OS error).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt(_) | Error::CorruptFile { .. })
    }
}

/// A short read means the file ends too early: corruption, reported as whisper.py words it.
pub(crate) fn io_or_corrupt(e: io::Error, what: &str) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::corrupt(what)
    } else {
        Error::Io(e)
    }
}
