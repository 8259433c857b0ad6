//! `/metrics/find?format=pickle`: graphite-web pickles its find nodes with the intervals as
//! `graphite.intervals.IntervalSet` objects, which a remote graphite-web (CLUSTER_SERVERS) unpickles
//! with its safe unpickler. This writes the same objects with pickle protocol 2 opcodes: the class
//! by `GLOBAL`, created by `NEWOBJ` with no arguments, its `__dict__` set by `BUILD`.

/// One find result: the path, whether it is a leaf, and a leaf's `(start, end)` intervals.
pub(crate) struct FindNode {
    pub(crate) path: String,
    pub(crate) is_leaf: bool,
    pub(crate) intervals: Vec<(f64, f64)>,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn float(out: &mut Vec<u8>, f: f64) {
    out.push(b'G');
    out.extend_from_slice(&f.to_be_bytes());
}

/// `cls()` then `obj.__dict__.update({...})`: the caller writes the dict's items between.
fn object(out: &mut Vec<u8>, class: &str, items: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'c');
    out.extend_from_slice(b"graphite.intervals\n");
    out.extend_from_slice(class.as_bytes());
    out.push(b'\n');
    out.push(b')'); // EMPTY_TUPLE
    out.push(0x81); // NEWOBJ
    out.push(b'}'); // EMPTY_DICT
    out.push(b'('); // MARK
    items(out);
    out.push(b'u'); // SETITEMS
    out.push(b'b'); // BUILD
}

/// The pickle graphite-web's `pickle_nodes` returns.
pub(crate) fn pickle_nodes(nodes: &[FindNode]) -> Vec<u8> {
    let mut out = vec![0x80, 2, b']', b'('];
    for n in nodes {
        out.extend_from_slice(b"}(");
        string(&mut out, "path");
        string(&mut out, &n.path);
        string(&mut out, "is_leaf");
        out.push(if n.is_leaf { 0x88 } else { 0x89 });
        if n.is_leaf {
            string(&mut out, "intervals");
            let size: f64 = n.intervals.iter().map(|(s, e)| e - s).sum();
            object(&mut out, "IntervalSet", |out| {
                string(out, "intervals");
                out.extend_from_slice(b"](");
                for &(s, e) in &n.intervals {
                    object(out, "Interval", |out| {
                        string(out, "start");
                        float(out, s);
                        string(out, "end");
                        float(out, e);
                        string(out, "tuple");
                        float(out, s);
                        float(out, e);
                        out.push(0x86); // TUPLE2
                        string(out, "size");
                        float(out, e - s);
                    });
                }
                out.push(b'e'); // APPENDS
                string(out, "size");
                float(out, size);
            });
        }
        out.push(b'u');
    }
    out.extend_from_slice(b"e.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_have_no_intervals() {
        let p = pickle_nodes(&[FindNode {
            path: "a".into(),
            is_leaf: false,
            intervals: Vec::new(),
        }]);
        assert_eq!(
            p,
            b"\x80\x02](}(X\x04\x00\x00\x00pathX\x01\x00\x00\x00aX\x07\x00\x00\x00is_leaf\x89ue."
        );
    }
}
