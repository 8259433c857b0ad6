//! Located diagnostics: every problem names the file and line it came from, like a compiler.

use std::fmt;

/// A config problem that stops the file from loading: `path:line: message`.
///
/// `line` is 1-based; 0 means the problem belongs to the whole file (e.g. "no default rule").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ConfigError {
    /// The file name as the caller gave it.
    pub path: String,
    /// 1-based line number; 0 for whole-file problems.
    pub line: usize,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    /// Builds an error; a helper so every parser formats the same way.
    pub fn new(path: &str, line: usize, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// Something carbon would accept (or skip with a log line) that an operator should still hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file name as the caller gave it.
    pub path: String,
    /// 1-based line number; 0 for whole-file remarks.
    pub line: usize,
    /// What carbon does with it, e.g. "schema `[x]` has no 'pattern', skipped".
    pub message: String,
}

impl Warning {
    /// Builds a warning with the same shape as [`ConfigError`].
    pub fn new(path: &str, line: usize, message: impl Into<String>) -> Self {
        Warning {
            path: path.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: warning: {}", self.path, self.line, self.message)
    }
}
