//! The whisper header: metadata, then one archive-info record per archive, all big-endian.
//!
//! | part        | layout  | bytes | fields                                                   |
//! |-------------|---------|-------|----------------------------------------------------------|
//! | metadata    | `!2LfL` | 16    | aggregation id, max retention, xFilesFactor, archive count |
//! | archive info| `!3L`   | 12    | offset, seconds per point, points                        |

use carbide_core::{AggregationMethod, Retention};

use crate::Error;

/// Size of the metadata block at the start of every file.
pub const METADATA_SIZE: usize = 16;
/// Size of one archive-info record.
pub const ARCHIVE_INFO_SIZE: usize = 12;
/// Size of one stored point: a u32 timestamp and an f64 value.
pub const POINT_SIZE: usize = 12;
/// More archives than this cannot be meant: whisper files in the wild hold a handful.
pub const MAX_ARCHIVES: u32 = 4096;

/// Where one archive lives in the file and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Byte offset of the archive's first point.
    pub offset: u32,
    /// Seconds one point covers.
    pub seconds_per_point: u32,
    /// Number of points in the ring.
    pub points: u32,
}

impl ArchiveInfo {
    /// Seconds of history the archive keeps (`secondsPerPoint * points`).
    pub fn retention(&self) -> i64 {
        i64::from(self.seconds_per_point) * i64::from(self.points)
    }

    /// Bytes the archive occupies.
    pub fn size(&self) -> u64 {
        u64::from(self.points) * POINT_SIZE as u64
    }

    /// One past the archive's last byte.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.size()
    }

    /// The step as the signed type the time arithmetic uses.
    pub fn step(&self) -> i64 {
        i64::from(self.seconds_per_point)
    }
}

/// A parsed header: everything needed to find and fold points.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// How points are folded into coarser archives.
    pub aggregation: AggregationMethod,
    /// The longest retention of any archive, as stored.
    pub max_retention: u32,
    /// Fraction of known points needed before a coarser point is written.
    pub x_files_factor: f32,
    /// The archives, finest first.
    pub archives: Vec<ArchiveInfo>,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

impl Header {
    /// Bytes the header of a file with `archives` archives takes.
    pub fn size_for(archives: usize) -> usize {
        METADATA_SIZE + ARCHIVE_INFO_SIZE * archives
    }

    /// Bytes this header takes on disk.
    pub fn size(&self) -> usize {
        Self::size_for(self.archives.len())
    }

    /// The archive count stored in the metadata, so a caller can read exactly the header's bytes.
    pub fn archive_count(metadata: &[u8]) -> Result<u32, Error> {
        be_u32(metadata, 12).ok_or_else(|| Error::corrupt("Unable to read header"))
    }

    /// Parses a header from the first bytes of a file, rejecting what whisper.py calls corrupt and
    /// what would make later arithmetic divide by zero.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad_header = || Error::corrupt("Unable to read header");
        let agg_id = be_u32(bytes, 0).ok_or_else(bad_header)?;
        let max_retention = be_u32(bytes, 4).ok_or_else(bad_header)?;
        let xff = f32::from_bits(be_u32(bytes, 8).ok_or_else(bad_header)?);
        let count = be_u32(bytes, 12).ok_or_else(bad_header)?;
        let aggregation = AggregationMethod::from_id(agg_id).ok_or_else(bad_header)?;
        if !(0.0..=1.0).contains(&xff) {
            return Err(bad_header());
        }
        if count > MAX_ARCHIVES {
            return Err(Error::corrupt(format!(
                "archive count {count} does not fit a whisper header"
            )));
        }
        let mut archives = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let at = METADATA_SIZE + i * ARCHIVE_INFO_SIZE;
            let bad = || Error::corrupt(format!("Unable to read archive{i} metadata"));
            let info = ArchiveInfo {
                offset: be_u32(bytes, at).ok_or_else(bad)?,
                seconds_per_point: be_u32(bytes, at + 4).ok_or_else(bad)?,
                points: be_u32(bytes, at + 8).ok_or_else(bad)?,
            };
            if info.seconds_per_point == 0 || info.points == 0 {
                return Err(Error::corrupt(format!(
                    "archive{i} has zero seconds per point or zero points"
                )));
            }
            archives.push(info);
        }
        Ok(Header {
            aggregation,
            max_retention,
            x_files_factor: xff,
            archives,
        })
    }

    /// Checks that every archive lies inside a file of `file_len` bytes, after the header.
    pub fn check_layout(&self, file_len: u64) -> Result<(), Error> {
        if self.archives.is_empty() {
            return Err(Error::corrupt("header lists no archives"));
        }
        let header_end = self.size() as u64;
        for (i, a) in self.archives.iter().enumerate() {
            if u64::from(a.offset) < header_end {
                return Err(Error::corrupt(format!("archive{i} starts inside the header")));
            }
            if a.end() > file_len {
                return Err(Error::corrupt(format!(
                    "archive{i} ends at byte {} but the file has {file_len} bytes",
                    a.end()
                )));
            }
        }
        Ok(())
    }

    /// The 16 metadata bytes for these settings.
    pub fn encode_metadata(
        aggregation: AggregationMethod,
        max_retention: u32,
        xff: f32,
        archive_count: u32,
    ) -> [u8; METADATA_SIZE] {
        let mut out = [0u8; METADATA_SIZE];
        out[0..4].copy_from_slice(&aggregation.id().to_be_bytes());
        out[4..8].copy_from_slice(&max_retention.to_be_bytes());
        out[8..12].copy_from_slice(&xff.to_bits().to_be_bytes());
        out[12..16].copy_from_slice(&archive_count.to_be_bytes());
        out
    }

    /// The whole header as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let count = u32::try_from(self.archives.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&Self::encode_metadata(
            self.aggregation,
            self.max_retention,
            self.x_files_factor,
            count,
        ));
        for a in &self.archives {
            out.extend_from_slice(&a.offset.to_be_bytes());
            out.extend_from_slice(&a.seconds_per_point.to_be_bytes());
            out.extend_from_slice(&a.points.to_be_bytes());
        }
        out
    }

    /// Lays out a new file's header for `archives` (already validated and sorted).
    pub fn for_new_file(
        archives: &[Retention],
        aggregation: AggregationMethod,
        xff: f32,
    ) -> Result<Self, Error> {
        let too_big = || Error::InvalidConfiguration("archives too large for a whisper file".into());
        let max_retention = archives
            .iter()
            .map(Retention::retention_seconds)
            .max()
            .unwrap_or(0);
        let max_retention = u32::try_from(max_retention).map_err(|_| too_big())?;
        let mut offset = Self::size_for(archives.len()) as u64;
        let mut infos = Vec::with_capacity(archives.len());
        for r in archives {
            infos.push(ArchiveInfo {
                offset: u32::try_from(offset).map_err(|_| too_big())?,
                seconds_per_point: r.seconds_per_point,
                points: r.points,
            });
            offset += u64::from(r.points) * POINT_SIZE as u64;
        }
        u32::try_from(offset).map_err(|_| too_big())?;
        Ok(Header {
            aggregation,
            max_retention,
            x_files_factor: xff,
            archives: infos,
        })
    }

    /// Total file size this header describes (end of the last archive).
    pub fn file_size(&self) -> u64 {
        self.archives
            .iter()
            .map(ArchiveInfo::end)
            .max()
            .unwrap_or(self.size() as u64)
    }
}

/// Sorts `archives` by precision and applies whisper.py's `validateArchiveList` rules, with its messages.
pub fn validate_archive_list(archives: &mut [Retention]) -> Result<(), Error> {
    if archives.is_empty() {
        return Err(Error::InvalidConfiguration(
            "You must specify at least one archive configuration!".into(),
        ));
    }
    archives.sort_by_key(|a| a.seconds_per_point);
    let fmt = |r: &Retention| format!("({}, {})", r.seconds_per_point, r.points);
    for (i, pair) in archives.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        if a.seconds_per_point >= b.seconds_per_point {
            return Err(Error::InvalidConfiguration(format!(
                "A Whisper database may not be configured having two archives with the same precision \
                 (archive{i}: {}, archive{}: {})",
                fmt(a),
                i + 1,
                fmt(b)
            )));
        }
        if b.seconds_per_point % a.seconds_per_point != 0 {
            return Err(Error::InvalidConfiguration(format!(
                "Higher precision archives' precision must evenly divide all lower precision archives' \
                 precision (archive{i}: {}, archive{}: {})",
                a.seconds_per_point,
                i + 1,
                b.seconds_per_point
            )));
        }
        if b.retention_seconds() <= a.retention_seconds() {
            return Err(Error::InvalidConfiguration(format!(
                "Lower precision archives must cover larger time intervals than higher precision archives \
                 (archive{i}: {} seconds, archive{}: {} seconds)",
                a.retention_seconds(),
                i + 1,
                b.retention_seconds()
            )));
        }
        let per = b.seconds_per_point / a.seconds_per_point;
        if a.points < per {
            return Err(Error::InvalidConfiguration(format!(
                "Each archive must have at least enough points to consolidate to the next archive \
                 (archive{} consolidates {per} of archive{i}'s points but it has only {} total points)",
                i + 1,
                a.points
            )));
        }
    }
    Ok(())
}
