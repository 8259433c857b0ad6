//! The metric-name index: every `*.wsp` under the root as a dotted name, kept sorted so a find whose
//! leading segments are literal only looks at the matching range.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use carbide_query::PathGlob;
use parking_lot::RwLock;

use crate::StorageError;

/// Directories nested deeper than this are not walked (a symlink loop ends here).
const MAX_WALK_DEPTH: usize = 64;

/// A find result: a metric (leaf) or a prefix of metrics (branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The dotted path (`servers.web1.cpu`).
    pub path: String,
    /// Whether a metric ends here; a branch has metrics below it.
    pub is_leaf: bool,
}

impl Node {
    /// The last segment, which graphite-web calls the node's name.
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

/// The set of known metric names, shared between the HTTP workers and whoever creates metrics.
#[derive(Debug, Default)]
pub struct Index {
    names: RwLock<BTreeSet<String>>,
}

impl Index {
    /// Adds a metric name (idempotent).
    pub fn insert(&self, name: &str) {
        if !self.names.read().contains(name) {
            self.names.write().insert(name.to_string());
        }
    }

    /// Whether a metric is known.
    pub fn contains(&self, name: &str) -> bool {
        self.names.read().contains(name)
    }

    /// Number of known metrics.
    pub fn len(&self) -> usize {
        self.names.read().len()
    }

    /// Whether no metric is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every metric name, sorted (`/metrics/index.json`).
    pub fn all(&self) -> Vec<String> {
        self.names.read().iter().cloned().collect()
    }

    pub(crate) fn replace_with(&self, other: &Index) {
        let fresh = std::mem::take(&mut *other.names.write());
        *self.names.write() = fresh;
    }

    /// Walks `root` and adds every whisper file below it.
    pub fn scan(&self, root: &Path) -> Result<(), StorageError> {
        let mut found = Vec::new();
        walk(root, &mut Vec::new(), &mut found, 0)?;
        let mut names = self.names.write();
        names.extend(found);
        Ok(())
    }

    /// The nodes matching `pattern` (per-segment globs; `**` matches any number of segments and then
    /// only leaves), sorted by path, a branch before a leaf of the same path.
    pub fn find(&self, pattern: &str) -> Result<Vec<Node>, StorageError> {
        let glob = PathGlob::new(pattern).map_err(|e| StorageError::Pattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        let segments: Vec<&str> = pattern.split('.').collect();
        let globstar = segments.contains(&"**");
        let depth = glob.depth();
        // Leading literal segments narrow the scan to one range of the sorted set.
        let literal: Vec<&str> = segments
            .iter()
            .take_while(|s| !s.contains(['*', '?', '[', '{', '\\']))
            .copied()
            .collect();
        let prefix = if literal.is_empty() {
            String::new()
        } else if literal.len() == segments.len() {
            literal.join(".")
        } else {
            format!("{}.", literal.join("."))
        };
        let names = self.names.read();
        // Paths borrow from the index while it is read-locked: a scan over 100 000 names
        // allocates only for what it finds.
        let mut found: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for name in names.range(prefix.clone()..) {
            if !name.starts_with(&prefix) {
                break;
            }
            if globstar {
                if glob.matches(name) {
                    found.entry(name.as_str()).or_default().1 = true;
                }
                continue;
            }
            // Match segment by segment, stopping at the first miss; `end` is where the matched
            // path ends within the name.
            let mut segments = name.split('.');
            let mut end = 0;
            let mut all = true;
            for i in 0..depth {
                match (segments.next(), glob.segment(i)) {
                    (Some(part), Some(g)) if g.matches(part) => {
                        end += part.len() + usize::from(i > 0);
                    }
                    _ => {
                        all = false;
                        break;
                    }
                }
            }
            if !all {
                continue;
            }
            let deeper = segments.next().is_some();
            let entry = found.entry(&name[..end]).or_default();
            if deeper {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for (path, (branch, leaf)) in found {
            if branch {
                out.push(Node {
                    path: path.to_string(),
                    is_leaf: false,
                });
            }
            if leaf {
                out.push(Node {
                    path: path.to_string(),
                    is_leaf: true,
                });
            }
        }
        Ok(out)
    }
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<String>,
    depth: usize,
) -> Result<(), StorageError> {
    if depth > MAX_WALK_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| StorageError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            prefix.push(name);
            walk(&path, prefix, out, depth + 1)?;
            prefix.pop();
        } else if let Some(stem) = name.strip_suffix(".wsp") {
            if stem.is_empty() {
                continue;
            }
            let mut full = prefix.join(".");
            if !full.is_empty() {
                full.push('.');
            }
            full.push_str(stem);
            out.push(full);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(names: &[&str]) -> Index {
        let i = Index::default();
        for n in names {
            i.insert(n);
        }
        i
    }

    #[test]
    fn find_table() {
        let i = index(&["a.b.c", "a.b.d", "a.x", "a.x.y", "b.c", "ab.c"]);
        let cases: &[(&str, &[(&str, bool)])] = &[
            ("*", &[("a", false), ("ab", false), ("b", false)]),
            ("a.*", &[("a.b", false), ("a.x", false), ("a.x", true)]),
            ("a.b.{c,d}", &[("a.b.c", true), ("a.b.d", true)]),
            ("a.b.c", &[("a.b.c", true)]),
            ("a", &[("a", false)]),
            ("a.b.c.d", &[]),
            ("*.c", &[("ab.c", true), ("b.c", true)]),
            (
                "a.**",
                &[("a.b.c", true), ("a.b.d", true), ("a.x", true), ("a.x.y", true)],
            ),
            ("a?.c", &[("ab.c", true)]),
            ("[ab].c", &[("b.c", true)]),
        ];
        for (pattern, want) in cases {
            let got: Vec<(String, bool)> = i
                .find(pattern)
                .unwrap()
                .into_iter()
                .map(|n| (n.path, n.is_leaf))
                .collect();
            let want: Vec<(String, bool)> = want.iter().map(|(p, l)| (p.to_string(), *l)).collect();
            assert_eq!(got, want, "{pattern}");
        }
    }
}
