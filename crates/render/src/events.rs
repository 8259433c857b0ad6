//! The events store: graphite-web's `Event` model (`graphite/events/models.py`), which both the
//! `/events` API and the `events()` render function read.
//!
//! Events live in `<data dir>/.carbide-events.jsonl`, one JSON object per line, appended under a
//! lock and read back on every query (a dashboard's annotations are a few hundred lines). Tags are
//! kept as django-tagging keeps them: split on commas if there are any, else on spaces, without
//! duplicates, sorted. A tag filter matches as django-tagging's `with_all`/`with_any` do, ignoring
//! tags no event has.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Serialises appends (ids are the last id + 1).
static APPEND: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The primary key graphite-web's `/events/<id>` addresses.
    pub id: u64,
    /// Epoch seconds, fractions kept (graphite-web keeps microseconds and truncates on output).
    pub when: f64,
    /// The headline.
    pub what: String,
    /// Free text.
    pub data: String,
    /// The tags as given (a list joined by spaces): graphite-web answers `tags.split()` of it.
    pub tags: String,
}

impl Event {
    /// The tags django-tagging indexes, which filters match.
    pub fn tag_set(&self) -> Vec<String> {
        parse_tags(&self.tags)
    }
}

/// How a tag filter combines its tags (graphite-web's `set` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperation {
    /// `with_all`: every known wanted tag (the default).
    All,
    /// `with_any` (`set=union`).
    Union,
    /// `with_intersection` plus get_data's check that every wanted tag is there.
    Intersection,
}

/// The events file under a data directory.
pub fn events_file(root: &Path) -> PathBuf {
    root.join(".carbide-events.jsonl")
}

/// Every stored event, in id order; an absent or unreadable file is no events (lines that do not
/// parse are skipped, as a half-written last line would be).
pub fn load(root: &Path) -> Vec<Event> {
    let Ok(text) = std::fs::read_to_string(events_file(root)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some(Event {
                id: v.get("id")?.as_u64()?,
                when: v.get("when")?.as_f64()?,
                what: v.get("what")?.as_str()?.to_string(),
                data: v.get("data")?.as_str().unwrap_or("").to_string(),
                tags: v.get("tags")?.as_str()?.to_string(),
            })
        })
        .collect()
}

/// Appends an event with the next id and returns that id.
pub fn append(root: &Path, when: f64, what: &str, data: &str, tags: &str) -> std::io::Result<u64> {
    let _guard = APPEND.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = load(root).iter().map(|e| e.id).max().unwrap_or(0) + 1;
    let line = json!({"id": id, "when": when, "what": what, "data": data, "tags": tags}).to_string();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(events_file(root))?;
    f.write_all(format!("{line}\n").as_bytes())?;
    Ok(id)
}

/// django-tagging's `parse_tag_input` for unquoted input: commas separate when present, else
/// whitespace; no duplicates; sorted.
pub fn parse_tags(input: &str) -> Vec<String> {
    let parts: Box<dyn Iterator<Item = &str>> = if input.contains(',') {
        Box::new(input.split(','))
    } else {
        Box::new(input.split_whitespace())
    };
    let set: BTreeSet<String> = parts
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

/// `Event.find_events`: the events with `from <= when <= until` carrying `tags` (all events when
/// `None`), ordered by time (then id, as the table's insertion order).
pub fn find_events(
    events: &[Event],
    from: f64,
    until: f64,
    tags: Option<&[String]>,
    set: SetOperation,
) -> Vec<Event> {
    let sets: Vec<Vec<String>> = events.iter().map(Event::tag_set).collect();
    let known: BTreeSet<&str> = sets.iter().flatten().map(String::as_str).collect();
    let mut out: Vec<Event> = events
        .iter()
        .zip(&sets)
        .filter(|(e, _)| e.when >= from && e.when <= until)
        .filter(|(_, have)| match tags {
            None => true,
            Some(w) => {
                let has = |t: &String| have.contains(t);
                let known_wanted: Vec<&String> = w.iter().filter(|t| known.contains(t.as_str())).collect();
                match set {
                    SetOperation::Union => known_wanted.iter().any(|t| has(t)),
                    SetOperation::Intersection => !known_wanted.is_empty() && w.iter().all(has),
                    SetOperation::All => !known_wanted.is_empty() && known_wanted.iter().all(|t| has(t)),
                }
            }
        })
        .map(|(e, _)| e.clone())
        .collect();
    out.sort_by(|a, b| a.when.total_cmp(&b.when).then(a.id.cmp(&b.id)));
    out
}

/// `when` as Django's JSON encoder writes a UTC datetime: ISO 8601 with milliseconds (truncated)
/// when there are microseconds, `Z` for UTC.
pub fn django_iso(when: f64) -> String {
    let secs = when.floor();
    // utcfromtimestamp rounds to the microsecond.
    let mut micros = ((when - secs) * 1e6).round() as i64;
    let mut secs = secs as i64;
    if micros >= 1_000_000 {
        secs += 1;
        micros -= 1_000_000;
    }
    let base = jiff::Timestamp::from_second(secs)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default();
    if micros > 0 {
        format!("{base}.{:03}Z", micros / 1000)
    } else {
        format!("{base}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_as_django_tagging() {
        assert_eq!(parse_tags("b a  b"), vec!["a", "b"]);
        assert_eq!(parse_tags("x y, z"), vec!["x y", "z"]);
        assert!(parse_tags("").is_empty());
    }

    #[test]
    fn unknown_tags_are_ignored_and_none_known_matches_nothing() {
        let e = |id, tags: &str| Event {
            id,
            when: id as f64,
            what: "w".into(),
            data: String::new(),
            tags: tags.into(),
        };
        let all = vec![e(1, "a b"), e(2, "b")];
        let want = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ids = |v: Vec<Event>| v.iter().map(|e| e.id).collect::<Vec<_>>();
        let f = |t: &[&str], s| ids(find_events(&all, 0.0, 9.0, Some(&want(t)), s));
        assert_eq!(f(&["b", "zz"], SetOperation::All), vec![1, 2]);
        assert_eq!(f(&["zz"], SetOperation::All), Vec::<u64>::new());
        assert_eq!(f(&["a", "zz"], SetOperation::Union), vec![1]);
        assert_eq!(f(&["b", "zz"], SetOperation::Intersection), Vec::<u64>::new());
        assert_eq!(ids(find_events(&all, 2.0, 9.0, None, SetOperation::All)), vec![2]);
    }

    #[test]
    fn when_is_written_as_django_writes_it() {
        assert_eq!(django_iso(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(django_iso(1.75), "1970-01-01T00:00:01.750Z");
        assert_eq!(django_iso(1.0005), "1970-01-01T00:00:01.000Z");
    }
}
