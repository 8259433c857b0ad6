//! `carbide whisper fill` (whisper-fill.py): fill the gaps of one file from another, overwriting nothing.

use std::path::Path;

use carbide_whisper::file;

use super::{Ctx, Fail, uncaught};

/// Arguments of whisper-fill.py: copies data from src in dst, if missing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lock whisper files.
    #[arg(long)]
    lock: bool,
    /// src dst
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Runs whisper-fill.py.
pub fn run(a: Args, ctx: &mut Ctx) -> Result<(), Fail> {
    let [src, dst] = a.args.as_slice() else {
        return Err(Fail::Help(None));
    };
    file::fill(Path::new(src), Path::new(dst), ctx.now(), a.lock).map_err(|e| uncaught(&e))
}
