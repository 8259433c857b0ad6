//! `carbide whisper find-corrupt` (find-corrupt-whisper-files.py): report, or delete, corrupt `.wsp`
//! files under directories.
//!
//! The walk is os.walk's: top-down, entries in directory order, symlinked directories listed but not
//! entered. A file is corrupt when the library refuses to open it, which is stricter than the script's
//! header-only check: a file whose archives run past its end (a truncated file) is reported too.

use std::io::Write;
use std::path::Path;

use carbide_whisper::WhisperFile;

use super::{Ctx, Fail, py_exception};

/// Arguments of find-corrupt-whisper-files.py: find and (optionally) delete corrupt Whisper data files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Delete reported files
    #[arg(long = "delete-corrupt")]
    delete_corrupt: bool,
    /// Display progress info
    #[arg(long)]
    verbose: bool,
    /// Directory containing Whisper files
    #[arg(value_name = "WHISPER_DIR", required = true)]
    directories: Vec<String>,
}

fn walk(dir: &Path, a: &Args, ctx: &mut Ctx) -> Result<(), Fail> {
    // os.walk skips a directory it cannot list, silently.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for entry in entries {
        let Ok(entry) = entry else {
            return Ok(());
        };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            files.push(path);
            continue;
        };
        if kind.is_dir() {
            dirs.push(path);
        } else if kind.is_symlink() && path.is_dir() {
            // Listed as a directory, never followed.
        } else {
            files.push(path);
        }
    }
    if a.verbose {
        ctx.println(format!("Scanning {}\u{2026}", dir.display()))?;
    }
    let mut stderr = std::io::stderr().lock();
    for f in files {
        if !f.as_os_str().as_encoded_bytes().ends_with(b".wsp") {
            continue;
        }
        match WhisperFile::open_path(&f, false, false) {
            Ok(db) => {
                if a.verbose {
                    let points: u64 = db.header().archives.iter().map(|x| u64::from(x.points)).sum();
                    ctx.println(format!("{}: {points} points", f.display()))?;
                }
            }
            Err(e) if e.is_corrupt() => {
                if a.delete_corrupt {
                    let _ = writeln!(stderr, "Deleting corrupt Whisper file: {}", f.display());
                    if let Err(e) = std::fs::remove_file(&f) {
                        let _ = writeln!(
                            stderr,
                            "{}",
                            py_exception(&carbide_whisper::Error::FileIo {
                                path: f.clone(),
                                source: e,
                            })
                        );
                    }
                } else {
                    let _ = writeln!(stderr, "Corrupt Whisper file: {}", f.display());
                }
            }
            // whisper.info() swallows OS errors: an unreadable file is neither reported nor counted.
            Err(e) => {
                if a.verbose {
                    let _ = writeln!(stderr, "{}", py_exception(&e));
                }
            }
        }
    }
    for d in dirs {
        walk(&d, a, ctx)?;
    }
    Ok(())
}

/// Runs find-corrupt-whisper-files.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    for d in &a.directories {
        let dir = match std::fs::canonicalize(d) {
            Ok(p) if p.is_dir() => p,
            // The script's message really is the unformatted "%d is not a directory!".
            _ => return Err(Fail::Usage("%d is not a directory!".into())),
        };
        walk(&dir, &a, ctx)?;
    }
    Ok(())
}
