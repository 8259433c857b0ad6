//! `carbide whisper fetch` (whisper-fetch.py): print the values of a time range.

use std::path::Path;

use carbide_whisper::file;

use super::{Ctx, Fail, caught, pyfmt, timefmt};

/// Which values `--drop` leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Drop {
    /// Values equal to zero.
    Zeroes,
    /// Missing values.
    Nulls,
    /// Both.
    Empty,
}

impl Drop {
    /// Whether the script's filter keeps this value (`x != 0`, `x is not None`, or both).
    fn keeps(self, v: Option<f64>) -> bool {
        let nonzero = v != Some(0.0);
        match self {
            Drop::Zeroes => nonzero,
            Drop::Nulls => v.is_some(),
            Drop::Empty => nonzero && v.is_some(),
        }
    }
}

/// Arguments of whisper-fetch.py.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Unix epoch time of the beginning of your requested interval (default: 24 hours ago).
    #[arg(long = "from", value_parser = pyfmt::optparse_int, allow_hyphen_values = true)]
    from: Option<i64>,
    /// Unix epoch time of the end of your requested interval (default: now).
    #[arg(long, value_parser = pyfmt::optparse_int, allow_hyphen_values = true)]
    until: Option<i64>,
    /// Output results in JSON form.
    #[arg(long)]
    json: bool,
    /// Show human-readable timestamps instead of unix times.
    #[arg(long)]
    pretty: bool,
    /// Time format to use with --pretty; see time.strftime().
    #[arg(short = 't', long = "time-format", allow_hyphen_values = true)]
    time_format: Option<String>,
    /// Specify 'nulls' to drop all null values, 'zeroes' to drop all zero values, 'empty' for both.
    #[arg(long, value_enum)]
    drop: Option<Drop>,
    /// path: the whisper file.
    #[arg(value_name = "PATH")]
    args: Vec<String>,
}

/// A timestamp for `--pretty`: ctime, or strftime with `-t`.
pub fn pretty_time(t: i64, format: Option<&str>) -> Result<String, Fail> {
    match format {
        Some(f) => timefmt::strftime(f, t),
        None => timefmt::ctime(t),
    }
    .map_err(|e| Fail::Msg(format!("ValueError: {e}")))
}

/// Runs whisper-fetch.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [path] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    let now = ctx.now();
    let from = a.from.unwrap_or(now.saturating_sub(86400));
    let until = a.until.unwrap_or(now);
    let fetched = file::fetch(Path::new(path), from, Some(until), now, None).map_err(|e| caught(&e))?;
    let Some(fetched) = fetched else {
        return Err(Fail::Msg("No data in selected timerange".into()));
    };
    let values: Vec<Option<f64>> = match a.drop {
        Some(d) => fetched.values.into_iter().filter(|v| d.keeps(*v)).collect(),
        None => fetched.values,
    };

    if a.json {
        let list = pyfmt::list_repr(values.iter().map(|v| pyfmt::opt_repr(*v))).replace("None", "null");
        return ctx.println(format!(
            "{{\n    \"start\" : {},\n    \"end\" : {},\n    \"step\" : {},\n    \"values\" : {list}\n  }}",
            fetched.from, fetched.until, fetched.step
        ));
    }
    // The script numbers the values it prints, so dropped values shift the later timestamps.
    let mut t = fetched.from;
    for v in values {
        let time = if a.pretty {
            pretty_time(t, a.time_format.as_deref())?
        } else {
            t.to_string()
        };
        let value = v.map_or_else(|| "None".to_string(), |v| pyfmt::fixed(v, 6));
        ctx.println(format!("{time}\t{value}"))?;
        t += fetched.step;
    }
    Ok(())
}
