//! The whisper algorithms over any [`Storage`]: update, update_many, propagation, fetch, merge, diff.
//!
//! Each function follows whisper.py 1.1 step by step — which slot a point goes to, which archive a
//! point or a fetch selects, when propagation stops, which bytes are written and in what order — because
//! the files must come out byte-identical. Time arithmetic uses Python's floor division and modulo
//! (`div_euclid`/`rem_euclid` with a positive step).

use std::cell::Cell;

use carbide_core::AggregationMethod;

use crate::aggregate::aggregate;
use crate::header::{ArchiveInfo, Header, METADATA_SIZE, POINT_SIZE};
use crate::pyset;
use crate::storage::Storage;
use crate::{Error, io_or_corrupt};

/// A timestamp (epoch seconds) and a value.
pub type Point = (i64, f64);

/// The answer to a fetch: the time range actually covered and one value per step.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Start of the first interval, inclusive.
    pub from: i64,
    /// End of the last interval, exclusive.
    pub until: i64,
    /// Seconds per value.
    pub step: i64,
    /// One value per step; `None` where nothing was stored for that interval.
    pub values: Vec<Option<f64>>,
}

impl Fetched {
    /// The (timestamp, value) pairs, keeping the `None`s.
    pub fn points(&self) -> impl Iterator<Item = (i64, Option<f64>)> + '_ {
        (self.from..)
            .step_by(self.step.max(1) as usize)
            .zip(self.values.iter().copied())
    }
}

/// Per-archive differences between two files, as whisper.py's `diff()` returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveDiff {
    /// Index of the archive, in order of increasing retention.
    pub archive: usize,
    /// `(timestamp, value in the first file, value in the second)` where they differ.
    pub diffs: Vec<(i64, Option<f64>, Option<f64>)>,
    /// Number of points compared.
    pub total: usize,
}

/// A whisper database over some storage, with its header read once at open.
#[derive(Debug)]
pub struct Whisper<S: Storage> {
    storage: S,
    header: Header,
    /// The timestamp in each archive's first slot, once read: whisper.py re-reads it before every
    /// write and propagation, which is most of its syscalls. Every write that covers a first slot
    /// updates this copy, so it always equals what a re-read would return.
    bases: Vec<Cell<Option<i64>>>,
    /// Bytes of the finer archive read once for a whole propagation pass: `(file offset, bytes)`.
    /// Reads inside it are served from memory; any write overlapping it drops it.
    window: Option<(u64, Vec<u8>)>,
}

/// Packs a point, refusing timestamps whisper's u32 field cannot hold (Python's struct.error).
fn pack_point(interval: i64, value: f64) -> Result<[u8; POINT_SIZE], Error> {
    let ts = u32::try_from(interval).map_err(|_| Error::TimestampOutOfRange(interval))?;
    let mut out = [0u8; POINT_SIZE];
    out[..4].copy_from_slice(&ts.to_be_bytes());
    out[4..].copy_from_slice(&value.to_bits().to_be_bytes());
    Ok(out)
}

/// Unpacks a run of stored points.
fn unpack_points(bytes: &[u8]) -> impl Iterator<Item = (u32, f64)> + '_ {
    bytes.chunks_exact(POINT_SIZE).map(|p| {
        let mut ts = [0u8; 4];
        let mut v = [0u8; 8];
        ts.copy_from_slice(&p[..4]);
        v.copy_from_slice(&p[4..]);
        (u32::from_be_bytes(ts), f64::from_bits(u64::from_be_bytes(v)))
    })
}

thread_local! {
    /// Each thread's read buffer for fetches: a day of 10 s points is ~100 KB, and allocating and
    /// zeroing that per fetch cost as much as decoding it.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` over a buffer of exactly `len` bytes (contents unspecified), reusing this thread's
/// scratch buffer when it is free.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> Result<T, Error>) -> Result<T, Error> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let r = f(&mut buf[..len]);
            // Don't keep a huge buffer alive after a rare huge fetch.
            if buf.len() > 16 << 20 {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Byte offset of `interval` in `archive`, counting from the archive's base interval, with wraparound.
fn slot_offset(archive: &ArchiveInfo, base: i64, interval: i64) -> u64 {
    let points = (interval - base).div_euclid(archive.step());
    let bytes = (points * POINT_SIZE as i64).rem_euclid(archive.size() as i64);
    u64::from(archive.offset) + bytes as u64
}

impl<S: Storage> Whisper<S> {
    /// Reads and checks the header. Fails on anything whisper.py would call corrupt, and on archives
    /// that lie outside the file.
    pub fn open(storage: S) -> Result<Self, Error> {
        let len = storage.len().map_err(Error::Io)?;
        // One read usually covers the whole header (a 4-archive header is 64 bytes).
        let first = len.min(512) as usize;
        let mut head = vec![0u8; first];
        storage
            .read_at(&mut head, 0)
            .map_err(|e| io_or_corrupt(e, "Unable to read header"))?;
        let count = Header::archive_count(&head)?;
        if count > crate::header::MAX_ARCHIVES {
            return Err(Error::corrupt(format!(
                "archive count {count} does not fit a whisper header"
            )));
        }
        let header_len = Header::size_for(count as usize);
        if header_len as u64 > len {
            let readable = (len.saturating_sub(METADATA_SIZE as u64) / 12) as usize;
            return Err(Error::corrupt(format!(
                "Unable to read archive{readable} metadata"
            )));
        }
        if header_len > head.len() {
            head = vec![0u8; header_len];
            storage
                .read_at(&mut head, 0)
                .map_err(|e| io_or_corrupt(e, "Unable to read header"))?;
        }
        let header = Header::parse(&head[..header_len])?;
        header.check_layout(len)?;
        // The header read usually covers the first archive's first slot too: keep its timestamp,
        // so an update that touches only that archive needs no second read.
        let bases = header
            .archives
            .iter()
            .map(|a| {
                let at = a.offset as usize;
                let ts = head.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
                Cell::new(ts.map(|b| i64::from(u32::from_be_bytes(b))))
            })
            .collect();
        Ok(Whisper {
            storage,
            header,
            bases,
            window: None,
        })
    }

    /// A file this process has just created with `header`: every archive is still empty (base
    /// interval 0), so nothing needs reading back.
    pub(crate) fn new_file(storage: S, header: Header) -> Self {
        let bases = vec![Cell::new(Some(0)); header.archives.len()];
        Whisper {
            storage,
            header,
            bases,
            window: None,
        }
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Gives the storage back (closing a file is dropping it).
    pub fn into_inner(self) -> S {
        self.storage
    }

    /// Fills `out` from `offset`, from the propagation window when it covers the range.
    fn read_exact_into(&self, out: &mut [u8], offset: u64, what: &'static str) -> Result<(), Error> {
        if let Some((start, data)) = &self.window
            && offset >= *start
            && offset + out.len() as u64 <= *start + data.len() as u64
        {
            let at = (offset - start) as usize;
            out.copy_from_slice(&data[at..at + out.len()]);
            return Ok(());
        }
        self.storage
            .read_at(out, offset)
            .map_err(|e| io_or_corrupt(e, what))
    }

    fn read(&self, len: usize, offset: u64, what: &'static str) -> Result<Vec<u8>, Error> {
        if let Some((start, data)) = &self.window
            && offset >= *start
            && offset + len as u64 <= *start + data.len() as u64
        {
            let at = (offset - start) as usize;
            return Ok(data[at..at + len].to_vec());
        }
        let mut buf = vec![0u8; len];
        self.storage
            .read_at(&mut buf, offset)
            .map_err(|e| io_or_corrupt(e, what))?;
        Ok(buf)
    }

    fn write(&mut self, bytes: &[u8], offset: u64) -> Result<(), Error> {
        self.storage.write_at(bytes, offset).map_err(Error::Io)?;
        let end = offset + bytes.len() as u64;
        if self
            .window
            .as_ref()
            .is_some_and(|(start, data)| offset < start + data.len() as u64 && *start < end)
        {
            self.window = None;
        }
        for (a, base) in self.header.archives.iter().zip(&self.bases) {
            let first = u64::from(a.offset);
            if first >= offset && first + 4 <= end {
                let at = (first - offset) as usize;
                let mut ts = [0u8; 4];
                ts.copy_from_slice(&bytes[at..at + 4]);
                base.set(Some(i64::from(u32::from_be_bytes(ts))));
            } else if first < end && first + 4 > offset {
                // A write that splits the first slot's timestamp: forget it, re-read next time.
                base.set(None);
            }
        }
        Ok(())
    }

    /// The interval stored in an archive's first slot; 0 means the archive was never written.
    fn base_interval(&self, archive: &ArchiveInfo, what: &'static str) -> Result<i64, Error> {
        let cached = self
            .header
            .archives
            .iter()
            .position(|a| a.offset == archive.offset)
            .map(|i| &self.bases[i]);
        if let Some(base) = cached.and_then(Cell::get) {
            return Ok(base);
        }
        let mut ts = [0u8; 4];
        self.storage
            .read_at(&mut ts, u64::from(archive.offset))
            .map_err(|e| io_or_corrupt(e, what))?;
        let base = i64::from(u32::from_be_bytes(ts));
        if let Some(c) = cached {
            c.set(Some(base));
        }
        Ok(base)
    }

    /// Writes one point, as whisper.py's `update()`: the finest archive that covers the timestamp, then
    /// propagation down until an archive refuses (xFilesFactor).
    pub fn update(&mut self, value: f64, timestamp: Option<i64>, now: i64) -> Result<(), Error> {
        let timestamp = timestamp.unwrap_or(now);
        let diff = now - timestamp;
        if !(diff >= 0 && diff < i64::from(self.header.max_retention)) {
            return Err(Error::TimestampNotCovered(timestamp));
        }
        let idx = self
            .header
            .archives
            .iter()
            .position(|a| a.retention() >= diff)
            .ok_or(Error::TimestampNotCovered(timestamp))?;
        let archive = self.header.archives[idx];
        let interval = timestamp - timestamp.rem_euclid(archive.step());
        let packed = pack_point(interval, value)?;
        let base = self.base_interval(&archive, "Unable to read base datapoint")?;
        let offset = if base == 0 {
            u64::from(archive.offset)
        } else {
            slot_offset(&archive, base, interval)
        };
        self.write(&packed, offset)?;
        for lower in idx + 1..self.header.archives.len() {
            if !self.propagate(interval, lower - 1, lower)? {
                break;
            }
        }
        Ok(())
    }

    /// Writes many points, as whisper.py's `update_many()`: newest first, each archive takes the points
    /// its retention covers, older points go to coarser archives, points older than every archive are
    /// dropped. Future timestamps are not refused (whisper doesn't).
    pub fn update_many(&mut self, points: &[Point], now: i64) -> Result<(), Error> {
        if points.is_empty() {
            return Ok(());
        }
        let mut sorted = points.to_vec();
        // Stable, newest first: equal timestamps keep their order, as Python's sort(reverse=True) does.
        sorted.sort_by_key(|p| std::cmp::Reverse(p.0));
        let mut idx = 0;
        let mut current: Vec<Point> = Vec::new();
        let archive_count = self.header.archives.len();
        for &point in &sorted {
            let age = now - point.0;
            while self.header.archives[idx].retention() < age {
                if !current.is_empty() {
                    current.reverse();
                    self.archive_update_many(idx, &current)?;
                    current.clear();
                }
                idx += 1;
                if idx == archive_count {
                    return Ok(());
                }
            }
            current.push(point);
        }
        if !current.is_empty() {
            current.reverse();
            self.archive_update_many(idx, &current)?;
        }
        Ok(())
    }

    /// Writes chronologically ordered points into one archive and propagates them, as whisper.py's
    /// `__archive_update_many`.
    fn archive_update_many(&mut self, idx: usize, points: &[Point]) -> Result<(), Error> {
        let archive = self.header.archives[idx];
        let step = archive.step();
        let aligned: Vec<Point> = points.iter().map(|&(t, v)| (t - t.rem_euclid(step), v)).collect();

        // Contiguous runs: (first interval, packed bytes). Within equal intervals the last point wins.
        let mut runs: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut run: Vec<u8> = Vec::new();
        let mut previous: Option<i64> = None;
        for (i, &(interval, value)) in aligned.iter().enumerate() {
            if aligned.get(i + 1).is_some_and(|next| next.0 == interval) {
                continue;
            }
            // Python tests `not previousInterval`, so an interval of 0 also counts as "no previous".
            let extends = match previous {
                None | Some(0) => true,
                Some(p) => interval == p + step,
            };
            if !extends {
                let count = (run.len() / POINT_SIZE) as i64;
                let start = previous.unwrap_or(0) - step * (count - 1);
                runs.push((start, std::mem::take(&mut run)));
            }
            run.extend_from_slice(&pack_point(interval, value)?);
            previous = Some(interval);
        }
        if !run.is_empty() {
            let count = (run.len() / POINT_SIZE) as i64;
            let start = previous.unwrap_or(0) - step * (count - 1);
            runs.push((start, run));
        }

        let mut base = self.base_interval(&archive, "Unable to read base datapoint")?;
        if base == 0 {
            base = runs.first().map_or(0, |r| r.0);
        }
        let archive_end = archive.end();
        for (interval, bytes) in &runs {
            let offset = slot_offset(&archive, base, *interval);
            let beyond = (offset + bytes.len() as u64).saturating_sub(archive_end) as usize;
            if beyond > 0 {
                let split = bytes.len() - beyond;
                self.write(&bytes[..split], offset)?;
                self.write(&bytes[split..], u64::from(archive.offset))?;
            } else {
                self.write(bytes, offset)?;
            }
        }

        // Python walks every archive coarser than this one, in header order.
        let mut higher = idx;
        for lower in 0..self.header.archives.len() {
            if self.header.archives[lower].seconds_per_point <= archive.seconds_per_point {
                continue;
            }
            let lower_step = self.header.archives[lower].step();
            let intervals: Vec<i64> = aligned.iter().map(|p| p.0 - p.0.rem_euclid(lower_step)).collect();
            let order = pyset::iteration_order(&intervals);
            self.prefetch(higher, lower, &order)?;
            let mut further = false;
            for interval in order {
                match self.propagate(interval, higher, lower) {
                    Ok(true) => further = true,
                    Ok(false) => {}
                    Err(e) => {
                        self.window = None;
                        return Err(e);
                    }
                }
            }
            self.window = None;
            if !further {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// Reads, in one call, the span of the finer archive that propagating `intervals` will read,
    /// when it is one unwrapped stretch of the file (the common case); otherwise does nothing and the
    /// propagations read for themselves. Same bytes either way: the pass writes only the coarser
    /// archive.
    fn prefetch(&mut self, higher: usize, lower: usize, intervals: &[i64]) -> Result<(), Error> {
        let (hi, lo) = (self.header.archives[higher], self.header.archives[lower]);
        self.window = None;
        if intervals.len() < 2 || lo.step() / hi.step() * POINT_SIZE as i64 >= hi.size() as i64 {
            return Ok(());
        }
        let hi_base = self.base_interval(&hi, "Unable to read base datapoint")?;
        if hi_base == 0 {
            return Ok(());
        }
        let span = (lo.step() / hi.step()) as u64 * POINT_SIZE as u64;
        let firsts = intervals
            .iter()
            .map(|&t| slot_offset(&hi, hi_base, t - t.rem_euclid(lo.step())));
        let (min, max) = firsts.fold((u64::MAX, 0), |(a, b), f| (a.min(f), b.max(f)));
        let end = max + span;
        if end <= hi.end() && end - min <= 1 << 16 {
            let data = self.read((end - min) as usize, min, "Unable to read datapoints")?;
            self.window = Some((min, data));
        }
        Ok(())
    }

    /// Aggregates the finer points under `timestamp`'s coarser interval into the lower archive, if
    /// enough of them are known (xFilesFactor). Returns whether a point was written.
    fn propagate(&mut self, timestamp: i64, higher: usize, lower: usize) -> Result<bool, Error> {
        let (hi, lo) = (self.header.archives[higher], self.header.archives[lower]);
        let lower_start = timestamp - timestamp.rem_euclid(lo.step());
        let hi_base = self.base_interval(&hi, "Unable to read base datapoint")?;
        let hi_size = hi.size() as i64;
        let first = if hi_base == 0 {
            u64::from(hi.offset)
        } else {
            slot_offset(&hi, hi_base, lower_start)
        };
        let span = (lo.step() / hi.step()) * POINT_SIZE as i64;
        let rel_first = first as i64 - i64::from(hi.offset);
        let last = ((rel_first + span).rem_euclid(hi_size) + i64::from(hi.offset)) as u64;
        let series = if first < last {
            self.read((last - first) as usize, first, "Unable to read datapoints")?
        } else {
            let mut s = self.read((hi.end() - first) as usize, first, "Unable to read datapoints")?;
            let tail = (last - u64::from(hi.offset)) as usize;
            s.extend(self.read(tail, u64::from(hi.offset), "Unable to read datapoints")?);
            s
        };

        let mut neighbors = Vec::with_capacity(series.len() / POINT_SIZE);
        let mut expected = lower_start;
        for (ts, value) in unpack_points(&series) {
            neighbors.push((i64::from(ts) == expected).then_some(value));
            expected += hi.step();
        }
        let known: Vec<f64> = neighbors.iter().flatten().copied().collect();
        if known.is_empty() {
            return Ok(false);
        }
        let known_ratio = known.len() as f64 / neighbors.len() as f64;
        if known_ratio < f64::from(self.header.x_files_factor) {
            return Ok(false);
        }
        let Some(value) = aggregate(self.header.aggregation, &known, &neighbors) else {
            return Ok(false);
        };
        let packed = pack_point(lower_start, value)?;
        let lo_base = self.base_interval(&lo, "Unable to read base datapoint")?;
        let offset = if lo_base == 0 {
            u64::from(lo.offset)
        } else {
            slot_offset(&lo, lo_base, lower_start)
        };
        self.write(&packed, offset)?;
        Ok(true)
    }

    /// Reads a time range, as whisper.py's `fetch()`: `None` when the range is wholly in the future or
    /// wholly beyond retention; otherwise clamped to what is kept, from the finest archive that covers
    /// `from` (or the one whose step is `archive_step`).
    pub fn fetch(
        &self,
        from: i64,
        until: Option<i64>,
        now: i64,
        archive_step: Option<u32>,
    ) -> Result<Option<Fetched>, Error> {
        let mut from = from;
        let mut until = until.unwrap_or(now);
        if from > until {
            return Err(Error::InvalidTimeInterval { from, until });
        }
        let oldest = now - i64::from(self.header.max_retention);
        if from > now || until < oldest {
            return Ok(None);
        }
        from = from.max(oldest);
        until = until.min(now);
        let diff = now - from;
        let archive = match archive_step.filter(|&s| s != 0) {
            Some(step) => *self
                .header
                .archives
                .iter()
                .find(|a| a.seconds_per_point == step)
                .ok_or(Error::InvalidGranularity(step))?,
            None => match self.header.archives.iter().find(|a| a.retention() >= diff) {
                Some(a) => *a,
                // Python keeps the loop variable: the last archive.
                None => *self
                    .header
                    .archives
                    .last()
                    .ok_or_else(|| Error::corrupt("no archives"))?,
            },
        };
        self.archive_fetch(&archive, from, until).map(Some)
    }

    /// Reads `[from, until]` from one archive without any retention checks (whisper.py's
    /// `__archive_fetch`, which merge, diff and resize also use).
    pub fn archive_fetch(&self, archive: &ArchiveInfo, from: i64, until: i64) -> Result<Fetched, Error> {
        let step = archive.step();
        let from_i = from - from.rem_euclid(step) + step;
        let mut until_i = until - until.rem_euclid(step) + step;
        if from_i == until_i {
            until_i += step;
        }
        let base = self.base_interval(archive, "Unable to read base datapoint")?;
        if base == 0 {
            let n = (until_i - from_i).div_euclid(step).max(0) as usize;
            return Ok(Fetched {
                from: from_i,
                until: until_i,
                step,
                values: vec![None; n],
            });
        }
        let from_off = slot_offset(archive, base, from_i);
        let until_off = slot_offset(archive, base, until_i);
        // The span is one run, or the archive's tail then its head when it wraps.
        let (first, second) = if from_off < until_off {
            ((until_off - from_off) as usize, 0)
        } else {
            (
                (archive.end() - from_off) as usize,
                (until_off - u64::from(archive.offset)) as usize,
            )
        };
        let values = with_scratch(first + second, |buf| {
            let (head, tail) = buf.split_at_mut(first);
            self.read_exact_into(head, from_off, "Unable to read datapoints")?;
            if second > 0 {
                self.read_exact_into(tail, u64::from(archive.offset), "Unable to read datapoints")?;
            }
            // One pass with a known length (no capacity check per point): the decode is most of
            // a fetch's own work.
            Ok(buf
                .chunks_exact(POINT_SIZE)
                .enumerate()
                .map(|(i, p)| {
                    let ts = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                    let bits = u64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
                    (i64::from(ts) == from_i + i as i64 * step).then_some(f64::from_bits(bits))
                })
                .collect())
        })?;
        Ok(Fetched {
            from: from_i,
            until: until_i,
            step,
            values,
        })
    }

    /// Rewrites the aggregation method and/or xFilesFactor; returns the old ones (whisper.py's
    /// `__setAggregation`).
    pub fn set_aggregation(
        &mut self,
        method: Option<AggregationMethod>,
        xff: Option<f64>,
    ) -> Result<(AggregationMethod, f32), Error> {
        let old = (self.header.aggregation, self.header.x_files_factor);
        let method = method.unwrap_or(self.header.aggregation);
        let xff = match xff {
            None => self.header.x_files_factor,
            Some(x) if (0.0..=1.0).contains(&x) => x as f32,
            Some(x) => return Err(Error::InvalidXFilesFactor(x)),
        };
        let count = u32::try_from(self.header.archives.len()).unwrap_or(u32::MAX);
        let meta = Header::encode_metadata(method, self.header.max_retention, xff, count);
        self.write(&meta, 0)?;
        self.header.aggregation = method;
        self.header.x_files_factor = xff;
        Ok(old)
    }

    /// Archives in order of increasing retention, as merge and diff walk them.
    fn archives_by_retention(&self) -> Vec<ArchiveInfo> {
        let mut archives = self.header.archives.clone();
        archives.sort_by_key(ArchiveInfo::retention);
        archives
    }

    /// Copies every known point of `source` in `[time_from, time_to]` over this file (whisper.py's
    /// `merge()`); both files must have the same archive layout.
    pub fn merge_from<T: Storage>(
        &mut self,
        source: &Whisper<T>,
        time_from: Option<i64>,
        time_to: Option<i64>,
        now: i64,
    ) -> Result<(), Error> {
        if source.header.archives != self.header.archives {
            return Err(Error::LayoutMismatch("Resize the input before merging"));
        }
        let until = time_to.unwrap_or(now);
        let from = time_from.unwrap_or(0);
        if until < from {
            return Err(Error::InvalidTimeInterval { from, until });
        }
        for archive in source.archives_by_retention() {
            let oldest = now - archive.retention();
            if until < oldest {
                continue;
            }
            let fetched = source.archive_fetch(&archive, from.max(oldest), until)?;
            let points: Vec<Point> = fetched.points().filter_map(|(t, v)| v.map(|v| (t, v))).collect();
            if points.is_empty() {
                continue;
            }
            let idx = self
                .header
                .archives
                .iter()
                .position(|a| *a == archive)
                .ok_or(Error::LayoutMismatch("Resize the input before merging"))?;
            self.archive_update_many(idx, &points)?;
        }
        Ok(())
    }

    /// Compares this file with `other`, archive by archive (whisper.py's `diff()`).
    pub fn diff<T: Storage>(
        &self,
        other: &Whisper<T>,
        ignore_empty: bool,
        until_time: Option<i64>,
        now: i64,
    ) -> Result<Vec<ArchiveDiff>, Error> {
        if other.header.archives != self.header.archives {
            return Err(Error::LayoutMismatch("Resize the input before diffing"));
        }
        let mut until = until_time.filter(|&u| u != 0).unwrap_or(now);
        let mut out = Vec::new();
        for (number, archive) in self.archives_by_retention().into_iter().enumerate() {
            let start_time = now - archive.retention();
            let a = self.archive_fetch(&archive, start_time, until)?;
            let b = other.archive_fetch(&archive, start_time, until)?;
            let (start, end, step) = (a.from.min(b.from), a.until.max(b.until), a.step.min(b.step));
            let n = (end - start).div_euclid(step).max(0) as usize;
            let mut points = Vec::with_capacity(n);
            for s in 0..n {
                let (x, y) = (
                    a.values.get(s).copied().flatten(),
                    b.values.get(s).copied().flatten(),
                );
                let keep = if ignore_empty {
                    x.is_some() && y.is_some()
                } else {
                    x.is_some() || y.is_some()
                };
                if keep {
                    points.push((s as i64 * step + start, x, y));
                }
            }
            let total = points.len();
            // Python compares floats with !=, so NaN always differs from itself.
            let diffs = points.into_iter().filter(|(_, x, y)| x != y).collect();
            out.push(ArchiveDiff {
                archive: number,
                diffs,
                total,
            });
            until = until.min(start_time);
        }
        Ok(out)
    }
}
