//! storage-schemas.conf and storage-aggregation.conf, as carbon's `carbon.storage` loads them.
//!
//! storage-schemas.conf, section by section in file order (carbon's `OrderedConfigParser`, which
//! also lists `[DEFAULT]` as a section): no `retentions` → skipped; a retention carbon cannot parse →
//! the whole file fails; no (or an empty) `pattern` → skipped; a pattern `re` refuses → fails; an
//! archive list whisper's `validateArchiveList` refuses → skipped. carbon's built-in `default`
//! schema (60s:7d, matching everything) is appended last, so every metric finds a schema.
//!
//! storage-aggregation.conf: an `xFilesFactor` that is not a float → section skipped; one outside
//! 0..1 → the file fails (carbon's `assert`); an unknown `aggregationMethod` → fails; no `pattern`
//! → skipped. Unset values mean whisper's defaults (0.5, average). A built-in default is appended.
//!
//! Retentions are read with carbon's own `parseRetentionDef` (util.py), which is stricter than
//! whisper's: units are exactly one of `s m h d w y` (`1min` is an error in carbon.conf's sibling
//! files even though whisper-create accepts it).

use carbide_core::{AggregationMethod, Retention};

use crate::error::{ConfigError, Warning};
use crate::ini::{DEFAULT_SECTION, Ini};
use crate::pyre::{PyRegex, RegexError};
use crate::pyvalue::py_float;

/// carbon's default schema: one archive of 60-second points for 7 days.
pub const DEFAULT_RETENTION: Retention = Retention {
    seconds_per_point: 60,
    points: 60 * 24 * 7,
};

fn unit_multiplier(u: &str) -> Option<u64> {
    Some(match u {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "y" => 31_536_000,
        _ => return None,
    })
}

/// `digits` alone, or `digits` + lowercase unit, as util.py's `^(\d+)([a-z]+)$`.
fn split_unit(s: &str) -> Option<(u64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let unit = &s[n..];
    if !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    // Beyond u64 is beyond any whisper header anyway.
    Some((s[..n].parse().unwrap_or(u64::MAX), unit))
}

/// carbon's `util.parseRetentionDef`: `precision:points`, each a number or number+unit.
pub fn parse_retention(def: &str) -> Result<Retention, String> {
    let t = crate::pyvalue::py_strip(def);
    let mut parts = t.split(':');
    let (Some(precision), Some(points), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "invalid retention definition {def:?}: expected precision:duration"
        ));
    };
    let spp = match split_unit(precision) {
        Some((n, "")) => n,
        Some((n, unit)) => {
            n.saturating_mul(unit_multiplier(unit).ok_or_else(|| format!("Invalid unit '{unit}'"))?)
        }
        None => return Err(format!("Invalid precision specification '{precision}'")),
    };
    let count = match split_unit(points) {
        Some((n, "")) => n,
        Some((n, unit)) => {
            let secs =
                n.saturating_mul(unit_multiplier(unit).ok_or_else(|| format!("Invalid unit '{unit}'"))?);
            if spp == 0 {
                return Err(format!("invalid retention definition {def:?}: precision is 0"));
            }
            secs / spp
        }
        None => return Err(format!("Invalid retention specification '{points}'")),
    };
    if spp == 0 || count == 0 {
        return Err(format!(
            "invalid retention definition {def:?}: precision and point count must be positive"
        ));
    }
    let big = || format!("invalid retention definition {def:?}: too large for a whisper header");
    Ok(Retention {
        seconds_per_point: u32::try_from(spp).map_err(|_| big())?,
        points: u32::try_from(count).map_err(|_| big())?,
    })
}

/// whisper's `validateArchiveList`: the archives sorted by precision, or the reason they cannot
/// make one file (whisper's own wording).
pub fn validate_archive_list(archives: &[Retention]) -> Result<Vec<Retention>, String> {
    if archives.is_empty() {
        return Err("You must specify at least one archive configuration!".into());
    }
    let mut sorted = archives.to_vec();
    sorted.sort_by_key(|a| a.seconds_per_point);
    for (i, pair) in sorted.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        let (ta, tb) = ((a.seconds_per_point, a.points), (b.seconds_per_point, b.points));
        if a.seconds_per_point >= b.seconds_per_point {
            return Err(format!(
                "A Whisper database may not be configured having two archives with the same precision (archive{i}: {ta:?}, archive{}: {tb:?})",
                i + 1
            ));
        }
        if b.seconds_per_point % a.seconds_per_point != 0 {
            return Err(format!(
                "Higher precision archives' precision must evenly divide all lower precision archives' precision (archive{i}: {}, archive{}: {})",
                a.seconds_per_point,
                i + 1,
                b.seconds_per_point
            ));
        }
        if b.retention_seconds() <= a.retention_seconds() {
            return Err(format!(
                "Lower precision archives must cover larger time intervals than higher precision archives (archive{i}: {} seconds, archive{}: {} seconds)",
                a.retention_seconds(),
                i + 1,
                b.retention_seconds()
            ));
        }
        let per = b.seconds_per_point / a.seconds_per_point;
        if a.points < per {
            return Err(format!(
                "Each archive must have at least enough points to consolidate to the next archive (archive{} consolidates {per} of archive{i}'s points but it has only {} total points)",
                i + 1,
                a.points
            ));
        }
    }
    Ok(sorted)
}

/// What decides whether a schema applies to a metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// `re.search(pattern, metric)`.
    Pattern(PyRegex),
    /// carbon's built-in default: everything.
    All,
}

impl Matcher {
    /// Whether the metric falls under this schema.
    pub fn matches(&self, metric: &str) -> bool {
        match self {
            Matcher::Pattern(r) => r.is_match(metric),
            Matcher::All => true,
        }
    }
}

/// One storage schema: which metrics, and the archives their files get.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageSchema {
    /// The section name (`default` for the built-in one).
    pub name: String,
    /// Line of the section header (0 for the built-in one).
    pub line: usize,
    /// Which metrics it covers.
    pub matcher: Matcher,
    /// Archives as written (carbon passes them to whisper unsorted; whisper sorts them).
    pub archives: Vec<Retention>,
}

/// storage-schemas.conf, loaded: schemas in file order, the built-in default last.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageSchemas {
    /// The schemas; never empty.
    pub schemas: Vec<StorageSchema>,
}

impl StorageSchemas {
    /// The first schema whose pattern matches (always found: the default matches everything).
    pub fn schema_for(&self, metric: &str) -> &StorageSchema {
        self.schemas
            .iter()
            .find(|s| s.matcher.matches(metric))
            .or(self.schemas.last())
            .unwrap_or(&BUILTIN_DEFAULT)
    }

    /// Only carbon's built-in default, for when no file exists.
    pub fn builtin() -> StorageSchemas {
        StorageSchemas {
            schemas: vec![builtin_default_schema()],
        }
    }
}

/// Returned by [`StorageSchemas::schema_for`] should the list ever be empty (the parsers never
/// build one that is).
static BUILTIN_DEFAULT: std::sync::LazyLock<StorageSchema> = std::sync::LazyLock::new(builtin_default_schema);

fn builtin_default_schema() -> StorageSchema {
    StorageSchema {
        name: "default".into(),
        line: 0,
        matcher: Matcher::All,
        archives: vec![DEFAULT_RETENTION],
    }
}

fn regex_error(path: &str, line: usize, section: &str, e: &RegexError) -> ConfigError {
    ConfigError::new(path, line, format!("[{section}] pattern: {e}"))
}

/// Section options as carbon sees them (`dict(config.items(section))`).
fn section_items(ini: &Ini, name: &str, line: usize) -> Result<Vec<crate::ini::Item>, ConfigError> {
    if name != DEFAULT_SECTION && !ini.has_section(name) {
        return Err(ConfigError::new(
            ini.path(),
            line,
            format!(
                "[{name}] looks like a section header but is part of a multi-line value; carbon fails on it"
            ),
        ));
    }
    ini.items(name, line)
}

/// Warns about keys carbon never reads in a section (a typo such as `retention` silently makes a
/// schema disappear in carbon).
fn unknown_keys(
    path: &str,
    section: &str,
    items: &[crate::ini::Item],
    known: &[&str],
    warnings: &mut Vec<Warning>,
) {
    for i in items.iter().filter(|i| !known.contains(&i.key.as_str())) {
        warnings.push(Warning::new(
            path,
            i.line,
            format!("[{section}] key '{}' is not used by carbon", i.key),
        ));
    }
}

fn find<'a>(items: &'a [crate::ini::Item], key: &str) -> Option<&'a crate::ini::Item> {
    items.iter().find(|i| i.key == key)
}

/// Parses storage-schemas.conf.
pub fn parse_storage_schemas(path: &str, text: &str) -> Result<(StorageSchemas, Vec<Warning>), ConfigError> {
    let ini = Ini::parse(path, text)?;
    let mut warnings = vec![];
    let mut schemas = vec![];
    for h in ini.headers() {
        let items = section_items(&ini, &h.name, h.line)?;
        unknown_keys(path, &h.name, &items, &["pattern", "retentions"], &mut warnings);
        let Some(ret) = find(&items, "retentions") else {
            warnings.push(Warning::new(
                path,
                h.line,
                format!("schema [{}] has no 'retentions', skipped", h.name),
            ));
            continue;
        };
        let archives = ret
            .value
            .split(',')
            .map(parse_retention)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ConfigError::new(path, ret.line, format!("{m} in section [{}]", h.name)))?;
        let pattern = match find(&items, "pattern") {
            Some(p) if !p.value.is_empty() => p,
            _ => {
                warnings.push(Warning::new(
                    path,
                    h.line,
                    format!("schema [{}] has no 'pattern', skipped", h.name),
                ));
                continue;
            }
        };
        let regex = PyRegex::new(&pattern.value).map_err(|e| regex_error(path, pattern.line, &h.name, &e))?;
        if let Err(m) = validate_archive_list(&archives) {
            warnings.push(Warning::new(
                path,
                ret.line,
                format!("invalid schema [{}], skipped: {m}", h.name),
            ));
            continue;
        }
        schemas.push(StorageSchema {
            name: h.name.clone(),
            line: h.line,
            matcher: Matcher::Pattern(regex),
            archives,
        });
    }
    schemas.push(builtin_default_schema());
    Ok((StorageSchemas { schemas }, warnings))
}

/// One storage-aggregation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationSchema {
    /// The section name (`default` for the built-in one).
    pub name: String,
    /// Line of the section header.
    pub line: usize,
    /// Which metrics it covers.
    pub matcher: Matcher,
    /// xFilesFactor, if the section sets it.
    pub x_files_factor: Option<f64>,
    /// aggregationMethod, if the section sets it.
    pub method: Option<AggregationMethod>,
}

/// storage-aggregation.conf, loaded, with the built-in default last.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationSchemas {
    /// The schemas; never empty.
    pub schemas: Vec<AggregationSchema>,
}

impl AggregationSchemas {
    /// The first matching schema.
    pub fn schema_for(&self, metric: &str) -> Option<&AggregationSchema> {
        self.schemas.iter().find(|s| s.matcher.matches(metric))
    }

    /// What a new file for `metric` gets: the first match's values, whisper's 0.5 / average where
    /// unset.
    pub fn settings_for(&self, metric: &str) -> (f64, AggregationMethod) {
        let s = self.schema_for(metric);
        (
            s.and_then(|s| s.x_files_factor).unwrap_or(0.5),
            s.and_then(|s| s.method).unwrap_or(AggregationMethod::Average),
        )
    }

    /// Only the built-in default, for when the file is missing (carbon ignores a missing file).
    pub fn builtin() -> AggregationSchemas {
        AggregationSchemas {
            schemas: vec![builtin_default_aggregation()],
        }
    }
}

fn builtin_default_aggregation() -> AggregationSchema {
    AggregationSchema {
        name: "default".into(),
        line: 0,
        matcher: Matcher::All,
        x_files_factor: None,
        method: None,
    }
}

/// Parses storage-aggregation.conf.
pub fn parse_storage_aggregation(
    path: &str,
    text: &str,
) -> Result<(AggregationSchemas, Vec<Warning>), ConfigError> {
    let ini = Ini::parse(path, text)?;
    let mut warnings = vec![];
    let mut schemas = vec![];
    for h in ini.headers() {
        let items = section_items(&ini, &h.name, h.line)?;
        unknown_keys(
            path,
            &h.name,
            &items,
            &["pattern", "xfilesfactor", "aggregationmethod"],
            &mut warnings,
        );
        let x_files_factor = match find(&items, "xfilesfactor") {
            None => None,
            Some(x) => match py_float(&x.value) {
                None => {
                    warnings.push(Warning::new(
                        path,
                        x.line,
                        format!(
                            "invalid schema [{}], skipped: xFilesFactor {:?} is not a number",
                            h.name, x.value
                        ),
                    ));
                    continue;
                }
                Some(f) if (0.0..=1.0).contains(&f) => Some(f),
                Some(_) => {
                    return Err(ConfigError::new(
                        path,
                        x.line,
                        format!("[{}] xFilesFactor = {} must be between 0 and 1", h.name, x.value),
                    ));
                }
            },
        };
        let method = match find(&items, "aggregationmethod") {
            None => None,
            Some(m) => Some(m.value.parse::<AggregationMethod>().map_err(|_| {
                let all: Vec<&str> = AggregationMethod::ALL.iter().map(|m| m.name()).collect();
                ConfigError::new(
                    path,
                    m.line,
                    format!(
                        "[{}] aggregationMethod = {:?} is not one of {}",
                        h.name,
                        m.value,
                        all.join(", ")
                    ),
                )
            })?),
        };
        let pattern = match find(&items, "pattern") {
            Some(p) if !p.value.is_empty() => p,
            _ => {
                warnings.push(Warning::new(
                    path,
                    h.line,
                    format!("section [{}] has no 'pattern', skipped", h.name),
                ));
                continue;
            }
        };
        let regex = PyRegex::new(&pattern.value).map_err(|e| regex_error(path, pattern.line, &h.name, &e))?;
        schemas.push(AggregationSchema {
            name: h.name.clone(),
            line: h.line,
            matcher: Matcher::Pattern(regex),
            x_files_factor,
            method,
        });
    }
    schemas.push(builtin_default_aggregation());
    Ok((AggregationSchemas { schemas }, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(spp: u32, points: u32) -> Retention {
        Retention {
            seconds_per_point: spp,
            points,
        }
    }

    #[test]
    fn carbon_retention_table() {
        let ok: &[(&str, Retention)] = &[
            ("60:1440", r(60, 1440)),
            ("60s:7d", r(60, 10080)),
            (" 1h:3y ", r(3600, 26280)),
            ("7m:1d", r(420, 205)),
            ("10s:6h", r(10, 2160)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_retention(s), Ok(*want), "{s}");
        }
        for bad in [
            "1min:1d", "60", "60:1:2", "60 :1d", "60s: 1d", "60S:1d", "0:60", "0:1d", "1d:1h", "x:1",
            "60:1mo",
        ] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn archive_list_rules() {
        assert!(validate_archive_list(&[]).is_err());
        assert_eq!(
            validate_archive_list(&[r(300, 8640), r(60, 1440)]),
            Ok(vec![r(60, 1440), r(300, 8640)])
        );
        let bad: &[&[Retention]] = &[
            &[r(60, 1440), r(60, 2880)],
            &[r(180, 10000), r(300, 100000)],
            &[r(60, 1440), r(300, 288)],
            &[r(60, 4), r(300, 100000)],
        ];
        for list in bad {
            assert!(validate_archive_list(list).is_err(), "{list:?}");
        }
    }

    #[test]
    fn schema_file_edge_cases() {
        let text = "\
[carbon]
pattern = ^carbon\\.
retentions = 60:90d

[no_pattern]
retentions = 10s:1d

[no_retentions]
pattern = ^x

[invalid_list]
pattern = ^y
retentions = 60s:1d,60s:2d

[everything]
pattern = .*
retentions = 10s:6h, 1m:7d
";
        let (s, w) = parse_storage_schemas("s.conf", text).unwrap();
        let names: Vec<_> = s.schemas.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["carbon", "everything", "default"]);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(s.schema_for("carbon.agents.a").name, "carbon");
        assert_eq!(s.schema_for("y.z").name, "everything");
        assert_eq!(s.schema_for("y.z").archives, vec![r(10, 2160), r(60, 10080)]);

        let (s, _) = parse_storage_schemas("s.conf", "[a]\npattern = ^a\nretentions = 1s:1m\n").unwrap();
        assert_eq!(s.schema_for("b").name, "default");
        assert_eq!(s.schema_for("b").archives, vec![DEFAULT_RETENTION]);

        for (bad, line) in [
            ("[a]\npattern = x\nretentions = 1min:1d\n", 3),
            ("[a]\npattern = (\nretentions = 1s:1d\n", 2),
            ("[a]\npattern = 5%\nretentions = 1s:1d\n", 2),
            ("[a]\npattern = x\n  [b]\nretentions = 1s:1d\n", 3),
        ] {
            let e = parse_storage_schemas("s.conf", bad).unwrap_err();
            assert_eq!(e.line, line, "{bad:?}: {e}");
        }
    }

    #[test]
    fn aggregation_file_edge_cases() {
        let text = "\
[min]
pattern = \\.min$
xFilesFactor = 0.1
aggregationMethod = min

[notfloat]
pattern = ^nf
xFilesFactor = lots

[onlypattern]
pattern = \\.count$
";
        let (a, w) = parse_storage_aggregation("a.conf", text).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(a.settings_for("x.min"), (0.1, AggregationMethod::Min));
        let (_, w) = parse_storage_aggregation("a", "[x]\npattern = a\nxFileFactor = 0\n").unwrap();
        assert_eq!((w.len(), w[0].line), (1, 3), "{w:?}");
        assert_eq!(a.settings_for("nf.x"), (0.5, AggregationMethod::Average));
        assert_eq!(a.settings_for("x.count"), (0.5, AggregationMethod::Average));
        assert_eq!(
            a.schema_for("x.count").map(|s| s.name.as_str()),
            Some("onlypattern")
        );
        assert!(parse_storage_aggregation("a", "[x]\npattern=a\nxFilesFactor = 2\n").is_err());
        assert!(parse_storage_aggregation("a", "[x]\npattern=a\naggregationMethod = avg\n").is_err());
    }
}
