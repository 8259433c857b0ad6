//! `carbide whisper resize` (whisper-resize.py): rebuild a file with new retentions, keeping its data.
//!
//! The new file is built as `PATH.tmp` (or `--newfile`), then the old one is renamed to `PATH.bak` and
//! the new one into place, with the script's progress lines. A resize that fails before the renames
//! leaves the original untouched.

use std::path::{Path, PathBuf};

use carbide_whisper::file::{self, ResizeOptions};
use carbide_whisper::{Error, WhisperFile};

use super::create::{RETENTION_HELP, check_new_file, parse_retention};
use super::{Ctx, Fail, pyfmt, uncaught};

/// Arguments of whisper-resize.py.
#[derive(Debug, clap::Args)]
#[command(after_help = RETENTION_HELP)]
pub struct Args {
    /// Change the xFilesFactor.
    #[arg(long = "xFilesFactor", value_parser = pyfmt::optparse_float, allow_hyphen_values = true)]
    x_files_factor: Option<f64>,
    /// Change the aggregation function (average, sum, last, max, min, avg_zero, absmax, absmin).
    #[arg(long = "aggregationMethod", allow_hyphen_values = true)]
    aggregation_method: Option<String>,
    /// Perform a destructive change.
    #[arg(long)]
    force: bool,
    /// Create a new database file without removing the existing one.
    #[arg(long, allow_hyphen_values = true)]
    newfile: Option<String>,
    /// Delete the .bak file after successful execution.
    #[arg(long)]
    nobackup: bool,
    /// Try to aggregate the values to fit the new archive better. Note that this will make things
    /// slower and use more memory.
    #[arg(long)]
    aggregate: bool,
    /// path timePerPoint:timeToStore [timePerPoint:timeToStore]*
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

fn io_fail(path: &Path) -> impl Fn(std::io::Error) -> Fail + '_ {
    move |e| {
        uncaught(&Error::FileIo {
            path: path.into(),
            source: e,
        })
    }
}

/// Runs whisper-resize.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [path, defs @ ..] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    if defs.is_empty() {
        return Err(Fail::Help(None));
    }
    // --force is accepted and, as in the script, changes nothing.
    let _ = a.force;
    let path = Path::new(path);
    if !path.exists() {
        return Err(Fail::Help(Some(format!(
            "[ERROR] File '{}' does not exist!\n\n",
            path.display()
        ))));
    }
    let old = super::info::read_header(path).map_err(|e| uncaught(&e))?;
    let archives = defs
        .iter()
        .map(|d| parse_retention(d))
        .collect::<Result<Vec<_>, _>>()?;
    let xff = a.x_files_factor.unwrap_or(f64::from(old.x_files_factor));
    let method_name = a
        .aggregation_method
        .clone()
        .unwrap_or_else(|| old.aggregation.name().into());
    let now = ctx.now();

    ctx.println("Retrieving all data from the archives")?;
    // The script reads all the data here, before it creates anything; a file whose archives cannot be
    // read fails at this point.
    WhisperFile::open_path(path, false, false).map_err(|e| uncaught(&e))?;
    let (newfile, tmpfile) = match &a.newfile {
        Some(n) => (PathBuf::from(n), None),
        None => {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            if tmp.exists() {
                ctx.println(format!(
                    "Removing previous temporary database file: {}",
                    tmp.display()
                ))?;
                std::fs::remove_file(&tmp).map_err(io_fail(&tmp))?;
            }
            (tmp.clone(), Some(tmp))
        }
    };
    ctx.println(format!("Creating new whisper database: {}", newfile.display()))?;
    let method = check_new_file(&newfile, &archives, &method_name, xff).map_err(|r| r.uncaught())?;
    let opts = ResizeOptions {
        x_files_factor: Some(xff),
        aggregation: Some(method),
        aggregate: a.aggregate,
    };
    let report = match file::resize_into(path, &newfile, &archives, &opts, now) {
        Ok(report) => report,
        Err(e) => {
            // The new file did not exist (checked above); one that failed half-way is not kept. (The
            // script leaves it; an "already exists" from a racing writer is not ours to remove.)
            if !matches!(e, Error::InvalidConfiguration(_)) && newfile.exists() {
                let _ = std::fs::remove_file(&newfile);
            }
            return Err(uncaught(&e));
        }
    };
    ctx.println(format!(
        "Created: {} ({} bytes)",
        newfile.display(),
        report.created_size
    ))?;
    if a.aggregate {
        ctx.println("Migrating data with aggregation...")?;
        ctx.println(format!(
            "oldtimestamps: {}",
            pyfmt::list_repr(report.old_timestamps.iter().map(i64::to_string))
        ))?;
        for (from, until, step) in &report.windows {
            ctx.println(format!("({from},{until},{step})"))?;
            ctx.println(format!(
                "timepoints_to_update: {}",
                pyfmt::range_repr(*from, *until, *step)
            ))?;
        }
    } else {
        ctx.println("Migrating data without aggregation...")?;
    }

    let Some(tmpfile) = tmpfile else {
        return Ok(());
    };
    let mut backup = path.as_os_str().to_owned();
    backup.push(".bak");
    let backup = PathBuf::from(backup);
    ctx.println(format!("Renaming old database to: {}", backup.display()))?;
    std::fs::rename(path, &backup).map_err(io_fail(path))?;
    ctx.println(format!("Renaming new database to: {}", path.display()))?;
    if let Err(e) = std::fs::rename(&tmpfile, path) {
        ctx.println("\nOperation failed, restoring backup")?;
        std::fs::rename(&backup, path).map_err(io_fail(&backup))?;
        return Err(uncaught(&Error::FileIo {
            path: tmpfile,
            source: e,
        }));
    }
    if a.nobackup {
        ctx.println(format!("Unlinking backup: {}", backup.display()))?;
        std::fs::remove_file(&backup).map_err(io_fail(&backup))?;
    }
    Ok(())
}
