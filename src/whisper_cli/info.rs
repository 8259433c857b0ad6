//! `carbide whisper info` (whisper-info.py): print a file's header, plain, as JSON, or one field.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use carbide_whisper::header::{ARCHIVE_INFO_SIZE, MAX_ARCHIVES, METADATA_SIZE};
use carbide_whisper::{Error, Header};

use super::pyjson::{self, Json};
use super::{Ctx, Fail, caught, pyfmt, uncaught};

/// Arguments of whisper-info.py.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output results in JSON form.
    #[arg(long)]
    json: bool,
    /// path [field]: the file, and optionally one field to print.
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Reads only the header, checking what whisper.py's `info()` checks and nothing more, so a file whose
/// data area is damaged still shows its header (whisper-info is how one looks at such a file).
pub fn read_header(path: &Path) -> Result<Header, Error> {
    let file = File::open(path).map_err(|e| Error::FileIo {
        path: path.into(),
        source: e,
    })?;
    read_header_from(&file, path)
}

/// Up to `n` bytes from the start of the file (fewer if it is shorter).
fn read_prefix(file: &File, n: u64) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len().min(n);
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], filled as u64)? {
            0 => break,
            k => filled += k,
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// [`read_header`] over an open file; `path` is for the messages.
pub fn read_header_from(file: &File, path: &Path) -> Result<Header, Error> {
    let io = |e| Error::FileIo {
        path: path.into(),
        source: e,
    };
    let bytes = read_prefix(file, METADATA_SIZE as u64).map_err(io)?;
    let count = Header::archive_count(&bytes).map_err(|e| e.with_path(path))?;
    let wanted = METADATA_SIZE as u64 + ARCHIVE_INFO_SIZE as u64 * u64::from(count);
    let bytes = read_prefix(file, wanted).map_err(io)?;
    if count > MAX_ARCHIVES && (bytes.len() as u64) < wanted {
        // Python reads archive records until the file runs out; name the first missing one, after the
        // metadata checks that come first.
        let mut meta = bytes.get(..METADATA_SIZE).unwrap_or_default().to_vec();
        if let Some(count) = meta.get_mut(12..16) {
            count.copy_from_slice(&0u32.to_be_bytes());
        }
        Header::parse(&meta).map_err(|e| e.with_path(path))?;
        let missing = bytes.len().saturating_sub(METADATA_SIZE) / ARCHIVE_INFO_SIZE;
        return Err(Error::corrupt(format!("Unable to read archive{missing} metadata")).with_path(path));
    }
    Header::parse(&bytes).map_err(|e| e.with_path(path))
}

/// The fields whisper.py's `info()` returns plus `fileSize`, in the order the script prints them.
fn fields(h: &Header, file_size: u64) -> Vec<(&'static str, Json)> {
    let archives = h
        .archives
        .iter()
        .map(|a| {
            Json::Obj(vec![
                ("offset".into(), Json::Int(a.offset.into())),
                ("secondsPerPoint".into(), Json::Int(a.seconds_per_point.into())),
                ("points".into(), Json::Int(a.points.into())),
                ("retention".into(), Json::Int(a.retention())),
                ("size".into(), Json::Int(a.size() as i64)),
            ])
        })
        .collect();
    vec![
        ("aggregationMethod", Json::Str(h.aggregation.name().into())),
        ("maxRetention", Json::Int(h.max_retention.into())),
        ("xFilesFactor", Json::Float(f64::from(h.x_files_factor))),
        ("archives", Json::List(archives)),
        ("fileSize", Json::Int(file_size as i64)),
    ]
}

/// `str()` of a value as Python prints it (dicts and lists as their repr).
fn py_str(v: &Json, top: bool) -> String {
    match v {
        Json::Null => "None".into(),
        Json::Int(i) => i.to_string(),
        Json::Float(x) => pyfmt::repr(*x),
        Json::Str(s) if top => s.clone(),
        Json::Str(s) => format!("'{s}'"),
        Json::List(items) => pyfmt::list_repr(items.iter().map(|i| py_str(i, false))),
        Json::Obj(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("'{k}': {}", py_str(v, false)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Runs whisper-info.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let Some(path) = a.args.first() else {
        return Err(Fail::Help(None));
    };
    let path = Path::new(path);
    let header = match read_header(path) {
        Ok(h) => h,
        // whisper.info() swallows OS errors and the script then fails on the None it got back.
        Err(e @ Error::FileIo { .. }) => return Err(uncaught(&e)),
        Err(e) => return Err(caught(&e)),
    };
    let size = std::fs::metadata(path)
        .map_err(|e| {
            uncaught(&Error::FileIo {
                path: path.into(),
                source: e,
            })
        })?
        .len();
    let info = fields(&header, size);

    if let Some(field) = a.args.get(1) {
        return match info.iter().find(|(k, _)| k == field) {
            Some((_, v)) => ctx.println(py_str(v, true)),
            None => {
                let names: Vec<&str> = info.iter().map(|(k, _)| *k).collect();
                ctx.println(format!(
                    "Unknown field \"{field}\". Valid fields are {}",
                    names.join(",")
                ))?;
                Err(Fail::Status(1))
            }
        };
    }

    if a.json {
        let obj = Json::Obj(info.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let style = pyjson::Style {
            indent: 2,
            key_sep: ": ",
            sort_keys: false,
        };
        return ctx.println(pyjson::dumps(&obj, &style));
    }
    let mut archives = Vec::new();
    for (key, value) in info {
        match value {
            Json::List(items) if key == "archives" => archives = items,
            v => ctx.println(format!("{key}: {}", py_str(&v, true)))?,
        }
    }
    ctx.println("")?;
    for (i, archive) in archives.iter().enumerate() {
        ctx.println(format!("Archive {i}"))?;
        if let Json::Obj(fields) = archive {
            for (key, value) in fields {
                ctx.println(format!("{key}: {}", py_str(value, true)))?;
            }
        }
        ctx.println("")?;
    }
    Ok(())
}
