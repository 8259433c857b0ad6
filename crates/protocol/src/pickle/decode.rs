//! The unpickler: a small stack machine over an arena, then a bounded copy-out to [`Value`].
//!
//! Pickle has reference semantics: the memo hands out the *same* list again, and a list is often
//! memoised before its items are appended. So containers live in an arena and the stack holds
//! references; only at `STOP` is the object graph turned into a [`Value`] tree. That last step
//! is where memo sharing could explode (a "billion laughs" of nested references), so it counts
//! every value and byte it produces against [`Limits`] and refuses cycles.

use super::Value;
use super::bigint::{BigInt, magnitude_to_twos};
use std::collections::{HashMap, HashSet};
use thiserror::Error;

/// Bounds on what one pickle may make us build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest container nesting accepted (carbon's payloads need 3). The final copy-out
    /// recurses once per level, so keep this in the hundreds, not millions.
    pub max_depth: usize,
    /// Most values in the decoded tree, after memo references are expanded.
    pub max_items: usize,
    /// Most bytes of `str`, `bytes` and big-int data in the decoded tree (and in dict keys).
    pub max_bytes: usize,
    /// Most memo entries.
    pub max_memo: usize,
}

impl Default for Limits {
    /// Generous for carbon's 1 MiB frames (a full frame is ~100k values), small enough that a
    /// hostile frame costs at most ~100 MB.
    fn default() -> Self {
        Limits {
            max_depth: 100,
            max_items: 1 << 21,
            max_bytes: 1 << 26,
            max_memo: 1 << 20,
        }
    }
}

/// How Python 2 `str` (`STRING`, `BINSTRING`, `SHORT_BINSTRING`) is turned into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyStrings {
    /// Decode as UTF-8 into [`Value::Str`], failing on invalid UTF-8: carbon's unpickler is built
    /// with `encoding='utf-8'`.
    #[default]
    Utf8,
    /// Keep the raw bytes as [`Value::Bytes`] (Python's `encoding='bytes'`).
    Bytes,
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PickleError {
    /// The data ended before `STOP`, or a declared length runs past the end.
    #[error("pickle data was truncated")]
    Truncated,
    /// An opcode byte pickle does not define.
    #[error("invalid load key {0:#04x}")]
    UnknownOpcode(u8),
    /// `PROTO` above 5.
    #[error("unsupported pickle protocol: {0}")]
    UnsupportedProtocol(u8),
    /// A class lookup by name, which carbon's safe unpickler never allows under Python 3.
    #[error("refusing to load global {module}.{name}")]
    ForbiddenGlobal {
        /// Module part of the reference (lossily decoded).
        module: String,
        /// Name part of the reference (lossily decoded).
        name: String,
    },
    /// An opcode that calls or builds objects (REDUCE, BUILD, NEWOBJ, PERSID…).
    #[error("refusing opcode {0}")]
    Forbidden(&'static str),
    /// An opcode that is valid pickle but not supported here (out-of-band buffers, bytearray).
    #[error("unsupported opcode {0}")]
    Unsupported(&'static str),
    /// An opcode needed more values than the stack holds above the last mark.
    #[error("unpickling stack underflow")]
    StackUnderflow,
    /// An opcode needed a mark and none was set.
    #[error("could not find MARK")]
    MarkNotFound,
    /// `GET` of an index never `PUT`.
    #[error("memo value not found at index {0}")]
    MemoNotFound(i64),
    /// `PUT` with a negative index.
    #[error("negative PUT argument")]
    NegativeMemoIndex,
    /// A text argument (INT, LONG, FLOAT, STRING, UNICODE, GET, PUT) did not parse.
    #[error("invalid {0} argument")]
    BadArgument(&'static str),
    /// A negative length for BINSTRING or LONG4.
    #[error("negative byte count")]
    NegativeLength,
    /// Text that is not valid UTF-8 (or would need lone surrogates, which Rust strings cannot hold).
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    /// DICT/SETITEMS with an odd number of items.
    #[error("odd number of items for {0}")]
    OddItems(&'static str),
    /// APPEND/SETITEM/ADDITEMS on a value of the wrong type.
    #[error("{op} on a value that is not a {want}")]
    WrongType {
        /// The opcode.
        op: &'static str,
        /// The type it needed.
        want: &'static str,
    },
    /// A list, dict or set used as a dict key or set member.
    #[error("unhashable type used as a key")]
    Unhashable,
    /// Containers nested deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// More values than [`Limits::max_items`].
    #[error("more than {0} values")]
    TooManyItems(usize),
    /// More string bytes than [`Limits::max_bytes`].
    #[error("more than {0} bytes of data")]
    TooManyBytes(usize),
    /// More memo entries than [`Limits::max_memo`].
    #[error("more than {0} memo entries")]
    MemoFull(usize),
    /// An object that contains itself, which a value tree cannot represent.
    #[error("recursive object")]
    Recursive,
}

/// Decodes a pickle (protocols 0–5) with default [`Limits`] and carbon's string handling.
pub fn loads(data: &[u8]) -> Result<Value, PickleError> {
    loads_with(data, &Limits::default(), LegacyStrings::Utf8)
}

/// Decodes a pickle with explicit limits and Python 2 string handling. Data after `STOP` is
/// ignored, as `pickle.loads` does.
pub fn loads_with(data: &[u8], limits: &Limits, legacy: LegacyStrings) -> Result<Value, PickleError> {
    let mut vm = Vm {
        data,
        pos: 0,
        limits,
        legacy,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        nodes: Vec::new(),
        shared: Vec::new(),
        items: 0,
        bytes: 0,
        key_cache: std::cell::RefCell::new(HashMap::new()),
    };
    let top = vm.run()?;
    let mut visiting = vec![false; vm.nodes.len()];
    vm.build(top, 0, &mut visiting)
}

/// A stack slot: scalars inline, everything else a reference into the arena.
#[derive(Debug, Clone, Copy)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Ref(usize),
}

#[derive(Debug)]
enum Node {
    Big(BigInt),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Obj>),
    Tuple(Vec<Obj>),
    Dict(Vec<(Obj, Obj)>, HashMap<Vec<u8>, usize>),
    Set(Vec<Obj>, HashSet<Vec<u8>>),
    FrozenSet(Vec<Obj>),
    /// A node already moved out during the final copy.
    Taken,
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    legacy: LegacyStrings,
    stack: Vec<Obj>,
    marks: Vec<usize>,
    memo: HashMap<u64, Obj>,
    nodes: Vec<Node>,
    /// Nodes reachable more than once (via GET or DUP): copied, not moved, at the end.
    shared: Vec<bool>,
    items: usize,
    bytes: usize,
    /// Dict-key bytes of tuple and frozenset nodes already computed.
    key_cache: std::cell::RefCell<HashMap<usize, Option<Vec<u8>>>>,
}

impl<'a> Vm<'a> {
    fn read(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(PickleError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let s = self.read(N)?;
        s.try_into().map_err(|_| PickleError::Truncated)
    }

    fn read_u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.read_array::<1>()?[0])
    }

    fn read_len_u32(&mut self) -> Result<usize, PickleError> {
        usize::try_from(u32::from_le_bytes(self.read_array()?)).map_err(|_| PickleError::Truncated)
    }

    fn read_len_i32(&mut self) -> Result<usize, PickleError> {
        let n = i32::from_le_bytes(self.read_array()?);
        usize::try_from(n).map_err(|_| PickleError::NegativeLength)
    }

    fn read_len_u64(&mut self) -> Result<usize, PickleError> {
        usize::try_from(u64::from_le_bytes(self.read_array()?)).map_err(|_| PickleError::Truncated)
    }

    /// A protocol 0 argument line, without its `\n`.
    fn readline(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = self.data.get(self.pos..).ok_or(PickleError::Truncated)?;
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        self.pos += nl + 1;
        rest.get(..nl).ok_or(PickleError::Truncated)
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, o: Obj) {
        self.stack.push(o);
    }

    fn push_node(&mut self, n: Node) {
        self.nodes.push(n);
        self.shared.push(false);
        self.stack.push(Obj::Ref(self.nodes.len() - 1));
    }

    fn pop(&mut self) -> Result<Obj, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(PickleError::StackUnderflow);
        }
        self.stack.pop().ok_or(PickleError::StackUnderflow)
    }

    fn top(&self) -> Result<Obj, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(PickleError::StackUnderflow);
        }
        self.stack.last().copied().ok_or(PickleError::StackUnderflow)
    }

    fn pop_mark(&mut self) -> Result<Vec<Obj>, PickleError> {
        let mark = self.marks.pop().ok_or(PickleError::MarkNotFound)?;
        if mark > self.stack.len() {
            return Err(PickleError::StackUnderflow);
        }
        Ok(self.stack.split_off(mark))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Obj>, PickleError> {
        if self.stack.len() < self.fence() + n {
            return Err(PickleError::StackUnderflow);
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn mark_shared(&mut self, o: Obj) {
        if let Obj::Ref(i) = o
            && let Some(s) = self.shared.get_mut(i)
        {
            *s = true;
        }
    }

    fn memo_put(&mut self, idx: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        if !self.memo.contains_key(&idx) && self.memo.len() >= self.limits.max_memo {
            return Err(PickleError::MemoFull(self.limits.max_memo));
        }
        self.memo.insert(idx, top);
        Ok(())
    }

    fn memo_get(&mut self, idx: u64) -> Result<(), PickleError> {
        let o = *self
            .memo
            .get(&idx)
            .ok_or(PickleError::MemoNotFound(i64::try_from(idx).unwrap_or(i64::MAX)))?;
        self.mark_shared(o);
        self.push(o);
        Ok(())
    }

    fn legacy_string(&mut self, raw: Vec<u8>) -> Result<(), PickleError> {
        match self.legacy {
            LegacyStrings::Utf8 => {
                let s = String::from_utf8(raw).map_err(|_| PickleError::InvalidUtf8)?;
                self.push_node(Node::Str(s));
            }
            LegacyStrings::Bytes => self.push_node(Node::Bytes(raw)),
        }
        Ok(())
    }

    fn utf8(&mut self, raw: &[u8]) -> Result<(), PickleError> {
        let s = std::str::from_utf8(raw).map_err(|_| PickleError::InvalidUtf8)?;
        self.push_node(Node::Str(s.to_owned()));
        Ok(())
    }

    fn run(&mut self) -> Result<Obj, PickleError> {
        loop {
            let op = self.read_u8().map_err(|_| PickleError::Truncated)?;
            match op {
                b'.' => return self.pop(),
                0x80 => {
                    let v = self.read_u8()?;
                    if v > 5 {
                        return Err(PickleError::UnsupportedProtocol(v));
                    }
                }
                0x95 => {
                    // FRAME: only a promise that the bytes are there.
                    let n = self.read_len_u64()?;
                    let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
                    if end > self.data.len() {
                        return Err(PickleError::Truncated);
                    }
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let o = self.top()?;
                    self.mark_shared(o);
                    self.push(o);
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.read_array()?);
                    self.push(Obj::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.read_u8()?;
                    self.push(Obj::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.read_array()?);
                    self.push(Obj::Int(i64::from(v)));
                }
                0x8a => {
                    let n = usize::from(self.read_u8()?);
                    let raw = self.read(n)?;
                    self.push_int(BigInt::value_from_twos_le(raw))?;
                }
                0x8b => {
                    let n = self.read_len_i32()?;
                    let raw = self.read(n)?;
                    self.push_int(BigInt::value_from_twos_le(raw))?;
                }
                b'I' => {
                    let line = self.readline()?;
                    let v = parse_int_line(line).ok_or(PickleError::BadArgument("INT"))?;
                    self.push_int(v)?;
                }
                b'L' => {
                    let line = self.readline()?;
                    let line = line.strip_suffix(b"L").unwrap_or(line);
                    let v = parse_py_int_base0(line).ok_or(PickleError::BadArgument("LONG"))?;
                    self.push_int(v)?;
                }
                b'F' => {
                    let line = self.readline()?;
                    let f = parse_float_line(line).ok_or(PickleError::BadArgument("FLOAT"))?;
                    self.push(Obj::Float(f));
                }
                b'G' => {
                    let f = f64::from_be_bytes(self.read_array()?);
                    self.push(Obj::Float(f));
                }
                b'S' => {
                    let line = self.readline()?;
                    let raw = parse_string_line(line).ok_or(PickleError::BadArgument("STRING"))?;
                    self.legacy_string(raw)?;
                }
                b'T' => {
                    let n = self.read_len_i32()?;
                    let raw = self.read(n)?.to_vec();
                    self.legacy_string(raw)?;
                }
                b'U' => {
                    let n = usize::from(self.read_u8()?);
                    let raw = self.read(n)?.to_vec();
                    self.legacy_string(raw)?;
                }
                b'V' => {
                    let line = self.readline()?;
                    let s = raw_unicode_escape(line).ok_or(PickleError::BadArgument("UNICODE"))?;
                    self.push_node(Node::Str(s));
                }
                b'X' => {
                    let n = self.read_len_u32()?;
                    let raw = self.read(n)?;
                    self.utf8(raw)?;
                }
                0x8c => {
                    let n = usize::from(self.read_u8()?);
                    let raw = self.read(n)?;
                    self.utf8(raw)?;
                }
                0x8d => {
                    let n = self.read_len_u64()?;
                    let raw = self.read(n)?;
                    self.utf8(raw)?;
                }
                b'B' => {
                    let n = self.read_len_u32()?;
                    let raw = self.read(n)?.to_vec();
                    self.push_node(Node::Bytes(raw));
                }
                b'C' => {
                    let n = usize::from(self.read_u8()?);
                    let raw = self.read(n)?.to_vec();
                    self.push_node(Node::Bytes(raw));
                }
                0x8e => {
                    let n = self.read_len_u64()?;
                    let raw = self.read(n)?.to_vec();
                    self.push_node(Node::Bytes(raw));
                }
                b']' => self.push_node(Node::List(Vec::new())),
                b')' => self.push_node(Node::Tuple(Vec::new())),
                b'}' => self.push_node(Node::Dict(Vec::new(), HashMap::new())),
                0x8f => self.push_node(Node::Set(Vec::new(), HashSet::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let items = self.pop_n(usize::from(op - 0x84))?;
                    self.push_node(Node::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::OddItems("DICT"));
                    }
                    self.push_node(Node::Dict(Vec::new(), HashMap::new()));
                    let dict = self.top()?;
                    self.set_items(dict, items, "DICT")?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let mut members = Vec::new();
                    let mut seen = HashSet::new();
                    for item in items {
                        match self.key_of(item)? {
                            Some(k) => {
                                if seen.insert(k) {
                                    members.push(item);
                                }
                            }
                            None => members.push(item),
                        }
                    }
                    self.push_node(Node::FrozenSet(members));
                }
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top()?;
                    self.append(list, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.append(list, items)?;
                }
                b's' => {
                    let items = self.pop_n(2)?;
                    let dict = self.top()?;
                    self.set_items(dict, items, "SETITEM")?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(PickleError::OddItems("SETITEMS"));
                    }
                    let dict = self.top()?;
                    self.set_items(dict, items, "SETITEMS")?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    self.add_items(set, items)?;
                }
                b'p' => {
                    let line = self.readline()?;
                    let idx = parse_memo_index(line).ok_or(PickleError::BadArgument("PUT"))?;
                    let idx = u64::try_from(idx).map_err(|_| PickleError::NegativeMemoIndex)?;
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = self.read_u8()?;
                    self.memo_put(u64::from(idx))?;
                }
                b'r' => {
                    let idx = u32::from_le_bytes(self.read_array()?);
                    self.memo_put(u64::from(idx))?;
                }
                0x94 => {
                    let idx = self.memo.len() as u64;
                    self.memo_put(idx)?;
                }
                b'g' => {
                    let line = self.readline()?;
                    let idx = parse_memo_index(line).ok_or(PickleError::BadArgument("GET"))?;
                    let idx = u64::try_from(idx).map_err(|_| PickleError::MemoNotFound(idx))?;
                    self.memo_get(idx)?;
                }
                b'h' => {
                    let idx = self.read_u8()?;
                    self.memo_get(u64::from(idx))?;
                }
                b'j' => {
                    let idx = u32::from_le_bytes(self.read_array()?);
                    self.memo_get(u64::from(idx))?;
                }
                b'c' | b'i' => {
                    let module = String::from_utf8_lossy(self.readline()?).into_owned();
                    let name = String::from_utf8_lossy(self.readline()?).into_owned();
                    return Err(PickleError::ForbiddenGlobal { module, name });
                }
                0x93 => {
                    let name = self.pop().ok().and_then(|o| self.str_of(o)).unwrap_or_default();
                    let module = self.pop().ok().and_then(|o| self.str_of(o)).unwrap_or_default();
                    return Err(PickleError::ForbiddenGlobal { module, name });
                }
                b'P' => return Err(PickleError::Forbidden("PERSID")),
                b'Q' => return Err(PickleError::Forbidden("BINPERSID")),
                b'R' => return Err(PickleError::Forbidden("REDUCE")),
                b'b' => {
                    // BUILD with a None state is a no-op in CPython (and so accepted by
                    // carbon); any real state would set attributes, which we never allow.
                    let state = self.pop()?;
                    self.top()?;
                    if !matches!(state, Obj::None) {
                        return Err(PickleError::Forbidden("BUILD"));
                    }
                }
                b'o' => return Err(PickleError::Forbidden("OBJ")),
                0x81 => return Err(PickleError::Forbidden("NEWOBJ")),
                0x92 => return Err(PickleError::Forbidden("NEWOBJ_EX")),
                0x82 => return Err(PickleError::Forbidden("EXT1")),
                0x83 => return Err(PickleError::Forbidden("EXT2")),
                0x84 => return Err(PickleError::Forbidden("EXT4")),
                0x96 => return Err(PickleError::Unsupported("BYTEARRAY8")),
                0x97 => return Err(PickleError::Unsupported("NEXT_BUFFER")),
                0x98 => return Err(PickleError::Unsupported("READONLY_BUFFER")),
                other => return Err(PickleError::UnknownOpcode(other)),
            }
        }
    }

    fn push_int(&mut self, v: Value) -> Result<(), PickleError> {
        match v {
            Value::Int(i) => self.push(Obj::Int(i)),
            Value::Bool(b) => self.push(Obj::Bool(b)),
            Value::BigInt(b) => self.push_node(Node::Big(b)),
            _ => return Err(PickleError::BadArgument("INT")),
        }
        Ok(())
    }

    fn str_of(&self, o: Obj) -> Option<String> {
        match o {
            Obj::Ref(i) => match self.nodes.get(i)? {
                Node::Str(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    fn append(&mut self, list: Obj, items: Vec<Obj>) -> Result<(), PickleError> {
        // CPython returns before looking at the target when there is nothing to add.
        if items.is_empty() {
            return Ok(());
        }
        let Obj::Ref(i) = list else {
            return Err(PickleError::WrongType {
                op: "APPEND",
                want: "list",
            });
        };
        match self.nodes.get_mut(i) {
            Some(Node::List(v)) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(PickleError::WrongType {
                op: "APPEND",
                want: "list",
            }),
        }
    }

    fn set_items(&mut self, dict: Obj, items: Vec<Obj>, op: &'static str) -> Result<(), PickleError> {
        // CPython returns before looking at the target when there is nothing to add.
        if items.is_empty() {
            return Ok(());
        }
        let Obj::Ref(i) = dict else {
            return Err(PickleError::WrongType { op, want: "dict" });
        };
        if !matches!(self.nodes.get(i), Some(Node::Dict(..))) {
            return Err(PickleError::WrongType { op, want: "dict" });
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let key = self.key_of(k)?;
            let Some(Node::Dict(entries, index)) = self.nodes.get_mut(i) else {
                return Err(PickleError::WrongType { op, want: "dict" });
            };
            match key {
                Some(key) => match index.get(&key) {
                    Some(&slot) => {
                        if let Some(e) = entries.get_mut(slot) {
                            e.1 = v;
                        }
                    }
                    None => {
                        index.insert(key, entries.len());
                        entries.push((k, v));
                    }
                },
                None => entries.push((k, v)),
            }
        }
        Ok(())
    }

    fn add_items(&mut self, set: Obj, items: Vec<Obj>) -> Result<(), PickleError> {
        // CPython returns before looking at the target when there is nothing to add.
        if items.is_empty() {
            return Ok(());
        }
        let Obj::Ref(i) = set else {
            return Err(PickleError::WrongType {
                op: "ADDITEMS",
                want: "set",
            });
        };
        if !matches!(self.nodes.get(i), Some(Node::Set(..))) {
            return Err(PickleError::WrongType {
                op: "ADDITEMS",
                want: "set",
            });
        }
        for item in items {
            let key = self.key_of(item)?;
            let Some(Node::Set(members, index)) = self.nodes.get_mut(i) else {
                return Err(PickleError::WrongType {
                    op: "ADDITEMS",
                    want: "set",
                });
            };
            match key {
                Some(k) => {
                    if index.insert(k) {
                        members.push(item);
                    }
                }
                None => members.push(item),
            }
        }
        Ok(())
    }

    /// A byte string equal for exactly the keys Python's dict treats as equal (`1 == 1.0 ==
    /// True`), or `None` for a NaN-containing key, which equals nothing.
    fn key_of(&mut self, o: Obj) -> Result<Option<Vec<u8>>, PickleError> {
        let mut out = Vec::new();
        let ok = self.write_key(o, &mut out, 0)?;
        self.bytes = self.bytes.saturating_add(out.len());
        if self.bytes > self.limits.max_bytes {
            return Err(PickleError::TooManyBytes(self.limits.max_bytes));
        }
        Ok(ok.then_some(out))
    }

    /// Key bytes of a tuple or frozenset node (uncached; see [`Vm::write_key`]).
    fn write_container_key(&self, i: usize, out: &mut Vec<u8>, depth: usize) -> Result<bool, PickleError> {
        match self.nodes.get(i) {
            Some(Node::Tuple(items)) => {
                out.push(b't');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for &item in items {
                    if !self.write_key(item, out, depth + 1)? {
                        return Ok(false);
                    }
                }
            }
            Some(Node::FrozenSet(items)) => {
                let mut keys = Vec::with_capacity(items.len());
                let mut total = out.len();
                for &item in items {
                    let mut k = Vec::new();
                    if !self.write_key(item, &mut k, depth + 1)? {
                        return Ok(false);
                    }
                    total = total.saturating_add(k.len());
                    if total > self.limits.max_bytes {
                        return Err(PickleError::TooManyBytes(self.limits.max_bytes));
                    }
                    keys.push(k);
                }
                keys.sort();
                out.push(b'z');
                out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
                for k in keys {
                    out.extend_from_slice(&k);
                }
            }
            _ => return Err(PickleError::Unhashable),
        }
        Ok(true)
    }

    fn write_key(&self, o: Obj, out: &mut Vec<u8>, depth: usize) -> Result<bool, PickleError> {
        if depth > self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        if out.len() > self.limits.max_bytes {
            return Err(PickleError::TooManyBytes(self.limits.max_bytes));
        }
        // Tuples and frozensets are immutable, so their key is computed once per node: memo
        // sharing (t_i = (t_{i-1}, t_{i-1})) then costs copies, not exponential recursion.
        if let Obj::Ref(i) = o
            && matches!(self.nodes.get(i), Some(Node::Tuple(_) | Node::FrozenSet(_)))
        {
            if let Some(cached) = self.key_cache.borrow().get(&i) {
                let Some(k) = cached else { return Ok(false) };
                if out.len().saturating_add(k.len()) > self.limits.max_bytes {
                    return Err(PickleError::TooManyBytes(self.limits.max_bytes));
                }
                out.extend_from_slice(k);
                return Ok(true);
            }
            let mut buf = Vec::new();
            let ok = self.write_container_key(i, &mut buf, depth)?;
            if out.len().saturating_add(buf.len()) > self.limits.max_bytes {
                return Err(PickleError::TooManyBytes(self.limits.max_bytes));
            }
            out.extend_from_slice(&buf);
            self.key_cache.borrow_mut().insert(i, ok.then_some(buf));
            return Ok(ok);
        }
        let int_key = |out: &mut Vec<u8>, twos: &[u8]| {
            out.push(b'i');
            out.extend_from_slice(&(twos.len() as u64).to_le_bytes());
            out.extend_from_slice(twos);
        };
        match o {
            Obj::None => out.push(b'N'),
            Obj::Bool(b) => int_key(out, &magnitude_to_twos(&[u8::from(b)], false)),
            Obj::Int(i) => int_key(out, &int_twos(i)),
            Obj::Float(f) => {
                if f.is_nan() {
                    return Ok(false);
                }
                match float_integer_twos(f) {
                    Some(twos) => int_key(out, &twos),
                    None => {
                        out.push(b'f');
                        out.extend_from_slice(&f.to_bits().to_le_bytes());
                    }
                }
            }
            Obj::Ref(i) => match self.nodes.get(i) {
                Some(Node::Big(b)) => int_key(out, b.to_twos_le()),
                Some(Node::Str(s)) => {
                    out.push(b's');
                    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                Some(Node::Bytes(b)) => {
                    out.push(b'b');
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
                _ => return Err(PickleError::Unhashable),
            },
        }
        Ok(true)
    }

    fn count(&mut self, items: usize, bytes: usize) -> Result<(), PickleError> {
        self.items = self.items.saturating_add(items);
        if self.items > self.limits.max_items {
            return Err(PickleError::TooManyItems(self.limits.max_items));
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_bytes {
            return Err(PickleError::TooManyBytes(self.limits.max_bytes));
        }
        Ok(())
    }

    /// Copies the object graph out as a tree, moving nodes that are referenced only once.
    fn build(&mut self, o: Obj, depth: usize, visiting: &mut Vec<bool>) -> Result<Value, PickleError> {
        self.count(1, 0)?;
        let i = match o {
            Obj::None => return Ok(Value::None),
            Obj::Bool(b) => return Ok(Value::Bool(b)),
            Obj::Int(v) => return Ok(Value::Int(v)),
            Obj::Float(f) => return Ok(Value::Float(f)),
            Obj::Ref(i) => i,
        };
        let shared = self.shared.get(i).copied().unwrap_or(true);
        // Leaves first: they need no depth or cycle bookkeeping.
        match self.nodes.get(i) {
            Some(Node::Str(s)) => {
                let n = s.len();
                let copy = shared.then(|| s.clone());
                self.count(0, n)?;
                return Ok(Value::Str(match copy {
                    Some(s) => s,
                    None => self.take_str(i),
                }));
            }
            Some(Node::Bytes(b)) => {
                let n = b.len();
                let copy = shared.then(|| b.clone());
                self.count(0, n)?;
                return Ok(Value::Bytes(match copy {
                    Some(b) => b,
                    None => self.take_bytes(i),
                }));
            }
            Some(Node::Big(b)) => {
                let b = b.clone();
                self.count(0, b.to_twos_le().len())?;
                return Ok(Value::BigInt(b));
            }
            Some(Node::Taken) | None => return Err(PickleError::Recursive),
            _ => {}
        }
        if depth >= self.limits.max_depth {
            return Err(PickleError::TooDeep(self.limits.max_depth));
        }
        if visiting.get(i).copied().unwrap_or(true) {
            return Err(PickleError::Recursive);
        }
        if let Some(v) = visiting.get_mut(i) {
            *v = true;
        }
        let node = if shared {
            match self.nodes.get(i) {
                Some(Node::List(v)) => Node::List(v.clone()),
                Some(Node::Tuple(v)) => Node::Tuple(v.clone()),
                Some(Node::Set(v, _)) => Node::Set(v.clone(), HashSet::new()),
                Some(Node::FrozenSet(v)) => Node::FrozenSet(v.clone()),
                Some(Node::Dict(e, _)) => Node::Dict(e.clone(), HashMap::new()),
                _ => return Err(PickleError::Recursive),
            }
        } else {
            self.nodes
                .get_mut(i)
                .map(|n| std::mem::replace(n, Node::Taken))
                .unwrap_or(Node::Taken)
        };
        let value = match node {
            Node::List(v) => Value::List(self.build_seq(v, depth, visiting)?),
            Node::Tuple(v) => Value::Tuple(self.build_seq(v, depth, visiting)?),
            Node::Set(v, _) => Value::Set(self.build_seq(v, depth, visiting)?),
            Node::FrozenSet(v) => Value::FrozenSet(self.build_seq(v, depth, visiting)?),
            Node::Dict(entries, _) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let k = self.build(k, depth + 1, visiting)?;
                    let v = self.build(v, depth + 1, visiting)?;
                    out.push((k, v));
                }
                Value::Dict(out)
            }
            _ => return Err(PickleError::Recursive),
        };
        if let Some(v) = visiting.get_mut(i) {
            *v = false;
        }
        Ok(value)
    }

    fn build_seq(
        &mut self,
        items: Vec<Obj>,
        depth: usize,
        visiting: &mut Vec<bool>,
    ) -> Result<Vec<Value>, PickleError> {
        items
            .into_iter()
            .map(|o| self.build(o, depth + 1, visiting))
            .collect()
    }

    fn take_str(&mut self, i: usize) -> String {
        match self.nodes.get_mut(i).map(|n| std::mem::replace(n, Node::Taken)) {
            Some(Node::Str(s)) => s,
            _ => String::new(),
        }
    }

    fn take_bytes(&mut self, i: usize) -> Vec<u8> {
        match self.nodes.get_mut(i).map(|n| std::mem::replace(n, Node::Taken)) {
            Some(Node::Bytes(b)) => b,
            _ => Vec::new(),
        }
    }
}

fn int_twos(i: i64) -> Vec<u8> {
    let neg = i < 0;
    let mag = i.unsigned_abs().to_le_bytes();
    let mut mag = mag.to_vec();
    while mag.last() == Some(&0) {
        mag.pop();
    }
    magnitude_to_twos(&mag, neg)
}

/// The exact integer an integral float equals, as two's complement; `None` if not integral.
fn float_integer_twos(f: f64) -> Option<Vec<u8>> {
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if f.abs() < 9.2e18 {
        return Some(int_twos(f as i64));
    }
    // |f| >= 2**63: mantissa (53 bits) shifted left by the binary exponent.
    let bits = f.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1 << 52) - 1)) | (1 << 52);
    let shift = usize::try_from(exp).ok()?;
    let mut mag = vec![0u8; shift / 8 + 9];
    let wide = u128::from(mant) << (shift % 8);
    for (k, b) in wide.to_le_bytes().iter().enumerate() {
        if let Some(slot) = mag.get_mut(shift / 8 + k) {
            *slot = *b;
        }
    }
    while mag.last() == Some(&0) {
        mag.pop();
    }
    Some(magnitude_to_twos(&mag, f < 0.0))
}

/// The `INT` opcode as CPython's C unpickler reads it: `strtol(s, 0)` over the whole line
/// (`00`/`01` are the protocol 0 booleans), else Python's `int(s, 0)`.
fn parse_int_line(line: &[u8]) -> Option<Value> {
    if let Some(x) = strtol_base0(line) {
        if line.len() == 2 && (x == 0 || x == 1) {
            return Some(Value::Bool(x == 1));
        }
        return Some(Value::Int(x));
    }
    parse_py_int_base0(line)
}

/// C `strtol(s, &end, 0)` that must consume the whole input; `None` on overflow or junk.
fn strtol_base0(s: &[u8]) -> Option<i64> {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
    {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let (radix, start) = match (s.get(i), s.get(i + 1)) {
        (Some(b'0'), Some(b'x' | b'X')) if s.get(i + 2).is_some_and(u8::is_ascii_hexdigit) => (16, i + 2),
        (Some(b'0'), _) => (8, i),
        _ => (10, i),
    };
    let digits = s.get(start..)?;
    if digits.is_empty() {
        return None;
    }
    let mut v: i128 = 0;
    for &b in digits {
        let d = char::from(b).to_digit(radix)?;
        v = v * i128::from(radix) + i128::from(d);
        if v > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Python's `int(text, 0)` (surrounding whitespace, sign, `0x`/`0o`/`0b`, underscores between
/// digits; decimal limited to 4300 digits as Python 3.11 does).
fn parse_py_int_base0(line: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.strip_prefix('_').unwrap_or(d))
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.strip_prefix('_').unwrap_or(d))
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.strip_prefix('_').unwrap_or(d))
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix == 10 {
        if clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0') {
            return None;
        }
        if clean.len() > 4300 {
            return None;
        }
        let signed = if neg { format!("-{clean}") } else { clean };
        return BigInt::parse_decimal(&signed);
    }
    let v = i128::from_str_radix(&clean, radix).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok().map(Value::Int)
}

/// The `FLOAT` opcode: `PyOS_string_to_double` over the whole line, overflow is an error.
fn parse_float_line(line: &[u8]) -> Option<f64> {
    let f = crate::pyfloat::parse_literal(line)?;
    let word = line.iter().any(|b| matches!(b, b'i' | b'I' | b'n' | b'N'));
    if f.is_infinite() && !word { None } else { Some(f) }
}

/// Memo index text for `GET`/`PUT` (`int(text)` in base 10).
fn parse_memo_index(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    clean.parse().ok()
}

/// The `STRING` opcode: a quoted Python 2 string literal, decoded like `codecs.escape_decode`.
fn parse_string_line(line: &[u8]) -> Option<Vec<u8>> {
    let (&first, rest) = line.split_first()?;
    let (&last, inner) = rest.split_last()?;
    if first != last || !(first == b'\'' || first == b'"') {
        return None;
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while let Some(&b) = inner.get(i) {
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let &e = inner.get(i)?;
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut c = u32::from(e - b'0');
                for _ in 0..2 {
                    match inner.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            c = c * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((c & 0xff) as u8);
            }
            b'x' => {
                let hi = char::from(*inner.get(i)?).to_digit(16)?;
                let lo = char::from(*inner.get(i + 1)?).to_digit(16)?;
                i += 2;
                out.push((hi * 16 + lo) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// The `UNICODE` opcode: Python's `raw-unicode-escape` codec (latin-1 bytes, `\uXXXX` and
/// `\UXXXXXXXX` escapes after an odd number of backslashes).
fn raw_unicode_escape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        if b != b'\\' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let start = i;
        while line.get(i) == Some(&b'\\') {
            out.push('\\');
            i += 1;
        }
        let odd = (i - start) % 2 == 1;
        let count = match line.get(i) {
            Some(b'u') if odd => 4,
            Some(b'U') if odd => 8,
            _ => continue,
        };
        out.pop();
        i += 1;
        let hex = line.get(i..i + count)?;
        let hex = std::str::from_utf8(hex).ok()?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let cp = u32::from_str_radix(hex, 16).ok()?;
        out.push(char::from_u32(cp)?);
        i += count;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_arguments() {
        assert_eq!(parse_int_line(b"01"), Some(Value::Bool(true)));
        assert_eq!(parse_int_line(b"00"), Some(Value::Bool(false)));
        assert_eq!(parse_int_line(b"1"), Some(Value::Int(1)));
        assert_eq!(parse_int_line(b"010"), Some(Value::Int(8)));
        assert_eq!(parse_int_line(b"-42"), Some(Value::Int(-42)));
        assert_eq!(parse_int_line(b"0x1f"), Some(Value::Int(31)));
        assert_eq!(parse_int_line(b"1_000"), Some(Value::Int(1000)));
        assert_eq!(parse_int_line(b"x"), None);
        assert!(matches!(
            parse_int_line(b"99999999999999999999"),
            Some(Value::BigInt(_))
        ));
        assert_eq!(parse_float_line(b"1.5"), Some(1.5));
        assert_eq!(parse_float_line(b"1e999"), None);
        assert!(parse_float_line(b"inf").is_some_and(f64::is_infinite));
        assert_eq!(parse_float_line(b" 1"), None);
        assert_eq!(parse_string_line(br"'a\x41\101\n\q'"), Some(b"aAA\n\\q".to_vec()));
        assert_eq!(parse_string_line(b"'abc"), None);
        assert_eq!(parse_string_line(br"'\x4'"), None);
        assert_eq!(
            raw_unicode_escape(br"a\u00e9\\u0041\U0001F600"),
            Some("aé\\\\u0041😀".to_string())
        );
        assert_eq!(raw_unicode_escape(br"\u12"), None);
        assert_eq!(raw_unicode_escape(br"\ud800"), None);
    }

    #[test]
    fn exponential_keys_hit_the_byte_limit() {
        // t_i = (t_{i-1}, t_{i-1}): a 60-level tuple whose key would be 2**60 bytes.
        let mut p = b"\x80\x04K\x01q\x00".to_vec();
        for i in 1..60u8 {
            p.extend_from_slice(&[b'h', i - 1, b'h', i - 1, 0x86, b'q', i]);
        }
        p.extend_from_slice(b"}h\x3bNs.");
        assert_eq!(
            loads(&p),
            Err(PickleError::TooManyBytes(Limits::default().max_bytes))
        );
        // f_i = frozenset({f_{i-1}, (f_{i-1},)}): the same through frozenset members.
        let mut p = b"\x80\x04K\x01\x85q\x00".to_vec();
        for i in 1..60u8 {
            p.extend_from_slice(&[b'(', b'h', i - 1, b'h', i - 1, 0x85, 0x91, b'q', i]);
        }
        p.extend_from_slice(b"}h\x3bNs.");
        assert!(matches!(
            loads(&p),
            Err(PickleError::TooManyBytes(_) | PickleError::TooDeep(_))
        ));
    }

    #[test]
    fn float_keys() {
        assert_eq!(float_integer_twos(1.0), Some(int_twos(1)));
        assert_eq!(float_integer_twos(-0.0), Some(int_twos(0)));
        assert_eq!(float_integer_twos(0.5), None);
        // 2**64 as float equals the int 2**64.
        let mut want = vec![0u8; 8];
        want.push(1);
        assert_eq!(float_integer_twos(18446744073709551616.0), Some(want));
        assert_eq!(
            float_integer_twos(-9223372036854775808.0),
            Some(int_twos(i64::MIN))
        );
    }
}
