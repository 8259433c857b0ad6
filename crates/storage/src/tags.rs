//! The tag index: every tagged series (`name;tag=value;…`) this store knows, with graphite-web's
//! local tag database answers over it (`graphite/tags/localdatabase.py` and `tags/base.py`), so
//! `seriesByTag` and the `/tags` API need no external TagDB.
//!
//! Series come from three places: `_tagged/` files whose names can be decoded (carbon's readable
//! `TAG_HASH_FILENAMES = False` layout), the [`TagLog`] beside the data (which remembers names whose
//! files are named by hash, and `tagSeries`/`delSeries` calls), and the cache's `on_create` hook.
//!
//! graphite-web numbers tags and values in its SQL tables in the order it first sees them and shows
//! those ids in `/tags` answers; [`TagIndex`] numbers them the same way (tags, then values, each in
//! the order the series' name lists them, `name` last), and never forgets a tag or value once seen,
//! as graphite-web keeps the rows when a series is deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use carbide_protocol::tags::{TagError as ParseError, TaggedSeries, sha256_hex};
use carbide_query::tags::{TagError as ExprError, TagQuery};
use parking_lot::RwLock;
use regex::Regex;

/// Why a tag operation was refused (graphite-web answers these as 400 or 500 with `{"error": …}`).
#[derive(Debug, thiserror::Error)]
pub enum TagIndexError {
    /// A series name that does not parse as a tagged name, with graphite-web's message.
    #[error("{0}")]
    Series(String),
    /// A bad seriesByTag expression or query.
    #[error("{0}")]
    Expr(#[from] ExprError),
    /// A `filter` regex that does not compile.
    #[error("invalid filter regex {filter:?}: {reason}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// The regex compiler's complaint.
        reason: String,
    },
}

/// A tag or value with graphite-web's row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// The id graphite-web's tables would give it.
    pub id: u64,
    /// The tag or value.
    pub text: String,
}

/// One value of a tag and how many series carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueCount {
    /// The value's id.
    pub id: u64,
    /// The value.
    pub value: String,
    /// Series with this tag set to this value.
    pub count: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Normalised path → tags in the name's order (`name` last, or where the name put it).
    series: BTreeMap<String, Vec<(String, String)>>,
    /// tag → value → paths.
    by_tag: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    tag_ids: HashMap<String, u64>,
    value_ids: HashMap<String, u64>,
    /// The last id handed out by each table's `INSERT OR IGNORE` (sqlite's AUTOINCREMENT spends an
    /// id on every row of the statement, ignored ones included).
    tag_seq: u64,
    value_seq: u64,
}

impl State {
    /// Adds a series; `number` spends ids as graphite-web's `tag_series` does for a series its
    /// tables do not hold yet.
    fn insert(&mut self, path: String, tags: Vec<(String, String)>, number: bool) {
        if self.series.contains_key(&path) {
            return;
        }
        for (t, _) in &tags {
            if number || !self.tag_ids.contains_key(t) {
                self.tag_seq += 1;
            }
            let next = self.tag_seq;
            self.tag_ids.entry(t.clone()).or_insert(next);
        }
        for (_, v) in &tags {
            if number || !self.value_ids.contains_key(v) {
                self.value_seq += 1;
            }
            let next = self.value_seq;
            self.value_ids.entry(v.clone()).or_insert(next);
        }
        for (t, v) in &tags {
            self.by_tag
                .entry(t.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(path.clone());
        }
        self.series.insert(path, tags);
    }

    fn remove(&mut self, path: &str) -> bool {
        let Some(tags) = self.series.remove(path) else {
            return false;
        };
        for (t, v) in tags {
            if let Some(values) = self.by_tag.get_mut(&t) {
                if let Some(paths) = values.get_mut(&v) {
                    paths.remove(path);
                    if paths.is_empty() {
                        values.remove(&v);
                    }
                }
                if values.is_empty() {
                    self.by_tag.remove(&t);
                }
            }
        }
        true
    }
}

/// Parses a series name as graphite-web's `TaggedSeries.parse`: (normalised path, tags).
pub fn parse_series(path: &str) -> Result<(String, Vec<(String, String)>), TagIndexError> {
    let parsed = TaggedSeries::parse(path).map_err(|e| TagIndexError::Series(graphite_message(path, &e)))?;
    Ok((parsed.path(), parsed.tags))
}

/// The text of the exception graphite-web's `TaggedSeries.parse` raises.
fn graphite_message(path: &str, e: &ParseError) -> String {
    match e {
        ParseError::NoMetric => format!("Cannot parse path {path}, no metric found"),
        ParseError::InvalidSegment(seg) => format!("Cannot parse path {path}, invalid segment {seg}"),
        ParseError::TooManyBraces => "too many values to unpack (expected 2)".to_string(),
        ParseError::EmptyValue(tag) => format!("Value for tag \"{tag}\" may not be empty"),
        ParseError::BadTagChar { ch, tag } => format!("Character \"{ch}\" is not allowed in tag \"{tag}\""),
        ParseError::SemicolonInValue { tag, value } => {
            format!("Character \";\" is not allowed in value \"{value}\" of tag {tag}")
        }
        ParseError::TildeValue(tag) => {
            format!("Tag values are not allowed to start with \"~\" in tag \"{tag}\"")
        }
        ParseError::EmptyName(name) => {
            format!("Cannot use metric name {name} as tag value, results in emptry string")
        }
    }
}

/// graphite-web's filter regex: anchored with `^(…)` unless it starts with `^`, then searched.
fn filter_regex(filter: &str) -> Result<Regex, TagIndexError> {
    let anchored = if filter.starts_with('^') {
        filter.to_string()
    } else {
        format!("^({filter})")
    };
    Regex::new(&anchored).map_err(|e| TagIndexError::Filter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })
}

/// SQL `LIMIT n`: a negative limit is no limit.
fn sql_limit<T>(mut items: Vec<T>, limit: Option<i64>) -> Vec<T> {
    if let Some(n) = limit.and_then(|n| usize::try_from(n).ok()) {
        items.truncate(n);
    }
    items
}

/// The tagged series known to a store, shared between HTTP workers and the cache's hook.
#[derive(Debug, Default)]
pub struct TagIndex {
    state: RwLock<State>,
}

impl TagIndex {
    /// Adds a series (graphite-web's `tag_series`): returns its normalised path.
    pub fn add(&self, path: &str) -> Result<String, TagIndexError> {
        let (normal, tags) = parse_series(path)?;
        if !self.state.read().series.contains_key(&normal) {
            self.state.write().insert(normal.clone(), tags, true);
        }
        Ok(normal)
    }

    /// Removes a series (graphite-web's `del_series`); its tags and values stay numbered.
    pub fn remove(&self, path: &str) -> Result<bool, TagIndexError> {
        let (normal, _) = parse_series(path)?;
        Ok(self.state.write().remove(&normal))
    }

    /// Replaces the series with `paths` (a rescan), keeping the numbering of tags and values.
    pub fn replace_series(&self, paths: &[String]) {
        let parsed: Vec<_> = paths.iter().filter_map(|p| parse_series(p).ok()).collect();
        let mut state = self.state.write();
        let before = std::mem::take(&mut state.series);
        state.by_tag.clear();
        for (path, tags) in parsed {
            // A series known before the rescan was numbered already.
            let fresh = !before.contains_key(&path);
            state.insert(path, tags, fresh);
        }
    }

    /// Whether a (normalised) series is known.
    pub fn contains(&self, path: &str) -> bool {
        self.state.read().series.contains_key(path)
    }

    /// Number of known series.
    pub fn len(&self) -> usize {
        self.state.read().series.len()
    }

    /// Whether no series is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tags of a known series.
    pub fn tags_of(&self, path: &str) -> Option<Vec<(String, String)>> {
        self.state.read().series.get(path).cloned()
    }

    /// The series matching every expression, sorted by path (graphite-web's `find_series`).
    pub fn find_series<S: AsRef<str>>(&self, exprs: &[S]) -> Result<Vec<String>, TagIndexError> {
        let query = TagQuery::parse(exprs)?;
        let state = self.state.read();
        let matches = |path: &String| {
            state.series.get(path).is_some_and(|tags| {
                query.matches(|t| tags.iter().find(|(k, _)| k == t).map(|(_, v)| v.as_str()))
            })
        };
        let Some(sel) = query.selector() else {
            return Ok(Vec::new());
        };
        let Some(values) = state.by_tag.get(&sel.tag) else {
            return Ok(Vec::new());
        };
        let mut out: BTreeSet<String> = BTreeSet::new();
        if sel.op == carbide_query::TagOp::Eq {
            if let Some(paths) = values.get(&sel.spec) {
                out.extend(paths.iter().filter(|p| matches(p)).cloned());
            }
        } else {
            for (value, paths) in values {
                if sel.matches_series(Some(value)) {
                    out.extend(paths.iter().filter(|p| matches(p)).cloned());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Every tag ever seen, sorted, optionally filtered by a regex (graphite-web's `list_tags`).
    pub fn list_tags(
        &self,
        filter: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<Numbered>, TagIndexError> {
        let re = filter.filter(|f| !f.is_empty()).map(filter_regex).transpose()?;
        let state = self.state.read();
        let mut tags: Vec<Numbered> = state
            .tag_ids
            .iter()
            .filter(|(t, _)| re.as_ref().is_none_or(|r| r.is_match(t)))
            .map(|(t, id)| Numbered {
                id: *id,
                text: t.clone(),
            })
            .collect();
        tags.sort_by(|a, b| a.text.cmp(&b.text));
        Ok(sql_limit(tags, limit))
    }

    /// A tag's id, if it was ever seen (graphite-web's `get_tag` returns `None` otherwise).
    pub fn tag_id(&self, tag: &str) -> Option<u64> {
        self.state.read().tag_ids.get(tag).copied()
    }

    /// The values of a tag that series carry now, sorted, with counts (graphite-web's `list_values`).
    pub fn list_values(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<ValueCount>, TagIndexError> {
        let re = filter.filter(|f| !f.is_empty()).map(filter_regex).transpose()?;
        let state = self.state.read();
        let Some(values) = state.by_tag.get(tag) else {
            return Ok(Vec::new());
        };
        let out: Vec<ValueCount> = values
            .iter()
            .filter(|(v, _)| re.as_ref().is_none_or(|r| r.is_match(v)))
            .map(|(v, paths)| ValueCount {
                id: state.value_ids.get(v).copied().unwrap_or(0),
                value: v.clone(),
                count: paths.len(),
            })
            .collect();
        Ok(sql_limit(out, limit))
    }

    /// graphite-web's `auto_complete_tags` (before the store's own sort and limit): tags of the
    /// series matching `exprs` (every tag when there are none), minus the tags the expressions
    /// name, starting with `prefix`, the `limit` smallest.
    pub fn auto_complete_tags(
        &self,
        exprs: &[String],
        prefix: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, TagIndexError> {
        let prefix = prefix.unwrap_or("");
        if exprs.is_empty() {
            let tags = self.list_tags(None, None)?;
            let found = tags
                .into_iter()
                .map(|n| n.text)
                .filter(|t| t.starts_with(prefix))
                .collect();
            // list_tags is called with limit=int, where 0 is "no limit".
            return Ok(sql_limit(found, (limit != 0).then_some(limit)));
        }
        let query = TagQuery::parse(exprs)?;
        let searched: BTreeSet<&str> = query.exprs.iter().map(|e| e.tag.as_str()).collect();
        let mut found = BTreeSet::new();
        for path in self.find_series(exprs)? {
            if let Some(tags) = self.tags_of(&path) {
                for (t, _) in tags {
                    if !searched.contains(t.as_str()) && t.starts_with(prefix) {
                        found.insert(t);
                    }
                }
            }
        }
        Ok(found
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }

    /// graphite-web's `auto_complete_values` (before the store's sort and limit): values of `tag`
    /// among the series matching `exprs` (all series when there are none), starting with `prefix`.
    pub fn auto_complete_values(
        &self,
        exprs: &[String],
        tag: &str,
        prefix: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, TagIndexError> {
        let prefix = prefix.unwrap_or("");
        if exprs.is_empty() {
            let values = self.list_values(tag, None, None)?;
            let found = values
                .into_iter()
                .map(|v| v.value)
                .filter(|v| v.starts_with(prefix))
                .collect();
            return Ok(sql_limit(found, (limit != 0).then_some(limit)));
        }
        let mut all: Vec<String> = exprs.to_vec();
        all.push(format!("{tag}!="));
        let mut found = BTreeSet::new();
        for path in self.find_series(&all)? {
            if let Some(tags) = self.tags_of(&path)
                && let Some((_, v)) = tags.iter().find(|(t, _)| t == tag)
                && v.starts_with(prefix)
            {
                found.insert(v.clone());
            }
        }
        Ok(found
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .collect())
    }
}

/// The file that remembers tagged names across restarts: one `+name` or `-name` line per
/// `tagSeries`, creation or `delSeries`, replayed in order at open. A hidden file in the data
/// directory, which neither carbide's nor graphite-web's tree walk lists.
#[derive(Debug)]
pub struct TagLog {
    path: PathBuf,
    lock: parking_lot::Mutex<()>,
}

impl TagLog {
    /// The log of the tree at `root`.
    pub fn new(root: &Path) -> TagLog {
        TagLog {
            path: root.join(".carbide-tags.log"),
            lock: parking_lot::Mutex::new(()),
        }
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `+name` (`added`) or `-name`.
    pub fn record(&self, name: &str, added: bool) -> std::io::Result<()> {
        if name.contains(['\n', '\r']) {
            return Ok(());
        }
        let _guard = self.lock.lock();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let line = format!("{}{name}\n", if added { '+' } else { '-' });
        f.write_all(line.as_bytes())
    }

    /// Applies the log to `known` (names added and removed in order); a missing log is empty.
    pub fn replay(&self, known: &mut BTreeSet<String>) -> std::io::Result<()> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('+') {
                known.insert(name.to_string());
            } else if let Some(name) = line.strip_prefix('-') {
                known.remove(name);
            }
        }
        Ok(())
    }
}

/// The tagged name a `_tagged.<h3>.<h3>.<leaf>` index entry stands for, when its leaf is carbon's
/// readable encoding and the file sits where carbon (and graphite-web's finder) would put it.
/// Hash-named files give `None`: only the [`TagLog`] knows their names.
pub fn decode_tagged_entry(entry: &str) -> Option<String> {
    let rest = entry.strip_prefix("_tagged.")?;
    let mut parts = rest.splitn(3, '.');
    let (h1, h2, leaf) = (parts.next()?, parts.next()?, parts.next()?);
    if !leaf.contains(';') {
        return None;
    }
    let name = leaf.replace("_DOT_", ".");
    let hash = sha256_hex(&name);
    if hash.get(0..3) != Some(h1) || hash.get(3..6) != Some(h2) {
        return None;
    }
    let (normal, _) = parse_series(&name).ok()?;
    (normal == name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(paths: &[&str]) -> TagIndex {
        let i = TagIndex::default();
        for p in paths {
            i.add(p).unwrap();
        }
        i
    }

    #[test]
    fn find_series_rules() {
        let i = index(&[
            "cpu;dc=a;host=web1",
            "cpu;dc=b;host=web2",
            "cpu;host=db1",
            "mem;dc=a;host=web1",
        ]);
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["name=cpu"],
                &["cpu;dc=a;host=web1", "cpu;dc=b;host=web2", "cpu;host=db1"],
            ),
            (&["name=cpu", "dc="], &["cpu;host=db1"]),
            (&["name=cpu", "dc!=a"], &["cpu;dc=b;host=web2", "cpu;host=db1"]),
            (
                &["host=~web"],
                &["cpu;dc=a;host=web1", "cpu;dc=b;host=web2", "mem;dc=a;host=web1"],
            ),
            (&["host=~^db|2"], &["cpu;dc=b;host=web2", "cpu;host=db1"]),
            (&["dc!=", "name!=~c"], &["mem;dc=a;host=web1"]),
            (&["nope=x"], &[]),
        ];
        for (exprs, want) in cases {
            assert_eq!(i.find_series(exprs).unwrap(), *want, "{exprs:?}");
        }
        assert!(i.find_series(&["dc="]).is_err());
    }

    #[test]
    fn ids_in_first_seen_order_and_kept_after_delete() {
        let i = index(&["cpu;host=web1;dc=a", "mem;host=web2"]);
        // Values are numbered in row order: web1, a, cpu, then web2, mem.
        assert_eq!(i.list_values("name", None, None).unwrap()[1].id, 5);
        let tags = i.list_tags(None, None).unwrap();
        let ids: Vec<(u64, &str)> = tags.iter().map(|n| (n.id, n.text.as_str())).collect();
        // Numbered in the order the name as given lists them (graphite-web parses the raw
        // name): host, dc, then name.
        assert_eq!(ids, vec![(2, "dc"), (1, "host"), (3, "name")]);
        assert!(i.remove("mem;host=web2").unwrap());
        assert_eq!(i.list_tags(None, None).unwrap().len(), 3);
        let v = i.list_values("host", None, None).unwrap();
        assert_eq!(
            v,
            vec![ValueCount {
                id: 1,
                value: "web1".into(),
                count: 1
            }]
        );
        assert_eq!(i.list_tags(Some("h|n"), Some(1)).unwrap()[0].text, "host");
    }

    #[test]
    fn decodes_readable_entries_only_in_their_hash_dir() {
        let name = "some.metric;tag1=value2;tag2=value.2";
        let h = sha256_hex(name);
        let entry = format!(
            "_tagged.{}.{}.some_DOT_metric;tag1=value2;tag2=value_DOT_2",
            &h[..3],
            &h[3..6]
        );
        assert_eq!(decode_tagged_entry(&entry).as_deref(), Some(name));
        assert_eq!(decode_tagged_entry("_tagged.000.000.a;b=c"), None);
        assert_eq!(
            decode_tagged_entry(&format!("_tagged.{}.{}.{h}", &h[..3], &h[3..6])),
            None
        );
    }

    #[test]
    fn log_replays_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = TagLog::new(dir.path());
        log.record("a;b=c", true).unwrap();
        log.record("x;y=z", true).unwrap();
        log.record("a;b=c", false).unwrap();
        let mut known = BTreeSet::new();
        log.replay(&mut known).unwrap();
        assert_eq!(known.into_iter().collect::<Vec<_>>(), vec!["x;y=z".to_string()]);
    }
}
