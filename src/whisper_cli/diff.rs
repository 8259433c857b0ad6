//! `carbide whisper diff` (whisper-diff.py): compare two files archive by archive.

use std::path::Path;

use carbide_whisper::{ArchiveDiff, ArchiveInfo, file};

use super::info::read_header;
use super::merge::pair_error;
use super::pyjson::{self, Json};
use super::{Ctx, Fail, pyfmt, span};

/// Arguments of whisper-diff.py.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// show summary of differences
    #[arg(long)]
    summary: bool,
    /// skip comparison if either value is undefined
    #[arg(long = "ignore-empty")]
    ignore_empty: bool,
    /// print output in simple columns
    #[arg(long)]
    columns: bool,
    /// do not print column headers
    #[arg(long = "no-headers")]
    no_headers: bool,
    /// Unix epoch time of the end of your requested interval (default: None)
    #[arg(long, value_parser = pyfmt::optparse_int, allow_hyphen_values = true)]
    until: Option<i64>,
    /// Output results in JSON form
    #[arg(long)]
    json: bool,
    /// path_a path_b
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

fn print_diffs(ctx: &mut Ctx, diffs: &[ArchiveDiff], pretty: bool, headers: bool) -> Result<(), Fail> {
    let head = |a: &str, b: &str, c: &str, d: &str| {
        if pretty {
            format!("{a:>7} {b:>11} {c:>13} {d:>13}\n")
        } else {
            format!("{a} {b} {c} {d}\n")
        }
    };
    if headers {
        ctx.print(head("archive", "timestamp", "value_a", "value_b"))?;
    }
    for d in diffs {
        if pretty {
            ctx.print(format!(
                "Archive {} ({} of {} datapoints differ)\n",
                d.archive,
                d.diffs.len(),
                d.total
            ))?;
            ctx.print(head("", "timestamp", "value_a", "value_b"))?;
        }
        for &(t, x, y) in &d.diffs {
            let (x, y) = (pyfmt::opt_repr(x), pyfmt::opt_repr(y));
            if pretty {
                ctx.print(format!("{:>7} {t:>11} {x:>13} {y:>13}\n", ""))?;
            } else {
                ctx.print(format!("{} {t} {x} {y}\n", d.archive))?;
            }
        }
    }
    Ok(())
}

fn print_summary(ctx: &mut Ctx, diffs: &[ArchiveDiff], pretty: bool, headers: bool) -> Result<(), Fail> {
    let line = |a: &str, b: &str, c: &str| {
        if pretty {
            format!("{a:>7} {b:>9} {c:>9}\n")
        } else {
            format!("{a} {b} {c}\n")
        }
    };
    if headers {
        ctx.print(line("archive", "total", "differing"))?;
    }
    for d in diffs {
        ctx.print(line(
            &d.archive.to_string(),
            &d.total.to_string(),
            &d.diffs.len().to_string(),
        ))?;
    }
    Ok(())
}

fn to_json(diffs: &[ArchiveDiff], a: &str, b: &str, with_points: bool) -> Json {
    let archives = diffs
        .iter()
        .map(|d| {
            let mut fields = vec![
                ("archive".to_string(), Json::Int(d.archive as i64)),
                ("total".to_string(), Json::Int(d.total as i64)),
                ("points".to_string(), Json::Int(d.diffs.len() as i64)),
            ];
            if with_points {
                let points = d
                    .diffs
                    .iter()
                    .map(|&(t, x, y)| {
                        Json::Obj(vec![
                            ("timestamp".into(), Json::Int(t)),
                            ("value_a".into(), Json::from(x)),
                            ("value_b".into(), Json::from(y)),
                        ])
                    })
                    .collect();
                fields.push(("datapoint".to_string(), Json::List(points)));
            }
            Json::Obj(fields)
        })
        .collect();
    Json::Obj(vec![
        ("path_a".into(), Json::Str(a.into())),
        ("path_b".into(), Json::Str(b.into())),
        ("archives".into(), Json::List(archives)),
    ])
}

/// whisper.py's diff indexes both value lists by the length of the range; when the range is longer
/// than an archive it has read a shorter, wrapped series and fails with an IndexError. We fail the
/// same way instead of printing comparisons Python never makes.
fn python_would_fail(a: &Path, b: &Path, until: Option<i64>, now: i64) -> Result<(), Fail> {
    let (Ok(ha), Ok(hb)) = (read_header(a), read_header(b)) else {
        return Ok(());
    };
    if ha.archives != hb.archives {
        return Ok(());
    }
    let mut archives = ha.archives.clone();
    archives.sort_by_key(ArchiveInfo::retention);
    let mut until = until.unwrap_or(now);
    for archive in &archives {
        let start = now - archive.retention();
        if span::slots(archive, start, until) > i64::from(archive.points) {
            if span::written(a, archive) || span::written(b, archive) {
                return Err(Fail::Msg("IndexError: list index out of range".into()));
            }
            span::check_size(archive, start, until)?;
        }
        until = until.min(start);
    }
    Ok(())
}

/// Runs whisper-diff.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [path_a, path_b] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    let (pa, pb) = (Path::new(path_a), Path::new(path_b));
    let until = a.until.filter(|&u| u != 0);
    python_would_fail(pa, pb, until, ctx.now())?;
    let diffs = file::diff(pa, pb, a.ignore_empty, until, ctx.now()).map_err(|e| pair_error(&e, pa, pb))?;
    let (pretty, headers) = (!a.columns, !a.no_headers);
    if a.json {
        let style = pyjson::Style {
            indent: 2,
            key_sep: " : ",
            sort_keys: true,
        };
        ctx.println(pyjson::dumps(
            &to_json(&diffs, path_a, path_b, !a.summary),
            &style,
        ))
    } else if a.summary {
        print_summary(ctx, &diffs, pretty, headers)
    } else {
        print_diffs(ctx, &diffs, pretty, headers)
    }
}
