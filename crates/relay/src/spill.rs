//! One destination's spill file: points appended while the destination is down and its memory
//! queue is full, read back in order when it returns.
//!
//! The file holds plaintext lines (`name value timestamp`, floats in shortest round-trip form), so
//! an operator can read it and replay it with `nc` if all else fails. A start-up finding a non-empty
//! file replays it from the beginning: after a crash a point may be sent twice, never lost (whisper
//! keeps the last write for a timestamp, so a repeat is harmless); a torn last line left by a crash
//! is cut off at open.
//!
//! # A full disk
//! Lines are gathered in a small buffer of whole lines and written together. When a write fails
//! (ENOSPC, EFBIG past `ulimit -f`, EIO), whatever part of a line reached the file is cut off again,
//! so the file only ever holds whole lines, and the lines not written stay in the buffer: they are
//! still pending and are replayed after the file, in order. While the buffer cannot be written and
//! is full, [`Spill::append`] refuses with [`SpillError::Io`] (the caller drops and counts the
//! point); nothing it accepted is lost. Once everything in the file has been read back the file is
//! emptied, which frees the space and lets the buffer drain again.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use carbide_protocol::line::parse_line;

use crate::queue::Point;

/// Bytes of whole lines gathered before they are written.
const BUF_BYTES: usize = 64 * 1024;

/// The append-only spill file of one destination.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    file: File,
    reader: BufReader<File>,
    /// Whole lines not yet written to the file, oldest first; logically after the file's lines.
    buf: Vec<u8>,
    /// Bytes in the file (whole lines only).
    written: u64,
    /// Bytes of the file read back so far.
    read: u64,
    /// Largest the file plus the buffer may grow; appends beyond it are refused.
    max_bytes: u64,
    /// Points in the file and the buffer not yet read back.
    pending: u64,
    line: String,
}

/// Why a point could not be spilled.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The file reached its size limit.
    #[error("spill file {0} is full")]
    Full(PathBuf),
    /// Writing failed (ENOSPC, EFBIG and friends) and the write buffer is full.
    #[error("spill file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Spill {
    /// Opens (creating) the spill file at `path`; the whole lines it already holds are pending
    /// replay, a torn last line is cut off.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<Spill> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut written = file.metadata()?.len();
        let mut pending = 0u64;
        if written > 0 {
            // Count what an earlier run left, so the queue knows to replay it.
            let mut whole = 0u64;
            let mut r = BufReader::new(File::open(path)?);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                whole += n as u64;
                pending += 1;
            }
            if whole < written {
                file.set_len(whole)?;
                written = whole;
            }
        }
        let reader = BufReader::new(File::open(path)?);
        Ok(Spill {
            path: path.to_path_buf(),
            file,
            reader,
            buf: Vec::new(),
            written,
            read: 0,
            max_bytes,
            pending,
            line: String::new(),
        })
    }

    /// Points waiting to be read back.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Bytes in the file and its write buffer.
    pub fn bytes(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Appends one point.
    pub fn append(&mut self, p: &Point) -> Result<(), SpillError> {
        let line = format!("{} {:?} {:?}\n", p.name, p.value, p.timestamp);
        if self.bytes() + line.len() as u64 > self.max_bytes {
            return Err(SpillError::Full(self.path.clone()));
        }
        if self.buf.len() + line.len() > BUF_BYTES
            && let Err(source) = self.flush()
            && self.buf.len() + line.len() > BUF_BYTES
        {
            return Err(SpillError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.buf.extend_from_slice(line.as_bytes());
        self.pending += 1;
        Ok(())
    }

    /// Writes the buffer to the file. On failure, a line only partly written is cut off the file
    /// again and every line not wholly written stays in the buffer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        let mut failure = None;
        while done < self.buf.len() {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => {
                    failure = Some(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failure else {
            self.written += done as u64;
            self.buf.clear();
            return Ok(());
        };
        let whole = self.buf[..done]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if whole < done {
            self.file.set_len(self.written + whole as u64)?;
        }
        self.written += whole as u64;
        self.buf.drain(..whole);
        Err(e)
    }

    /// Reads up to `n` points back, oldest first, into `out`: the file, then the buffer. When the
    /// file has been read through it is emptied. Lines that no longer parse are skipped and
    /// counted in the return value. A failing flush is not an error here: what it could not write
    /// is read from the buffer.
    pub fn read_back(&mut self, n: usize, out: &mut Vec<Point>) -> std::io::Result<u64> {
        let _ = self.flush();
        let mut bad = 0;
        let mut got = 0;
        while got < n && self.read < self.written {
            self.line.clear();
            let len = self.reader.read_line(&mut self.line)?;
            if len == 0 {
                break;
            }
            self.read += len as u64;
            self.pending = self.pending.saturating_sub(1);
            match parse_line(self.line.trim_end_matches('\n').as_bytes(), 0.0) {
                Ok(p) if self.line.ends_with('\n') => {
                    out.push(Point {
                        name: p.name.to_string(),
                        value: p.value,
                        timestamp: p.timestamp,
                    });
                    got += 1;
                }
                _ => bad += 1,
            }
        }
        if self.read >= self.written {
            let mut taken = 0;
            for l in self.buf.split_inclusive(|&b| b == b'\n') {
                if got >= n {
                    break;
                }
                taken += l.len();
                self.pending = self.pending.saturating_sub(1);
                match parse_line(l.strip_suffix(b"\n").unwrap_or(l), 0.0) {
                    Ok(p) => {
                        out.push(Point {
                            name: p.name.to_string(),
                            value: p.value,
                            timestamp: p.timestamp,
                        });
                        got += 1;
                    }
                    Err(_) => bad += 1,
                }
            }
            self.buf.drain(..taken);
            self.reset()?;
        }
        Ok(bad)
    }

    /// Puts `front` (older points, from memory) ahead of what the file and the buffer still hold,
    /// so a restart replays everything in order; used at shutdown. Writes a new file and renames
    /// it over.
    pub fn prepend(&mut self, front: &[Point]) -> std::io::Result<()> {
        if front.is_empty() {
            return self.flush();
        }
        let _ = self.flush();
        let tmp = self.path.with_extension("spill.tmp");
        let written = (|| {
            let mut w = std::io::BufWriter::new(File::create(&tmp)?);
            for p in front {
                writeln!(w, "{} {:?} {:?}", p.name, p.value, p.timestamp)?;
            }
            let mut rest = File::open(&self.path)?;
            rest.seek(SeekFrom::Start(self.read))?;
            std::io::copy(&mut rest, &mut w)?;
            w.write_all(&self.buf)?;
            w.flush()?;
            w.get_ref().sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &self.path)?;
        self.buf.clear();
        *self = Spill::open(&self.path, self.max_bytes)?;
        Ok(())
    }

    /// Empties the file once everything in it has been read back.
    fn reset(&mut self) -> std::io::Result<()> {
        if self.written > 0 {
            self.file.set_len(0)?;
        }
        self.reader.seek(SeekFrom::Start(0))?;
        self.written = 0;
        self.read = 0;
        let _ = self.flush();
        Ok(())
    }
}

impl Drop for Spill {
    /// Writes what the buffer holds, so a clean stop keeps every accepted point.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(path = %self.path.display(), error = %e, lines = self.buf.iter().filter(|&&b| b == b'\n').count(), "spill file: buffered points could not be written at close");
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn p(i: usize) -> Point {
        Point {
            name: format!("a.b{i}"),
            value: i as f64 * 0.1,
            timestamp: 1_700_000_000.0 + i as f64,
        }
    }

    #[test]
    fn round_trips_in_order_interleaved_and_empties_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/x.spill");
        let mut s = Spill::open(&path, 1 << 20).unwrap();
        let mut out = vec![];
        for i in 0..10 {
            s.append(&p(i)).unwrap();
        }
        assert_eq!(s.read_back(4, &mut out).unwrap(), 0);
        for i in 10..20 {
            s.append(&p(i)).unwrap();
        }
        while s.pending() > 0 {
            s.read_back(3, &mut out).unwrap();
        }
        assert_eq!(out, (0..20).map(p).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        s.append(&p(99)).unwrap();
        out.clear();
        s.read_back(10, &mut out).unwrap();
        assert_eq!(out, vec![p(99)]);
    }

    #[test]
    fn prepend_puts_memory_points_ahead_of_the_unread_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.spill");
        let mut s = Spill::open(&path, 1 << 20).unwrap();
        for i in 10..20 {
            s.append(&p(i)).unwrap();
        }
        let mut out = vec![];
        s.read_back(3, &mut out).unwrap();
        s.prepend(&[p(1), p(2)]).unwrap();
        drop(s);
        let mut s = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(s.pending(), 9);
        out.clear();
        s.read_back(100, &mut out).unwrap();
        let want: Vec<_> = [1, 2].into_iter().chain(13..20).map(p).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn a_failing_disk_keeps_every_accepted_point_in_the_buffer() {
        // /dev/full fails every write with ENOSPC: the buffer fills, then appends are refused,
        // and what was accepted is read back from memory, in order.
        let mut s = Spill::open(Path::new("/dev/full"), 1 << 30).unwrap();
        let mut accepted = 0;
        let mut refused = 0;
        for i in 0..10_000 {
            match s.append(&p(i)) {
                Ok(()) if refused == 0 => accepted += 1,
                Ok(()) => panic!("accepted {i} after a refusal"),
                Err(SpillError::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(28), "{source}");
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(accepted > 100 && refused > 0, "{accepted} {refused}");
        assert_eq!(s.pending(), accepted as u64);
        let mut out = vec![];
        while s.pending() > 0 {
            s.read_back(1000, &mut out).unwrap();
        }
        assert_eq!(out, (0..accepted).map(p).collect::<Vec<_>>());
        // Read back, the buffer has room again.
        s.append(&p(7)).unwrap();
        std::mem::forget(s);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.spill");
        std::fs::write(&path, "a.b1 0.1 1700000001.0\na.b2 0.2 17").unwrap();
        let mut s = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(s.pending(), 1);
        s.append(&p(3)).unwrap();
        let mut out = vec![];
        assert_eq!(s.read_back(10, &mut out).unwrap(), 0);
        assert_eq!(out, vec![p(1), p(3)]);
    }

    #[test]
    fn refuses_past_the_limit_and_reopens_with_pending_points() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.spill");
        {
            let mut s = Spill::open(&path, 60).unwrap();
            s.append(&p(1)).unwrap();
            s.append(&p(2)).unwrap();
            assert!(matches!(s.append(&p(3)), Err(SpillError::Full(_))));
            assert_eq!(s.pending(), 2);
        }
        let mut s = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(s.pending(), 2);
        let mut out = vec![];
        s.read_back(10, &mut out).unwrap();
        assert_eq!(out, vec![p(1), p(2)]);
    }
}
