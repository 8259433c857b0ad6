//! JavaScript's `Number(string)` and `String(number)`, exactly as node evaluates them.
//!
//! etsy statsd validates values with `isNaN(str)`, converts them with `Number(str)` and writes every
//! value to graphite by string concatenation, so both conversions decide what goes on the wire:
//! `0.1+0.2` is `0.30000000000000004`, `1e21` is `1e+21`, `-0` is `0`, `" 0x10 "` is `16`.

use std::fmt;

/// Whether `c` is in ECMAScript's WhiteSpace or LineTerminator sets: what `String.prototype.trim`,
/// `Number(str)` and the regex class `\s` skip. NEL (U+0085) and U+180E are *not* in it.
pub fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// `String.prototype.trim`: strips JS whitespace from both ends.
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_whitespace)
}

/// `Number(s)` for a string: NaN when the text is not a StringNumericLiteral.
///
/// Accepts surrounding whitespace, the empty string (0), an optional sign, decimal literals with
/// optional fraction and exponent (`5.`, `.5`, `1e-3`), `Infinity`, and unsigned `0x`/`0o`/`0b`
/// integers. Rejects what Rust's parser would otherwise take (`inf`, `nan`, `1_0`).
pub fn js_number(s: &str) -> f64 {
    let t = js_trim(s);
    if t.is_empty() {
        return 0.0;
    }
    let b = t.as_bytes();
    if b.len() > 2 && b[0] == b'0' {
        let radix = match b[1] {
            b'x' | b'X' => Some(16),
            b'o' | b'O' => Some(8),
            b'b' | b'B' => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            return radix_integer(&t[2..], radix).unwrap_or(f64::NAN);
        }
    }
    let (negative, unsigned) = match b[0] {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => (false, t),
    };
    if unsigned == "Infinity" {
        return if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if !is_decimal_literal(unsigned) {
        return f64::NAN;
    }
    // The grammar is checked above; Rust's parser is correctly rounded like V8's.
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// `isNumber` of statsd's helpers.js: a non-empty string that `isNaN` does not reject.
pub fn is_js_number(s: &str) -> bool {
    !s.is_empty() && !js_number(s).is_nan()
}

/// StrUnsignedDecimalLiteral without `Infinity`: digits, optional fraction, optional exponent.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// An unsigned integer in a power-of-two radix, rounded to nearest-even as V8 does.
fn radix_integer(digits: &str, radix: u32) -> Option<f64> {
    if digits.is_empty() {
        return None;
    }
    let bits_per_digit = radix.trailing_zeros();
    // Accumulate the top 64 significant bits, remembering whether any lower bit was set.
    let mut top: u64 = 0;
    let mut width: u32 = 0; // significant bits held in `top`
    let mut dropped: u32 = 0; // bits shifted out below `top`
    let mut sticky = false;
    for c in digits.chars() {
        let d = c.to_digit(radix)?;
        for k in (0..bits_per_digit).rev() {
            let bit = u64::from((d >> k) & 1);
            if width < 64 {
                if width > 0 || bit == 1 {
                    top = (top << 1) | bit;
                    width += 1;
                }
            } else {
                dropped += 1;
                sticky |= bit == 1;
            }
        }
    }
    if dropped == 0 {
        return Some(top as f64);
    }
    // Folding the sticky bit into bit 0 keeps round-half-even exact: only 11 low bits are rounded off.
    let folded = top | u64::from(sticky);
    Some(folded as f64 * 2f64.powi(i32::try_from(dropped).unwrap_or(i32::MAX)))
}

/// `Math.round`: halves round up towards +Infinity.
pub fn js_round(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let f = x.floor();
    if x - f >= 0.5 { f + 1.0 } else { f }
}

/// A number that prints as JavaScript's `Number.prototype.toString()` would.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JsNumber(pub f64);

impl fmt::Display for JsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        }
        if v == 0.0 {
            return f.write_str("0"); // also -0
        }
        let (digits, e) = shortest_digits(v.abs());
        let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        let n = e + 1; // value = 0.digits × 10^n
        if v < 0.0 {
            f.write_str("-")?;
        }
        if k <= n && n <= 21 {
            f.write_str(&digits)?;
            for _ in 0..(n - k) {
                f.write_str("0")?;
            }
            Ok(())
        } else if 0 < n && n <= 21 {
            let (a, b) = digits.split_at(usize::try_from(n).unwrap_or(0));
            write!(f, "{a}.{b}")
        } else if -6 < n && n <= 0 {
            f.write_str("0.")?;
            for _ in 0..(-n) {
                f.write_str("0")?;
            }
            f.write_str(&digits)
        } else {
            let sign = if n - 1 < 0 { '-' } else { '+' };
            let (first, rest) = digits.split_at(1);
            if rest.is_empty() {
                write!(f, "{first}e{sign}{}", (n - 1).abs())
            } else {
                write!(f, "{first}.{rest}e{sign}{}", (n - 1).abs())
            }
        }
    }
}

/// Splits Rust's `{:e}` text into its digits and decimal exponent.
fn split_sci(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().unwrap_or(0))
}

/// The shortest digits that read back as `v` (> 0), and the exponent of the first one.
///
/// Rust's `{:e}` picks the shortest round-tripping digits, nearest to `v`, as V8 does. When two
/// candidates are equally near (`v` lies exactly halfway, e.g. 2245608537584936.25), V8's
/// double-conversion takes the one with the even last digit, while Rust may round up.
fn shortest_digits(v: f64) -> (String, i32) {
    let (digits, e) = split_sci(&format!("{v:e}"));
    let k = digits.len();
    if k < 15 {
        return (digits, e); // a halfway double has at least 16 significant digits
    }
    let last = digits.as_bytes()[k - 1];
    if last % 2 == 0 || last == b'0' {
        return (digits, e);
    }
    // The even neighbour below: same length, last digit one less.
    let mut lower = digits.clone().into_bytes();
    lower[k - 1] -= 1;
    let lower = String::from_utf8(lower).unwrap_or_default();
    let as_text = |d: &str| format!("{}.{}e{e}", &d[..1], &d[1..]);
    if as_text(&lower).parse::<f64>().ok() != Some(v) {
        return (digits, e);
    }
    // Is `v` exactly `lower` + half a unit of the last place? Doubles have at most 767
    // significant digits, so 800 are exact.
    let (exact, ex) = split_sci(&format!("{v:.800e}"));
    let tie = ex == e
        && exact.starts_with(&lower)
        && exact.as_bytes().get(k) == Some(&b'5')
        && exact.bytes().skip(k + 1).all(|b| b == b'0');
    if tie { (lower, e) } else { (digits, e) }
}

/// `String(v)` for a number.
pub fn js_to_string(v: f64) -> String {
    JsNumber(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_parsing_table() {
        let nan = f64::NAN;
        let cases: &[(&str, f64)] = &[
            ("", 0.0),
            ("   ", 0.0),
            ("1", 1.0),
            (" 12 ", 12.0),
            ("\u{a0}5\u{3000}", 5.0),
            ("\u{85}5", nan),
            ("+5", 5.0),
            ("-5", -5.0),
            ("5.", 5.0),
            (".5", 0.5),
            (".", nan),
            ("-.5e1", -5.0),
            ("1e", nan),
            ("1e+", nan),
            ("1E3", 1000.0),
            ("e5", nan),
            ("0x10", 16.0),
            ("0X1f", 31.0),
            ("0x", nan),
            ("+0x1", nan),
            ("-0x1", nan),
            ("0b101", 5.0),
            ("0o17", 15.0),
            ("0o8", nan),
            ("0x1fffffffffffff1", 144115188075855860.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("infinity", nan),
            ("inf", nan),
            ("NaN", nan),
            ("1_0", nan),
            ("1e400", f64::INFINITY),
            ("007", 7.0),
            ("1.2.3", nan),
            ("--1", nan),
        ];
        for (s, want) in cases {
            let got = js_number(s);
            if want.is_nan() {
                assert!(got.is_nan(), "{s:?} → {got}, want NaN");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{s:?}");
            }
        }
        assert!(js_number("-0").is_sign_negative());
    }

    #[test]
    fn number_printing_table() {
        let cases: &[(f64, &str)] = &[
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0, "1"),
            (-0.0, "0"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123e-20, "1.23e-18"),
            (1.5e300, "1.5e+300"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (9007199254740992.0, "9007199254740992"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1, "0.1"),
            (-0.3, "-0.3"),
            (2245608537584936.0 + 0.25, "2245608537584936.2"),
            (2245608537584936.0 + 0.75, "2245608537584936.8"),
        ];
        for (v, want) in cases {
            assert_eq!(js_to_string(*v), *want, "{v:e}");
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(js_round(2.5), 3.0);
        assert_eq!(js_round(0.49999999999999994), 0.0);
        assert_eq!(js_round(-2.5), -2.0);
        assert_eq!(js_round(1.8), 2.0);
    }
}
