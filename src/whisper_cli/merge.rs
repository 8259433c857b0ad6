//! `carbide whisper merge` (whisper-merge.py): copy every known point of one file over another.

use std::path::Path;

use carbide_whisper::{Error, file};

use super::info::read_header;
use super::{Ctx, Fail, pyfmt, span, uncaught};

/// Arguments of whisper-merge.py.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Beginning of interval, unix timestamp (default: epoch).
    #[arg(long = "from", value_parser = pyfmt::optparse_int, allow_hyphen_values = true)]
    from: Option<i64>,
    /// End of interval, unix timestamp (default: now).
    #[arg(long, value_parser = pyfmt::optparse_int, allow_hyphen_values = true)]
    until: Option<i64>,
    /// from_path to_path
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// The last traceback line for an error of whisper.py's merge() or diff(), which name both files.
pub fn pair_error(e: &Error, a: &Path, b: &Path) -> Fail {
    match e {
        Error::LayoutMismatch(advice) => Fail::Msg(format!(
            "NotImplementedError: {} and {} archive configurations are unalike. {advice}",
            a.display(),
            b.display()
        )),
        Error::InvalidTimeInterval { .. } => Fail::Msg("ValueError: time_to must be >= time_from".into()),
        e => uncaught(e),
    }
}

/// An `--until` far in the future over a never-written source archive would be read as that many
/// empty values; refuse it instead of exhausting memory.
fn refuse_huge_ranges(src: &Path, from: Option<i64>, until: Option<i64>, now: i64) -> Result<(), Fail> {
    let Ok(header) = read_header(src) else {
        return Ok(());
    };
    let until = until.unwrap_or(now);
    for archive in &header.archives {
        let oldest = now - archive.retention();
        if until >= oldest && !span::written(src, archive) {
            span::check_size(archive, from.unwrap_or(0).max(oldest), until)?;
        }
    }
    Ok(())
}

/// Runs whisper-merge.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [from, to, ..] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    let (from, to) = (Path::new(from), Path::new(to));
    for p in [from, to] {
        if !p.exists() {
            return Err(Fail::Msg(format!(
                "[ERROR] File \"{}\" does not exist!",
                p.display()
            )));
        }
    }
    refuse_huge_ranges(from, a.from, a.until, ctx.now())?;
    file::merge(from, to, a.from, a.until, ctx.now(), false).map_err(|e| pair_error(&e, from, to))
}
