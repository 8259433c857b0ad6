//! Shared helpers for the differential tests: running the real Python programs, a canonical
//! rendering of values that Python and Rust both produce, and a tiny deterministic RNG.

#![allow(dead_code)]
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use carbide_protocol::pickle::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// The interpreter Debian's graphite-carbon and graphite-web are installed for.
pub const PYTHON: &str = "/usr/bin/python3";

/// Python helpers shared by every oracle script: `canon(obj)` mirrors [`canon`] below.
pub const PY_PRELUDE: &str = r#"
import sys, struct, pickle, binascii
def canon(o):
    t = type(o)
    if o is None: return 'N'
    if o is True: return 'T'
    if o is False: return 'F'
    if t is int: return 'i%d' % o
    if t is float: return 'f' + struct.pack('>d', o).hex()
    if t is str: return 's' + o.encode('utf-8', 'surrogatepass').hex()
    if t is bytes: return 'b' + o.hex()
    if t is list: return '[' + ','.join(canon(x) for x in o) + ']'
    if t is tuple: return '(' + ','.join(canon(x) for x in o) + ')'
    if t is dict: return '{' + ','.join(canon(k) + ':' + canon(v) for k, v in o.items()) + '}'
    if t is set: return '<' + ','.join(sorted(canon(x) for x in o)) + '>'
    if t is frozenset: return '|' + ','.join(sorted(canon(x) for x in o)) + '|'
    return '?' + t.__name__
"#;

/// Runs `script` under the system Python with `input` on stdin; returns stdout.
///
/// Fails (never skips) when the interpreter or carbon is missing.
pub fn run_python(script: &str, input: &str) -> String {
    let full = format!("{PY_PRELUDE}\n{script}");
    let child = Command::new(PYTHON)
        .arg("-c")
        .arg(&full)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run {PYTHON} ({e}): the differential tests need Python 3 with Debian's \
             graphite-carbon; run scripts/install-test-deps.sh"
        ),
    };
    // Feed stdin from a thread: Python answers line by line, so writing everything first
    // would deadlock once its output fills the pipe.
    let writer = child.stdin.take().map(|mut stdin| {
        let input = input.to_owned();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        })
    });
    let out = child.wait_with_output().expect("wait for python");
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{PYTHON} failed (is graphite-carbon installed? run scripts/install-test-deps.sh):\n{stderr}"
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}

/// The canonical rendering of a value, identical to the Python prelude's `canon`.
pub fn canon(v: &Value) -> String {
    fn join(items: &[Value]) -> String {
        items.iter().map(canon).collect::<Vec<_>>().join(",")
    }
    fn sorted(items: &[Value]) -> String {
        let mut parts: Vec<String> = items.iter().map(canon).collect();
        parts.sort();
        parts.join(",")
    }
    match v {
        Value::None => "N".into(),
        Value::Bool(true) => "T".into(),
        Value::Bool(false) => "F".into(),
        Value::Int(i) => format!("i{i}"),
        Value::BigInt(b) => format!("i{b}"),
        Value::Float(f) => format!("f{}", hex(&f.to_be_bytes())),
        Value::Str(s) => format!("s{}", hex(s.as_bytes())),
        Value::Bytes(b) => format!("b{}", hex(b)),
        Value::List(items) => format!("[{}]", join(items)),
        Value::Tuple(items) => format!("({})", join(items)),
        Value::Dict(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}:{}", canon(k), canon(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Set(items) => format!("<{}>", sorted(items)),
        Value::FrozenSet(items) => format!("|{}|", sorted(items)),
    }
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes from lowercase hex.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// A small deterministic xorshift RNG, so every run tests the same cases.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// One of the items.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
