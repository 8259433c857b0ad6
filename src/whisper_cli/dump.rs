//! `carbide whisper dump` (whisper-dump.py): print the header and every stored slot of every archive.
//!
//! Like the script, this reads the raw bytes with its own lenient header parser rather than the
//! library's checked one: an unknown aggregation id prints as `average`, any xFilesFactor is shown, and
//! archives are printed until the file runs out, so a damaged file can be inspected as far as it goes.

use std::path::Path;

use carbide_core::AggregationMethod;
use carbide_whisper::header::{ARCHIVE_INFO_SIZE, METADATA_SIZE, POINT_SIZE};

use super::fetch::pretty_time;
use super::{Ctx, Fail, oserror_text, pyfmt};

/// Arguments of whisper-dump.py.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show human-readable timestamps instead of unix times.
    #[arg(long)]
    pretty: bool,
    /// Time format to use with --pretty; see time.strftime().
    #[arg(short = 't', long = "time-format", allow_hyphen_values = true)]
    time_format: Option<String>,
    /// Dump value only in the same format for whisper-update (UTC timestamps).
    #[arg(short = 'r', long)]
    raw: bool,
    /// path: the whisper file.
    #[arg(value_name = "PATH")]
    args: Vec<String>,
}

/// One archive record as the script reads it: no checks at all.
struct RawArchive {
    offset: u64,
    seconds_per_point: u64,
    points: u64,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn corrupt(what: &str, path: &Path) -> Fail {
    Fail::Msg(format!("whisper.CorruptWhisperFile: {what} ({})", path.display()))
}

/// Runs whisper-dump.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [path] = a.args.as_slice() else {
        return Err(Fail::Usage("require one input file name".into()));
    };
    let path = Path::new(path);
    if !path.exists() {
        return Err(Fail::Msg(format!(
            "[ERROR] File \"{}\" does not exist!",
            path.display()
        )));
    }
    let map =
        std::fs::read(path).map_err(|e| Fail::Msg(format!("OSError: {}", oserror_text(&e, Some(path)))))?;
    if map.is_empty() {
        return Err(Fail::Msg("ValueError: cannot mmap an empty file".into()));
    }

    let meta = map
        .get(..METADATA_SIZE)
        .ok_or_else(|| corrupt("Unable to unpack header", path))?;
    let (agg_id, max_retention, xff_bits, count) = (
        be_u32(meta, 0).unwrap_or(0),
        be_u32(meta, 4).unwrap_or(0),
        be_u32(meta, 8).unwrap_or(0),
        be_u32(meta, 12).unwrap_or(0),
    );
    let mut archives = Vec::new();
    for i in 0..count as usize {
        let at = METADATA_SIZE + i * ARCHIVE_INFO_SIZE;
        let record = (be_u32(&map, at), be_u32(&map, at + 4), be_u32(&map, at + 8));
        let (Some(offset), Some(spp), Some(points)) = record else {
            return Err(corrupt(&format!("Unable to read archive {i} metadata"), path));
        };
        archives.push(RawArchive {
            offset: offset.into(),
            seconds_per_point: spp.into(),
            points: points.into(),
        });
    }

    if !a.raw {
        let method = AggregationMethod::from_id(agg_id).unwrap_or(AggregationMethod::Average);
        ctx.println("Meta data:")?;
        ctx.println(format!("  aggregation method: {}", method.name()))?;
        ctx.println(format!("  max retention: {max_retention}"))?;
        let xff = f64::from(f32::from_bits(xff_bits));
        ctx.println(format!("  xFilesFactor: {}", pyfmt::general(xff, 6)))?;
        ctx.println("")?;
        for (i, archive) in archives.iter().enumerate() {
            ctx.println(format!("Archive {i} info:"))?;
            ctx.println(format!("  offset: {}", archive.offset))?;
            ctx.println(format!("  seconds per point: {}", archive.seconds_per_point))?;
            ctx.println(format!("  points: {}", archive.points))?;
            ctx.println(format!(
                "  retention: {}",
                archive.seconds_per_point * archive.points
            ))?;
            ctx.println(format!("  size: {}", archive.points * POINT_SIZE as u64))?;
            ctx.println("")?;
        }
    }

    for (i, archive) in archives.iter().enumerate() {
        if !a.raw {
            ctx.println(format!("Archive {i} data:"))?;
        }
        for point in 0..archive.points {
            let at = archive.offset + point * POINT_SIZE as u64;
            let slot = usize::try_from(at)
                .ok()
                .and_then(|at| Some((be_u32(&map, at)?, map.get(at + 4..at + POINT_SIZE)?)));
            let Some((timestamp, value)) = slot else {
                return Err(Fail::Msg(format!(
                    "struct.error: unpack requires a buffer of {POINT_SIZE} bytes"
                )));
            };
            let value = f64::from_bits(u64::from_be_bytes(value.try_into().unwrap_or([0; 8])));
            if a.raw {
                ctx.println(format!("{timestamp}:{}", pyfmt::general(value, 35)))?;
            } else {
                let time = if a.pretty {
                    pretty_time(timestamp.into(), a.time_format.as_deref())?
                } else {
                    timestamp.to_string()
                };
                ctx.println(format!("{point}: {time}, {:>10}", pyfmt::general(value, 35)))?;
            }
        }
    }
    Ok(())
}
