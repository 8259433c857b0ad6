//! `carbide whisper …`: the whisper-*.py scripts of Python whisper 1.1.10, argument for argument.
//!
//! Each subcommand takes the script's positional arguments and options (long options may be shortened
//! and given as `--opt=value` or `--opt value`, as optparse allows), prints the same stdout and exits with
//! the same status, so scripts written around the Python tools keep working. Where the Python script dies
//! with a traceback, we print the traceback's last line (`ValueError: …`) instead and exit 1, as Python
//! does. The file work itself is the carbide-whisper library, which writes byte-identical files.
//!
//! "Now" is read once, from the hidden `CARBIDE_NOW` variable (epoch seconds) when it is set, so runs can
//! be pinned and compared with the Python scripts under a pinned `time.time`.
//!
//! # Deliberate differences from the scripts
//! - A bad `--aggregationMethod` or `--xFilesFactor` is refused before the file is opened: whisper.py
//!   opens it first and leaves an empty file behind (create, resize's `.tmp`).
//! - A NaN xFilesFactor is refused; whisper.py writes it, and then its own reader calls the file corrupt.
//! - Retentions with zero seconds per point or zero points are refused (whisper.py creates unusable
//!   files, or divides by zero).
//! - find-corrupt opens files with the library's checks, so a file whose archives run past its end is
//!   reported too; the script only reads the header.
//! - whisper-dump's own `CorruptWhisperFile(...)` calls lack an argument and die on a TypeError; we
//!   report the corruption it meant to report.
//! - Integer arguments beyond ±2^40 are refused, and merge/diff refuse ranges that would materialise
//!   millions of slots past now (see [`span`]), where Python runs out of memory.
//!
//! # Layout
//! - one module per script: [`create`], [`info`], [`fetch`], [`dump`], [`update`], [`resize`],
//!   [`set_aggregation`] (both setters), [`merge`], [`fill`], [`diff`], [`find_corrupt`].
//! - [`span`]: the checks that keep merge and diff from materialising ranges far in the future.
//! - [`pyfmt`], [`pyjson`], [`timefmt`]: Python's float repr, `%f`/`%g`, number parsing, `json.dumps`
//!   layout and `time.ctime`/`strftime`, which the exact output depends on.
//! - this file: the subcommand enum, the shared [`Ctx`] (stdout, now) and [`Fail`], the ways a script
//!   ends.

pub mod create;
pub mod diff;
pub mod dump;
pub mod fetch;
pub mod fill;
pub mod find_corrupt;
pub mod info;
pub mod merge;
pub mod pyfmt;
pub mod pyjson;
pub mod resize;
pub mod set_aggregation;
pub mod span;
pub mod timefmt;
pub mod update;

use std::io::{self, BufWriter, Stdout, Write};
use std::path::Path;
use std::process::ExitCode;

use carbide_whisper::Error;
use clap::Subcommand;

/// The whisper tools.
#[derive(Debug, Subcommand)]
pub enum WhisperCommand {
    /// Create a whisper file, or estimate its size (whisper-create.py).
    Create(create::Args),
    /// Print a file's header (whisper-info.py).
    Info(info::Args),
    /// Print the values of a time range (whisper-fetch.py).
    Fetch(fetch::Args),
    /// Print the header and every stored slot (whisper-dump.py).
    Dump(dump::Args),
    /// Write points given as timestamp:value (whisper-update.py).
    Update(update::Args),
    /// Rebuild a file with new retentions, keeping its data (whisper-resize.py).
    Resize(resize::Args),
    /// Change a file's aggregation method (whisper-set-aggregation-method.py).
    SetAggregationMethod(set_aggregation::MethodArgs),
    /// Change a file's xFilesFactor (whisper-set-xfilesfactor.py).
    SetXfilesfactor(set_aggregation::XffArgs),
    /// Copy every known point of one file over another (whisper-merge.py).
    Merge(merge::Args),
    /// Fill the gaps of one file from another without overwriting (whisper-fill.py).
    Fill(fill::Args),
    /// Compare two files point by point (whisper-diff.py).
    Diff(diff::Args),
    /// Report or delete corrupt .wsp files under directories (find-corrupt-whisper-files.py).
    FindCorrupt(find_corrupt::Args),
}

impl WhisperCommand {
    /// The subcommand's name on the command line, for its help text.
    fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Info(_) => "info",
            Self::Fetch(_) => "fetch",
            Self::Dump(_) => "dump",
            Self::Update(_) => "update",
            Self::Resize(_) => "resize",
            Self::SetAggregationMethod(_) => "set-aggregation-method",
            Self::SetXfilesfactor(_) => "set-xfilesfactor",
            Self::Merge(_) => "merge",
            Self::Fill(_) => "fill",
            Self::Diff(_) => "diff",
            Self::FindCorrupt(_) => "find-corrupt",
        }
    }
}

/// How a subcommand ends when it does not succeed: what is printed where, and the exit status.
#[derive(Debug)]
pub enum Fail {
    /// A message on stderr and status 1: `SystemExit('[ERROR] …')`, or an uncaught exception.
    Msg(String),
    /// An optional stderr message, then the help text on stdout, and status 1 (`print_help(); exit(1)`).
    Help(Option<String>),
    /// The usage line and `error: …` on stderr, and status 2 (optparse's and argparse's `error()`).
    Usage(String),
    /// Everything has been printed already; exit with this status.
    Status(u8),
    /// Whoever read stdout went away: stop quietly, as the scripts do with SIGPIPE at its default.
    BrokenPipe,
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Fail::BrokenPipe
        } else {
            Fail::Msg(format!("OSError: {}", strerror(&e)))
        }
    }
}

/// What every subcommand shares: buffered stdout and the one "now".
pub struct Ctx {
    out: BufWriter<Stdout>,
    now: i64,
}

impl Ctx {
    /// The current time in epoch seconds (`int(time.time())`), fixed for the whole run.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Prints a line on stdout (`print(s)`).
    pub fn println(&mut self, s: impl AsRef<str>) -> Result<(), Fail> {
        self.out.write_all(s.as_ref().as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Prints text on stdout without adding a newline (`sys.stdout.write(s)`).
    pub fn print(&mut self, s: impl AsRef<str>) -> Result<(), Fail> {
        self.out.write_all(s.as_ref().as_bytes())?;
        Ok(())
    }
}

/// Reads `CARBIDE_NOW` (epoch seconds, fractions dropped) or the clock.
fn now_from_env() -> Result<i64, Fail> {
    match std::env::var("CARBIDE_NOW") {
        Ok(v) => pyfmt::int(&v)
            .or_else(|| {
                pyfmt::float(&v)
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .ok_or_else(|| Fail::Msg(format!("[ERROR] CARBIDE_NOW={v:?} is not epoch seconds"))),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)),
    }
}

/// The help text of one subcommand, as `carbide whisper NAME --help` prints it.
fn help_text(name: &str) -> String {
    let mut group = WhisperCommand::augment_subcommands(clap::Command::new("whisper"));
    match group.find_subcommand_mut(name) {
        Some(sub) => sub
            .clone()
            .bin_name(format!("carbide whisper {name}"))
            .render_help()
            .to_string(),
        None => String::new(),
    }
}

/// The usage line of one subcommand.
fn usage_text(name: &str) -> String {
    let mut group = WhisperCommand::augment_subcommands(clap::Command::new("whisper"));
    match group.find_subcommand_mut(name) {
        Some(sub) => sub
            .clone()
            .bin_name(format!("carbide whisper {name}"))
            .render_usage()
            .to_string(),
        None => String::new(),
    }
}

/// Runs one whisper subcommand and turns its outcome into the script's output and exit status.
pub fn run(cmd: WhisperCommand) -> ExitCode {
    let name = cmd.name();
    let result = now_from_env().and_then(|now| {
        let mut ctx = Ctx {
            out: BufWriter::new(io::stdout()),
            now,
        };
        let result = dispatch(cmd, &mut ctx);
        // Whatever was printed before a failure is still printed, as Python flushes at exit.
        let flushed = ctx.out.flush().map_err(Fail::from);
        result.and(flushed)
    });
    let mut stderr = io::stderr().lock();
    match result {
        Ok(()) | Err(Fail::BrokenPipe) => ExitCode::SUCCESS,
        Err(Fail::Msg(m)) => {
            let _ = writeln!(stderr, "{m}");
            ExitCode::from(1)
        }
        Err(Fail::Help(m)) => {
            if let Some(m) = m {
                let _ = write!(stderr, "{m}");
            }
            let mut out = io::stdout().lock();
            let _ = write!(out, "{}", help_text(name));
            let _ = out.flush();
            ExitCode::from(1)
        }
        Err(Fail::Usage(m)) => {
            let _ = writeln!(stderr, "{}\n\nerror: {m}", usage_text(name));
            ExitCode::from(2)
        }
        Err(Fail::Status(code)) => ExitCode::from(code),
    }
}

fn dispatch(cmd: WhisperCommand, ctx: &mut Ctx) -> Result<(), Fail> {
    match cmd {
        WhisperCommand::Create(a) => create::run(a, ctx),
        WhisperCommand::Info(a) => info::run(a, ctx),
        WhisperCommand::Fetch(a) => fetch::run(a, ctx),
        WhisperCommand::Dump(a) => dump::run(a, ctx),
        WhisperCommand::Update(a) => update::run(a, ctx),
        WhisperCommand::Resize(a) => resize::run(a, ctx),
        WhisperCommand::SetAggregationMethod(a) => set_aggregation::run_method(a, ctx),
        WhisperCommand::SetXfilesfactor(a) => set_aggregation::run_xff(a, ctx),
        WhisperCommand::Merge(a) => merge::run(a, ctx),
        WhisperCommand::Fill(a) => fill::run(a, ctx),
        WhisperCommand::Diff(a) => diff::run(a, ctx),
        WhisperCommand::FindCorrupt(a) => find_corrupt::run(a, ctx),
    }
}

/// The C library's text for an OS error, without Rust's ` (os error N)` suffix.
fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// `str()` of Python's OSError for a file: `[Errno 2] No such file or directory: 'x.wsp'`.
pub fn oserror_text(e: &io::Error, path: Option<&Path>) -> String {
    let mut text = match e.raw_os_error() {
        Some(n) => format!("[Errno {n}] {}", strerror(e)),
        None => strerror(e),
    };
    if let Some(p) = path {
        text.push_str(&format!(": '{}'", p.display()));
    }
    text
}

/// The class Python gives an OS error.
fn oserror_class(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "FileNotFoundError",
        io::ErrorKind::PermissionDenied => "PermissionError",
        io::ErrorKind::AlreadyExists => "FileExistsError",
        io::ErrorKind::IsADirectory => "IsADirectoryError",
        io::ErrorKind::NotADirectory => "NotADirectoryError",
        _ => "OSError",
    }
}

/// `str(exc)` for the exception whisper.py raises in place of this error.
pub fn py_message(e: &Error) -> String {
    match e {
        Error::FileIo { path, source } => oserror_text(source, Some(path)),
        Error::Io(source) => oserror_text(source, None),
        Error::InvalidXFilesFactor(x) => {
            format!("Invalid xFilesFactor {}, not between 0 and 1", pyfmt::repr(*x))
        }
        Error::TimestampOutOfRange(_) => "argument out of range".to_string(),
        other => other.to_string(),
    }
}

/// The last line of the traceback Python prints when this error escapes a script.
pub fn py_exception(e: &Error) -> String {
    let class = match e {
        Error::FileIo { source, .. } | Error::Io(source) => oserror_class(source),
        Error::Corrupt(_) | Error::CorruptFile { .. } => "whisper.CorruptWhisperFile",
        Error::InvalidConfiguration(_) => "whisper.InvalidConfiguration",
        Error::InvalidXFilesFactor(_) => "whisper.InvalidXFilesFactor",
        Error::TimestampNotCovered(_) => "whisper.TimestampNotCovered",
        Error::TimestampOutOfRange(_) => "struct.error",
        Error::InvalidTimeInterval { .. } => "whisper.InvalidTimeInterval",
        Error::InvalidGranularity(_) => "ValueError",
        Error::LayoutMismatch(_) => "NotImplementedError",
    };
    format!("{class}: {}", py_message(e))
}

/// A library error that the script catches and reports as `[ERROR] …`.
pub fn caught(e: &Error) -> Fail {
    Fail::Msg(format!("[ERROR] {}", py_message(e)))
}

/// A library error that escapes the script (a traceback in Python).
pub fn uncaught(e: &Error) -> Fail {
    Fail::Msg(py_exception(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_like_python() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(
            oserror_text(&e, Some(Path::new("x.wsp"))),
            "[Errno 2] No such file or directory: 'x.wsp'"
        );
        let err = Error::FileIo {
            path: "a/b.wsp".into(),
            source: e,
        };
        assert_eq!(
            py_exception(&err),
            "FileNotFoundError: [Errno 2] No such file or directory: 'a/b.wsp'"
        );
        assert_eq!(
            py_message(&Error::InvalidXFilesFactor(2.0)),
            "Invalid xFilesFactor 2.0, not between 0 and 1"
        );
    }

    #[test]
    fn every_subcommand_has_help() {
        for name in [
            "create",
            "info",
            "fetch",
            "dump",
            "update",
            "resize",
            "set-aggregation-method",
            "set-xfilesfactor",
            "merge",
            "fill",
            "diff",
            "find-corrupt",
        ] {
            let help = help_text(name);
            assert!(
                help.contains(&format!("carbide whisper {name}")),
                "{name}: {help}"
            );
            assert!(usage_text(name).starts_with("Usage:"), "{name}");
        }
    }
}
