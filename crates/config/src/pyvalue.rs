//! Python's readings of a string as a number, a boolean or trimmed text.
//!
//! carbon never checks its settings itself: it hands each value to `int()`, `float()`,
//! `str.strip()` or ConfigParser's `getboolean`. These functions accept exactly what those accept
//! (for ASCII input; Unicode digits, which Python also takes, are refused here).

/// Python's `str.isspace` for one character: Unicode White_Space plus the ASCII separators
/// U+001C..U+001F, which Python counts as space and Rust does not.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Removes the underscores Python allows between digits; `None` if one is misplaced.
fn strip_underscores(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        } else {
            out.push(char::from(c));
        }
    }
    Some(out)
}

/// Python's `int(s)` for base 10: surrounding space, a sign, digits with single underscores.
///
/// `None` where Python raises ValueError, and also for values beyond i64 (Python would keep a
/// big integer; no carbon setting means anything that large).
pub fn py_int(s: &str) -> Option<i64> {
    let t = py_strip(s);
    if !t.is_ascii() {
        return None;
    }
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => (1, t),
    };
    if digits.is_empty() || !digits.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let clean = strip_underscores(digits)?;
    if !clean.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    clean.parse::<i64>().ok().map(|v| v * sign)
}

/// Python's `float(s)`: decimal and exponent forms, `inf`, `infinity`, `nan` in any case, a sign,
/// underscores between digits, surrounding space.
pub fn py_float(s: &str) -> Option<f64> {
    let t = py_strip(s);
    if !t.is_ascii() || t.is_empty() {
        return None;
    }
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return t.parse::<f64>().ok();
    }
    // Python's grammar: digits [. digits] [e [sign] digits], or . digits [exponent].
    let clean = strip_underscores(t)?;
    let b = clean.strip_prefix(['+', '-']).unwrap_or(&clean);
    let (mantissa, exponent) = match b.find(['e', 'E']) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let digits_ok = |d: &str| d.bytes().all(|c| c.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty() || !digits_ok(int_part) || !digits_ok(frac_part) {
        return None;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits_ok(e) {
            return None;
        }
    }
    clean.parse::<f64>().ok()
}

/// ConfigParser's `getboolean`: `1 yes true on` / `0 no false off`, any case.
pub fn py_bool(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_as_python_reads_them() {
        let table: &[(&str, Option<i64>)] = &[
            ("2003", Some(2003)),
            (" 2003 ", Some(2003)),
            ("+5", Some(5)),
            ("-5", Some(-5)),
            ("007", Some(7)),
            ("1_000", Some(1000)),
            ("1__000", None),
            ("_1", None),
            ("1_", None),
            ("1.0", None),
            ("inf", None),
            ("", None),
            ("+", None),
            ("0x10", None),
            ("\u{1c}12\u{1f}", Some(12)),
        ];
        for (s, want) in table {
            assert_eq!(py_int(s), *want, "int({s:?})");
        }
    }

    #[test]
    fn floats_as_python_reads_them() {
        let table: &[(&str, Option<f64>)] = &[
            ("inf", Some(f64::INFINITY)),
            ("-Infinity", Some(f64::NEG_INFINITY)),
            ("INF", Some(f64::INFINITY)),
            ("0.5", Some(0.5)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e3", Some(1000.0)),
            ("1E-3", Some(0.001)),
            ("1_0.5", Some(10.5)),
            ("1e", None),
            (".", None),
            ("e5", None),
            ("infinit", None),
            ("0x1p3", None),
            ("", None),
        ];
        for (s, want) in table {
            assert_eq!(py_float(s), *want, "float({s:?})");
        }
        assert!(py_float("nan").is_some_and(f64::is_nan));
    }

    #[test]
    fn booleans_as_configparser_reads_them() {
        for t in ["1", "yes", "True", "TRUE", "on", "On"] {
            assert_eq!(py_bool(t), Some(true), "{t}");
        }
        for f in ["0", "no", "False", "off", "OFF"] {
            assert_eq!(py_bool(f), Some(false), "{f}");
        }
        for bad in ["", "y", "2", "enabled", " true"] {
            assert_eq!(py_bool(bad), None, "{bad}");
        }
    }
}
