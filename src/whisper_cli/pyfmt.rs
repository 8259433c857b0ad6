//! Python's number formatting and parsing, as far as the whisper scripts' output depends on it.
//!
//! The scripts print floats with `%s` (which is `repr`: the shortest string that round-trips, switching
//! to an exponent below 1e-4 and from 1e16 on), `%f`, `%.3f`, `%g` and `%.35g`, and read numbers with
//! `int()`, `float()` and optparse's `int` type (which guesses the radix from a `0x`/`0b`/`0` prefix).
//! Rust's own formatting differs in the exponent rules and in the spelling of NaN and infinity, so these
//! helpers rebuild Python's text from Rust's correctly rounded digits.

use std::fmt::Write as _;

/// Splits Rust's `{:e}` rendering (`-1.25e-7`) into (negative, digits without the dot, exponent).
fn sci_parts(rendered: &str) -> (bool, String, i32) {
    let (mantissa, exp) = rendered.split_once('e').unwrap_or((rendered, "0"));
    let negative = mantissa.starts_with('-');
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (negative, digits, exp.parse().unwrap_or(0))
}

/// Python's spelling of the values that have no digits; `None` for finite values.
fn special(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("nan")
    } else if x == f64::INFINITY {
        Some("inf")
    } else if x == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// Appends an exponent as C and Python write it: a sign and at least two digits (`e+16`, `e-05`).
fn push_exponent(out: &mut String, exp: i32) {
    let sign = if exp < 0 { '-' } else { '+' };
    let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
}

/// `repr(x)` (and so `str(x)` and `'%s' % x`) for a Python float.
pub fn repr(x: f64) -> String {
    if let Some(s) = special(x) {
        return s.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let (negative, digits, exp) = sci_parts(&format!("{x:e}"));
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        push_exponent(&mut out, exp);
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `'%.{precision}f' % x`.
pub fn fixed(x: f64, precision: usize) -> String {
    match special(x) {
        Some(s) => s.to_string(),
        None => format!("{x:.precision$}"),
    }
}

/// Removes the zeros at the end of a fraction, and the dot if nothing is left after it (`%g` does).
fn trim_fraction(s: &mut String) {
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
}

/// `'%.{precision}g' % x`: `precision` significant digits, an exponent only when it would be below -4 or
/// at least the precision, trailing zeros removed.
pub fn general(x: f64, precision: usize) -> String {
    if let Some(s) = special(x) {
        return s.to_string();
    }
    let p = precision.max(1);
    let (negative, digits, exp) = sci_parts(&format!("{x:.prec$e}", prec = p - 1));
    if exp < -4 || exp >= p as i32 {
        let mut out = String::new();
        if negative {
            out.push('-');
        }
        let mut mantissa = digits[..1].to_string();
        if digits.len() > 1 {
            mantissa.push('.');
            mantissa.push_str(&digits[1..]);
        }
        trim_fraction(&mut mantissa);
        out.push_str(&mantissa);
        push_exponent(&mut out, exp);
        out
    } else {
        let decimals = (p as i32 - 1 - exp) as usize;
        let mut out = format!("{x:.decimals$}");
        trim_fraction(&mut out);
        out
    }
}

/// Python's `repr(range(start, stop, step))`, which leaves out a step of 1.
pub fn range_repr(start: i64, stop: i64, step: i64) -> String {
    if step == 1 {
        format!("range({start}, {stop})")
    } else {
        format!("range({start}, {stop}, {step})")
    }
}

/// Python's `repr` of a list, given the repr of each item.
pub fn list_repr<I: IntoIterator<Item = String>>(items: I) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// `repr` of an optional float: `None` or the float.
pub fn opt_repr(v: Option<f64>) -> String {
    v.map_or_else(|| "None".to_string(), repr)
}

/// Strips Python's whitespace and removes the underscores `int()` and `float()` allow between digits;
/// `None` if an underscore is anywhere else.
fn strip_underscores(s: &str, is_digit: impl Fn(char) -> bool) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
            let after = chars.get(i + 1).copied();
            if !(before.is_some_and(&is_digit) && after.is_some_and(&is_digit)) {
                return None;
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Python's `int(s, radix)` for radix 2, 8, 10 or 16, limited to magnitudes up to [`MAX_TIME`].
pub fn int_radix(s: &str, radix: u32) -> Option<i64> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let prefix = match radix {
        16 => Some("0x"),
        8 => Some("0o"),
        2 => Some("0b"),
        _ => None,
    };
    let mut body = rest;
    if let Some(p) = prefix
        && let (Some(head), Some(tail)) = (body.get(..2), body.get(2..))
        && head.eq_ignore_ascii_case(p)
    {
        // A prefix may be followed by an underscore: int('0x_1f', 16) is 31.
        body = tail.strip_prefix('_').unwrap_or(tail);
    }
    let cleaned = strip_underscores(body, |c| c.is_digit(radix))?;
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&cleaned, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    if value.abs() > i128::from(MAX_TIME) {
        return None;
    }
    i64::try_from(value).ok()
}

/// The largest magnitude accepted for an integer argument. Python's integers are unbounded, but every
/// integer the scripts read is a time, and beyond this the time arithmetic (`t + step`, `now - t`)
/// could overflow; such a value is refused as invalid instead.
pub const MAX_TIME: i64 = 1 << 40;

/// Python's `int(s)`.
pub fn int(s: &str) -> Option<i64> {
    int_radix(s, 10)
}

/// optparse's `int` option type: `0x…` is hex, `0b…` binary, a leading `0` octal, anything else decimal.
pub fn optparse_int(s: &str) -> Result<i64, String> {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    let parsed = match lower.as_deref() {
        Some("0x") => int_radix(s, 16),
        Some("0b") => {
            let rest = &s[2..];
            int_radix(if rest.is_empty() { "0" } else { rest }, 2)
        }
        _ if s.starts_with('0') => int_radix(s, 8),
        _ => int_radix(s, 10),
    };
    parsed.ok_or_else(|| format!("invalid integer value: '{s}'"))
}

/// Python's `float(s)`: decimal or exponent notation, `inf`/`infinity`/`nan` in any case, surrounding
/// whitespace and underscores between digits allowed.
pub fn float(s: &str) -> Option<f64> {
    let cleaned = strip_underscores(s.trim(), |c| c.is_ascii_digit())?;
    let body = cleaned.trim_start_matches(['+', '-']);
    // Rust also reads a few spellings Python refuses; keep to Python's grammar.
    let named = ["inf", "infinity", "nan"]
        .iter()
        .any(|n| body.eq_ignore_ascii_case(n));
    let numeric = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if cleaned.len() - body.len() > 1 || !(named || numeric) {
        return None;
    }
    cleaned.parse().ok()
}

/// optparse's `float` option type (Python's `float()`), as a clap value parser.
pub fn optparse_float(s: &str) -> Result<f64, String> {
    float(s).ok_or_else(|| format!("invalid floating-point value: '{s}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.10000000149011612, "0.10000000149011612"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1234567890123456789.0, "1.2345678901234568e+18"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (0.00001, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for &(x, want) in cases {
            assert_eq!(repr(x), want, "repr({x:?})");
        }
    }

    /// Floats from every corner: random bit patterns, short decimals, integers, and the values around
    /// where repr and %g switch to an exponent.
    fn sample_floats() -> Vec<f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut v = vec![
            0.0,
            -0.0,
            1e16,
            9_999_999_999_999_998.0,
            1e-4,
            9.999_999_999_999_999e-5,
            1e-5,
            0.5,
        ];
        for _ in 0..1500 {
            let x = f64::from_bits(next());
            if x.is_finite() {
                v.push(x);
            }
        }
        for _ in 0..1500 {
            let digits = (next() % 1_000_000) as f64;
            let exp = (next() % 40) as i32 - 20;
            v.push(digits * 10f64.powi(exp));
            v.push(-((next() % 100_000) as f64) / 8.0);
        }
        v
    }

    /// Runs a Python snippet from the oracle venv over `input`; its stdout lines.
    fn python_lines(script: &str, input: String) -> Vec<String> {
        let base = std::env::var_os("CARBIDE_ORACLES")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracles"));
        let python = base.join("venv/bin/python");
        assert!(
            python.exists(),
            "Python (the oracle) is missing at {}: run scripts/install-test-deps.sh",
            python.display()
        );
        let mut child = std::process::Command::new(python)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(input.as_bytes()).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn parsing_matches_python() {
        let inputs = [
            "0",
            "42",
            "-7",
            "+7",
            " 12 ",
            "1_000",
            "1__0",
            "_1",
            "1_",
            "1.5",
            "1e3",
            "1E3",
            "1e+3",
            "1e-3",
            ".5",
            "5.",
            ".",
            "e5",
            "1e",
            "inf",
            "-inf",
            "+inf",
            "Infinity",
            "-INFINITY",
            "nan",
            "-nan",
            "NaN",
            "infinit",
            "in",
            "0x10",
            "0b1",
            "0o7",
            "010",
            "08",
            "--1",
            "+-1",
            "-",
            "",
            "1.5.5",
            "1_0.5_5",
            "1._5",
            "١٢",
            "0.1",
            "1e400",
            "-0",
            "-0.0",
            "00",
            "1 2",
        ];
        let input: String = inputs.iter().map(|s| format!("{s}\n")).collect();
        let script = "import sys\nfor l in sys.stdin:\n s=l[:-1]\n try: f=repr(float(s))\n except ValueError: f='ERR'\n \
                      try: i=str(int(s))\n except ValueError: i='ERR'\n print(f, i, sep='|')";
        let lines = python_lines(script, input);
        assert_eq!(lines.len(), inputs.len());
        for (s, want) in inputs.iter().zip(lines) {
            let got = format!(
                "{}|{}",
                float(s).map_or("ERR".to_string(), repr),
                int(s).map_or("ERR".to_string(), |i| i.to_string())
            );
            // Python reads non-ASCII digits too; nothing the scripts are given uses them.
            if !s.is_ascii() {
                assert_eq!(got, "ERR|ERR", "{s:?}");
                continue;
            }
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn matches_python_on_many_floats() {
        let values = sample_floats();
        let input: String = values.iter().map(|x| format!("{:016x}\n", x.to_bits())).collect();
        let script = "import sys,struct\nfor l in sys.stdin:\n x=struct.unpack('>d',bytes.fromhex(l.strip()))[0]\n print(repr(x),'%f'%x,'%.3f'%x,'%g'%x,'%.35g'%x,'[%10.35g]'%x,sep='|')";
        let lines = python_lines(script, input);
        assert_eq!(lines.len(), values.len());
        for (x, want) in values.iter().zip(lines) {
            let got = format!(
                "{}|{}|{}|{}|{}|[{:>10}]",
                repr(*x),
                fixed(*x, 6),
                fixed(*x, 3),
                general(*x, 6),
                general(*x, 35),
                general(*x, 35)
            );
            assert_eq!(got, want, "{x:e}");
        }
    }

    #[test]
    fn general_matches_c() {
        let cases: &[(f64, usize, &str)] = &[
            (0.5, 6, "0.5"),
            (0.10000000149011612, 6, "0.1"),
            (0.0, 6, "0"),
            (-0.0, 6, "-0"),
            (1e6, 6, "1e+06"),
            (123456.0, 6, "123456"),
            (0.0001, 6, "0.0001"),
            (0.00001, 6, "1e-05"),
            (0.1, 35, "0.1000000000000000055511151231257827"),
            (1e40, 35, "1.0000000000000000303786028427003667e+40"),
            (5e-324, 35, "4.9406564584124654417656879286822137e-324"),
            (42.0, 35, "42"),
            (f64::NAN, 35, "nan"),
            (f64::NEG_INFINITY, 35, "-inf"),
            (9.9999995, 6, "10"),
        ];
        for &(x, p, want) in cases {
            assert_eq!(general(x, p), want, "%.{p}g of {x:?}");
        }
    }

    #[test]
    fn fixed_matches_c() {
        assert_eq!(fixed(1.5, 6), "1.500000");
        assert_eq!(fixed(-0.0, 6), "-0.000000");
        assert_eq!(fixed(2.5, 0), "2");
        assert_eq!(fixed(0.0005, 3), "0.001");
        assert_eq!(fixed(f64::NAN, 6), "nan");
        assert_eq!(fixed(f64::INFINITY, 3), "inf");
    }

    #[test]
    fn ranges_and_lists() {
        assert_eq!(range_repr(0, 10, 1), "range(0, 10)");
        assert_eq!(range_repr(0, 10, 5), "range(0, 10, 5)");
        assert_eq!(list_repr(Vec::<String>::new()), "[]");
        assert_eq!(list_repr([repr(1.0), opt_repr(None)]), "[1.0, None]");
    }

    #[test]
    fn int_parsing_follows_python() {
        assert_eq!(int(" 42\n"), Some(42));
        assert_eq!(int("-7"), Some(-7));
        assert_eq!(int("+7"), Some(7));
        assert_eq!(int("1_000"), Some(1000));
        assert_eq!(int("1__0"), None);
        assert_eq!(int("_1"), None);
        assert_eq!(int("1.5"), None);
        assert_eq!(int(""), None);
        assert_eq!(int("0x10"), None);
        assert_eq!(int("99999999999999999999"), None);
        assert_eq!(int(&MAX_TIME.to_string()), Some(MAX_TIME));
        assert_eq!(int(&(MAX_TIME + 1).to_string()), None);
        assert_eq!(int("€1"), None);
        assert_eq!(int_radix("€1", 16), None);
        assert_eq!(int_radix("0x€", 16), None);
    }

    #[test]
    fn optparse_int_guesses_the_radix() {
        assert_eq!(optparse_int("100"), Ok(100));
        assert_eq!(optparse_int("-100"), Ok(-100));
        assert_eq!(optparse_int("0x1f"), Ok(31));
        assert_eq!(optparse_int("0X1F"), Ok(31));
        assert_eq!(optparse_int("0b101"), Ok(5));
        assert_eq!(optparse_int("0b"), Ok(0));
        assert_eq!(optparse_int("010"), Ok(8));
        assert_eq!(optparse_int("0o10"), Ok(8));
        assert_eq!(optparse_int("0"), Ok(0));
        assert!(optparse_int("08").is_err());
        assert!(optparse_int("-0x10").is_err());
        assert!(optparse_int("abc").is_err());
        assert!(optparse_int("").is_err());
    }

    #[test]
    fn float_parsing_follows_python() {
        assert_eq!(float(" 2.5\n"), Some(2.5));
        assert_eq!(float("1e3"), Some(1000.0));
        assert_eq!(float(".5"), Some(0.5));
        assert_eq!(float("5."), Some(5.0));
        assert_eq!(float("1_000.5"), Some(1000.5));
        assert_eq!(float("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(float("Infinity"), Some(f64::INFINITY));
        assert!(float("nan").is_some_and(f64::is_nan));
        assert_eq!(float("abc"), None);
        assert_eq!(float(""), None);
        assert_eq!(float("1e"), None);
        assert_eq!(float("--1"), None);
        assert_eq!(float("0x10"), None);
        assert_eq!(float("infinit"), None);
    }
}
