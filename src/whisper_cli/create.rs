//! `carbide whisper create` (whisper-create.py): create a file, or estimate the size of one.

use std::path::Path;

use carbide_core::{AggregationMethod, Retention};
use carbide_whisper::file::{self, CreateOptions};
use carbide_whisper::{Error, validate_archive_list};

use super::{Ctx, Fail, caught, pyfmt, uncaught};

/// The retention examples the scripts print in their usage.
pub const RETENTION_HELP: &str = "\
timePerPoint and timeToStore specify lengths of time, for example:

60:1440      60 seconds per datapoint, 1440 datapoints = 1 day of retention
15m:8        15 minutes per datapoint, 8 datapoints = 2 hours of retention
1h:7d        1 hour per datapoint, 7 days of retention
12h:2y       12 hours per datapoint, 2 years of retention";

/// Arguments of whisper-create.py.
#[derive(Debug, clap::Args)]
#[command(after_help = RETENTION_HELP)]
pub struct Args {
    /// Fraction of known points needed to aggregate into a coarser archive.
    #[arg(long = "xFilesFactor", default_value = "0.5", value_parser = pyfmt::optparse_float,
          allow_hyphen_values = true)]
    x_files_factor: f64,
    /// Function to use when aggregating values (average, sum, last, max, min, avg_zero, absmax, absmin).
    #[arg(
        long = "aggregationMethod",
        default_value = "average",
        allow_hyphen_values = true
    )]
    aggregation_method: String,
    /// Replace the file if it exists.
    #[arg(long)]
    overwrite: bool,
    /// Don't create a whisper file, estimate storage requirements based on archive definitions.
    #[arg(long)]
    estimate: bool,
    /// Create new whisper as sparse file.
    #[arg(long)]
    sparse: bool,
    /// Create new whisper and use fallocate.
    #[arg(long)]
    fallocate: bool,
    /// path timePerPoint:timeToStore [timePerPoint:timeToStore]* (with --estimate: only the retentions).
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Parses a retention as whisper.py's `parseRetentionDef`; a bad one is an uncaught ValueError.
pub fn parse_retention(def: &str) -> Result<Retention, Fail> {
    Retention::parse(def).map_err(|e| Fail::Msg(format!("ValueError: {e}")))
}

/// Why a new file may not be created, before anything is written.
#[derive(Debug)]
pub enum Refusal {
    /// A bad archive list, an existing file or a bad xFilesFactor.
    Whisper(Error),
    /// An aggregation method whisper does not know (whisper.py's InvalidAggregationMethod).
    Method(String),
}

impl Refusal {
    /// As the script reports it when it catches whisper's exceptions (`[ERROR] …`).
    pub fn caught(&self) -> Fail {
        match self {
            Refusal::Whisper(e) => caught(e),
            Refusal::Method(m) => Fail::Msg(format!("[ERROR] {m}")),
        }
    }

    /// As the traceback's last line, when the script does not catch them.
    pub fn uncaught(&self) -> Fail {
        match self {
            Refusal::Whisper(e) => uncaught(e),
            Refusal::Method(m) => Fail::Msg(format!("whisper.InvalidAggregationMethod: {m}")),
        }
    }
}

/// The checks whisper.py's `create()` makes before it writes anything, in its order: the archive list,
/// an existing file, the aggregation method, the xFilesFactor.
pub fn check_new_file(
    path: &Path,
    archives: &[Retention],
    method: &str,
    xff: f64,
) -> Result<AggregationMethod, Refusal> {
    validate_archive_list(&mut archives.to_vec()).map_err(Refusal::Whisper)?;
    if path.exists() {
        return Err(Refusal::Whisper(Error::InvalidConfiguration(format!(
            "File {} already exists!",
            path.display()
        ))));
    }
    let method = method
        .parse::<AggregationMethod>()
        .map_err(|e| Refusal::Method(e.to_string()))?;
    if !(0.0..=1.0).contains(&xff) {
        return Err(Refusal::Whisper(Error::InvalidXFilesFactor(xff)));
    }
    Ok(method)
}

/// whisper-create.py's `byte_format`: three decimals and the largest unit below 1024.
fn byte_format(size: u128) -> String {
    let mut num = size as f64;
    for unit in ["bytes", "KB", "MB"] {
        if num < 1024.0 {
            return format!("{}{unit}", pyfmt::fixed(num, 3));
        }
        num /= 1024.0;
    }
    format!("{}GB", pyfmt::fixed(num, 3))
}

fn estimate(args: &[String], ctx: &mut Ctx) -> Result<(), Fail> {
    if args.is_empty() {
        return Err(Fail::Help(None));
    }
    let defs: Vec<&str> = match args {
        [one] if one.find(',').is_some_and(|at| at > 0) => one.split(',').collect(),
        _ => args.iter().map(String::as_str).collect(),
    };
    // Python's integers do not overflow; u128 holds anything u32 point counts can add up to.
    let (mut archives, mut total_points) = (0u128, 0u128);
    for def in defs {
        let r = parse_retention(def)?;
        ctx.println(format!(
            "Archive {archives}: {} points of {}s precision",
            r.points, r.seconds_per_point
        ))?;
        archives += 1;
        total_points += u128::from(r.points);
    }
    let size = 16 + archives * 12 + total_points * 12;
    let disk_size = size.div_ceil(4096) * 4096;
    ctx.println(format!(
        "\nEstimated Whisper DB Size: {} ({disk_size} bytes on disk with 4k blocks)\n",
        byte_format(size)
    ))?;
    for x in [1u128, 5, 10, 50, 100, 500] {
        ctx.println(format!(
            "Estimated storage requirement for {x}k metrics: {}",
            byte_format(x * 1000 * disk_size)
        ))?;
    }
    Ok(())
}

/// Runs whisper-create.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    if a.estimate {
        return estimate(&a.args, ctx);
    }
    let [path, defs @ ..] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    if defs.is_empty() {
        return Err(Fail::Help(None));
    }
    let path = Path::new(path);
    let archives = defs
        .iter()
        .map(|d| parse_retention(d))
        .collect::<Result<Vec<_>, _>>()?;
    if a.overwrite && path.exists() {
        ctx.println(format!("Overwriting existing file: {}", path.display()))?;
        std::fs::remove_file(path).map_err(|e| {
            uncaught(&Error::FileIo {
                path: path.into(),
                source: e,
            })
        })?;
    }
    let method =
        check_new_file(path, &archives, &a.aggregation_method, a.x_files_factor).map_err(|r| r.caught())?;
    let opts = CreateOptions {
        x_files_factor: a.x_files_factor,
        aggregation: method,
        sparse: a.sparse,
        fallocate: a.fallocate,
        lock: false,
    };
    match file::create(path, &archives, &opts) {
        Ok(_) => {}
        Err(e @ (Error::FileIo { .. } | Error::Io(_))) => return Err(uncaught(&e)),
        Err(e) => return Err(caught(&e)),
    }
    let size = std::fs::metadata(path)
        .map_err(|e| {
            uncaught(&Error::FileIo {
                path: path.into(),
                source: e,
            })
        })?
        .len();
    ctx.println(format!("Created: {} ({size} bytes)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_format_like_the_script() {
        assert_eq!(byte_format(0), "0.000bytes");
        assert_eq!(byte_format(1023), "1023.000bytes");
        assert_eq!(byte_format(1024), "1.000KB");
        assert_eq!(byte_format(17308), "16.902KB");
        assert_eq!(byte_format(5 * 1024 * 1024 * 1024), "5.000GB");
        assert_eq!(byte_format(u128::from(u64::MAX)), "17179869184.000GB");
    }
}
