//! `carbide whisper update` (whisper-update.py): write points given as `timestamp:value`.
//!
//! `N:` anywhere in a point is replaced by the current time, as the script's `str.replace` does. One
//! point goes through `update()` (which refuses a timestamp outside the retention), several through
//! `update_many()` (which drops them silently); points come from stdin, one per line, when none are
//! given on the command line.

use std::io::Read;
use std::path::Path;

use carbide_whisper::file;

use super::{Ctx, Fail, caught, pyfmt, uncaught};

/// Arguments of whisper-update.py.
#[derive(Debug, clap::Args)]
#[command(after_help = "If no values are passed as arguments, they are read one-per-line from stdin.")]
pub struct Args {
    /// path [timestamp:value]*
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Splits a point as `tuple(point.split(':'))` and unpacks it into two, as the script does.
fn split_point(point: &str) -> Result<(&str, &str), Fail> {
    let parts: Vec<&str> = point.split(':').collect();
    match parts.as_slice() {
        [t, v] => Ok((t, v)),
        [_] => Err(Fail::Msg(
            "ValueError: not enough values to unpack (expected 2, got 1)".into(),
        )),
        _ => Err(Fail::Msg(
            "ValueError: too many values to unpack (expected 2)".into(),
        )),
    }
}

fn bad_float(s: &str) -> Fail {
    Fail::Msg(format!("ValueError: could not convert string to float: '{s}'"))
}

fn bad_int(s: &str) -> Fail {
    Fail::Msg(format!(
        "ValueError: invalid literal for int() with base 10: '{s}'"
    ))
}

/// Runs whisper-update.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [path, given @ ..] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    let path = Path::new(path);
    let now = ctx.now();
    let lines: Vec<String> = if given.is_empty() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| Fail::Msg(format!("OSError: {e}")))?;
        input.lines().map(str::to_string).collect()
    } else {
        given.to_vec()
    };
    let points: Vec<String> = lines
        .iter()
        .map(|p| p.replace("N:", &format!("{now}:")))
        .collect();

    if let [point] = points.as_slice() {
        let (t, v) = split_point(point)?;
        let value = pyfmt::float(v).ok_or_else(|| bad_float(v))?;
        let timestamp = pyfmt::int(t).ok_or_else(|| bad_int(t))?;
        return match file::update(path, value, Some(timestamp), now, false) {
            Ok(()) => Ok(()),
            Err(
                e @ (carbide_whisper::Error::FileIo { .. } | carbide_whisper::Error::TimestampOutOfRange(_)),
            ) => Err(uncaught(&e)),
            Err(e) => Err(caught(&e)),
        };
    }
    let mut parsed = Vec::with_capacity(points.len());
    for point in &points {
        let (t, v) = split_point(point)?;
        let timestamp = pyfmt::int(t).ok_or_else(|| bad_int(t))?;
        let value = pyfmt::float(v).ok_or_else(|| bad_float(v))?;
        parsed.push((timestamp, value));
    }
    match file::update_many(path, &parsed, now, false) {
        Ok(()) => Ok(()),
        Err(e @ (carbide_whisper::Error::FileIo { .. } | carbide_whisper::Error::TimestampOutOfRange(_))) => {
            Err(uncaught(&e))
        }
        Err(e) => Err(caught(&e)),
    }
}
