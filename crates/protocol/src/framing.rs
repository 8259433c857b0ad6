//! 4-byte big-endian length-prefixed frames: carbon's pickle receiver (2004) and carbonlink (7002).
//!
//! Both are Twisted `Int32StringReceiver`s: a `!L` length, then that many bytes. A length above
//! `MAX_LENGTH` makes Twisted close the connection before reading the body, so we report
//! [`FrameError::TooLong`] as soon as the 4-byte header is in, without waiting for (or buffering)
//! the body. A length equal to the limit is accepted, as in Twisted.

use thiserror::Error;

/// Carbon's `PICKLE_RECEIVER_MAX_LENGTH` default (2**20 bytes).
pub const PICKLE_MAX_FRAME: usize = 1 << 20;

/// Carbon's `CacheManagementHandler.MAX_LENGTH` (1024**3 bytes, despite its "1mb" comment).
pub const CARBONLINK_MAX_FRAME: usize = 1 << 30;

/// Why a frame could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The declared length is above the limit; the caller should drop the connection.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Declared (or, when encoding, actual) payload length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
}

/// A complete frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The payload, borrowed from the buffer.
    pub payload: &'a [u8],
    /// Header plus payload: how many bytes the caller may drop from its buffer.
    pub consumed: usize,
}

/// Reads one frame from the start of `buf`: `Ok(None)` until the whole frame has arrived.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<Frame<'_>>, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len_usize > max {
        return Err(FrameError::TooLong {
            len: u64::from(len),
            max,
        });
    }
    Ok(rest.get(..len_usize).map(|payload| Frame {
        payload,
        consumed: 4 + len_usize,
    }))
}

/// Appends `payload` to `out` as one frame.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLong {
        len: payload.len() as u64,
        max: u32::MAX as usize,
    })?;
    out.reserve(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Iterates over every complete frame in `buf`; stops at a partial frame or the first error.
///
/// After iteration, [`Frames::consumed`] is what the caller may drop from its buffer.
pub fn frames(buf: &[u8], max: usize) -> Frames<'_> {
    Frames {
        buf,
        pos: 0,
        max,
        failed: false,
    }
}

/// Iterator from [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
    max: usize,
    failed: bool,
}

impl Frames<'_> {
    /// Bytes of complete frames returned so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..)?;
        match decode_frame(rest, self.max) {
            Ok(Some(frame)) => {
                self.pos += frame.consumed;
                Some(Ok(frame.payload))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_complete_and_too_long() {
        assert_eq!(decode_frame(b"", 10), Ok(None));
        assert_eq!(decode_frame(b"\0\0\0", 10), Ok(None));
        assert_eq!(decode_frame(b"\0\0\0\x03ab", 10), Ok(None));
        assert_eq!(
            decode_frame(b"\0\0\0\x03abcX", 10),
            Ok(Some(Frame {
                payload: b"abc",
                consumed: 7
            }))
        );
        assert_eq!(decode_frame(b"\0\0\0\x0a", 10), Ok(None));
        assert_eq!(
            decode_frame(b"\0\0\0\x0b", 10),
            Err(FrameError::TooLong { len: 11, max: 10 })
        );
        assert_eq!(
            decode_frame(b"\xff\xff\xff\xff", PICKLE_MAX_FRAME),
            Err(FrameError::TooLong {
                len: u64::from(u32::MAX),
                max: PICKLE_MAX_FRAME
            })
        );
    }

    #[test]
    fn iterate_and_round_trip() {
        let mut buf = Vec::new();
        for p in [&b"one"[..], b"", b"three"] {
            assert!(encode_frame(p, &mut buf).is_ok());
        }
        buf.extend_from_slice(b"\0\0");
        let mut it = frames(&buf, 100);
        let got: Vec<_> = it.by_ref().collect();
        assert_eq!(got, vec![Ok(&b"one"[..]), Ok(&b""[..]), Ok(&b"three"[..])]);
        assert_eq!(it.consumed(), buf.len() - 2);
    }
}
