//! Python's number formatting, which graphite-web bakes into series names and JSON.

pub use carbide_query::template::py_float_repr;

/// Python's `'%g' % f`: six significant digits, trailing zeros dropped, exponent form outside
/// `1e-4 <= |f| < 1e6`.
pub fn g(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        strip_zeros(&format!("{f:.decimals$}"))
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Python's `str()` of a number argument as the grammar produced it.
pub fn num_str(f: f64, was_int: bool) -> String {
    if was_int {
        format!("{}", f as i64)
    } else {
        py_float_repr(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g_table() {
        for (f, want) in [
            (2.0, "2"),
            (0.5, "0.5"),
            (100.0, "100"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-3.25, "-3.25"),
            (1.0 / 3.0, "0.333333"),
        ] {
            assert_eq!(g(f), want, "{f}");
        }
    }
}
