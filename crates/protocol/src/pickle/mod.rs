//! A safe, bounded pickle VM and a protocol 2–5 encoder, for the values carbon exchanges.
//!
//! Carbon's `SafeUnpickler` only lets a couple of classes through `find_class`, and under
//! Python 3 even those fail to import (`copy_reg`, `__builtin__` are Python 2 names), so in
//! practice carbon 1.1 on Python 3 accepts **no** global at all: only the built-in containers and
//! scalars that pickle encodes without a class reference. Our VM therefore has no notion of
//! classes: every opcode that would look one up or call one (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`,
//! `BUILD`, `INST`, `OBJ`, `NEWOBJ`, `EXT*`, `PERSID`…) is refused with a typed error.
//!
//! Because the input comes from the network, decoding is bounded: nesting depth, number of values
//! and bytes produced (memo references are expanded, so a "billion laughs" pickle hits the
//! limit instead of memory), and memo size; declared lengths are checked against the input before
//! anything is allocated. See [`Limits`].

mod bigint;
mod decode;
mod encode;

pub use bigint::BigInt;
pub use decode::{LegacyStrings, Limits, PickleError, loads, loads_with};
pub use encode::{PickleTimestamp, Protocol, dumps, dumps_with, encode_points};

/// A Python value as it comes out of (or goes into) a pickle.
///
/// Dicts, sets and frozensets keep insertion order; duplicate keys are collapsed with Python's
/// equality (`1`, `1.0` and `True` are one key), keeping the first key and the last value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// An `int` that does not fit in 64 bits.
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `str` (also Python 2 `str` decoded as UTF-8, as carbon's unpickler does).
    Str(String),
    /// A `bytes` object.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict`, as (key, value) pairs in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A `set`.
    Set(Vec<Value>),
    /// A `frozenset`.
    FrozenSet(Vec<Value>),
}

impl Value {
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Looks up a `str` key in a dict (`d[key]`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items Python's `iter()` would yield for lists, tuples, sets and dicts (their keys);
    /// `None` for other types (`str` and `bytes` are iterable in Python but never useful here).
    pub fn iter_items(&self) -> Option<Box<dyn Iterator<Item = &Value> + '_>> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                Some(Box::new(v.iter()))
            }
            Value::Dict(entries) => Some(Box::new(entries.iter().map(|(k, _)| k))),
            _ => None,
        }
    }

    /// Python's `float(x)` for numbers and numeric strings.
    pub fn to_py_float(&self) -> Result<f64, FloatError> {
        match self {
            Value::Bool(b) => Ok(f64::from(u8::from(*b))),
            Value::Int(i) => Ok(*i as f64),
            Value::BigInt(b) => b.to_f64().ok_or(FloatError::Overflow),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => crate::pyfloat::parse_py_float_str(s).ok_or(FloatError::Invalid),
            Value::Bytes(b) => crate::pyfloat::parse_py_float_bytes(b).ok_or(FloatError::Invalid),
            _ => Err(FloatError::Invalid),
        }
    }

    /// Python's `str(x)`: the text itself for a `str`, [`Value::py_repr`] otherwise.
    pub fn py_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    /// Python's `repr(x)`, exact for numbers, `None`, booleans and printable text; for
    /// non-printable non-ASCII characters it keeps the character where Python would escape it.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        repr_into(self, &mut out);
        out
    }
}

/// Why [`Value::to_py_float`] failed, mirroring the exception Python's `float()` raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FloatError {
    /// `ValueError` or `TypeError`: not a number, or not numeric text.
    #[error("not a number")]
    Invalid,
    /// `OverflowError`: an `int` too large for a float.
    #[error("int too large to convert to float")]
    Overflow,
}

/// Python's `repr()` of a float (shortest round-trip digits, `1e+16` style exponents).
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp + 1;
            if n <= int_len {
                let zeros = "0".repeat((int_len - n) as usize);
                format!("{sign}{digits}{zeros}.0")
            } else {
                let (a, b) = digits.split_at(int_len as usize);
                format!("{sign}{a}.{b}")
            }
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

fn repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn repr_bytes(b: &[u8], out: &mut String) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(char::from(quote));
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(char::from(c));
            }
            0x20..=0x7e => out.push(char::from(c)),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(char::from(quote));
}

fn repr_seq(items: &[Value], open: &str, close: &str, out: &mut String) {
    out.push_str(open);
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        repr_into(v, out);
    }
    out.push_str(close);
}

fn repr_into(v: &Value, out: &mut String) {
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::BigInt(b) => out.push_str(&b.to_string()),
        Value::Float(f) => out.push_str(&py_float_repr(*f)),
        Value::Str(s) => repr_str(s, out),
        Value::Bytes(b) => repr_bytes(b, out),
        Value::List(items) => repr_seq(items, "[", "]", out),
        Value::Tuple(items) if items.len() == 1 => repr_seq(items, "(", ",)", out),
        Value::Tuple(items) => repr_seq(items, "(", ")", out),
        Value::Set(items) if items.is_empty() => out.push_str("set()"),
        Value::Set(items) => repr_seq(items, "{", "}", out),
        Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
        Value::FrozenSet(items) => repr_seq(items, "frozenset({", "})", out),
        Value::Dict(entries) => {
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(k, out);
                out.push_str(": ");
                repr_into(val, out);
            }
            out.push('}');
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_like_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-300, "-2.5e-300"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (123.456, "123.456"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn repr_containers() {
        let v = Value::List(vec![
            Value::Tuple(vec![Value::Int(1)]),
            Value::Dict(vec![(Value::from("a'b"), Value::None)]),
            Value::Bytes(b"x\x00'".to_vec()),
            Value::Set(vec![]),
            Value::FrozenSet(vec![Value::Bool(true)]),
        ]);
        assert_eq!(
            v.py_repr(),
            r#"[(1,), {"a'b": None}, b"x\x00'", set(), frozenset({True})]"#
        );
    }

    #[test]
    fn to_py_float() {
        assert_eq!(Value::from("1_0").to_py_float(), Ok(10.0));
        assert_eq!(Value::Bool(true).to_py_float(), Ok(1.0));
        assert_eq!(Value::None.to_py_float(), Err(FloatError::Invalid));
        assert_eq!(Value::Bytes(b" 2 ".to_vec()).to_py_float(), Ok(2.0));
    }
}
