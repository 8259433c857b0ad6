//! Guards for time ranges that reach past "now", where whisper.py's merge and diff misbehave.
//!
//! Reading `[from, until]` from an archive yields one value per step. When the range is longer than the
//! archive (an `--until` in the future), whisper.py reads a wrapped, shorter series: diff then dies
//! with an IndexError, and for a never-written archive both Python and the library would build a list
//! as long as the range, which for an absurd `--until` exhausts memory. These checks reproduce the
//! IndexError and refuse such ranges before any work is done.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use carbide_whisper::ArchiveInfo;

use super::Fail;

/// Ranges longer than the archive and than this many steps are refused rather than materialised.
const MAX_SLOTS: i64 = 1 << 24;

/// How many values whisper.py's `__archive_fetch` would return for `[from, until]` on a new archive.
pub fn slots(archive: &ArchiveInfo, from: i64, until: i64) -> i64 {
    let step = archive.step();
    let from_i = from - from.rem_euclid(step) + step;
    let mut until_i = until - until.rem_euclid(step) + step;
    if from_i == until_i {
        until_i += step;
    }
    (until_i - from_i).div_euclid(step)
}

/// Whether the archive has ever been written (its first slot holds a timestamp); unreadable counts as
/// written, leaving the error to the library.
pub fn written(path: &Path, archive: &ArchiveInfo) -> bool {
    let mut ts = [0u8; 4];
    match File::open(path).and_then(|f| f.read_exact_at(&mut ts, u64::from(archive.offset))) {
        Ok(()) => u32::from_be_bytes(ts) != 0,
        Err(_) => true,
    }
}

/// Refuses a range that would have to be materialised as more values than the archive holds and
/// than [`MAX_SLOTS`].
pub fn check_size(archive: &ArchiveInfo, from: i64, until: i64) -> Result<i64, Fail> {
    let n = slots(archive, from, until);
    if n > i64::from(archive.points).max(MAX_SLOTS) {
        return Err(Fail::Msg(format!(
            "MemoryError: {from}..{until} is {n} points of {}s, far beyond the archive",
            archive.step()
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_counts_follow_archive_fetch() {
        let a = ArchiveInfo {
            offset: 28,
            seconds_per_point: 60,
            points: 10,
        };
        assert_eq!(slots(&a, 0, 600), 10);
        assert_eq!(slots(&a, 30, 30), 1);
        assert_eq!(slots(&a, 600, 0), -10);
        assert!(check_size(&a, 0, 600).is_ok());
        assert!(check_size(&a, 0, 1 << 40).is_err());
        assert!(check_size(&a, 0, 60 * (1 << 23)).is_ok());
    }
}
