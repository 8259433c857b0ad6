//! The pickler: [`Value`] to bytes that Python's `pickle.loads` turns into the same object.
//!
//! Output follows CPython's own choice of opcodes for each protocol (BININT1/2/BININT/LONG1,
//! BINFLOAT, TUPLE1-3, batched APPENDS/SETITEMS of 1000) but writes no memo entries: our values
//! are trees, so nothing is ever referenced twice and the memo would only cost bytes. Carbon
//! replies with protocol 2, which is the default here.
//!
//! At protocol 2, Python 3 itself writes `bytes`, `set` and `frozenset` as calls to globals
//! (`_codecs.encode`, `__builtin__.set`); we do the same so Python loads identical objects, but
//! note that carbon's safe unpickler (and ours) refuse those: send them with protocol 4+.

use super::Value;

/// Which pickle protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Protocol {
    /// Protocol 2: what carbon uses for carbonlink replies and relay batches.
    #[default]
    V2,
    /// Protocol 3: adds `bytes` opcodes.
    V3,
    /// Protocol 4: adds short strings and set opcodes.
    V4,
    /// Protocol 5.
    V5,
}

impl Protocol {
    fn number(self) -> u8 {
        match self {
            Protocol::V2 => 2,
            Protocol::V3 => 3,
            Protocol::V4 => 4,
            Protocol::V5 => 5,
        }
    }
}

const BATCH: usize = 1000;

/// Pickles a value with protocol 2, as carbon's `pickle.dumps(result, protocol=2)`.
pub fn dumps(v: &Value) -> Vec<u8> {
    dumps_with(v, Protocol::V2)
}

/// Pickles a value with the given protocol.
pub fn dumps_with(v: &Value, proto: Protocol) -> Vec<u8> {
    let mut out = vec![0x80, proto.number()];
    write_value(v, proto, &mut out);
    out.push(b'.');
    out
}

/// A timestamp as it goes into a pickled batch: carbon's relay forwards the `float` its
/// receivers parsed, the aggregator sends its `int` interval.
pub trait PickleTimestamp: Copy {
    /// Appends the pickle opcode(s) for this number.
    fn write(self, out: &mut Vec<u8>);
}

impl PickleTimestamp for f64 {
    fn write(self, out: &mut Vec<u8>) {
        write_float(self, out);
    }
}

impl PickleTimestamp for i64 {
    fn write(self, out: &mut Vec<u8>) {
        write_int(self, out);
    }
}

/// Pickles `[(name, (timestamp, value)), …]` (protocol 2) straight from borrowed points: the
/// batch carbon's relay (`f64` timestamps) and aggregator (`i64`) send to a pickle receiver.
pub fn encode_points<'a, T: PickleTimestamp>(points: impl IntoIterator<Item = (&'a str, T, f64)>) -> Vec<u8> {
    let mut out = vec![0x80, 2, b']'];
    let mut batch = 0usize;
    let mut open = false;
    for (name, ts, value) in points {
        if !open {
            out.push(b'(');
            open = true;
        }
        write_str(name, Protocol::V2, &mut out);
        ts.write(&mut out);
        write_float(value, &mut out);
        out.extend_from_slice(&[0x86, 0x86]);
        batch += 1;
        if batch == BATCH {
            out.push(b'e');
            batch = 0;
            open = false;
        }
    }
    if open {
        out.push(b'e');
    }
    out.push(b'.');
    out
}

fn write_float(f: f64, out: &mut Vec<u8>) {
    out.push(b'G');
    out.extend_from_slice(&f.to_be_bytes());
}

fn write_str(s: &str, proto: Protocol, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if proto >= Protocol::V4 && b.len() < 256 {
        out.push(0x8c);
        out.push(b.len() as u8);
    } else if let Ok(n) = u32::try_from(b.len()) {
        out.push(b'X');
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(0x8d);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(b);
}

fn write_global(module: &str, name: &str, proto: Protocol, out: &mut Vec<u8>) {
    // Python 3 maps `builtins` back to `__builtin__` below protocol 3 (fix_imports).
    let module = if module == "builtins" && proto < Protocol::V3 {
        "__builtin__"
    } else {
        module
    };
    out.push(b'c');
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn write_twos(twos: &[u8], out: &mut Vec<u8>) {
    if let Ok(n) = u8::try_from(twos.len()) {
        out.push(0x8a);
        out.push(n);
    } else {
        out.push(0x8b);
        out.extend_from_slice(&(twos.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(twos);
}

fn write_int(i: i64, out: &mut Vec<u8>) {
    if (0..=0xff).contains(&i) {
        out.push(b'K');
        out.push(i as u8);
    } else if (0..=0xffff).contains(&i) {
        out.push(b'M');
        out.extend_from_slice(&(i as u16).to_le_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(b'J');
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        let neg = i < 0;
        let mut mag = i.unsigned_abs().to_le_bytes().to_vec();
        while mag.last() == Some(&0) {
            mag.pop();
        }
        write_twos(&super::bigint::magnitude_to_twos(&mag, neg), out);
    }
}

/// Items in batches of 1000: `MARK … op` for several, `item single_op` for one.
fn write_batched(items: &[Value], proto: Protocol, out: &mut Vec<u8>, many_op: u8, one_op: u8) {
    for chunk in items.chunks(BATCH) {
        if let [one] = chunk {
            write_value(one, proto, out);
            out.push(one_op);
        } else {
            out.push(b'(');
            for v in chunk {
                write_value(v, proto, out);
            }
            out.push(many_op);
        }
    }
}

fn write_list(items: &[Value], proto: Protocol, out: &mut Vec<u8>) {
    out.push(b']');
    write_batched(items, proto, out, b'e', b'a');
}

fn write_value(v: &Value, proto: Protocol, out: &mut Vec<u8>) {
    match v {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => write_int(*i, out),
        Value::BigInt(b) => write_twos(b.to_twos_le(), out),
        Value::Float(f) => write_float(*f, out),
        Value::Str(s) => write_str(s, proto, out),
        Value::Bytes(b) => {
            if proto >= Protocol::V3 {
                if b.len() < 256 {
                    out.push(b'C');
                    out.push(b.len() as u8);
                } else if let Ok(n) = u32::try_from(b.len()) {
                    out.push(b'B');
                    out.extend_from_slice(&n.to_le_bytes());
                } else {
                    out.push(0x8e);
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                }
                out.extend_from_slice(b);
            } else if b.is_empty() {
                write_global("builtins", "bytes", proto, out);
                out.extend_from_slice(b")R");
            } else {
                // What Python 3 writes: _codecs.encode(latin-1 text, 'latin1').
                write_global("_codecs", "encode", proto, out);
                let latin1: String = b.iter().map(|&c| char::from(c)).collect();
                write_str(&latin1, proto, out);
                write_str("latin1", proto, out);
                out.extend_from_slice(&[0x86, b'R']);
            }
        }
        Value::List(items) => write_list(items, proto, out),
        Value::Tuple(items) => match items.as_slice() {
            [] => out.push(b')'),
            [a] => {
                write_value(a, proto, out);
                out.push(0x85);
            }
            [a, b] => {
                write_value(a, proto, out);
                write_value(b, proto, out);
                out.push(0x86);
            }
            [a, b, c] => {
                write_value(a, proto, out);
                write_value(b, proto, out);
                write_value(c, proto, out);
                out.push(0x87);
            }
            _ => {
                out.push(b'(');
                for v in items {
                    write_value(v, proto, out);
                }
                out.push(b't');
            }
        },
        Value::Dict(entries) => {
            out.push(b'}');
            for chunk in entries.chunks(BATCH) {
                if let [(k, v)] = chunk {
                    write_value(k, proto, out);
                    write_value(v, proto, out);
                    out.push(b's');
                } else {
                    out.push(b'(');
                    for (k, v) in chunk {
                        write_value(k, proto, out);
                        write_value(v, proto, out);
                    }
                    out.push(b'u');
                }
            }
        }
        Value::Set(items) => {
            if proto >= Protocol::V4 {
                out.push(0x8f);
                for chunk in items.chunks(BATCH) {
                    out.push(b'(');
                    for v in chunk {
                        write_value(v, proto, out);
                    }
                    out.push(0x90);
                }
            } else {
                write_global("builtins", "set", proto, out);
                write_list(items, proto, out);
                out.extend_from_slice(&[0x85, b'R']);
            }
        }
        Value::FrozenSet(items) => {
            if proto >= Protocol::V4 {
                out.push(b'(');
                for v in items {
                    write_value(v, proto, out);
                }
                out.push(0x91);
            } else {
                write_global("builtins", "frozenset", proto, out);
                write_list(items, proto, out);
                out.extend_from_slice(&[0x85, b'R']);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::loads;

    #[test]
    fn matches_python_opcodes() {
        // pickle.dumps((1, 300, -1, 2**31, True, None), 2) minus Python's memo opcodes.
        let v = Value::Tuple(vec![
            Value::Int(1),
            Value::Int(300),
            Value::Int(-1),
            Value::Int(1 << 31),
            Value::Bool(true),
            Value::None,
        ]);
        let got = dumps(&v);
        let want: &[u8] = b"\x80\x02(K\x01M,\x01J\xff\xff\xff\xff\x8a\x05\x00\x00\x00\x80\x00\x88Nt.";
        assert_eq!(got, want);
    }

    #[test]
    fn points_batch_loads() {
        let names: Vec<String> = (0..1001).map(|i| format!("m.{i}")).collect();
        let bytes = encode_points(names.iter().map(|n| (n.as_str(), 10.0, 1.5)));
        let v = loads(&bytes);
        let Ok(Value::List(items)) = v else {
            unreachable!("{v:?}")
        };
        assert_eq!(items.len(), 1001);
        assert_eq!(
            items.last(),
            Some(&Value::Tuple(vec![
                Value::from("m.1000"),
                Value::Tuple(vec![Value::Float(10.0), Value::Float(1.5)])
            ]))
        );
        assert_eq!(loads(&encode_points::<f64>([])), Ok(Value::List(vec![])));
    }
}
