//! `carbide whisper set-aggregation-method` and `set-xfilesfactor` (whisper-set-aggregation-method.py,
//! whisper-set-xfilesfactor.py): rewrite the header's metadata in place.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use carbide_core::AggregationMethod;
use carbide_whisper::{Error, Header};

use super::info::read_header_from;
use super::{Ctx, Fail, caught, oserror_text, pyfmt};

/// Arguments of whisper-set-aggregation-method.py.
#[derive(Debug, clap::Args)]
pub struct MethodArgs {
    /// path <average|sum|last|max|min|avg_zero|absmax|absmin> [xFilesFactor]
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Arguments of whisper-set-xfilesfactor.py.
#[derive(Debug, clap::Args)]
pub struct XffArgs {
    /// path to whisper file
    path: String,
    /// new xFilesFactor, a float between 0 and 1
    #[arg(value_name = "xFilesFactor", value_parser = pyfmt::optparse_float, allow_negative_numbers = true)]
    xff: f64,
}

/// A file opened for a header rewrite, with its header read as whisper.py reads it (only the header
/// is checked, so a file with a damaged data area can still be changed, as with the script).
struct Target {
    file: File,
    header: Header,
}

/// Opens the file for writing; an OS error is reported as the scripts report it: "does not exist",
/// then the help.
fn open(path: &Path) -> Result<Target, Fail> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|_| {
            Fail::Help(Some(format!(
                "[ERROR] File '{}' does not exist!\n\n",
                path.display()
            )))
        })?;
    let header = read_header_from(&file, path).map_err(|e| caught(&e))?;
    Ok(Target { file, header })
}

impl Target {
    /// Rewrites the 16 metadata bytes, as whisper.py's `__writeHeaderMetadata`.
    fn write(&self, path: &Path, method: AggregationMethod, xff: f64) -> Result<(), Fail> {
        let count = u32::try_from(self.header.archives.len()).unwrap_or(u32::MAX);
        let meta = Header::encode_metadata(method, self.header.max_retention, xff as f32, count);
        self.file
            .write_all_at(&meta, 0)
            .map_err(|e| Fail::Msg(format!("OSError: {}", oserror_text(&e, Some(path)))))
    }
}

/// The xFilesFactor check of whisper.py's `__writeHeaderMetadata`.
fn check_xff(xff: f64) -> Result<f64, Fail> {
    if (0.0..=1.0).contains(&xff) {
        Ok(xff)
    } else {
        Err(caught(&Error::InvalidXFilesFactor(xff)))
    }
}

/// Runs whisper-set-aggregation-method.py.
pub fn run_method(a: MethodArgs, ctx: &mut Ctx) -> Result<(), Fail> {
    let (path, method_name) = match a.args.as_slice() {
        [path, method, ..] => (Path::new(path), method.as_str()),
        _ => return Err(Fail::Help(None)),
    };
    // The script reads an xFilesFactor only when exactly three arguments are given.
    let xff_text = match a.args.as_slice() {
        [_, _, x] => Some(x.as_str()),
        _ => None,
    };
    let target = open(path)?;
    let method = method_name
        .parse::<AggregationMethod>()
        .map_err(|e| Fail::Msg(format!("[ERROR] {e}")))?;
    let xff = match xff_text {
        None => None,
        Some(text) => {
            let x = pyfmt::float(text)
                .ok_or_else(|| Fail::Msg(format!("[ERROR] Invalid xFilesFactor {text}, not a float")))?;
            Some(check_xff(x)?)
        }
    };
    let old = target.header.aggregation;
    target.write(
        path,
        method,
        xff.unwrap_or(f64::from(target.header.x_files_factor)),
    )?;
    ctx.println(format!(
        "Updated aggregation method: {} ({} -> {})",
        path.display(),
        old.name(),
        method_name
    ))
}

/// Runs whisper-set-xfilesfactor.py.
pub fn run_xff(a: XffArgs, ctx: &mut Ctx) -> Result<(), Fail> {
    let path = Path::new(&a.path);
    let target = open(path)?;
    let xff = check_xff(a.xff)?;
    let old = target.header.x_files_factor;
    target.write(path, target.header.aggregation, xff)?;
    ctx.println(format!(
        "Updated xFilesFactor: {} ({} -> {})",
        path.display(),
        pyfmt::repr(f64::from(old)),
        pyfmt::repr(a.xff)
    ))
}
