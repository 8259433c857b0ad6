//! Tagged series names, as carbon's `TaggedSeries` parses, normalises and stores them.
//!
//! Two spellings are accepted: carbon's `name;tag=value;…` and OpenMetrics' `name{tag="value",…}`.
//! The normal form is the name followed by `;tag=value` pieces sorted **as whole strings** (so
//! `;a.b=2` sorts before `;a=1`, because `.` < `=`), which is what carbon-cache stores and
//! graphite-web queries. Carbon's cache normalises every incoming name this way and, when parsing
//! fails, keeps the name unchanged ([`normalize`] does the same).
//!
//! On disk a tagged series lives under `_tagged/<sha256[0:3]>/<sha256[3:6]>/`, named by the full
//! hash (`TAG_HASH_FILENAMES`, the default) or by the name with `.` written as `_DOT_`.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use thiserror::Error;

/// Why a tagged name was refused (each is an `Exception` in carbon).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TagError {
    /// The part before the first `;` or `{` is empty.
    #[error("no metric found")]
    NoMetric,
    /// A `;` segment without `=`, or with an empty tag.
    #[error("invalid segment {0:?}")]
    InvalidSegment(String),
    /// More than one `{` in an OpenMetrics name.
    #[error("more than one '{{' in name")]
    TooManyBraces,
    /// An empty tag value.
    #[error("value for tag {0:?} may not be empty")]
    EmptyValue(String),
    /// A tag name containing one of `;!^=`.
    #[error("character {ch:?} is not allowed in tag {tag:?}")]
    BadTagChar {
        /// The offending character.
        ch: char,
        /// The tag.
        tag: String,
    },
    /// A tag value containing `;`.
    #[error("character ';' is not allowed in value {value:?} of tag {tag:?}")]
    SemicolonInValue {
        /// The tag.
        tag: String,
        /// The value.
        value: String,
    },
    /// A tag value starting with `~`.
    #[error("tag values may not start with '~' (tag {0:?})")]
    TildeValue(String),
    /// The metric name is only `~` characters, so it cannot be the `name` tag.
    #[error("metric name {0:?} is empty once leading '~' are removed")]
    EmptyName(String),
}

/// A parsed series: the metric as written and its tags, `name` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSeries {
    /// The metric part as written (before `;` or `{`).
    pub metric: String,
    /// Tags in first-seen order, later duplicates overwriting earlier ones; `name` is the metric
    /// with leading `~` removed.
    pub tags: Vec<(String, String)>,
}

impl TaggedSeries {
    /// Parses either spelling, choosing OpenMetrics when the name ends in `"}` and has a `{`.
    pub fn parse(path: &str) -> Result<TaggedSeries, TagError> {
        if path.ends_with("\"}") && path.contains('{') {
            Self::parse_openmetrics(path)
        } else {
            Self::parse_carbon(path)
        }
    }

    /// Parses `metric;tag=value;…`.
    pub fn parse_carbon(path: &str) -> Result<TaggedSeries, TagError> {
        let mut segments = path.split(';');
        let metric = segments.next().unwrap_or_default();
        if metric.is_empty() {
            return Err(TagError::NoMetric);
        }
        let mut tags = Vec::new();
        for segment in segments {
            match segment.split_once('=') {
                Some((tag, value)) if !tag.is_empty() => {
                    validate(tag, value)?;
                    set(&mut tags, tag, value.to_owned());
                }
                _ => return Err(TagError::InvalidSegment(segment.to_owned())),
            }
        }
        Self::finish(metric, tags)
    }

    /// Parses `metric{tag="value",…}` with carbon's regex `([^=]+)="((?:\\["\\]|[^"\\])+)"(:?,|$)`
    /// (note its `(:?,|$)`: a `:,` separator is accepted too).
    pub fn parse_openmetrics(path: &str) -> Result<TaggedSeries, TagError> {
        let inner = path.strip_suffix('}').unwrap_or(path);
        let (metric, mut raw) = inner.split_once('{').ok_or(TagError::NoMetric)?;
        if raw.contains('{') {
            return Err(TagError::TooManyBraces);
        }
        if metric.is_empty() {
            return Err(TagError::NoMetric);
        }
        let mut tags = Vec::new();
        while !raw.is_empty() {
            let (tag, value, used) =
                match_segment(raw).ok_or_else(|| TagError::InvalidSegment(raw.to_owned()))?;
            let value = value.replace("\\\"", "\"").replace("\\\\", "\\");
            validate(tag, &value)?;
            set(&mut tags, tag, value);
            raw = raw.get(used..).unwrap_or_default();
        }
        Self::finish(metric, tags)
    }

    fn finish(metric: &str, mut tags: Vec<(String, String)>) -> Result<TaggedSeries, TagError> {
        let name = metric.trim_start_matches('~');
        if name.is_empty() {
            return Err(TagError::EmptyName(metric.to_owned()));
        }
        set(&mut tags, "name", name.to_owned());
        Ok(TaggedSeries {
            metric: metric.to_owned(),
            tags,
        })
    }

    /// The value of one tag.
    pub fn tag(&self, tag: &str) -> Option<&str> {
        self.tags.iter().find(|(t, _)| t == tag).map(|(_, v)| v.as_str())
    }

    /// The normalised name (carbon's `TaggedSeries.path`).
    pub fn path(&self) -> String {
        format_tags(&self.tags)
    }
}

fn set(tags: &mut Vec<(String, String)>, tag: &str, value: String) {
    match tags.iter_mut().find(|(t, _)| t == tag) {
        Some(slot) => slot.1 = value,
        None => tags.push((tag.to_owned(), value)),
    }
}

fn validate(tag: &str, value: &str) -> Result<(), TagError> {
    if value.is_empty() {
        return Err(TagError::EmptyValue(tag.to_owned()));
    }
    if let Some(ch) = [';', '!', '^', '='].into_iter().find(|&c| tag.contains(c)) {
        return Err(TagError::BadTagChar {
            ch,
            tag: tag.to_owned(),
        });
    }
    if value.contains(';') {
        return Err(TagError::SemicolonInValue {
            tag: tag.to_owned(),
            value: value.to_owned(),
        });
    }
    if value.starts_with('~') {
        return Err(TagError::TildeValue(tag.to_owned()));
    }
    Ok(())
}

/// One `tag="value"` segment at the start of `raw`: (tag, raw value, bytes used).
fn match_segment(raw: &str) -> Option<(&str, &str, usize)> {
    let eq = raw.find('=')?;
    if eq == 0 {
        return None;
    }
    let tag = raw.get(..eq)?;
    let bytes = raw.as_bytes();
    if bytes.get(eq + 1) != Some(&b'"') {
        return None;
    }
    let start = eq + 2;
    let mut i = start;
    loop {
        match bytes.get(i)? {
            b'\\' => match bytes.get(i + 1)? {
                b'"' | b'\\' => i += 2,
                _ => return None,
            },
            b'"' => break,
            _ => i += 1,
        }
    }
    if i == start {
        return None;
    }
    let value = raw.get(start..i)?;
    let after = i + 1;
    let used = match (bytes.get(after), bytes.get(after + 1)) {
        (None, _) => after,
        (Some(b','), _) => after + 1,
        (Some(b':'), Some(b',')) => after + 2,
        _ => return None,
    };
    Some((tag, value, used))
}

/// Carbon's `TaggedSeries.format`: the `name` tag, then `;tag=value` for the others, sorted.
pub fn format_tags(tags: &[(String, String)]) -> String {
    let name = tags
        .iter()
        .find(|(t, _)| t == "name")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let mut parts: Vec<String> = tags
        .iter()
        .filter(|(t, _)| t != "name")
        .map(|(t, v)| format!(";{t}={v}"))
        .collect();
    parts.sort();
    let mut out = String::from(name);
    for p in parts {
        out.push_str(&p);
    }
    out
}

/// Carbon's cache-side normalisation: the parsed path, or the name unchanged if it does not
/// parse (carbon logs and carries on with the raw name).
pub fn normalize(name: &str) -> Cow<'_, str> {
    match TaggedSeries::parse(name) {
        Ok(series) => {
            let path = series.path();
            if path == name {
                Cow::Borrowed(name)
            } else {
                Cow::Owned(path)
            }
        }
        Err(_) => Cow::Borrowed(name),
    }
}

/// Hex SHA-256 of a name, the key of its `_tagged` directory.
pub fn sha256_hex(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Carbon's `TaggedSeries.encode(metric, sep, hash_only)`: the storage path of a name, without
/// data directory or extension.
pub fn encode(metric: &str, sep: char, hash_only: bool) -> String {
    if metric.contains(';') {
        let hash = sha256_hex(metric);
        let leaf = if hash_only {
            hash.clone()
        } else {
            metric.replace('.', "_DOT_")
        };
        let mut out = String::from("_tagged");
        for part in [hash.get(0..3).unwrap_or(""), hash.get(3..6).unwrap_or(""), &leaf] {
            out.push(sep);
            out.push_str(part);
        }
        out
    } else {
        metric
            .replace('.', &sep.to_string())
            .trim_start_matches(sep)
            .to_owned()
    }
}

/// The whisper file of a (normalised) name relative to the data directory, as carbon's
/// `getFilesystemPath` builds it with `os.sep == '/'`.
pub fn filesystem_path(metric: &str, tag_hash_filenames: bool) -> String {
    let mut p = encode(metric, '/', tag_hash_filenames);
    p.push_str(".wsp");
    p
}

/// Carbon's `TaggedSeries.decode`: a storage path back to a name (not possible for hashed
/// filenames, which come back as the hash).
pub fn decode(path: &str, sep: char) -> String {
    if path.starts_with("_tagged") {
        path.splitn(4, sep).last().unwrap_or(path).replace("_DOT_", ".")
    } else {
        path.replace(sep, ".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        let cases = [
            ("a.b", "a.b"),
            ("~a.b", "a.b"),
            ("a;b=1;a=2", "a;a=2;b=1"),
            ("a;a=1;a.b=2", "a;a.b=2;a=1"),
            ("a;x=1;x=2", "a;x=2"),
            ("a;name=zz;b=1", "a;b=1"),
            ("a;b=c=d", "a;b=c=d"),
            (r#"a{b="1",a="2"}"#, "a;a=2;b=1"),
            (r#"a{b="x\"y",c="p\\q"}"#, r#"a;b=x"y;c=p\q"#),
            (r#"a{b="1":,c="2"}"#, "a;b=1;c=2"),
        ];
        for (input, want) in cases {
            assert_eq!(
                TaggedSeries::parse(input).map(|s| s.path()),
                Ok(want.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn refusals() {
        let cases = [
            ("", TagError::NoMetric),
            (";a=b", TagError::NoMetric),
            ("a;b", TagError::InvalidSegment("b".into())),
            ("a;=b", TagError::InvalidSegment("=b".into())),
            ("a;b=", TagError::EmptyValue("b".into())),
            (
                "a;b!=c",
                TagError::BadTagChar {
                    ch: '!',
                    tag: "b!".into(),
                },
            ),
            (
                "a;b^=c",
                TagError::BadTagChar {
                    ch: '^',
                    tag: "b^".into(),
                },
            ),
            ("a;b=~c", TagError::TildeValue("b".into())),
            ("~~;b=c", TagError::EmptyName("~~".into())),
            (r#"a{{b="1"}"#, TagError::TooManyBraces),
            (r#"{b="1"}"#, TagError::NoMetric),
            (
                r#"a{b="1"c="2"}"#,
                TagError::InvalidSegment(r#"b="1"c="2""#.into()),
            ),
            (
                r#"a{b="1;2"}"#,
                TagError::SemicolonInValue {
                    tag: "b".into(),
                    value: "1;2".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(TaggedSeries::parse(input), Err(want), "{input}");
        }
        assert_eq!(normalize("a;b"), "a;b");
        assert_eq!(normalize("a;c=1;b=2"), "a;b=2;c=1");
    }

    #[test]
    fn paths() {
        assert_eq!(filesystem_path("a.b.c", true), "a/b/c.wsp");
        assert_eq!(filesystem_path(".a.b", true), "a/b.wsp");
        let name = "some.metric;tag1=value2;tag2=value.2";
        let h = sha256_hex(name);
        assert_eq!(
            filesystem_path(name, true),
            format!("_tagged/{}/{}/{h}.wsp", &h[..3], &h[3..6])
        );
        assert_eq!(
            filesystem_path(name, false),
            format!(
                "_tagged/{}/{}/some_DOT_metric;tag1=value2;tag2=value_DOT_2.wsp",
                &h[..3],
                &h[3..6]
            )
        );
        assert_eq!(decode(&encode(name, '.', false), '.'), name);
        assert_eq!(decode("a.b", '/'), "a.b");
        assert_eq!(decode("a/b", '/'), "a.b");
    }
}
