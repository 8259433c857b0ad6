//! Python's `float()` and `str.isspace()`, reproduced for the text carbon parses.
//!
//! Carbon turns every value and timestamp into a number with Python's `float()`, so what it accepts
//! is Python's grammar, not Rust's: underscores between digits (`1_000`), `inf`/`infinity`/`nan` in
//! any case, surrounding whitespace, and (for `str`) any Unicode decimal digit (`١٢` is 12). Rust's
//! `f64::from_str` rejects some of these and accepts a few Python rejects, so we validate Python's
//! grammar ourselves and hand only the cleaned ASCII to Rust's (correctly rounded) parser.

/// Python's `str.isspace()` for one character (CPython 3.11, Unicode 14).
///
/// Wider than Rust's `char::is_whitespace`: it includes the separators U+001C..U+001F, which
/// matters because carbon splits lines with `str.split()`.
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0b}'
            | '\u{0c}'
            | '\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// The ASCII whitespace C's `Py_ISSPACE` strips around a number.
fn is_ascii_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// First code point of every run of ten Unicode decimal digits (category Nd) in Unicode 14, the
/// version CPython 3.11 uses. Every run is contiguous 0..9, checked against `unicodedata`.
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6, 0xe50,
    0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40,
    0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066,
    0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950,
    0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6,
    0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// The value of a Unicode decimal digit, as `unicodedata.decimal(c)`.
fn unicode_decimal(c: char) -> Option<u8> {
    let cp = c as u32;
    let idx = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DECIMAL_ZEROS.get(idx.checked_sub(1)?)?;
    let d = cp - zero;
    if d < 10 { u8::try_from(d).ok() } else { None }
}

/// Small inline buffer so the hot path (short ASCII numbers) does not allocate.
struct Buf {
    inline: [u8; 64],
    len: usize,
    heap: Vec<u8>,
}

impl Buf {
    fn new() -> Self {
        Buf {
            inline: [0; 64],
            len: 0,
            heap: Vec::new(),
        }
    }
    fn push(&mut self, b: u8) {
        if self.heap.is_empty() {
            if let Some(slot) = self.inline.get_mut(self.len) {
                *slot = b;
                self.len += 1;
                return;
            }
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.push(b);
    }
    fn as_slice(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

/// Python's `float(s)` for a `str`: `None` where Python raises `ValueError`.
///
/// Overflowing literals give ±inf as in Python (`float("1e999")` is `inf`).
pub fn parse_py_float_str(s: &str) -> Option<f64> {
    if s.is_ascii() {
        return parse_py_float_ascii(s.as_bytes());
    }
    // CPython's _PyUnicode_TransformDecimalAndSpaceToASCII: non-ASCII whitespace becomes a space,
    // a Unicode decimal digit becomes its ASCII digit, anything else ends the number (invalid).
    let mut buf = Buf::new();
    for c in s.chars() {
        if c.is_ascii() {
            buf.push(c as u8);
        } else if is_py_space(c) {
            buf.push(b' ');
        } else {
            buf.push(b'0' + unicode_decimal(c)?);
        }
    }
    parse_py_float_ascii(buf.as_slice())
}

/// Python's `float(b)` for `bytes`: ASCII only, no Unicode digits, same grammar otherwise.
pub fn parse_py_float_bytes(b: &[u8]) -> Option<f64> {
    parse_py_float_ascii(b)
}

/// Python's float grammar over bytes already reduced to ASCII: strip, underscores, then the
/// literal itself.
fn parse_py_float_ascii(raw: &[u8]) -> Option<f64> {
    let start = raw.iter().position(|&b| !is_ascii_py_space(b))?;
    let end = raw.iter().rposition(|&b| !is_ascii_py_space(b))? + 1;
    let trimmed = raw.get(start..end)?;
    if trimmed.contains(&b'_') {
        // _Py_string_to_number_with_underscores: an underscore only between two digits.
        let mut buf = Buf::new();
        let mut prev = 0u8;
        for &b in trimmed {
            if b == b'_' {
                if !prev.is_ascii_digit() {
                    return None;
                }
            } else {
                if prev == b'_' && !b.is_ascii_digit() {
                    return None;
                }
                buf.push(b);
            }
            prev = b;
        }
        if prev == b'_' {
            return None;
        }
        parse_literal(buf.as_slice())
    } else {
        parse_literal(trimmed)
    }
}

/// Validates Python's float literal grammar (no whitespace, no underscores left) and parses it.
///
/// `[+-]? (inf | infinity | nan | digits [. digits*] [exp] | . digits [exp])`, case-insensitive
/// words, `exp = [eE] [+-]? digits`.
pub(crate) fn parse_literal(s: &[u8]) -> Option<f64> {
    let body = match s.first() {
        Some(b'+' | b'-') => s.get(1..)?,
        _ => s,
    };
    if body.eq_ignore_ascii_case(b"inf")
        || body.eq_ignore_ascii_case(b"infinity")
        || body.eq_ignore_ascii_case(b"nan")
    {
        return std::str::from_utf8(s).ok()?.parse().ok();
    }
    let mut i = 0;
    let digits = |i: &mut usize| {
        let from = *i;
        while body.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if body.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(body.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != body.len() {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_table() {
        let ok: &[(&str, f64)] = &[
            ("1_000", 1000.0),
            ("1e1_0", 1e10),
            (" 12 ", 12.0),
            ("\u{b}1\u{c}", 1.0),
            ("\u{a0}1\u{3000}", 1.0),
            ("1\u{85}", 1.0),
            ("1e999", f64::INFINITY),
            ("-1e999", f64::NEG_INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("iNfInItY", f64::INFINITY),
            ("5.", 5.0),
            (".5", 0.5),
            ("5.e3", 5000.0),
            ("١٢", 12.0),
            ("１２", 12.0),
            ("١_٢", 12.0),
            ("1e١", 10.0),
            ("+0012", 12.0),
        ];
        for (s, want) in ok {
            assert_eq!(parse_py_float_str(s), Some(*want), "{s:?}");
        }
        for s in ["+nan", "nan", "-NaN"] {
            assert!(parse_py_float_str(s).is_some_and(f64::is_nan), "{s:?}");
        }
        let bad = [
            "1__0", "_1", "1_", "1_.5", "1._5", "1_e5", "0x10", ".", "e3", "1e", "1e+", "", " ", "\u{1c}1",
            "1\u{1c}", "nanx", "in", "1.2.3", "--1", "1 2", "é",
        ];
        for s in bad {
            assert_eq!(parse_py_float_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn bytes_are_ascii_only() {
        assert_eq!(parse_py_float_bytes(b" 1 "), Some(1.0));
        assert_eq!(parse_py_float_bytes(b"1_0"), Some(10.0));
        assert_eq!(parse_py_float_bytes(b"\xa01"), None);
        assert_eq!(parse_py_float_bytes(b"\x1c1"), None);
    }

    #[test]
    fn long_inputs_spill_to_heap() {
        let s = format!("{}1", "0".repeat(200));
        assert_eq!(parse_py_float_str(&s), Some(1.0));
        let s = format!("١{}", "0".repeat(100));
        assert_eq!(parse_py_float_str(&s), Some(1e100));
    }

    #[test]
    fn decimal_table_edges() {
        assert_eq!(unicode_decimal('0'), Some(0));
        assert_eq!(unicode_decimal('\u{669}'), Some(9));
        assert_eq!(unicode_decimal('\u{66a}'), None);
        assert_eq!(unicode_decimal('\u{1fbf9}'), Some(9));
        assert_eq!(unicode_decimal('\u{10ffff}'), None);
        assert_eq!(unicode_decimal('\u{2f}'), None);
    }
}
