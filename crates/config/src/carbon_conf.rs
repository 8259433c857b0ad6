//! carbon.conf: carbon's `read_config` (stage one, [`read_settings`]) and the typed settings built
//! from it (stage two, [`CarbonSettings::from_raw`]).
//!
//! Stage one reproduces the dict carbon ends up with, key for key: conf.py's `defaults`, then the
//! program's section (`[cache]`, `[relay]`, `[aggregator]`), then `[<program>:<instance>]`, then the
//! derived paths (`PID_DIR`, `LOG_DIR`, `LOCAL_DATA_DIR`, `WHITELISTS_DIR`, `pidfile`). Each value is
//! typed as `Settings.readFrom` types it: a key whose default is a list is split at commas, one whose
//! default is a bool goes through `getboolean`, anything else becomes an int if `int()` takes it,
//! else a float if `float()` takes it (so `inf` works everywhere), else stays text. Note that
//! `items()` includes `[DEFAULT]`, so DEFAULT's keys are applied again by the instance section and
//! override `[cache]` there, as in carbon.
//!
//! Stage two checks each known key's type and range and names the line on any mismatch, where carbon
//! would carry a wrong type until it crashes at run time. Unknown keys are kept and warned about.

use std::collections::BTreeMap;

use crate::destination::{Destination, parse_destination};
use crate::error::{ConfigError, Warning};
use crate::ini::Ini;
use crate::pyvalue::{py_bool, py_float, py_int};

/// A value as carbon's `Settings` dict holds it after `readFrom`.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// Python `None` (a few defaults).
    None,
    /// A bool (from `getboolean`, or a default).
    Bool(bool),
    /// An int (`int()` accepted the text).
    Int(i64),
    /// A float (`float()` accepted it: `0.5`, `inf`, `1e3`).
    Float(f64),
    /// Anything else, as text.
    Str(String),
    /// A comma-separated list, each item stripped.
    List(Vec<String>),
}

impl PyValue {
    /// Python's `repr`, used to compare with carbon's own dict in the differential tests.
    pub fn py_repr(&self) -> String {
        fn s(x: &str) -> String {
            // Python's repr picks single quotes unless the text contains one and no double quote.
            let q = if x.contains('\'') && !x.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(q);
            for c in x.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        match self {
            PyValue::None => "None".into(),
            PyValue::Bool(b) => if *b { "True" } else { "False" }.into(),
            PyValue::Int(i) => i.to_string(),
            PyValue::Float(f) => py_float_repr(*f),
            PyValue::Str(x) => s(x),
            PyValue::List(v) => format!("[{}]", v.iter().map(|x| s(x)).collect::<Vec<_>>().join(", ")),
        }
    }
}

/// Python's `repr(float)`.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        let r = format!("{f:?}");
        // Rust writes 1e-5 as 1e-5, Python as 1e-05.
        match r.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => r,
        }
    }
}

/// One entry of the settings dict: its value and the line that set it (`None` for defaults and
/// derived values).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The value.
    pub value: PyValue,
    /// Where it was set.
    pub line: Option<usize>,
}

/// Stage one's result: carbon's settings dict, keyed by upper-case name.
pub type RawSettings = BTreeMap<String, Setting>;

/// conf.py's `defaults`, in its order: (name, default value).
pub fn defaults() -> Vec<(&'static str, PyValue)> {
    use PyValue::{Bool as B, Float as F, Int as I, None as N};
    let s = |x: &str| PyValue::Str(x.to_string());
    vec![
        ("USER", s("")),
        ("MAX_CACHE_SIZE", F(f64::INFINITY)),
        ("MAX_UPDATES_PER_SECOND", I(500)),
        ("MAX_CREATES_PER_MINUTE", F(f64::INFINITY)),
        ("MIN_TIMESTAMP_RESOLUTION", I(0)),
        ("MIN_TIMESTAMP_LAG", I(0)),
        ("LINE_RECEIVER_INTERFACE", s("0.0.0.0")),
        ("LINE_RECEIVER_PORT", I(2003)),
        ("ENABLE_UDP_LISTENER", B(false)),
        ("UDP_RECEIVER_INTERFACE", s("0.0.0.0")),
        ("UDP_RECEIVER_PORT", I(2003)),
        ("PICKLE_RECEIVER_INTERFACE", s("0.0.0.0")),
        ("PICKLE_RECEIVER_PORT", I(2004)),
        ("MAX_RECEIVER_CONNECTIONS", F(f64::INFINITY)),
        ("CACHE_QUERY_INTERFACE", s("0.0.0.0")),
        ("CACHE_QUERY_PORT", I(7002)),
        ("LOG_UPDATES", B(true)),
        ("LOG_CREATES", B(true)),
        ("LOG_CACHE_HITS", B(true)),
        ("LOG_CACHE_QUEUE_SORTS", B(true)),
        ("DATABASE", s("whisper")),
        ("WHISPER_AUTOFLUSH", B(false)),
        ("WHISPER_SPARSE_CREATE", B(false)),
        ("WHISPER_FALLOCATE_CREATE", B(false)),
        ("WHISPER_LOCK_WRITES", B(false)),
        ("WHISPER_FADVISE_RANDOM", B(false)),
        ("CERES_MAX_SLICE_GAP", I(80)),
        ("CERES_NODE_CACHING_BEHAVIOR", s("all")),
        ("CERES_SLICE_CACHING_BEHAVIOR", s("latest")),
        ("CERES_LOCK_WRITES", B(false)),
        ("MAX_DATAPOINTS_PER_MESSAGE", I(500)),
        ("MAX_AGGREGATION_INTERVALS", I(5)),
        ("FORWARD_ALL", B(true)),
        ("MAX_QUEUE_SIZE", I(1000)),
        ("QUEUE_LOW_WATERMARK_PCT", F(0.8)),
        ("TIME_TO_DEFER_SENDING", F(0.0001)),
        ("ENABLE_AMQP", B(false)),
        ("AMQP_METRIC_NAME_IN_BODY", B(false)),
        ("AMQP_VERBOSE", B(false)),
        ("AMQP_SPEC", N),
        ("BIND_PATTERNS", PyValue::List(vec!["#".into()])),
        ("GRAPHITE_URL", s("http://127.0.0.1:80")),
        ("ENABLE_TAGS", B(true)),
        ("TAG_UPDATE_INTERVAL", I(100)),
        ("TAG_BATCH_SIZE", I(100)),
        ("TAG_QUEUE_SIZE", I(10000)),
        ("TAG_HASH_FILENAMES", B(true)),
        ("TAG_RELAY_NORMALIZED", B(false)),
        ("ENABLE_MANHOLE", B(false)),
        ("MANHOLE_INTERFACE", s("127.0.0.1")),
        ("MANHOLE_PORT", I(7222)),
        ("MANHOLE_USER", s("")),
        ("MANHOLE_PUBLIC_KEY", s("")),
        ("MANHOLE_HOST_KEY_DIR", s("")),
        ("RELAY_METHOD", s("rules")),
        ("DYNAMIC_ROUTER", B(false)),
        ("DYNAMIC_ROUTER_MAX_RETRIES", I(5)),
        ("ROUTER_HASH_TYPE", N),
        ("REPLICATION_FACTOR", I(1)),
        ("DIVERSE_REPLICAS", B(true)),
        ("DESTINATIONS", PyValue::List(vec![])),
        ("DESTINATION_PROTOCOL", s("pickle")),
        ("DESTINATION_TRANSPORT", s("none")),
        ("DESTINATION_SSL_CA", N),
        ("DESTINATION_POOL_REPLICAS", B(false)),
        ("USE_FLOW_CONTROL", B(true)),
        ("USE_INSECURE_UNPICKLER", B(false)),
        ("USE_WHITELIST", B(false)),
        ("CARBON_METRIC_PREFIX", s("carbon")),
        ("CARBON_METRIC_INTERVAL", I(60)),
        ("CACHE_WRITE_STRATEGY", s("sorted")),
        ("WRITE_BACK_FREQUENCY", N),
        ("MIN_RESET_STAT_FLOW", I(1000)),
        ("MIN_RESET_RATIO", F(0.9)),
        ("MIN_RESET_INTERVAL", I(121)),
        ("TCP_KEEPALIVE", B(true)),
        ("TCP_KEEPIDLE", I(10)),
        ("TCP_KEEPINTVL", I(30)),
        ("TCP_KEEPCNT", I(2)),
        ("USE_RATIO_RESET", B(false)),
        ("LOG_LISTENER_CONN_SUCCESS", B(true)),
        ("LOG_AGGREGATOR_MISSES", B(true)),
        ("AGGREGATION_RULES", s("aggregation-rules.conf")),
        ("REWRITE_RULES", s("rewrite-rules.conf")),
        ("RELAY_RULES", s("relay-rules.conf")),
        ("ENABLE_LOGROTATION", B(true)),
        ("METRIC_CLIENT_IDLE_TIMEOUT", N),
        ("CACHE_METRIC_NAMES_MAX", I(0)),
        ("CACHE_METRIC_NAMES_TTL", I(0)),
        ("RAVEN_DSN", N),
        ("PICKLE_RECEIVER_MAX_LENGTH", I(1 << 20)),
    ]
}

/// Keys carbon reads although they are not in `defaults` (paths, shutdown rate, optional
/// listeners, AMQP): known, so not warned about.
const KNOWN_EXTRA: &[&str] = &[
    "STORAGE_DIR",
    "LOCAL_DATA_DIR",
    "WHITELISTS_DIR",
    "PID_DIR",
    "LOG_DIR",
    "CONF_DIR",
    "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN",
    "PROTOBUF_RECEIVER_INTERFACE",
    "PROTOBUF_RECEIVER_PORT",
    // Carbide's own: go-carbon's HTTP receiver, which carbon does not have.
    "HTTP_RECEIVER_INTERFACE",
    "HTTP_RECEIVER_PORT",
    "AMQP_HOST",
    "AMQP_PORT",
    "AMQP_VHOST",
    "AMQP_USER",
    "AMQP_PASSWORD",
    "AMQP_EXCHANGE",
];

/// Where carbon would look for things outside the file: what `read_config` takes from its
/// arguments and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEnv {
    /// `GRAPHITE_ROOT` (or `ROOT_DIR`); Debian's init scripts use `/`.
    pub graphite_root: String,
    /// `GRAPHITE_STORAGE_DIR`, if set.
    pub storage_dir: Option<String>,
    /// `$HOME`, for `~` in paths (carbon runs `expanduser` on them).
    pub home: Option<String>,
}

/// Python's `os.path.join(a, b)`.
pub(crate) fn py_join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_string()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// Python's `os.path.normpath` for POSIX paths.
pub fn py_normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let initial = if p.starts_with("//") && !p.starts_with("///") {
        2
    } else if p.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = vec![];
    for comp in p.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && parts.is_empty()) || parts.last() == Some(&"..") {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let joined = parts.join("/");
    let out = format!("{}{}", "/".repeat(initial), joined);
    if out.is_empty() { ".".into() } else { out }
}

/// Python's `os.path.dirname`.
fn py_dirname(p: &str) -> String {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    let head = &p[..i];
    if !head.is_empty() && head != "/".repeat(head.len()) {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    }
}

fn expanduser(p: &str, home: Option<&str>) -> String {
    match (p.strip_prefix('~'), home) {
        (Some(rest), Some(h)) if rest.is_empty() || rest.starts_with('/') => {
            let h = h.trim_end_matches('/');
            let h = if h.is_empty() { "/" } else { h };
            py_join(h, rest.trim_start_matches('/'))
                .trim_end_matches('/')
                .to_string()
                .replace("//", "/")
        }
        _ => p.to_string(),
    }
}

/// `Settings.readFrom(path, section)`: applies one section (and DEFAULT) on top of `settings`.
fn read_from(ini: &Ini, section: &str, settings: &mut RawSettings) -> Result<(), ConfigError> {
    if !ini.has_section(section) {
        return Ok(());
    }
    let types: BTreeMap<&str, PyValue> = defaults().into_iter().collect();
    for item in ini.items(section, 0)? {
        let key = item.key.to_uppercase();
        let value = match types.get(key.as_str()) {
            Some(PyValue::List(_)) => PyValue::List(
                item.value
                    .split(',')
                    .map(|v| crate::pyvalue::py_strip(v).to_string())
                    .collect(),
            ),
            Some(PyValue::Bool(_)) => match py_bool(&item.value) {
                Some(b) => PyValue::Bool(b),
                None => {
                    return Err(ConfigError::new(
                        ini.path(),
                        item.line,
                        format!(
                            "{key} = {:?} is not a boolean (use true/false, yes/no, on/off or 1/0)",
                            item.value
                        ),
                    ));
                }
            },
            _ => {
                if let Some(i) = py_int(&item.value) {
                    PyValue::Int(i)
                } else if let Some(f) = py_float(&item.value) {
                    PyValue::Float(f)
                } else {
                    PyValue::Str(item.value.clone())
                }
            }
        };
        settings.insert(
            key,
            Setting {
                value,
                line: Some(item.line),
            },
        );
    }
    Ok(())
}

/// A value that must already be text: carbon hands it to `os.path.join`, which refuses numbers.
fn path_text(settings: &RawSettings, key: &str) -> Option<String> {
    match &settings.get(key)?.value {
        PyValue::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn text_of(settings: &RawSettings, key: &str) -> Option<String> {
    match &settings.get(key)?.value {
        PyValue::Str(s) => Some(s.clone()),
        PyValue::Int(i) => Some(i.to_string()),
        PyValue::Float(f) => Some(py_float_repr(*f)),
        _ => None,
    }
}

/// carbon's `read_config(program, options)` over an already-parsed carbon.conf.
///
/// `program` is `carbon-cache`, `carbon-relay` or `carbon-aggregator`; `instance` is `--instance`
/// (carbon's default is `a`; `None` reads no instance section). `config_path` is the file's path,
/// from which `CONF_DIR` is derived as carbon does.
pub fn read_settings(
    ini: &Ini,
    config_path: &str,
    program: &str,
    instance: Option<&str>,
    env: &ConfigEnv,
) -> Result<RawSettings, ConfigError> {
    let mut settings: RawSettings = defaults()
        .into_iter()
        .map(|(k, v)| (k.to_string(), Setting { value: v, line: None }))
        .collect();
    let derived = |v: String| Setting {
        value: PyValue::Str(v),
        line: None,
    };
    settings.insert("CONF_DIR".into(), derived(py_dirname(&py_normpath(config_path))));
    let storage = env
        .storage_dir
        .clone()
        .unwrap_or_else(|| py_join(&env.graphite_root, "storage"));
    settings.insert("STORAGE_DIR".into(), derived(storage));
    let section = program.strip_prefix("carbon-").unwrap_or(program);
    read_from(ini, section, &mut settings)?;
    settings
        .entry("instance".into())
        .or_insert_with(|| match instance {
            Some(i) => derived(i.to_string()),
            None => Setting {
                value: PyValue::None,
                line: None,
            },
        });
    let deps = |settings: &mut RawSettings| -> Result<(), ConfigError> {
        let storage = path_text(settings, "STORAGE_DIR").ok_or_else(|| {
            ConfigError::new(
                ini.path(),
                settings.get("STORAGE_DIR").and_then(|s| s.line).unwrap_or(0),
                "STORAGE_DIR must be a path",
            )
        })?;
        let mut set = |k: &str, v: String| {
            settings.entry(k.to_string()).or_insert_with(|| derived(v));
        };
        set("PID_DIR", storage.clone());
        set("LOG_DIR", py_join(&py_join(&storage, "log"), program));
        set("LOCAL_DATA_DIR", py_join(&storage, "whisper"));
        set("WHITELISTS_DIR", py_join(&storage, "lists"));
        Ok(())
    };
    deps(&mut settings)?;
    let path_of = |settings: &RawSettings, k: &str| {
        path_text(settings, k).ok_or_else(|| {
            ConfigError::new(
                ini.path(),
                settings.get(k).and_then(|s| s.line).unwrap_or(0),
                format!("{k} must be a path"),
            )
        })
    };
    match instance.filter(|i| !i.is_empty()) {
        Some(inst) => {
            read_from(ini, &format!("{section}:{inst}"), &mut settings)?;
            let pid = py_join(&path_of(&settings, "PID_DIR")?, &format!("{program}-{inst}.pid"));
            settings.insert("pidfile".into(), derived(pid));
            let log = py_join(&path_of(&settings, "LOG_DIR")?, &format!("{program}-{inst}"));
            let line = settings.get("LOG_DIR").and_then(|s| s.line);
            settings.insert(
                "LOG_DIR".into(),
                Setting {
                    value: PyValue::Str(log),
                    line,
                },
            );
        }
        None => {
            let pid = py_join(&path_of(&settings, "PID_DIR")?, &format!("{program}.pid"));
            settings.insert("pidfile".into(), derived(pid));
        }
    }
    deps(&mut settings)?;
    Ok(settings)
}

/// How the cache picks the next metric to write (CACHE_WRITE_STRATEGY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStrategy {
    /// Most datapoints first, re-sorted periodically (carbon's default).
    Sorted,
    /// The metric with the most datapoints, found each time.
    Max,
    /// Insertion order.
    Naive,
    /// Oldest datapoint first.
    TimeSorted,
    /// Any metric.
    Random,
}

/// How a relay chooses destinations (RELAY_METHOD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMethod {
    /// relay-rules.conf.
    Rules,
    /// A consistent-hash ring over DESTINATIONS.
    ConsistentHashing,
    /// Hashing of the aggregated name, for aggregator clusters.
    AggregatedConsistentHashing,
    /// mmh3 hashing.
    FastHashing,
    /// mmh3 hashing of the aggregated name.
    FastAggregatedHashing,
}

macro_rules! typed_settings {
    ($( $(#[$doc:meta])* $key:literal => $field:ident : $ty:ty ),* $(,)?) => {
        /// carbon.conf's settings for one program and instance, typed and checked.
        #[derive(Debug, Clone, PartialEq)]
        pub struct CarbonSettings {
            $( $(#[$doc])* pub $field: $ty, )*
            /// CONF_DIR: the directory of carbon.conf; the other config files live here.
            pub conf_dir: String,
            /// STORAGE_DIR (normalised, `~` expanded).
            pub storage_dir: String,
            /// LOCAL_DATA_DIR: the whisper tree.
            pub local_data_dir: String,
            /// WHITELISTS_DIR.
            pub whitelists_dir: String,
            /// PID_DIR.
            pub pid_dir: String,
            /// LOG_DIR, with `<program>-<instance>` appended for an instance.
            pub log_dir: String,
            /// The pid file carbon would write.
            pub pidfile: String,
            /// The instance name, if any.
            pub instance: Option<String>,
            /// MAX_UPDATES_PER_SECOND_ON_SHUTDOWN; `None` keeps the normal rate on shutdown.
            pub max_updates_per_second_on_shutdown: Option<f64>,
            /// PROTOBUF_RECEIVER_INTERFACE and _PORT: the protobuf listener, off unless a port is set.
            pub protobuf_receiver: Option<(String, u16)>,
            /// HTTP_RECEIVER_INTERFACE and _PORT (carbide's, not carbon's): go-carbon's HTTP POST
            /// receiver, off unless a port is set.
            pub http_receiver: Option<(String, u16)>,
            /// CACHE_WRITE_STRATEGY, parsed.
            pub write_strategy: WriteStrategy,
            /// RELAY_METHOD, parsed.
            pub relay_method: RelayMethod,
            /// DESTINATIONS, parsed (`host:port[:instance]`, `[v6]:port[:instance]`).
            pub destinations: Vec<Destination>,
            /// Keys carbon does not know, with their values: kept, since plugins may read them.
            pub unknown: BTreeMap<String, PyValue>,
        }

        impl CarbonSettings {
            /// Stage two: checks and types stage one's dict.
            pub fn from_raw(raw: &RawSettings, path: &str, env: &ConfigEnv) -> Result<(CarbonSettings, Vec<Warning>), ConfigError> {
                let mut warnings = vec![];
                let known: Vec<&str> = defaults().iter().map(|(k, _)| *k).collect();
                let mut unknown = BTreeMap::new();
                for (k, s) in raw {
                    if !known.contains(&k.as_str()) && !KNOWN_EXTRA.contains(&k.as_str()) && k != "pidfile" && k != "instance" {
                        warnings.push(Warning::new(path, s.line.unwrap_or(0), format!("unknown setting {k}, kept but unused")));
                        unknown.insert(k.clone(), s.value.clone());
                    }
                }
                let get = |k: &str| raw.get(k).cloned().unwrap_or(Setting { value: PyValue::None, line: None });
                let ctx = Ctx { path, env };
                let strategy_s = get("CACHE_WRITE_STRATEGY");
                let write_strategy = match text_of(raw, "CACHE_WRITE_STRATEGY").as_deref() {
                    Some("sorted") => WriteStrategy::Sorted,
                    Some("max") => WriteStrategy::Max,
                    Some("naive") => WriteStrategy::Naive,
                    Some("timesorted") => WriteStrategy::TimeSorted,
                    Some("random") => WriteStrategy::Random,
                    _ => return Err(ctx.err(&strategy_s, "CACHE_WRITE_STRATEGY", "one of sorted, max, naive, timesorted, random")),
                };
                let method_s = get("RELAY_METHOD");
                let relay_method = match text_of(raw, "RELAY_METHOD").as_deref() {
                    Some("rules") => RelayMethod::Rules,
                    Some("consistent-hashing") => RelayMethod::ConsistentHashing,
                    Some("aggregated-consistent-hashing") => RelayMethod::AggregatedConsistentHashing,
                    Some("fast-hashing") => RelayMethod::FastHashing,
                    Some("fast-aggregated-hashing") => RelayMethod::FastAggregatedHashing,
                    _ => return Err(ctx.err(&method_s, "RELAY_METHOD", "one of rules, consistent-hashing, aggregated-consistent-hashing, fast-hashing, fast-aggregated-hashing")),
                };
                let dest_s = get("DESTINATIONS");
                let destinations = match &dest_s.value {
                    PyValue::List(v) if v.len() == 1 && v[0].is_empty() => vec![],
                    PyValue::List(v) => v
                        .iter()
                        .map(|d| parse_destination(d).map_err(|m| ConfigError::new(path, dest_s.line.unwrap_or(0), format!("DESTINATIONS: {m}"))))
                        .collect::<Result<_, _>>()?,
                    _ => vec![],
                };
                let shutdown_s = get("MAX_UPDATES_PER_SECOND_ON_SHUTDOWN");
                let max_updates_per_second_on_shutdown = match shutdown_s.value {
                    PyValue::None => None,
                    _ => Some(<f64 as FromPy>::from_py(&ctx, "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN", &shutdown_s)?),
                };
                // An optional listener: off without a port (or with 0), on 0.0.0.0 unless told.
                let listener = |prefix: &str| -> Result<Option<(String, u16)>, ConfigError> {
                    let key = format!("{prefix}_PORT");
                    let port_s = get(&key);
                    match port_s.value {
                        PyValue::None | PyValue::Int(0) => Ok(None),
                        _ => {
                            let port = <u16 as FromPy>::from_py(&ctx, &key, &port_s)?;
                            let iface = text_of(raw, &format!("{prefix}_INTERFACE")).unwrap_or_else(|| "0.0.0.0".into());
                            Ok(Some((iface, port)))
                        }
                    }
                };
                let protobuf_receiver = listener("PROTOBUF_RECEIVER")?;
                let http_receiver = listener("HTTP_RECEIVER")?;
                let path_setting = |k: &str| -> Result<String, ConfigError> {
                    let s = get(k);
                    let t = path_text(raw, k).ok_or_else(|| ctx.err(&s, k, "a path"))?;
                    Ok(py_normpath(&expanduser(&t, env.home.as_deref())))
                };
                let settings = CarbonSettings {
                    $( $field: <$ty as FromPy>::from_py(&ctx, $key, &get($key))?, )*
                    conf_dir: text_of(raw, "CONF_DIR").unwrap_or_default(),
                    storage_dir: path_setting("STORAGE_DIR")?,
                    local_data_dir: path_setting("LOCAL_DATA_DIR")?,
                    whitelists_dir: path_setting("WHITELISTS_DIR")?,
                    pid_dir: path_setting("PID_DIR")?,
                    log_dir: path_setting("LOG_DIR")?,
                    pidfile: path_setting("pidfile")?,
                    instance: text_of(raw, "instance"),
                    max_updates_per_second_on_shutdown,
                    protobuf_receiver,
                    http_receiver,
                    write_strategy,
                    relay_method,
                    destinations,
                    unknown,
                };
                settings.check(&ctx, raw)?;
                Ok((settings, warnings))
            }
        }
    };
}

/// What typing a setting needs to know to name its file and line.
struct Ctx<'a> {
    path: &'a str,
    env: &'a ConfigEnv,
}

impl Ctx<'_> {
    fn err(&self, s: &Setting, key: &str, want: &str) -> ConfigError {
        ConfigError::new(
            self.path,
            s.line.unwrap_or(0),
            format!("{key} = {} but it must be {want}", s.value.py_repr()),
        )
    }
}

/// Conversion of a settings-dict value to the Rust type a field needs.
trait FromPy: Sized {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError>;
}

impl FromPy for bool {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match s.value {
            PyValue::Bool(b) => Ok(b),
            _ => Err(ctx.err(s, key, "a boolean")),
        }
    }
}

impl FromPy for f64 {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match s.value {
            PyValue::Int(i) if i >= 0 => Ok(i as f64),
            PyValue::Float(f) if !f.is_nan() && f >= 0.0 => Ok(f),
            _ => Err(ctx.err(s, key, "a non-negative number (or inf)")),
        }
    }
}

impl FromPy for u64 {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match s.value {
            PyValue::Int(i) if i >= 0 => Ok(i as u64),
            _ => Err(ctx.err(s, key, "a non-negative integer")),
        }
    }
}

impl FromPy for u16 {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match s.value {
            PyValue::Int(i) => u16::try_from(i).map_err(|_| ctx.err(s, key, "a port number (0-65535)")),
            _ => Err(ctx.err(s, key, "a port number (0-65535)")),
        }
    }
}

impl FromPy for String {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match &s.value {
            PyValue::Str(x) => Ok(x.clone()),
            // int()/float() took it, but the setting means text (e.g. USER = 1000): carbon keeps the
            // number, and so would fail later; the text is what the operator wrote.
            PyValue::Int(i) => Ok(i.to_string()),
            PyValue::Float(f) => Ok(py_float_repr(*f)),
            _ => Err(ctx.err(s, key, "text")),
        }
    }
}

impl FromPy for Option<String> {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match &s.value {
            PyValue::None => Ok(None),
            _ => String::from_py(ctx, key, s).map(Some),
        }
    }
}

impl FromPy for Option<f64> {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match &s.value {
            PyValue::None => Ok(None),
            _ => f64::from_py(ctx, key, s).map(Some),
        }
    }
}

impl FromPy for Vec<String> {
    fn from_py(ctx: &Ctx<'_>, key: &str, s: &Setting) -> Result<Self, ConfigError> {
        match &s.value {
            PyValue::List(v) => Ok(v.clone()),
            _ => Err(ctx.err(s, key, "a comma-separated list")),
        }
    }
}

impl CarbonSettings {
    /// carbon's defaults for a program with no carbon.conf at all (what `carbide serve` starts from).
    pub fn defaults(
        program: &str,
        instance: Option<&str>,
        env: &ConfigEnv,
    ) -> Result<CarbonSettings, ConfigError> {
        // carbon's own fallback location: GRAPHITE_ROOT/conf/carbon.conf, so CONF_DIR is GRAPHITE_ROOT/conf.
        let path = py_join(&py_join(&env.graphite_root, "conf"), "carbon.conf");
        parse_carbon_conf(&path, "", program, instance, env).map(|(s, _)| s)
    }

    /// A file in CONF_DIR, joined as carbon joins it (an absolute name stays as it is).
    pub fn conf_file(&self, name: &str) -> String {
        py_join(&self.conf_dir, name)
    }

    /// storage-schemas.conf, which carbon-cache requires.
    pub fn storage_schemas_path(&self) -> String {
        self.conf_file("storage-schemas.conf")
    }

    /// storage-aggregation.conf (optional: carbon ignores a missing one).
    pub fn storage_aggregation_path(&self) -> String {
        self.conf_file("storage-aggregation.conf")
    }

    /// AGGREGATION_RULES, relative to CONF_DIR.
    pub fn aggregation_rules_path(&self) -> String {
        self.conf_file(&self.aggregation_rules)
    }

    /// REWRITE_RULES, relative to CONF_DIR.
    pub fn rewrite_rules_path(&self) -> String {
        self.conf_file(&self.rewrite_rules)
    }

    /// RELAY_RULES, relative to CONF_DIR.
    pub fn relay_rules_path(&self) -> String {
        self.conf_file(&self.relay_rules)
    }

    /// whitelist.conf (carbon's default when `--whitelist` is not given).
    pub fn whitelist_path(&self) -> String {
        self.conf_file("whitelist.conf")
    }

    /// blacklist.conf (carbon's default when `--blacklist` is not given).
    pub fn blacklist_path(&self) -> String {
        self.conf_file("blacklist.conf")
    }

    /// Range checks carbon leaves to run time.
    fn check(&self, ctx: &Ctx<'_>, raw: &RawSettings) -> Result<(), ConfigError> {
        let _ = ctx.env;
        let at = |k: &str| {
            raw.get(k).cloned().unwrap_or(Setting {
                value: PyValue::None,
                line: None,
            })
        };
        let frac = |k: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ctx.err(&at(k), k, "a fraction between 0 and 1"))
            }
        };
        frac("QUEUE_LOW_WATERMARK_PCT", self.queue_low_watermark_pct)?;
        frac("MIN_RESET_RATIO", self.min_reset_ratio)?;
        if self.replication_factor == 0 {
            return Err(ctx.err(&at("REPLICATION_FACTOR"), "REPLICATION_FACTOR", "at least 1"));
        }
        if self.destination_protocol != "pickle"
            && self.destination_protocol != "line"
            && self.destination_protocol != "protobuf"
        {
            return Err(ctx.err(
                &at("DESTINATION_PROTOCOL"),
                "DESTINATION_PROTOCOL",
                "one of pickle, line, protobuf",
            ));
        }
        if let Some(h) = &self.router_hash_type
            && !matches!(h.as_str(), "carbon_ch" | "fnv1a_ch" | "mmh3_ch")
        {
            return Err(ctx.err(
                &at("ROUTER_HASH_TYPE"),
                "ROUTER_HASH_TYPE",
                "one of carbon_ch, fnv1a_ch, mmh3_ch",
            ));
        }
        Ok(())
    }
}

typed_settings! {
    /// USER: the account carbon switches to after binding ("" = stay).
    "USER" => user: String,
    /// MAX_CACHE_SIZE: points held in the cache before flow control (inf = unbounded).
    "MAX_CACHE_SIZE" => max_cache_size: f64,
    /// MAX_UPDATES_PER_SECOND: whisper update_many calls per second across writers.
    "MAX_UPDATES_PER_SECOND" => max_updates_per_second: f64,
    /// MAX_CREATES_PER_MINUTE: new whisper files per minute; points for others are dropped.
    "MAX_CREATES_PER_MINUTE" => max_creates_per_minute: f64,
    /// MIN_TIMESTAMP_RESOLUTION: round timestamps down to this many seconds (0 = off).
    "MIN_TIMESTAMP_RESOLUTION" => min_timestamp_resolution: u64,
    /// MIN_TIMESTAMP_LAG: seconds a point waits in the cache before it may be written.
    "MIN_TIMESTAMP_LAG" => min_timestamp_lag: u64,
    /// LINE_RECEIVER_INTERFACE: address of the plaintext TCP listener.
    "LINE_RECEIVER_INTERFACE" => line_receiver_interface: String,
    /// LINE_RECEIVER_PORT: its port (0 = off).
    "LINE_RECEIVER_PORT" => line_receiver_port: u16,
    /// ENABLE_UDP_LISTENER: also take plaintext over UDP.
    "ENABLE_UDP_LISTENER" => enable_udp_listener: bool,
    /// UDP_RECEIVER_INTERFACE: address of the UDP listener.
    "UDP_RECEIVER_INTERFACE" => udp_receiver_interface: String,
    /// UDP_RECEIVER_PORT: its port.
    "UDP_RECEIVER_PORT" => udp_receiver_port: u16,
    /// PICKLE_RECEIVER_INTERFACE: address of the pickle listener.
    "PICKLE_RECEIVER_INTERFACE" => pickle_receiver_interface: String,
    /// PICKLE_RECEIVER_PORT: its port (0 = off).
    "PICKLE_RECEIVER_PORT" => pickle_receiver_port: u16,
    /// MAX_RECEIVER_CONNECTIONS: concurrent receiver connections (inf = unbounded).
    "MAX_RECEIVER_CONNECTIONS" => max_receiver_connections: f64,
    /// CACHE_QUERY_INTERFACE: address of the carbonlink listener.
    "CACHE_QUERY_INTERFACE" => cache_query_interface: String,
    /// CACHE_QUERY_PORT: its port (0 = off).
    "CACHE_QUERY_PORT" => cache_query_port: u16,
    /// LOG_UPDATES: log each whisper update.
    "LOG_UPDATES" => log_updates: bool,
    /// LOG_CREATES: log each new whisper file.
    "LOG_CREATES" => log_creates: bool,
    /// LOG_CACHE_HITS: log carbonlink queries.
    "LOG_CACHE_HITS" => log_cache_hits: bool,
    /// LOG_CACHE_QUEUE_SORTS: log the sorted strategy's re-sorts.
    "LOG_CACHE_QUEUE_SORTS" => log_cache_queue_sorts: bool,
    /// DATABASE: the storage plugin (whisper or ceres).
    "DATABASE" => database: String,
    /// WHISPER_AUTOFLUSH: fsync after each write.
    "WHISPER_AUTOFLUSH" => whisper_autoflush: bool,
    /// WHISPER_SPARSE_CREATE: create files sparse instead of zero-filled.
    "WHISPER_SPARSE_CREATE" => whisper_sparse_create: bool,
    /// WHISPER_FALLOCATE_CREATE: reserve file space with fallocate.
    "WHISPER_FALLOCATE_CREATE" => whisper_fallocate_create: bool,
    /// WHISPER_LOCK_WRITES: flock each file while writing.
    "WHISPER_LOCK_WRITES" => whisper_lock_writes: bool,
    /// WHISPER_FADVISE_RANDOM: tell the kernel reads are random.
    "WHISPER_FADVISE_RANDOM" => whisper_fadvise_random: bool,
    /// CERES_MAX_SLICE_GAP: ceres only.
    "CERES_MAX_SLICE_GAP" => ceres_max_slice_gap: u64,
    /// CERES_NODE_CACHING_BEHAVIOR: ceres only.
    "CERES_NODE_CACHING_BEHAVIOR" => ceres_node_caching_behavior: String,
    /// CERES_SLICE_CACHING_BEHAVIOR: ceres only.
    "CERES_SLICE_CACHING_BEHAVIOR" => ceres_slice_caching_behavior: String,
    /// CERES_LOCK_WRITES: ceres only.
    "CERES_LOCK_WRITES" => ceres_lock_writes: bool,
    /// MAX_DATAPOINTS_PER_MESSAGE: points per message a relay sends.
    "MAX_DATAPOINTS_PER_MESSAGE" => max_datapoints_per_message: u64,
    /// MAX_AGGREGATION_INTERVALS: intervals an aggregator keeps per buffer.
    "MAX_AGGREGATION_INTERVALS" => max_aggregation_intervals: u64,
    /// FORWARD_ALL: aggregator also forwards the original points.
    "FORWARD_ALL" => forward_all: bool,
    /// MAX_QUEUE_SIZE: points queued per destination before dropping.
    "MAX_QUEUE_SIZE" => max_queue_size: u64,
    /// QUEUE_LOW_WATERMARK_PCT: resume receiving below this fraction of MAX_QUEUE_SIZE.
    "QUEUE_LOW_WATERMARK_PCT" => queue_low_watermark_pct: f64,
    /// TIME_TO_DEFER_SENDING: seconds a relay waits to batch points.
    "TIME_TO_DEFER_SENDING" => time_to_defer_sending: f64,
    /// ENABLE_AMQP: consume from AMQP.
    "ENABLE_AMQP" => enable_amqp: bool,
    /// AMQP_METRIC_NAME_IN_BODY: names in message bodies.
    "AMQP_METRIC_NAME_IN_BODY" => amqp_metric_name_in_body: bool,
    /// AMQP_VERBOSE: log AMQP traffic.
    "AMQP_VERBOSE" => amqp_verbose: bool,
    /// AMQP_SPEC: an AMQP spec file.
    "AMQP_SPEC" => amqp_spec: Option<String>,
    /// BIND_PATTERNS: AMQP routing keys.
    "BIND_PATTERNS" => bind_patterns: Vec<String>,
    /// GRAPHITE_URL: graphite-web, for the tag database.
    "GRAPHITE_URL" => graphite_url: String,
    /// ENABLE_TAGS: register tagged series with the tag database.
    "ENABLE_TAGS" => enable_tags: bool,
    /// TAG_UPDATE_INTERVAL: one write in this many (over all series) re-registers its series.
    "TAG_UPDATE_INTERVAL" => tag_update_interval: u64,
    /// TAG_BATCH_SIZE: series per tag-database request.
    "TAG_BATCH_SIZE" => tag_batch_size: u64,
    /// TAG_QUEUE_SIZE: pending tag updates.
    "TAG_QUEUE_SIZE" => tag_queue_size: u64,
    /// TAG_HASH_FILENAMES: store tagged series under hashed file names.
    "TAG_HASH_FILENAMES" => tag_hash_filenames: bool,
    /// TAG_RELAY_NORMALIZED: relay tagged names normalised.
    "TAG_RELAY_NORMALIZED" => tag_relay_normalized: bool,
    /// ENABLE_MANHOLE: carbon's SSH Python shell (Carbide has admin endpoints instead).
    "ENABLE_MANHOLE" => enable_manhole: bool,
    /// MANHOLE_INTERFACE: its address.
    "MANHOLE_INTERFACE" => manhole_interface: String,
    /// MANHOLE_PORT: its port.
    "MANHOLE_PORT" => manhole_port: u16,
    /// MANHOLE_USER: its user.
    "MANHOLE_USER" => manhole_user: String,
    /// MANHOLE_PUBLIC_KEY: its key.
    "MANHOLE_PUBLIC_KEY" => manhole_public_key: String,
    /// MANHOLE_HOST_KEY_DIR: its host keys.
    "MANHOLE_HOST_KEY_DIR" => manhole_host_key_dir: String,
    /// RELAY_METHOD: as text (see `relay_method`).
    "RELAY_METHOD" => relay_method_name: String,
    /// DYNAMIC_ROUTER: drop destinations that fail from the ring.
    "DYNAMIC_ROUTER" => dynamic_router: bool,
    /// DYNAMIC_ROUTER_MAX_RETRIES: failures before a destination is dropped.
    "DYNAMIC_ROUTER_MAX_RETRIES" => dynamic_router_max_retries: u64,
    /// ROUTER_HASH_TYPE: carbon_ch, fnv1a_ch or mmh3_ch (None = the router's default).
    "ROUTER_HASH_TYPE" => router_hash_type: Option<String>,
    /// REPLICATION_FACTOR: copies of each point a relay sends.
    "REPLICATION_FACTOR" => replication_factor: u64,
    /// DIVERSE_REPLICAS: replicas on different hosts.
    "DIVERSE_REPLICAS" => diverse_replicas: bool,
    /// DESTINATIONS: as text (see `destinations`).
    "DESTINATIONS" => destination_strings: Vec<String>,
    /// DESTINATION_PROTOCOL: pickle, line or protobuf.
    "DESTINATION_PROTOCOL" => destination_protocol: String,
    /// DESTINATION_TRANSPORT: none or ssl.
    "DESTINATION_TRANSPORT" => destination_transport: String,
    /// DESTINATION_SSL_CA: CA bundle for ssl.
    "DESTINATION_SSL_CA" => destination_ssl_ca: Option<String>,
    /// DESTINATION_POOL_REPLICAS: pool connections to one host.
    "DESTINATION_POOL_REPLICAS" => destination_pool_replicas: bool,
    /// USE_FLOW_CONTROL: pause receivers when the cache is full instead of dropping.
    "USE_FLOW_CONTROL" => use_flow_control: bool,
    /// USE_INSECURE_UNPICKLER: accept any pickle (never do this).
    "USE_INSECURE_UNPICKLER" => use_insecure_unpickler: bool,
    /// USE_WHITELIST: apply whitelist.conf.
    "USE_WHITELIST" => use_whitelist: bool,
    /// CARBON_METRIC_PREFIX: prefix of self-metrics.
    "CARBON_METRIC_PREFIX" => carbon_metric_prefix: String,
    /// CARBON_METRIC_INTERVAL: seconds between self-metrics (0 = off).
    "CARBON_METRIC_INTERVAL" => carbon_metric_interval: u64,
    /// CACHE_WRITE_STRATEGY: as text (see `write_strategy`).
    "CACHE_WRITE_STRATEGY" => cache_write_strategy: String,
    /// WRITE_BACK_FREQUENCY: seconds between forced cache flushes (None = never).
    "WRITE_BACK_FREQUENCY" => write_back_frequency: Option<f64>,
    /// MIN_RESET_STAT_FLOW: relay ratio-reset threshold (points).
    "MIN_RESET_STAT_FLOW" => min_reset_stat_flow: u64,
    /// MIN_RESET_RATIO: relay ratio-reset threshold (fraction).
    "MIN_RESET_RATIO" => min_reset_ratio: f64,
    /// MIN_RESET_INTERVAL: relay ratio-reset interval (seconds).
    "MIN_RESET_INTERVAL" => min_reset_interval: u64,
    /// TCP_KEEPALIVE: keepalive on receiver sockets.
    "TCP_KEEPALIVE" => tcp_keepalive: bool,
    /// TCP_KEEPIDLE: keepalive idle seconds.
    "TCP_KEEPIDLE" => tcp_keepidle: u64,
    /// TCP_KEEPINTVL: keepalive probe interval.
    "TCP_KEEPINTVL" => tcp_keepintvl: u64,
    /// TCP_KEEPCNT: keepalive probes.
    "TCP_KEEPCNT" => tcp_keepcnt: u64,
    /// USE_RATIO_RESET: reset relay connections whose send ratio drops.
    "USE_RATIO_RESET" => use_ratio_reset: bool,
    /// LOG_LISTENER_CONN_SUCCESS: log each accepted connection.
    "LOG_LISTENER_CONN_SUCCESS" => log_listener_conn_success: bool,
    /// LOG_AGGREGATOR_MISSES: log points no aggregation rule matched.
    "LOG_AGGREGATOR_MISSES" => log_aggregator_misses: bool,
    /// AGGREGATION_RULES: file name, relative to CONF_DIR.
    "AGGREGATION_RULES" => aggregation_rules: String,
    /// REWRITE_RULES: file name, relative to CONF_DIR.
    "REWRITE_RULES" => rewrite_rules: String,
    /// RELAY_RULES: file name, relative to CONF_DIR.
    "RELAY_RULES" => relay_rules: String,
    /// ENABLE_LOGROTATION: reopen logs when rotated.
    "ENABLE_LOGROTATION" => enable_logrotation: bool,
    /// METRIC_CLIENT_IDLE_TIMEOUT: seconds before an idle receiver connection is closed (None = never).
    "METRIC_CLIENT_IDLE_TIMEOUT" => metric_client_idle_timeout: Option<f64>,
    /// CACHE_METRIC_NAMES_MAX: aggregator rule-match cache size (0 = unbounded dict).
    "CACHE_METRIC_NAMES_MAX" => cache_metric_names_max: u64,
    /// CACHE_METRIC_NAMES_TTL: its TTL in seconds (0 = none).
    "CACHE_METRIC_NAMES_TTL" => cache_metric_names_ttl: u64,
    /// RAVEN_DSN: Sentry DSN.
    "RAVEN_DSN" => raven_dsn: Option<String>,
    /// PICKLE_RECEIVER_MAX_LENGTH: largest pickle frame accepted, in bytes.
    "PICKLE_RECEIVER_MAX_LENGTH" => pickle_receiver_max_length: u64,
}

/// Parses and types carbon.conf for one program and instance; the usual entry point.
pub fn parse_carbon_conf(
    path: &str,
    text: &str,
    program: &str,
    instance: Option<&str>,
    env: &ConfigEnv,
) -> Result<(CarbonSettings, Vec<Warning>), ConfigError> {
    let ini = Ini::parse(path, text)?;
    let raw = read_settings(&ini, path, program, instance, env)?;
    CarbonSettings::from_raw(&raw, path, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> ConfigEnv {
        ConfigEnv {
            graphite_root: "/opt/graphite".into(),
            storage_dir: None,
            home: Some("/home/carbon".into()),
        }
    }

    fn cache(text: &str) -> Result<(CarbonSettings, Vec<Warning>), ConfigError> {
        parse_carbon_conf("/etc/carbon/carbon.conf", text, "carbon-cache", Some("a"), &env())
    }

    #[test]
    fn empty_file_is_carbons_defaults() {
        let (s, w) = cache("").unwrap();
        assert!(w.is_empty());
        assert_eq!(s.max_cache_size, f64::INFINITY);
        assert_eq!(s.max_updates_per_second, 500.0);
        assert_eq!(s.line_receiver_interface, "0.0.0.0");
        assert_eq!(
            (s.line_receiver_port, s.pickle_receiver_port, s.cache_query_port),
            (2003, 2004, 7002)
        );
        assert_eq!(s.write_strategy, WriteStrategy::Sorted);
        assert_eq!(s.relay_method, RelayMethod::Rules);
        assert_eq!(s.pickle_receiver_max_length, 1 << 20);
        assert_eq!(s.bind_patterns, ["#"]);
        assert!(s.destinations.is_empty());
        assert_eq!(s.conf_dir, "/etc/carbon");
        assert_eq!(s.storage_dir, "/opt/graphite/storage");
        assert_eq!(s.local_data_dir, "/opt/graphite/storage/whisper");
        assert_eq!(s.log_dir, "/opt/graphite/storage/log/carbon-cache/carbon-cache-a");
        assert_eq!(s.pidfile, "/opt/graphite/storage/carbon-cache-a.pid");
        assert_eq!(s.instance.as_deref(), Some("a"));
        assert_eq!(s.max_updates_per_second_on_shutdown, None);
        assert_eq!(s.protobuf_receiver, None);
        assert_eq!(s.storage_schemas_path(), "/etc/carbon/storage-schemas.conf");
        assert_eq!(s.aggregation_rules_path(), "/etc/carbon/aggregation-rules.conf");
        let d = CarbonSettings::defaults("carbon-relay", None, &env()).unwrap();
        assert_eq!(d.pidfile, "/opt/graphite/storage/carbon-relay.pid");
        assert_eq!(d.conf_file("/abs/rules.conf"), "/abs/rules.conf");
        assert_eq!(d.relay_rules_path(), "/opt/graphite/conf/relay-rules.conf");
    }

    #[test]
    fn typed_errors_name_the_line() {
        let cases: &[(&str, usize)] = &[
            ("[cache]\nLINE_RECEIVER_PORT = 70000\n", 2),
            ("[cache]\nLINE_RECEIVER_PORT = http\n", 2),
            ("[cache]\n\nMAX_CACHE_SIZE = lots\n", 3),
            ("[cache]\nMAX_CACHE_SIZE = -1\n", 2),
            ("[cache]\nMAX_QUEUE_SIZE = 1.5\n", 2),
            ("[cache]\nCACHE_WRITE_STRATEGY = fastest\n", 2),
            ("[cache]\nRELAY_METHOD = magic\n", 2),
            ("[cache]\nDESTINATIONS = a:1, b\n", 2),
            ("[cache]\nQUEUE_LOW_WATERMARK_PCT = 2\n", 2),
            ("[cache]\nREPLICATION_FACTOR = 0\n", 2),
            ("[cache]\nROUTER_HASH_TYPE = md5\n", 2),
            ("[cache]\nDESTINATION_PROTOCOL = http\n", 2),
            ("[cache]\nENABLE_TAGS = perhaps\n", 2),
            ("[cache:a]\nUSE_WHITELIST = 2\n", 2),
            ("[cache]\nMAX_UPDATES_PER_SECOND_ON_SHUTDOWN = fast\n", 2),
            ("[cache]\nPROTOBUF_RECEIVER_PORT = -5\n", 2),
        ];
        for (text, line) in cases {
            let e = cache(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("/etc/carbon/carbon.conf:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn instance_sections_and_paths() {
        let text = "\
[DEFAULT]
LOG_UPDATES = false
[cache]
STORAGE_DIR = ~/graphite/./storage/
LOG_UPDATES = true
USER = 1000
MAX_UPDATES_PER_SECOND = inf
DESTINATIONS =
mystery = 1
[cache:a]
LINE_RECEIVER_PORT = 2103
PID_DIR = /run/carbon
";
        let (s, w) = cache(text).unwrap();
        assert_eq!(s.line_receiver_port, 2103);
        // [cache:a] re-applies DEFAULT, which beats [cache]: carbon's behaviour.
        assert!(!s.log_updates);
        assert_eq!(s.user, "1000");
        assert_eq!(s.max_updates_per_second, f64::INFINITY);
        assert!(s.destinations.is_empty());
        assert_eq!(s.storage_dir, "/home/carbon/graphite/storage");
        assert_eq!(s.local_data_dir, "/home/carbon/graphite/storage/whisper");
        assert_eq!(s.pid_dir, "/run/carbon");
        assert_eq!(s.pidfile, "/run/carbon/carbon-cache-a.pid");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 9);
        let (b, _) = parse_carbon_conf("c", text, "carbon-cache", Some("b"), &env()).unwrap();
        assert_eq!(b.line_receiver_port, 2003);
        assert!(b.log_updates);
        assert_eq!(b.pidfile, "/home/carbon/graphite/storage/carbon-cache-b.pid");
    }

    #[test]
    fn python_helpers() {
        for (p, want) in [
            ("/a//b/./c/", "/a/b/c"),
            ("a/../../b", "../b"),
            ("/../x", "/x"),
            ("//x", "//x"),
            ("///x", "/x"),
            ("", "."),
            ("./", "."),
        ] {
            assert_eq!(py_normpath(p), want, "{p}");
        }
        for (f, want) in [
            (0.5, "0.5"),
            (1000.0, "1000.0"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (0.0001, "0.0001"),
        ] {
            assert_eq!(py_float_repr(f), want);
        }
        assert_eq!(PyValue::Str("it's".into()).py_repr(), "\"it's\"");
        assert_eq!(PyValue::List(vec!["a".into(), "".into()]).py_repr(), "['a', '']");
    }
}
