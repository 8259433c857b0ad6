//! Whisper files on disk: create, open (with optional flock), and the operations of the whisper-*.py
//! scripts that span files (fill, resize).
//!
//! Every function opens what it needs and lets the handle drop before it returns, on success and on
//! error alike; the flock, when asked for, is released with the handle.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use carbide_core::{AggregationMethod, Retention};

use crate::Error;
use crate::aggregate::aggregate;
use crate::db::{ArchiveDiff, Fetched, Point, Whisper};
use crate::header::{Header, validate_archive_list};

/// A whisper database backed by an open file.
pub type WhisperFile = Whisper<File>;

/// How a new file is laid out and filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CreateOptions {
    /// Fraction of known points needed to propagate (whisper's default 0.5).
    pub x_files_factor: f64,
    /// How points fold into coarser archives (whisper's default average).
    pub aggregation: AggregationMethod,
    /// Write only the last byte, leaving a sparse file.
    pub sparse: bool,
    /// Reserve the data area with fallocate instead of writing zeros.
    pub fallocate: bool,
    /// Hold an exclusive flock while creating (carbon's WHISPER_LOCK_WRITES).
    pub lock: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            x_files_factor: 0.5,
            aggregation: AggregationMethod::Average,
            sparse: false,
            fallocate: false,
            lock: false,
        }
    }
}

/// Creates a whisper file, as whisper.py's `create()`: the archive list is validated and sorted, an
/// existing file is never touched, and a file that cannot be completed (a full disk, say) is removed
/// rather than left half-written.
pub fn create(path: &Path, archives: &[Retention], opts: &CreateOptions) -> Result<Header, Error> {
    create_open(path, archives, opts).map(|db| db.header().clone())
}

/// [`create`], keeping the new file open for writing (and locked, with `opts.lock`): a writer that
/// creates a file and then updates it saves the re-open, re-stat and header read.
pub fn create_open(path: &Path, archives: &[Retention], opts: &CreateOptions) -> Result<WhisperFile, Error> {
    create_filled(path, new_header(archives, opts)?, opts)
}

/// [`create_open`] with the header already made.
fn create_filled(path: &Path, header: Header, opts: &CreateOptions) -> Result<WhisperFile, Error> {
    let file = open_new(path)?;
    // No fsync: whisper.py syncs a new file only with AUTOFLUSH (carbon's WHISPER_AUTOFLUSH, off by
    // default), and an fdatasync per create cost ~2.6 ms a file here, the bulk of creating 100 k.
    match fill_new_file(&file, &header, opts) {
        Ok(()) => Ok(Whisper::new_file(file, header)),
        Err(e) => Err(abandon(file, path, e)),
    }
}

/// Files up to this size are built in memory by [`create_with_points`] and written with one call.
const IMAGE_LIMIT: u64 = 1 << 20;

/// Creates a file holding `points`: the same bytes as [`create_open`] followed by `update_many`.
/// A small file that is not sparse is built in memory and written with a single pwrite, because
/// each call on a new file costs the kernel again: creating 50 000 files of 4.3 KB cost 13-16 µs
/// of system time each written whole, 21-26 µs as header, zeros and points, and 24-37 µs as
/// header, fallocate and points. So `fallocate` is not used for them either: it is there to spare
/// writing a large file's zeros, and a file written whole is as fully allocated. Only `sparse`
/// asks for holes. An update the points fail still leaves the file created (empty), as the two
/// steps would.
pub fn create_with_points(
    path: &Path,
    archives: &[Retention],
    opts: &CreateOptions,
    points: &[Point],
    now: i64,
) -> Result<(), Error> {
    let header = new_header(archives, opts)?;
    if opts.sparse || header.file_size() > IMAGE_LIMIT || points.is_empty() {
        let mut db = create_filled(path, header, opts)?;
        return db.update_many(points, now).map_err(|e| e.with_path(path));
    }
    let empty_image = |header: &Header| {
        let mut image = header.encode();
        image.resize(header.file_size() as usize, 0);
        image
    };
    let mut db = Whisper::new_file(empty_image(&header), header.clone());
    let updated = db.update_many(points, now);
    let image = match updated {
        Ok(()) => db.into_inner(),
        Err(_) => empty_image(&header),
    };
    let file = open_new(path)?;
    let written = if opts.lock { file.lock() } else { Ok(()) }.and_then(|()| {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&image, 0)
    });
    if let Err(e) = written {
        return Err(abandon(file, path, e));
    }
    updated.map_err(|e| e.with_path(path))
}

/// The header of a new file, after whisper.py's checks of the archive list and xFilesFactor.
fn new_header(archives: &[Retention], opts: &CreateOptions) -> Result<Header, Error> {
    let mut archives = archives.to_vec();
    validate_archive_list(&mut archives)?;
    if !(0.0..=1.0).contains(&opts.x_files_factor) {
        return Err(Error::InvalidXFilesFactor(opts.x_files_factor));
    }
    Header::for_new_file(&archives, opts.aggregation, opts.x_files_factor as f32)
}

/// Opens `path` only if this call creates it; an existing file is whisper.py's "already exists".
fn open_new(path: &Path) -> Result<File, Error> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::InvalidConfiguration(format!(
            "File {} already exists!",
            path.display()
        ))),
        Err(e) => Err(Error::Io(e).with_path(path)),
    }
}

/// Closes and removes a new file that could not be completed (a full disk, say), so no
/// half-written file is left for the next open to call corrupt.
fn abandon(file: File, path: &Path, e: io::Error) -> Error {
    drop(file);
    let _ = fs::remove_file(path);
    Error::Io(e).with_path(path)
}

fn fill_new_file(file: &File, header: &Header, opts: &CreateOptions) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    if opts.lock {
        file.lock()?;
    }
    let head = header.encode();
    file.write_all_at(&head, 0)?;
    let start = head.len() as u64;
    let end = header.file_size();
    if opts.fallocate {
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), start, end - start)?;
    } else if opts.sparse {
        file.write_all_at(&[0], end - 1)?;
    } else {
        const CHUNK: usize = 16384;
        let zeros = [0u8; CHUNK];
        let mut at = start;
        while at < end {
            let n = CHUNK.min((end - at) as usize);
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
    }
    Ok(())
}

impl Whisper<File> {
    /// Opens an existing file for reading, or for writing too, taking an exclusive flock if `lock`.
    pub fn open_path(path: &Path, writable: bool, lock: bool) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| Error::Io(e).with_path(path))?;
        if lock {
            file.lock().map_err(|e| Error::Io(e).with_path(path))?;
        }
        Whisper::open(file).map_err(|e| e.with_path(path))
    }
}

/// Reads a file's header (whisper.py's `info()`).
pub fn info(path: &Path) -> Result<Header, Error> {
    Ok(WhisperFile::open_path(path, false, false)?.header().clone())
}

/// Writes one point (whisper.py's `update()`).
pub fn update(path: &Path, value: f64, timestamp: Option<i64>, now: i64, lock: bool) -> Result<(), Error> {
    WhisperFile::open_path(path, true, lock)?
        .update(value, timestamp, now)
        .map_err(|e| e.with_path(path))
}

/// Writes many points (whisper.py's `update_many()`).
pub fn update_many(path: &Path, points: &[Point], now: i64, lock: bool) -> Result<(), Error> {
    if points.is_empty() {
        return Ok(());
    }
    WhisperFile::open_path(path, true, lock)?
        .update_many(points, now)
        .map_err(|e| e.with_path(path))
}

/// Reads a range (whisper.py's `fetch()`).
pub fn fetch(
    path: &Path,
    from: i64,
    until: Option<i64>,
    now: i64,
    archive_step: Option<u32>,
) -> Result<Option<Fetched>, Error> {
    WhisperFile::open_path(path, false, false)?
        .fetch(from, until, now, archive_step)
        .map_err(|e| e.with_path(path))
}

/// Sets the aggregation method (and optionally the xFilesFactor); returns the old method.
pub fn set_aggregation_method(
    path: &Path,
    method: AggregationMethod,
    xff: Option<f64>,
    lock: bool,
) -> Result<AggregationMethod, Error> {
    let mut db = WhisperFile::open_path(path, true, lock)?;
    Ok(db
        .set_aggregation(Some(method), xff)
        .map_err(|e| e.with_path(path))?
        .0)
}

/// Sets the xFilesFactor; returns the old one.
pub fn set_xfilesfactor(path: &Path, xff: f64, lock: bool) -> Result<f32, Error> {
    let mut db = WhisperFile::open_path(path, true, lock)?;
    Ok(db
        .set_aggregation(None, Some(xff))
        .map_err(|e| e.with_path(path))?
        .1)
}

/// Overwrites `to` with every known point of `from` (whisper.py's `merge()`).
pub fn merge(
    from: &Path,
    to: &Path,
    time_from: Option<i64>,
    time_to: Option<i64>,
    now: i64,
    lock: bool,
) -> Result<(), Error> {
    let source = WhisperFile::open_path(from, false, false)?;
    let mut target = WhisperFile::open_path(to, true, lock)?;
    target
        .merge_from(&source, time_from, time_to, now)
        .map_err(|e| e.with_path(to))
}

/// Compares two files archive by archive (whisper.py's `diff()`).
pub fn diff(
    a: &Path,
    b: &Path,
    ignore_empty: bool,
    until: Option<i64>,
    now: i64,
) -> Result<Vec<ArchiveDiff>, Error> {
    let x = WhisperFile::open_path(a, false, false)?;
    let y = WhisperFile::open_path(b, false, false)?;
    x.diff(&y, ignore_empty, until, now)
}

/// Whether whisper-fill treats a value as missing: `not v` in Python, so zero counts as a gap.
fn is_gap(v: Option<f64>) -> bool {
    v.is_none_or(|v| v == 0.0)
}

/// Copies the source's points for `[start, stop]` into the destination, finest source archive first
/// (whisper-fill.py's `fill()`).
fn fill_range(
    src: &WhisperFile,
    dst: &mut WhisperFile,
    start: i64,
    mut stop: i64,
    now: i64,
) -> Result<(), Error> {
    let src_oldest = now - i64::from(src.header().max_retention);
    if start < src_oldest && stop < src_oldest {
        return Ok(());
    }
    let mut archives = src.header().archives.clone();
    archives.sort_by_key(|a| a.retention());
    for archive in archives {
        let rtime = now - archive.retention();
        if stop <= rtime {
            continue;
        }
        let from = if rtime > start { rtime } else { start };
        if let Some(fetched) = src.fetch(from, Some(stop), now, None)? {
            let mut points: Vec<Point> = fetched.points().filter_map(|(t, v)| v.map(|v| (t, v))).collect();
            points.reverse();
            dst.update_many(&points, now)?;
        }
        stop = from;
        if start == stop {
            return Ok(());
        }
    }
    Ok(())
}

/// Fills the gaps of `dst` from `src` without overwriting anything `dst` has (whisper-fill.py, the
/// algorithm buckytools and carbonate share): destination archives from the finest, walking back in
/// time; each run of missing values is fetched from the source's finest archive that covers it.
pub fn fill(src: &Path, dst: &Path, now: i64, lock: bool) -> Result<(), Error> {
    let source = WhisperFile::open_path(src, false, false)?;
    let mut target = WhisperFile::open_path(dst, true, lock)?;
    fill_open(&source, &mut target, now).map_err(|e| e.with_path(dst))
}

/// [`fill`] over already-open files.
pub fn fill_open(src: &WhisperFile, dst: &mut WhisperFile, now: i64) -> Result<(), Error> {
    let mut start_from = now;
    let mut archives = dst.header().archives.clone();
    archives.sort_by_key(|a| a.retention());
    for archive in archives {
        let from = now - archive.retention();
        if from >= start_from {
            continue;
        }
        let Some(fetched) = dst.fetch(from, Some(start_from), now, None)? else {
            start_from = from;
            continue;
        };
        let (mut start, end, step) = (fetched.from, fetched.until, fetched.step);
        // Python tests `not gapstart`, so a gap starting at 0 behaves as no gap.
        let mut gap_start: Option<i64> = None;
        for v in fetched.values {
            let open_gap = gap_start.filter(|&g| g != 0);
            if is_gap(v) && open_gap.is_none() {
                gap_start = Some(start);
            } else if !is_gap(v) && open_gap.is_some() {
                let g = open_gap.unwrap_or(start);
                if start - g > archive.step() {
                    fill_range(src, dst, g - step, start, now)?;
                }
                gap_start = None;
            } else if let Some(g) = open_gap.filter(|_| start == end - step) {
                fill_range(src, dst, g - step, start, now)?;
            }
            start += step;
        }
        start_from = from;
    }
    Ok(())
}

/// Python's `bisect.bisect_left` on `a[lo..]`, step for step, so unsorted input behaves the same.
fn bisect_left(a: &[i64], x: i64, lo: usize) -> usize {
    let (mut lo, mut hi) = (lo, a.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if a[mid] < x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// How whisper-resize migrates the data.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResizeOptions {
    /// New xFilesFactor; the old one when `None`.
    pub x_files_factor: Option<f64>,
    /// New aggregation method; the old one when `None`.
    pub aggregation: Option<AggregationMethod>,
    /// Re-aggregate old points into the new steps (respecting the xFilesFactor) instead of copying.
    pub aggregate: bool,
}

/// What a resize did, for the script-compatible progress output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResizeReport {
    /// Size of the new file.
    pub created_size: u64,
    /// With `aggregate`: every old timestamp, oldest first.
    pub old_timestamps: Vec<i64>,
    /// With `aggregate`: `(from, until, step)` of each new archive's window.
    pub windows: Vec<(i64, i64, i64)>,
}

/// Builds `dst` with `archives` from the data of `src` (whisper-resize.py without the renames).
pub fn resize_into(
    src: &Path,
    dst: &Path,
    archives: &[Retention],
    opts: &ResizeOptions,
    now: i64,
) -> Result<ResizeReport, Error> {
    let source = WhisperFile::open_path(src, false, false)?;
    let old = source.header().clone();
    let mut old_archives = old.archives.clone();
    old_archives.sort_by_key(|a| std::cmp::Reverse(a.seconds_per_point));
    let xff = opts.x_files_factor.unwrap_or(f64::from(old.x_files_factor));
    let method = opts.aggregation.unwrap_or(old.aggregation);

    let mut data = Vec::with_capacity(old_archives.len());
    for a in &old_archives {
        let from = now - a.retention() + a.step();
        let fetched = source.fetch(from, Some(now), now, None)?.ok_or_else(|| {
            Error::corrupt("no data range could be read from the source file").with_path(src)
        })?;
        data.push((a.seconds_per_point, fetched));
    }
    drop(source);

    let create_opts = CreateOptions {
        x_files_factor: xff,
        aggregation: method,
        ..CreateOptions::default()
    };
    let header = create(dst, archives, &create_opts)?;
    let mut report = ResizeReport {
        created_size: header.file_size(),
        ..ResizeReport::default()
    };
    let mut target = WhisperFile::open_path(dst, true, false)?;

    if opts.aggregate {
        let mut by_precision: Vec<&(u32, Fetched)> = data.iter().collect();
        by_precision.sort_by_key(|(spp, _)| *spp);
        let mut all: Vec<(i64, Option<f64>)> = Vec::new();
        for (_, fetched) in by_precision {
            let mut newer: Vec<(i64, Option<f64>)> = fetched.points().collect();
            newer.reverse();
            match all.last() {
                Some(&(last_ts, _)) => {
                    let cut = newer.iter().position(|&(t, _)| t < last_ts).unwrap_or(0);
                    all.extend_from_slice(&newer[cut..]);
                }
                None => all.extend(newer),
            }
        }
        all.reverse();
        let timestamps: Vec<i64> = all.iter().map(|p| p.0).collect();
        let values: Vec<Option<f64>> = all.iter().map(|p| p.1).collect();
        for archive in target.header().archives.clone() {
            let step = archive.step();
            let from = now - archive.retention() + now.rem_euclid(step);
            let until = now + now.rem_euclid(step) + step;
            report.windows.push((from, until, step));
            let mut points = Vec::new();
            let mut t = from;
            while t + step < until {
                let left = bisect_left(&timestamps, t, 0);
                let right = bisect_left(&timestamps, t + step, left);
                let window = values.get(left..right).unwrap_or(&[]);
                if !window.is_empty() {
                    let known: Vec<f64> = window.iter().flatten().copied().collect();
                    let enough = !known.is_empty() && known.len() as f64 / window.len() as f64 >= xff;
                    if let Some(v) = aggregate(method, &known, window).filter(|_| enough) {
                        points.push((t, v));
                    }
                }
                t += step;
            }
            target.update_many(&points, now).map_err(|e| e.with_path(dst))?;
        }
        report.old_timestamps = timestamps;
    } else {
        for (_, fetched) in &data {
            let points: Vec<Point> = fetched.points().filter_map(|(t, v)| v.map(|v| (t, v))).collect();
            target.update_many(&points, now).map_err(|e| e.with_path(dst))?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    fn retention(seconds_per_point: u32, points: u32) -> Retention {
        Retention {
            seconds_per_point,
            points,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The one-write create gives the bytes of a create followed by update_many, for points
        /// in and out of the retention, duplicates and all.
        #[test]
        fn create_with_points_is_create_then_update_many(
            spp in prop_oneof![Just(1u32), Just(10), Just(60)],
            points in 10u32..300,
            factor in 2u32..6,
            method in proptest::sample::select(AggregationMethod::ALL.to_vec()),
            xff in 0.0f64..=1.0,
            batch in prop::collection::vec((0i64..20_000, -1e9f64..1e9), 0..120),
            fallocate in any::<bool>(),
        ) {
            let archives = [retention(spp, points), retention(spp * factor, points)];
            let opts = CreateOptions { x_files_factor: xff, aggregation: method, fallocate, ..CreateOptions::default() };
            let batch: Vec<Point> = batch.into_iter().map(|(age, v)| (NOW - age, v)).collect();
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (dir.path().join("a.wsp"), dir.path().join("b.wsp"));
            create_with_points(&a, &archives, &opts, &batch, NOW).unwrap();
            create_open(&b, &archives, &opts).unwrap().update_many(&batch, NOW).unwrap();
            prop_assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
            // Written whole, a file is as allocated as one fallocate reserved: no holes.
            use std::os::unix::fs::MetadataExt;
            let blocks = |p: &Path| fs::metadata(p).unwrap().blocks();
            prop_assert!(blocks(&a) * 512 >= fs::metadata(&a).unwrap().len());
            if fallocate {
                prop_assert_eq!(blocks(&a), blocks(&b));
            }
        }
    }

    #[test]
    fn create_with_points_keeps_an_existing_file_and_creates_when_points_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wsp");
        let archives = [retention(60, 100)];
        let opts = CreateOptions::default();
        let p = [(NOW - 60, 1.0)];
        create_with_points(&path, &archives, &opts, &p, NOW).unwrap();
        let before = fs::read(&path).unwrap();
        let again = create_with_points(&path, &archives, &opts, &p, NOW).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        assert_eq!(fs::read(&path).unwrap(), before);
        // A timestamp whisper cannot store fails the update; the file is still created, empty,
        // as create followed by update_many leaves it.
        let bad = dir.path().join("bad.wsp");
        let late = [(1 << 40, 1.0)];
        assert!(create_with_points(&bad, &archives, &opts, &late, 1 << 40).is_err());
        let empty = dir.path().join("empty.wsp");
        create(&empty, &archives, &opts).unwrap();
        assert_eq!(fs::read(&bad).unwrap(), fs::read(&empty).unwrap());
    }
}
