//! `/metrics/find`'s default `treejson` format, written straight into a string.
//!
//! Grafana's metric browser asks for it on every keystroke, and a wide glob answers with tens of
//! thousands of nodes: building a `serde_json::Value` map per node (five allocated keys each) cost
//! more than finding them. Keys come in graphite-web's order (`tree_json` in metrics/views.py:
//! text, id, then allowChildren, expandable, leaf).

use std::collections::HashSet;

use carbide_storage::Node;

/// graphite-web's `tree_json(nodes, base_path, wildcards)`: an optional `*` node first when more
/// than one node matched, then each distinct name once, branches before leaves. `nodes` must be
/// sorted as graphite-web sorts them (by name, stably).
pub fn tree_json(nodes: &[Node], base_path: &str, wildcards: bool) -> String {
    let mut out = String::with_capacity(16 + nodes.len() * (96 + 2 * base_path.len()));
    out.push('[');
    let mut first = true;
    if nodes.len() > 1 && wildcards {
        let leaf = nodes.iter().all(|n| n.is_leaf);
        push_node(&mut out, &mut first, "*", base_path, "*", leaf);
    }
    let mut seen: HashSet<&str> = HashSet::with_capacity(nodes.len());
    let mut leaves: Vec<&str> = Vec::new();
    for n in nodes {
        let name = n.name();
        if !seen.insert(name) {
            continue;
        }
        if n.is_leaf {
            leaves.push(name);
        } else {
            push_node(&mut out, &mut first, &unquote_plus(name), base_path, name, false);
        }
    }
    for name in leaves {
        push_node(&mut out, &mut first, &unquote_plus(name), base_path, name, true);
    }
    out.push(']');
    out
}

fn push_node(out: &mut String, first: &mut bool, text: &str, base_path: &str, name: &str, leaf: bool) {
    if !std::mem::take(first) {
        out.push_str(", ");
    }
    out.push_str("{\"text\": ");
    push_json_string(out, text);
    out.push_str(", \"id\": ");
    let mut id = String::with_capacity(base_path.len() + name.len());
    id.push_str(base_path);
    id.push_str(name);
    push_json_string(out, &id);
    out.push_str(if leaf {
        ", \"allowChildren\": 0, \"expandable\": 0, \"leaf\": 1}"
    } else {
        ", \"allowChildren\": 1, \"expandable\": 1, \"leaf\": 0}"
    });
}

/// A JSON string literal, escaped as serde_json escapes it.
fn push_json_string(out: &mut String, s: &str) {
    // Serialising a &str cannot fail; an empty literal keeps the output valid if it ever did.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// Python's `urllib.parse.unquote_plus`: `+` is a space and `%XX` a byte; a `%` not followed by two
/// hex digits stays as it is, and bytes that are not UTF-8 become U+FFFD (errors='replace').
pub fn unquote_plus(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|&h| (h as char).to_digit(16));
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, is_leaf: bool) -> Node {
        Node {
            path: path.to_string(),
            is_leaf,
        }
    }

    #[test]
    fn branches_first_each_name_once_with_the_wildcard_node() {
        let nodes = [node("a.b", false), node("a.b", true), node("a.c", true)];
        let text = tree_json(&nodes, "a.", true);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        // graphite-web marks the wildcard a leaf only when every node is one.
        let expected = serde_json::json!([
            {"text": "*", "id": "a.*", "allowChildren": 1, "expandable": 1, "leaf": 0},
            {"text": "b", "id": "a.b", "allowChildren": 1, "expandable": 1, "leaf": 0},
            {"text": "c", "id": "a.c", "allowChildren": 0, "expandable": 0, "leaf": 1},
        ]);
        assert_eq!(v, expected);
        assert!(text.starts_with("[{\"text\": \"*\", \"id\": \"a.*\""), "{text}");
        assert_eq!(tree_json(&[], "", true), "[]");
    }

    #[test]
    fn text_is_unquoted_as_python_does_and_strings_are_escaped() {
        assert_eq!(unquote_plus("a+b%41%zz%4"), "a bA%zz%4");
        assert_eq!(unquote_plus("%ff"), "\u{fffd}");
        let text = tree_json(&[node("x.q\"u+o%41", true)], "x.", false);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["text"], "q\"u oA");
        assert_eq!(v[0]["id"], "x.q\"u+o%41");
    }
}
