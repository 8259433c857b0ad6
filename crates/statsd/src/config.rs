//! etsy statsd's configuration keys (exampleConfig.js), with its defaults.
//!
//! Field names deserialize from the same camelCase keys an etsy `config.js` uses, so a JSON copy of
//! an existing config loads as is; unknown keys (graphiteHost, port, backends, …) are ignored here
//! and left to the server that owns sockets.

use serde::Deserialize;

use crate::error::ConfigError;

/// `percentThreshold`: one number or a list; negative values select the top of the range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PercentThreshold {
    /// A single threshold, listified as statsd does.
    One(f64),
    /// Several thresholds, processed in order.
    Many(Vec<f64>),
}

impl Default for PercentThreshold {
    fn default() -> Self {
        PercentThreshold::One(90.0)
    }
}

impl PercentThreshold {
    /// The thresholds in processing order.
    pub fn values(&self) -> Vec<f64> {
        match self {
            PercentThreshold::One(v) => vec![*v],
            PercentThreshold::Many(v) => v.clone(),
        }
    }
}

/// One upper bin limit of a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bin {
    /// A number: values strictly below it (and above the previous bin) fall in.
    Limit(f64),
    /// `'inf'`: every remaining value.
    Inf,
}

impl<'de> Deserialize<'de> for Bin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(Bin::Limit(v)),
            Raw::Text(t) if t == "inf" => Ok(Bin::Inf),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "histogram bin must be a number or 'inf', not {t:?}"
            ))),
        }
    }
}

/// One `histogram` entry: timers whose key contains `metric` get these bins (first match wins).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistogramRule {
    /// A substring of the timer key; `""` matches every timer.
    pub metric: String,
    /// Ordered, non-inclusive upper limits.
    pub bins: Vec<Bin>,
}

/// The `graphite` sub-object: how names are built.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GraphiteConfig {
    /// `stats.<k>`/`stats_counts.<k>` (true) or `<globalPrefix>.<prefixCounter>.<k>.rate|count`.
    pub legacy_namespace: bool,
    /// First component of every non-legacy name; `""` leaves it out.
    pub global_prefix: String,
    /// Counter component (non-legacy).
    pub prefix_counter: String,
    /// Timer component (non-legacy).
    pub prefix_timer: String,
    /// Gauge component (non-legacy).
    pub prefix_gauge: String,
    /// Set component (non-legacy).
    pub prefix_set: String,
    /// Appended as `.<suffix>` to every name (before tags).
    pub global_suffix: Option<String>,
}

impl Default for GraphiteConfig {
    fn default() -> Self {
        GraphiteConfig {
            legacy_namespace: true,
            global_prefix: "stats".into(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            global_suffix: None,
        }
    }
}

/// The statsd settings the engine uses, named as in etsy's config.js.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// Milliseconds between flushes; rates are per second of it.
    pub flush_interval: u64,
    /// Timer percentiles.
    pub percent_threshold: PercentThreshold,
    /// Defaults for the four `delete*` switches below when they are unset.
    pub delete_idle_stats: bool,
    /// Drop idle counters instead of sending 0 (statsd's own counters stay).
    pub delete_counters: Option<bool>,
    /// Drop idle timers instead of sending count 0.
    pub delete_timers: Option<bool>,
    /// Drop idle gauges instead of repeating them.
    pub delete_gauges: Option<bool>,
    /// Drop idle sets instead of sending count 0.
    pub delete_sets: Option<bool>,
    /// Flushes an idle gauge survives with deleteGauges; values that are not integers > 1 mean 1.
    #[serde(rename = "gaugesMaxTTL")]
    pub gauges_max_ttl: f64,
    /// Prefix of statsd's own metrics.
    pub prefix_stats: String,
    /// Sanitise keys on ingress (otherwise the graphite backend sanitises the name part).
    pub key_name_sanitize: bool,
    /// Send `stats_counts.*` / `.count` for counters.
    #[serde(rename = "flush_counts")]
    pub flush_counts: bool,
    /// Only these timer metrics (`_percent` standing for any threshold suffix); empty: all.
    pub calculated_timer_metrics: Option<Vec<String>>,
    /// Timer histograms.
    pub histogram: Vec<HistogramRule>,
    /// Graphite naming.
    pub graphite: GraphiteConfig,
    /// Carbide's memory bound: at most this many distinct keys held at once (None: unbounded,
    /// as etsy statsd). Samples for new keys beyond it are dropped and counted.
    #[serde(rename = "carbideMaxKeys")]
    pub max_keys: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flush_interval: 10_000,
            percent_threshold: PercentThreshold::default(),
            delete_idle_stats: false,
            delete_counters: None,
            delete_timers: None,
            delete_gauges: None,
            delete_sets: None,
            gauges_max_ttl: 1.0,
            prefix_stats: "statsd".into(),
            key_name_sanitize: true,
            flush_counts: true,
            calculated_timer_metrics: None,
            histogram: Vec::new(),
            graphite: GraphiteConfig::default(),
            max_keys: None,
        }
    }
}

impl Config {
    /// Reads a JSON object with etsy's keys.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))
    }

    /// Checks the values and resolves the defaults that depend on each other.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        if self.flush_interval == 0 {
            return Err(ConfigError::FlushInterval);
        }
        let thresholds = self.percent_threshold.values();
        if let Some(p) = thresholds.iter().find(|p| !p.is_finite()) {
            return Err(ConfigError::PercentThreshold(*p));
        }
        for rule in &self.histogram {
            if let Some(Bin::Limit(v)) = rule
                .bins
                .iter()
                .find(|b| matches!(b, Bin::Limit(v) if v.is_nan()))
            {
                return Err(ConfigError::HistogramBin(*v));
            }
        }
        let idle = self.delete_idle_stats;
        let ttl = self.gauges_max_ttl;
        Ok(Settings {
            flush_interval_ms: self.flush_interval,
            thresholds,
            delete_counters: self.delete_counters.unwrap_or(idle),
            delete_timers: self.delete_timers.unwrap_or(idle),
            delete_gauges: self.delete_gauges.unwrap_or(idle),
            delete_sets: self.delete_sets.unwrap_or(idle),
            // `as` saturates: a huge TTL stays huge, as in JS.
            gauges_max_ttl: if ttl.fract() == 0.0 && ttl > 1.0 {
                ttl as u64
            } else {
                1
            },
            config: self.clone(),
        })
    }
}

/// A validated config with its derived switches.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// flushInterval in ms (> 0).
    pub flush_interval_ms: u64,
    /// percentThreshold, listified, all finite.
    pub thresholds: Vec<f64>,
    /// Resolved deleteCounters.
    pub delete_counters: bool,
    /// Resolved deleteTimers.
    pub delete_timers: bool,
    /// Resolved deleteGauges.
    pub delete_gauges: bool,
    /// Resolved deleteSets.
    pub delete_sets: bool,
    /// Resolved gaugesMaxTTL (≥ 1).
    pub gauges_max_ttl: u64,
    /// The config as given.
    pub config: Config,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_etsy_keys() {
        let c = Config::from_json(
            r#"{"flushInterval": 500, "percentThreshold": [90, -95.5], "deleteIdleStats": true,
                "deleteGauges": false, "gaugesMaxTTL": 3, "graphite": {"legacyNamespace": false,
                "globalPrefix": "", "globalSuffix": "host"}, "histogram": [{"metric": "a",
                "bins": [0.5, 10, "inf"]}], "graphiteHost": "127.0.0.1", "flush_counts": false}"#,
        )
        .unwrap();
        let s = c.validate().unwrap();
        assert_eq!(s.thresholds, vec![90.0, -95.5]);
        assert!(s.delete_counters && s.delete_timers && s.delete_sets && !s.delete_gauges);
        assert_eq!(s.gauges_max_ttl, 3);
        assert!(!c.graphite.legacy_namespace);
        assert_eq!(c.graphite.prefix_counter, "counters");
        assert_eq!(
            c.histogram[0].bins,
            vec![Bin::Limit(0.5), Bin::Limit(10.0), Bin::Inf]
        );
        assert!(!c.flush_counts);
        let one = Config::from_json(r#"{"percentThreshold": 99}"#).unwrap();
        assert_eq!(one.validate().unwrap().thresholds, vec![99.0]);
    }

    #[test]
    fn refusals_and_ttl() {
        assert!(Config::from_json(r#"{"histogram": [{"metric": "", "bins": ["x"]}]}"#).is_err());
        assert!(Config::from_json(r#"{"flushInterval": -1}"#).is_err());
        let zero = Config {
            flush_interval: 0,
            ..Config::default()
        };
        assert_eq!(zero.validate(), Err(ConfigError::FlushInterval));
        for (ttl, want) in [(0.0, 1), (1.0, 1), (2.5, 1), (-3.0, 1), (5.0, 5)] {
            let c = Config {
                gauges_max_ttl: ttl,
                ..Config::default()
            };
            assert_eq!(c.validate().unwrap().gauges_max_ttl, want, "{ttl}");
        }
    }
}
