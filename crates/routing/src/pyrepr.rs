//! Python 3's `repr()` of a `str`, because carbon's carbon_ch ring hashes `str((server, instance))`.
//!
//! The rules (CPython's `unicode_repr`): single quotes unless the text holds a `'` and no `"`; the
//! chosen quote and the backslash are escaped; `\t`, `\n`, `\r` by name; other ASCII controls and
//! DEL as `\xNN`; non-ASCII stays as it is when `str.isprintable()` holds for it, else `\xNN`,
//! `\uNNNN` or `\UNNNNNNNN` by size.

use std::fmt::Write as _;

use crate::pyrepr_table::NON_PRINTABLE;

/// Whether Python 3.11 prints the non-ASCII character `c` as it is in a repr.
fn printable_non_ascii(c: char) -> bool {
    let cp = u32::from(c);
    // Find the last range starting at or before cp.
    let idx = NON_PRINTABLE.partition_point(|&(start, _)| start <= cp);
    match idx.checked_sub(1).and_then(|i| NON_PRINTABLE.get(i)) {
        Some(&(_, end)) => cp > end,
        None => true,
    }
}

/// Appends Python's `repr(s)` to `out`.
pub(crate) fn push_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c < ' ' || c == '\x7f' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_ascii() || printable_non_ascii(c) => out.push(c),
            c => {
                let cp = u32::from(c);
                let _ = if cp <= 0xff {
                    write!(out, "\\x{cp:02x}")
                } else if cp <= 0xffff {
                    write!(out, "\\u{cp:04x}")
                } else {
                    write!(out, "\\U{cp:08x}")
                };
            }
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(s: &str) -> String {
        let mut out = String::new();
        push_repr(&mut out, s);
        out
    }

    #[test]
    fn matches_python_repr() {
        // Each expectation was printed by /usr/bin/python3 (3.11): print(repr(s)).
        let cases: &[(&str, &str)] = &[
            ("127.0.0.1", "'127.0.0.1'"),
            ("", "''"),
            ("it's", "\"it's\""),
            ("both ' and \"", "'both \\' and \"'"),
            ("say \"hi\"", "'say \"hi\"'"),
            ("back\\slash", "'back\\\\slash'"),
            ("tab\there", "'tab\\there'"),
            ("nl\ncr\r", "'nl\\ncr\\r'"),
            ("\x00\x1f\x7f", "'\\x00\\x1f\\x7f'"),
            ("caf\u{e9}", "'caf\u{e9}'"),
            ("nb\u{a0}sp", "'nb\\xa0sp'"),
            ("\u{85}", "'\\x85'"),
            ("soft\u{ad}", "'soft\\xad'"),
            ("\u{200b}", "'\\u200b'"),
            ("\u{2028}", "'\\u2028'"),
            ("\u{feff}", "'\\ufeff'"),
            ("\u{e000}", "'\\ue000'"),
            ("\u{10ffff}", "'\\U0010ffff'"),
            ("\u{1f600}", "'\u{1f600}'"),
            ("\u{3000}", "'\\u3000'"),
            ("\u{4e2d}\u{6587}", "'\u{4e2d}\u{6587}'"),
        ];
        for (input, want) in cases {
            assert_eq!(repr(input), *want, "repr({input:?})");
        }
    }
}
