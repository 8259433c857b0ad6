//! Python ints beyond 64 bits, kept in pickle's own `LONG1` form.
//!
//! We never do arithmetic on them: carbon only converts them to float (or refuses them), so the
//! representation is the minimal little-endian two's complement that `LONG1`/`LONG4` carry, which
//! also makes equality (for dict keys) a byte comparison.

use super::Value;
use std::fmt;

/// An integer that does not fit in `i64`, as minimal little-endian two's complement bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    twos_le: Vec<u8>,
}

impl BigInt {
    /// The minimal little-endian two's complement bytes (pickle's `LONG1` payload).
    pub fn to_twos_le(&self) -> &[u8] {
        &self.twos_le
    }

    /// Builds a value from two's complement bytes: [`Value::Int`] when it fits in `i64`.
    pub fn value_from_twos_le(bytes: &[u8]) -> Value {
        let minimal = minimal_twos(bytes);
        if minimal.len() <= 8 {
            let neg = minimal.last().is_some_and(|b| b & 0x80 != 0);
            let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
            for (slot, b) in buf.iter_mut().zip(minimal) {
                *slot = *b;
            }
            Value::Int(i64::from_le_bytes(buf))
        } else {
            Value::BigInt(BigInt {
                twos_le: minimal.to_vec(),
            })
        }
    }

    /// Parses `[+-]?digits` in base 10 (Python's `int(text)` for the decimal forms pickles use).
    pub fn parse_decimal(text: &str) -> Option<Value> {
        let (neg, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, text.get(1..)?),
            Some(b'+') => (false, text.get(1..)?),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Magnitude as little-endian u32 limbs, by repeated multiply-add of 9-digit chunks.
        let mut limbs: Vec<u32> = Vec::new();
        let bytes = digits.as_bytes();
        let first = bytes.len() % 9;
        let mut chunks: Vec<&[u8]> = Vec::new();
        if first > 0 {
            chunks.push(bytes.get(..first)?);
        }
        chunks.extend(bytes.get(first..)?.chunks(9));
        for chunk in chunks {
            let mut add: u64 = 0;
            for &b in chunk {
                add = add * 10 + u64::from(b - b'0');
            }
            let mul = 10u64.pow(chunk.len() as u32);
            for limb in &mut limbs {
                let t = u64::from(*limb) * mul + add;
                *limb = t as u32;
                add = t >> 32;
            }
            if add > 0 {
                limbs.push(add as u32);
            }
        }
        let mut mag: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        while mag.last() == Some(&0) {
            mag.pop();
        }
        Some(Self::value_from_twos_le(&magnitude_to_twos(&mag, neg)))
    }

    /// Sign and magnitude (little-endian, minimal).
    fn sign_magnitude(&self) -> (bool, Vec<u8>) {
        twos_to_magnitude(&self.twos_le)
    }

    /// Python's `float(int)`: correctly rounded (ties to even); `None` on `OverflowError`.
    pub fn to_f64(&self) -> Option<f64> {
        let (neg, mag) = self.sign_magnitude();
        let f = magnitude_to_f64(&mag)?;
        Some(if neg { -f } else { f })
    }
}

/// Strips redundant sign-extension bytes.
fn minimal_twos(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 {
        let last = bytes.get(end - 1).copied().unwrap_or(0);
        let prev_high = if end >= 2 {
            bytes.get(end - 2).map(|b| b & 0x80 != 0)
        } else {
            None
        };
        let redundant = match (last, prev_high) {
            (0x00, Some(false)) | (0xff, Some(true)) => true,
            (0x00, None) => true, // a lone zero byte is the integer 0, encoded as no bytes
            _ => false,
        };
        if !redundant {
            break;
        }
        end -= 1;
    }
    bytes.get(..end).unwrap_or(&[])
}

/// Two's complement (LE) of a sign and minimal magnitude.
pub(crate) fn magnitude_to_twos(mag: &[u8], neg: bool) -> Vec<u8> {
    let mut out = mag.to_vec();
    out.push(0);
    if neg {
        let mut carry = true;
        for b in &mut out {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
    }
    minimal_twos(&out).to_vec()
}

fn twos_to_magnitude(twos: &[u8]) -> (bool, Vec<u8>) {
    let neg = twos.last().is_some_and(|b| b & 0x80 != 0);
    let mut mag = twos.to_vec();
    if neg {
        let mut carry = true;
        for b in &mut mag {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
    }
    while mag.last() == Some(&0) {
        mag.pop();
    }
    (neg, mag)
}

fn magnitude_to_f64(mag: &[u8]) -> Option<f64> {
    let Some(&top) = mag.last() else {
        return Some(0.0);
    };
    let bits = (mag.len() - 1) * 8 + (8 - top.leading_zeros() as usize);
    let bit = |i: usize| mag.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1);
    if bits <= 64 {
        let mut buf = [0u8; 8];
        for (slot, b) in buf.iter_mut().zip(mag) {
            *slot = *b;
        }
        return Some(u64::from_le_bytes(buf) as f64);
    }
    let shift = bits - 64;
    let mut top64: u64 = 0;
    for i in (shift..bits).rev() {
        top64 = (top64 << 1) | u64::from(bit(i));
    }
    // A sticky bit below the 64 kept ones breaks round-half-even ties correctly, since the
    // rounding position (bit 11) is far above bit 0.
    if (0..shift).any(bit) {
        top64 |= 1;
    }
    let shift = i32::try_from(shift).ok()?;
    let f = (top64 as f64) * 2f64.powi(shift.min(2000));
    if f.is_finite() { Some(f) } else { None }
}

impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (neg, mag) = self.sign_magnitude();
        // Little-endian u32 limbs, then repeated division by 1e9.
        let mut limbs: Vec<u32> = mag
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                for (s, v) in b.iter_mut().zip(c) {
                    *s = *v;
                }
                u32::from_le_bytes(b)
            })
            .collect();
        let mut parts: Vec<u32> = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut rem: u64 = 0;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << 32) | u64::from(*limb);
                *limb = (cur / 1_000_000_000) as u32;
                rem = cur % 1_000_000_000;
            }
            parts.push(rem as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        if neg {
            f.write_str("-")?;
        }
        let mut iter = parts.iter().rev();
        match iter.next() {
            Some(first) => write!(f, "{first}")?,
            None => f.write_str("0")?,
        }
        for p in iter {
            write!(f, "{p:09}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(s: &str) -> BigInt {
        match BigInt::parse_decimal(s) {
            Some(Value::BigInt(b)) => b,
            other => unreachable!("{s} parsed as {other:?}"),
        }
    }

    #[test]
    fn small_values_become_int() {
        assert_eq!(BigInt::value_from_twos_le(&[]), Value::Int(0));
        assert_eq!(BigInt::value_from_twos_le(&[0xff]), Value::Int(-1));
        assert_eq!(BigInt::value_from_twos_le(&[0x00, 0x01]), Value::Int(256));
        assert_eq!(BigInt::value_from_twos_le(&[0xff, 0x00]), Value::Int(255));
        assert_eq!(BigInt::value_from_twos_le(&[0xff, 0xff, 0xff]), Value::Int(-1));
        assert_eq!(
            BigInt::parse_decimal("-9223372036854775808"),
            Some(Value::Int(i64::MIN))
        );
        assert_eq!(BigInt::parse_decimal("+42"), Some(Value::Int(42)));
        assert_eq!(BigInt::parse_decimal("4x"), None);
        assert_eq!(BigInt::parse_decimal("-"), None);
    }

    #[test]
    fn decimal_round_trip_and_float() {
        for s in [
            "9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "-340282366920938463463374607431768211456",
        ] {
            assert_eq!(big(s).to_string(), s);
        }
        assert_eq!(
            big("9223372036854775808").to_twos_le(),
            &[0, 0, 0, 0, 0, 0, 0, 0x80, 0]
        );
        assert_eq!(
            big("-9223372036854775809").to_twos_le(),
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]
        );
        assert_eq!(
            big("123456789012345678901234567890").to_f64(),
            Some(1.2345678901234568e29)
        );
        // 2**1024 overflows; 2**1024 - 2**970 rounds up to 2**1024 and overflows too (as Python).
        let mut bytes = vec![0u8; 128];
        bytes.push(1);
        bytes.push(0);
        match BigInt::value_from_twos_le(&bytes) {
            Value::BigInt(b) => assert_eq!(b.to_f64(), None),
            other => unreachable!("{other:?}"),
        }
        let mut bytes = vec![0xffu8; 128];
        bytes.push(0);
        match BigInt::value_from_twos_le(&bytes) {
            Value::BigInt(b) => assert_eq!(b.to_f64(), None),
            other => unreachable!("{other:?}"),
        }
        // 2**64 + 1 rounds to 2**64 exactly; ties to even at 2**53 + 1 scale.
        assert_eq!(big("18446744073709551617").to_f64(), Some(18446744073709551616.0));
        assert_eq!(
            big("-18446744073709551617").to_f64(),
            Some(-18446744073709551616.0)
        );
    }
}
