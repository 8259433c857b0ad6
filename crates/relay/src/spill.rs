//! One destination's spill file: points appended while the destination is down and its memory
//! queue is full, read back in order when it returns.
//!
//! The file holds plaintext lines (`name value timestamp`, floats in shortest round-trip form), so
//! an operator can read it and replay it with `nc` if all else fails. A start-up finding a non-empty
//! file replays it from the beginning: after a crash a point may be sent twice, never lost (whisper
//! keeps the last write for a timestamp, so a repeat is harmless).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use carbide_protocol::line::parse_line;

use crate::queue::Point;

/// The append-only spill file of one destination.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Bytes written so far (the file's length once flushed).
    written: u64,
    /// Bytes read back so far.
    read: u64,
    /// Largest the file may grow; appends beyond it are refused.
    max_bytes: u64,
    /// Points in the file not yet read back.
    pending: u64,
    line: String,
}

/// Why a point could not be spilled.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The file reached its size limit.
    #[error("spill file {0} is full")]
    Full(PathBuf),
    /// Writing failed (ENOSPC and friends).
    #[error("spill file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Spill {
    /// Opens (creating) the spill file at `path`; what it already holds is pending replay.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<Spill> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        let reader = BufReader::new(File::open(path)?);
        let mut s = Spill {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            reader,
            written,
            read: 0,
            max_bytes,
            pending: 0,
            line: String::new(),
        };
        if written > 0 {
            // Count what an earlier run left, so the queue knows to replay it.
            let mut count = 0u64;
            let mut r = BufReader::new(File::open(path)?);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line)? > 0 {
                count += 1;
                line.clear();
            }
            s.pending = count;
        }
        Ok(s)
    }

    /// Points waiting to be read back.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.written
    }

    /// Appends one point.
    pub fn append(&mut self, p: &Point) -> Result<(), SpillError> {
        let line = format!("{} {:?} {:?}\n", p.name, p.value, p.timestamp);
        if self.written + line.len() as u64 > self.max_bytes {
            return Err(SpillError::Full(self.path.clone()));
        }
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| SpillError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.written += line.len() as u64;
        self.pending += 1;
        Ok(())
    }

    /// Reads up to `n` points back, oldest first, into `out`. When everything has been read the
    /// file is emptied. Lines that no longer parse (a torn write at a full disk) are skipped and
    /// counted in the return value.
    pub fn read_back(&mut self, n: usize, out: &mut Vec<Point>) -> std::io::Result<u64> {
        self.writer.flush()?;
        let mut bad = 0;
        let mut got = 0;
        while got < n {
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
            self.reset()?;
        }
        Ok(bad)
    }

    /// Puts `front` (older points, from memory) ahead of what the file still holds, so a restart
    /// replays everything in order; used at shutdown. Writes a new file and renames it over.
    pub fn prepend(&mut self, front: &[Point]) -> std::io::Result<()> {
        if front.is_empty() {
            return Ok(());
        }
        self.writer.flush()?;
        let tmp = self.path.with_extension("spill.tmp");
        {
            let mut w = BufWriter::new(File::create(&tmp)?);
            for p in front {
                writeln!(w, "{} {:?} {:?}", p.name, p.value, p.timestamp)?;
            }
            let mut rest = File::open(&self.path)?;
            rest.seek(SeekFrom::Start(self.read))?;
            std::io::copy(&mut rest, &mut w)?;
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        *self = Spill::open(&self.path, self.max_bytes.max(self.written))?;
        Ok(())
    }

    /// Empties the file once everything has been read back.
    fn reset(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().set_len(0)?;
        self.reader.seek(SeekFrom::Start(0))?;
        self.written = 0;
        self.read = 0;
        self.pending = 0;
        Ok(())
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
