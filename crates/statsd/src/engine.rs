//! The buckets of stats.js and its flush: what a packet changes, what a flush sends and clears.

use std::collections::HashSet;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::config::{Config, Settings};
use crate::error::ConfigError;
use crate::graphite::{BackendStats, Flush, GraphiteLine, Namer};
use crate::jsnum::js_round;
use crate::parse::{Line, Sample, Value, decode_ascii, decode_utf8, lines};
use crate::timer::{Stat, timer_data};

/// JS objects ignore writes to `__proto__` (and statsd would crash on it as a timer or set key):
/// metrics under that key vanish, set members of that name are never counted.
const PROTO: &str = "__proto__";

#[derive(Debug, Clone, Default)]
pub(crate) struct Timer {
    values: Vec<f64>,
    count: f64,
}

/// The buckets the admin console can delete from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// `delcounters`.
    Counters,
    /// `deltimers`.
    Timers,
    /// `delgauges`.
    Gauges,
}

/// Measured durations statsd reports about itself; pure code cannot time itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlushTimings {
    /// `processing_time`: ms spent in process_metrics.
    pub processing_ms: f64,
    /// `graphiteStats.calculationtime`: ms spent building the graphite lines.
    pub calculation_ms: f64,
}

/// Counts the engine keeps beside the buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Bad segments since start (statsd's `stats.messages.bad_lines_seen`).
    pub bad_lines_seen: u64,
    /// Samples refused because `max_keys` distinct keys were held.
    pub keys_over_limit: u64,
}

/// A bucket key, shared between the live buckets and a flush's snapshot so that taking the
/// snapshot under the server's lock copies pointers, not a million names.
type Key = Arc<str>;

/// A StatsD server's state without the sockets: feed it packets, call [`Statsd::flush`] every
/// flushInterval, send the lines to graphite.
#[derive(Debug, Clone)]
pub struct Statsd {
    settings: Arc<Settings>,
    namer: Arc<Namer>,
    counters: IndexMap<Key, f64>,
    timers: IndexMap<Key, Timer>,
    gauges: IndexMap<Key, f64>,
    gauges_ttl: IndexMap<Key, u64>,
    sets: IndexMap<Key, HashSet<String>>,
    bad_lines_key: String,
    packets_key: String,
    metrics_key: String,
    lag_key: String,
    over_limit_key: String,
    internal_keys: usize,
    startup_time: i64,
    old_timestamp: i64,
    backend: BackendStats,
    stats: EngineStats,
}

impl Statsd {
    /// A fresh engine; `startup_ms` is the wall clock at start (statsd's `startup_time`).
    pub fn new(config: Config, startup_ms: i64) -> Result<Self, ConfigError> {
        let settings = config.validate()?;
        let p = &settings.config.prefix_stats;
        let mut counters = IndexMap::new();
        let bad_lines_key = format!("{p}.bad_lines_seen");
        let packets_key = format!("{p}.packets_received");
        let metrics_key = format!("{p}.metrics_received");
        let over_limit_key = format!("{p}.keys_over_limit");
        counters.insert(Key::from(bad_lines_key.as_str()), 0.0);
        counters.insert(Key::from(packets_key.as_str()), 0.0);
        counters.insert(Key::from(metrics_key.as_str()), 0.0);
        if settings.config.max_keys.is_some() {
            counters.insert(Key::from(over_limit_key.as_str()), 0.0);
        }
        let startup_time = js_round(startup_ms as f64 / 1000.0) as i64;
        Ok(Statsd {
            namer: Arc::new(Namer::new(&settings.config)),
            internal_keys: counters.len(),
            counters,
            timers: IndexMap::new(),
            gauges: IndexMap::new(),
            gauges_ttl: IndexMap::new(),
            sets: IndexMap::new(),
            lag_key: format!("{p}.timestamp_lag"),
            bad_lines_key,
            packets_key,
            metrics_key,
            over_limit_key,
            startup_time,
            old_timestamp: 0,
            backend: BackendStats {
                last_exception: 0,
                last_flush: startup_time,
                flush_time_ms: 0.0,
                flush_length: 0,
            },
            stats: EngineStats::default(),
            settings: Arc::new(settings),
        })
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Counts beside the buckets.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// A UDP datagram (decoded as UTF-8, invalid bytes as U+FFFD).
    pub fn handle_packet(&mut self, packet: &[u8]) {
        let text = decode_utf8(packet);
        self.handle_text(&text);
    }

    /// A TCP chunk ending at a newline (decoded as node's `ascii`: high bit cleared).
    pub fn handle_tcp_packet(&mut self, packet: &[u8]) {
        let text = decode_ascii(packet);
        self.handle_text(&text);
    }

    /// An already decoded packet.
    pub fn handle_text(&mut self, packet: &str) {
        bump(&mut self.counters, &self.packets_key, 1.0);
        let sanitize = self.settings.config.key_name_sanitize;
        for raw in lines(packet) {
            bump(&mut self.counters, &self.metrics_key, 1.0);
            let line = Line::parse(raw, sanitize);
            for seg in line.samples() {
                match seg {
                    Ok(sample) => self.record(line.key(), sample),
                    Err(_) => {
                        bump(&mut self.counters, &self.bad_lines_key, 1.0);
                        self.stats.bad_lines_seen += 1;
                    }
                }
            }
        }
    }

    fn held_keys(&self) -> usize {
        let held = self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len();
        let lag = usize::from(self.gauges.contains_key(self.lag_key.as_str()));
        held.saturating_sub(self.internal_keys + lag)
    }

    /// Whether a new key may be created; counts the refusal otherwise.
    fn admit_new_key(&mut self) -> bool {
        match self.settings.config.max_keys {
            Some(max) if self.held_keys() >= max => {
                self.stats.keys_over_limit += 1;
                bump(&mut self.counters, &self.over_limit_key, 1.0);
                false
            }
            _ => true,
        }
    }

    /// Applies one sample to its bucket, as stats.js does.
    pub fn record(&mut self, key: &str, sample: Sample<'_>) {
        if key == PROTO {
            return;
        }
        match sample.value {
            Value::Counter(v) => {
                let add = v * (1.0 / sample.sample_rate);
                if let Some(c) = self.counters.get_mut(key) {
                    // `if (!counters[key]) counters[key] = 0;` also resets NaN.
                    if *c == 0.0 || c.is_nan() {
                        *c = 0.0;
                    }
                    *c += add;
                } else if self.admit_new_key() {
                    self.counters.insert(Key::from(key), 0.0 + add);
                }
            }
            Value::Timer(v) => {
                if !self.timers.contains_key(key) {
                    if !self.admit_new_key() {
                        return;
                    }
                    self.timers.insert(Key::from(key), Timer::default());
                }
                let Some(t) = self.timers.get_mut(key) else {
                    return;
                };
                t.values.push(v);
                t.count += 1.0 / sample.sample_rate;
            }
            Value::Gauge { value, delta } => {
                let exists = self.gauges.contains_key(key);
                if !exists && !self.admit_new_key() {
                    return;
                }
                if self.settings.delete_gauges {
                    match self.gauges_ttl.get_mut(key) {
                        Some(t) => *t = self.settings.gauges_max_ttl,
                        None => {
                            self.gauges_ttl
                                .insert(Key::from(key), self.settings.gauges_max_ttl);
                        }
                    }
                }
                match self.gauges.get_mut(key) {
                    // `gauges[key]` must be truthy (non-zero, not NaN) for a delta to add.
                    Some(g) if delta && *g != 0.0 && !g.is_nan() => *g += value,
                    Some(g) => *g = value,
                    None => {
                        self.gauges.insert(Key::from(key), value);
                    }
                }
            }
            Value::Set(member) => {
                if !self.sets.contains_key(key) {
                    if !self.admit_new_key() {
                        return;
                    }
                    self.sets.insert(Key::from(key), HashSet::new());
                }
                let Some(s) = self.sets.get_mut(key) else {
                    return;
                };
                if member != PROTO && !s.contains(member) {
                    s.insert(member.to_string());
                }
            }
        }
    }

    /// How long until the next flush, as statsd's `getFlushTimeout` aligns flushes to
    /// whole intervals after its start second.
    pub fn next_flush_delay_ms(&self, now_ms: i64) -> i64 {
        let interval = self.settings.flush_interval_ms as f64;
        let start = self.startup_time as f64 * 1000.0;
        let attempt = js_round((now_ms as f64 - start) / interval) + 1.0;
        (start + attempt * interval - now_ms as f64) as i64
    }

    /// Flushes with zero self-timings. See [`Statsd::flush_with`].
    pub fn flush(&mut self, now_ms: i64) -> Flush {
        self.flush_with(now_ms, FlushTimings::default())
    }

    /// Computes the flush at `now_ms` (wall clock), returns the graphite lines and clears the
    /// buckets as stats.js's `clear_metrics` does. The backend's own lines (`graphiteStats.*`)
    /// report the previous payload, as graphite.js does. A server that must keep receiving
    /// during a big flush calls the three steps itself: [`Statsd::begin_flush`] under its lock,
    /// [`PendingFlush::format`] without it, [`Statsd::finish_flush`] under it again.
    pub fn flush_with(&mut self, now_ms: i64, timings: FlushTimings) -> Flush {
        let flush = self.begin_flush(now_ms, timings).format();
        self.finish_flush(&flush);
        flush
    }

    /// The flush instant: takes what the flush reports (counter values, timer samples, gauge
    /// values, set members) out of the buckets and clears them as `clear_metrics` does, so that
    /// packets from now on count in the next flush, as they would in node. Costs a pointer copy
    /// per key; the lines are built later by [`PendingFlush::format`], outside any lock.
    pub fn begin_flush(&mut self, now_ms: i64, timings: FlushTimings) -> PendingFlush {
        let ts = js_round(now_ms as f64 / 1000.0) as i64;
        let interval_s = self.settings.flush_interval_ms as f64 / 1000.0;
        if self.old_timestamp > 0 {
            let lag = (ts - self.old_timestamp) as f64 - interval_s;
            match self.gauges.get_mut(self.lag_key.as_str()) {
                Some(g) => *g = lag,
                None => {
                    self.gauges.insert(Key::from(self.lag_key.as_str()), lag);
                }
            }
        }
        self.old_timestamp = ts;
        let s = self.settings.clone();

        let counters = if s.delete_counters {
            let taken = std::mem::take(&mut self.counters);
            for k in taken.keys() {
                if k.contains("packets_received")
                    || k.contains("metrics_received")
                    || k.contains("bad_lines_seen")
                    || **k == *self.over_limit_key
                {
                    self.counters.insert(k.clone(), 0.0);
                }
            }
            taken
        } else {
            let snapshot = self.counters.clone();
            self.counters.values_mut().for_each(|v| *v = 0.0);
            snapshot
        };
        let timers = if s.delete_timers {
            std::mem::take(&mut self.timers)
        } else {
            self.timers
                .iter_mut()
                .map(|(k, t)| (k.clone(), std::mem::take(t)))
                .collect()
        };
        let gauges = self.gauges.clone();
        let sets = if s.delete_sets {
            std::mem::take(&mut self.sets)
        } else {
            self.sets
                .iter_mut()
                .map(|(k, members)| (k.clone(), std::mem::take(members)))
                .collect()
        };
        if s.delete_gauges {
            self.expire_gauges();
        }
        PendingFlush {
            ts,
            settings: s,
            namer: self.namer.clone(),
            counters,
            timers,
            gauges,
            sets,
            backend: self.backend,
            timings,
        }
    }

    /// Records the flush's payload length for the next `graphiteStats.flush_length`, as
    /// graphite.js does once the lines of [`Statsd::begin_flush`] are built.
    pub fn finish_flush(&mut self, flush: &Flush) {
        self.backend.flush_length = flush.text_len_utf16();
        self.backend.last_flush = flush.timestamp;
    }

    /// Records how the last payload's send went, for the next `graphiteStats` lines.
    pub fn note_graphite_send(&mut self, flush_time_ms: f64, finished_at_s: i64) {
        self.backend.flush_time_ms = flush_time_ms;
        self.backend.last_flush = finished_at_s;
    }

    /// Records the length of the payload actually sent (graphite.js's `flush_length`), when it
    /// is not the plaintext one `flush` assumed: a pickle payload's bytes.
    pub fn note_payload_length(&mut self, len: usize) {
        self.backend.flush_length = len;
    }

    /// Records a failed send (graphite.js's `last_exception`).
    pub fn note_graphite_error(&mut self, at_s: i64) {
        self.backend.last_exception = at_s;
    }

    /// The gauge half of stats.js `clear_metrics` under deleteGauges: one flush less to live.
    fn expire_gauges(&mut self) {
        let mut expired: HashSet<Key> = HashSet::new();
        self.gauges_ttl.retain(|k, ttl| {
            *ttl = ttl.saturating_sub(1);
            if *ttl < 1 {
                expired.insert(k.clone());
                false
            } else {
                true
            }
        });
        if !expired.is_empty() {
            self.gauges.retain(|k, _| !expired.contains(k));
        }
    }

    /// The admin console's `delcounters`/`deltimers`/`delgauges` for one argument: the exact
    /// key, and with a trailing `.*` every key under that folder. Returns what was deleted, in
    /// statsd's order (an exact `a.*` key would be listed twice, as statsd does).
    pub fn delete_stats(&mut self, kind: StatKind, bucket: &str) -> Vec<String> {
        let keys: Vec<&Key> = match kind {
            StatKind::Counters => self.counters.keys().collect(),
            StatKind::Timers => self.timers.keys().collect(),
            StatKind::Gauges => self.gauges.keys().collect(),
        };
        let mut matches: Vec<String> = Vec::new();
        if keys.iter().any(|k| &***k == bucket) {
            matches.push(bucket.to_string());
        }
        if let Some(folder) = bucket.strip_suffix('*').filter(|_| bucket.ends_with(".*")) {
            for i in js_order(keys.iter().copied()) {
                if keys[i].starts_with(folder) {
                    matches.push(keys[i].to_string());
                }
            }
        }
        for m in &matches {
            match kind {
                StatKind::Counters => self.counters.shift_remove(m.as_str()),
                StatKind::Timers => self.timers.shift_remove(m.as_str()).map(|_| 0.0),
                StatKind::Gauges => self.gauges.shift_remove(m.as_str()),
            };
        }
        matches
    }

    /// Current counters, in insertion order (the admin `counters` command).
    pub fn counters(&self) -> impl Iterator<Item = (&str, f64)> {
        self.counters.iter().map(|(k, v)| (&**k, *v))
    }

    /// Current gauges, in insertion order.
    pub fn gauges(&self) -> impl Iterator<Item = (&str, f64)> {
        self.gauges.iter().map(|(k, v)| (&**k, *v))
    }

    /// Current timer values, in insertion order.
    pub fn timers(&self) -> impl Iterator<Item = (&str, &[f64])> {
        self.timers.iter().map(|(k, t)| (&**k, t.values.as_slice()))
    }
}

/// What one flush reports, taken from the buckets at the flush instant by
/// [`Statsd::begin_flush`]: numbers and shared keys, turned into lines by
/// [`PendingFlush::format`] away from the engine (and its lock).
#[derive(Debug)]
pub struct PendingFlush {
    ts: i64,
    settings: Arc<Settings>,
    namer: Arc<Namer>,
    counters: IndexMap<Key, f64>,
    timers: IndexMap<Key, Timer>,
    gauges: IndexMap<Key, f64>,
    sets: IndexMap<Key, HashSet<String>>,
    backend: BackendStats,
    timings: FlushTimings,
}

impl PendingFlush {
    /// Keys the flush reports (statsd's `numStats`).
    pub fn keys(&self) -> usize {
        self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len()
    }

    /// Builds the lines as process_metrics and graphite.js do: counters, timers (statistics,
    /// percentiles, histograms), gauges, sets — each in JS `for…in` order — then statsd's own.
    pub fn format(mut self) -> Flush {
        let ts = self.ts;
        let interval_s = self.settings.flush_interval_ms as f64 / 1000.0;
        let namer = &*self.namer;
        let mut out: Vec<GraphiteLine> = Vec::new();
        let num_stats = self.keys() as f64;
        for i in js_order(self.counters.keys().map(|k| &**k)) {
            if let Some((key, value)) = self.counters.get_index(i) {
                namer.counter(&mut out, key, *value, value / interval_s, ts);
            }
        }
        drop(std::mem::take(&mut self.counters));
        let settings = &*self.settings;
        let config = &settings.config;
        for i in js_order(self.timers.keys().map(|k| &**k)) {
            if let Some((key, t)) = self.timers.get_index_mut(i) {
                let data = timer_data(
                    key,
                    &mut t.values,
                    t.count,
                    &settings.thresholds,
                    settings.flush_interval_ms,
                    &config.histogram,
                    config.calculated_timer_metrics.as_deref(),
                );
                t.values = Vec::new();
                for (name, stat) in &data.0 {
                    match stat {
                        Stat::Num(v) => namer.timer(&mut out, key, &[name], *v, ts),
                        Stat::Undefined => {}
                        Stat::Histogram(bins) => {
                            for (bin, freq) in bins {
                                namer.timer(&mut out, key, &[name, bin], *freq, ts);
                            }
                        }
                    }
                }
            }
        }
        drop(std::mem::take(&mut self.timers));
        for i in js_order(self.gauges.keys().map(|k| &**k)) {
            if let Some((key, v)) = self.gauges.get_index(i) {
                namer.gauge(&mut out, key, *v, ts);
            }
        }
        drop(std::mem::take(&mut self.gauges));
        for i in js_order(self.sets.keys().map(|k| &**k)) {
            if let Some((key, s)) = self.sets.get_index(i) {
                namer.set(&mut out, key, s.len() as f64, ts);
            }
        }
        namer.internals(
            &mut out,
            num_stats,
            self.timings.calculation_ms,
            self.timings.processing_ms,
            ts,
        );
        namer.backend_stats(&mut out, &self.backend, ts);
        Flush {
            timestamp: ts,
            lines: out,
        }
    }
}

/// `counters[key]++` on statsd's own counters: after an admin `delcounters` removed one, JS
/// computes `undefined + 1`, and the counter stays NaN from then on.
fn bump(counters: &mut IndexMap<Key, f64>, key: &str, by: f64) {
    match counters.get_mut(key) {
        Some(c) => *c += by,
        None => {
            counters.insert(Key::from(key), f64::NAN);
        }
    }
}

/// Whether `k` is an array index (canonical u32 below 2^32 − 1), which JS enumerates first.
fn array_index(k: &str) -> Option<u32> {
    if k.is_empty() || k.len() > 10 || (k.len() > 1 && k.starts_with('0')) {
        return None;
    }
    if !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    k.parse::<u64>()
        .ok()
        .filter(|v| *v < u64::from(u32::MAX))
        .and_then(|v| u32::try_from(v).ok())
}

/// The order `for…in` visits an object's keys: integer-like keys ascending, then the rest in
/// insertion order.
fn js_order<'a, K: AsRef<str> + ?Sized + 'a>(keys: impl Iterator<Item = &'a K>) -> Vec<usize> {
    let mut ints: Vec<(u32, usize)> = Vec::new();
    let mut rest: Vec<usize> = Vec::new();
    for (i, k) in keys.enumerate() {
        match array_index(k.as_ref()) {
            Some(n) => ints.push((n, i)),
            None => rest.push(i),
        }
    }
    ints.sort_unstable();
    ints.into_iter().map(|(_, i)| i).chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(json: &str) -> Statsd {
        Statsd::new(Config::from_json(json).unwrap(), 1_000_000_000_000).unwrap()
    }

    fn names(f: &Flush) -> Vec<&str> {
        f.lines.iter().map(|l| l.name.as_str()).collect()
    }

    #[test]
    fn counters_and_internal_metrics() {
        let mut e = engine(r#"{"flushInterval": 1000}"#);
        e.handle_packet(b"a:1|c\na:2|c|@0.1\nbad\n\nb:x|c");
        let f = e.flush(1_000_000_001_000);
        assert_eq!(f.timestamp, 1_000_000_001);
        assert_eq!(f.value("stats.a").as_deref(), Some("21"));
        assert_eq!(f.value("stats_counts.a").as_deref(), Some("21"));
        assert_eq!(
            f.value("stats_counts.statsd.bad_lines_seen").as_deref(),
            Some("2")
        );
        assert_eq!(
            f.value("stats_counts.statsd.packets_received").as_deref(),
            Some("1")
        );
        assert_eq!(
            f.value("stats_counts.statsd.metrics_received").as_deref(),
            Some("4")
        );
        assert_eq!(f.value("statsd.numStats").as_deref(), Some("4"));
        assert_eq!(
            f.value("stats.statsd.graphiteStats.last_flush").as_deref(),
            Some("1000000000")
        );
        assert_eq!(
            f.value("stats.statsd.graphiteStats.flush_length").as_deref(),
            Some("0")
        );
        assert_eq!(e.stats().bad_lines_seen, 2);
        // Second flush: idle counters are sent as 0, the lag gauge appears.
        let g = e.flush(1_000_000_002_400);
        assert_eq!(g.value("stats.a").as_deref(), Some("0"));
        assert_eq!(g.value("stats.gauges.statsd.timestamp_lag").as_deref(), Some("0"));
        let flen: usize = f.to_text().encode_utf16().count();
        assert_eq!(
            g.value("stats.statsd.graphiteStats.flush_length").as_deref(),
            Some(flen.to_string().as_str())
        );
    }

    #[test]
    fn gauges_deltas_and_ttl() {
        let mut e = engine(r#"{"deleteGauges": true, "gaugesMaxTTL": 2}"#);
        e.handle_packet(b"g:+5|g\ng:-2|g\nz:0|g\nz:+3|g\nz:-1|g\nn:Infinity|g\nn:-Infinity|g");
        let f = e.flush(1_000_000_010_000);
        assert_eq!(f.value("stats.gauges.g").as_deref(), Some("3"));
        assert_eq!(f.value("stats.gauges.z").as_deref(), Some("2"));
        assert_eq!(f.value("stats.gauges.n").as_deref(), Some("NaN"));
        // A NaN gauge is falsy in JS: the next delta sets instead of adding.
        e.handle_packet(b"n:+5|g");
        assert_eq!(e.gauges().find(|(k, _)| *k == "n").map(|(_, v)| v), Some(5.0));
        let f = e.flush(1_000_000_020_000);
        assert_eq!(f.value("stats.gauges.g").as_deref(), Some("3"));
        let f = e.flush(1_000_000_030_000);
        assert_eq!(f.value("stats.gauges.g").as_deref(), None);
        e.handle_packet(b"g:+4|g");
        let f = e.flush(1_000_000_040_000);
        assert_eq!(f.value("stats.gauges.g").as_deref(), Some("4"));
    }

    #[test]
    fn delete_idle_and_order() {
        let mut e = engine(r#"{"deleteIdleStats": true}"#);
        e.handle_packet(b"b:1|c\n10:1|c\n2:1|c\nfoo.packets_received:1|c\nt:1|ms\ns:x|s");
        let f = e.flush(1_000_000_010_000);
        let counters: Vec<&str> = names(&f)
            .into_iter()
            .filter(|n| n.starts_with("stats_counts"))
            .collect();
        assert_eq!(
            counters,
            [
                "stats_counts.2",
                "stats_counts.10",
                "stats_counts.statsd.bad_lines_seen",
                "stats_counts.statsd.packets_received",
                "stats_counts.statsd.metrics_received",
                "stats_counts.b",
                "stats_counts.foo.packets_received",
            ]
        );
        let f = e.flush(1_000_000_020_000);
        assert_eq!(f.value("stats.b").as_deref(), None);
        assert_eq!(f.value("stats.foo.packets_received").as_deref(), Some("0"));
        assert_eq!(f.value("stats.timers.t.count").as_deref(), None);
        assert_eq!(f.value("stats.sets.s.count").as_deref(), None);
    }

    #[test]
    fn idle_timers_sets_without_delete() {
        let mut e = engine("{}");
        e.handle_packet(b"t:1|ms\ns:x|s\ns:y|s\ns:x|s\ns:__proto__|s\n__proto__:1|c");
        let f = e.flush(1_000_000_010_000);
        assert_eq!(f.value("stats.sets.s.count").as_deref(), Some("2"));
        assert_eq!(f.value("stats.__proto__").as_deref(), None);
        let f = e.flush(1_000_000_020_000);
        assert_eq!(f.value("stats.timers.t.count").as_deref(), Some("0"));
        assert_eq!(f.value("stats.timers.t.count_ps").as_deref(), Some("0"));
        assert_eq!(f.value("stats.timers.t.upper").as_deref(), None);
        assert_eq!(f.value("stats.sets.s.count").as_deref(), Some("0"));
    }

    #[test]
    fn non_legacy_names_suffix_and_tags() {
        let mut e = engine(
            r#"{"graphite": {"legacyNamespace": false, "globalPrefix": "p", "prefixCounter": "",
                "globalSuffix": "h"}, "percentThreshold": [50]}"#,
        );
        e.handle_packet(b"c:1|c|#env:prod\nt:2|ms\ng:1|g\ns:1|s");
        let f = e.flush(1_000_000_010_000);
        assert_eq!(f.value("p.c.rate.h;env=prod").as_deref(), Some("0.1"));
        assert_eq!(f.value("p.c.count.h;env=prod").as_deref(), Some("1"));
        assert_eq!(f.value("p.timers.t.upper_50.h").as_deref(), Some("2"));
        assert_eq!(f.value("p.gauges.g.h").as_deref(), Some("1"));
        assert_eq!(f.value("p.sets.s.count.h").as_deref(), Some("1"));
        assert_eq!(f.value("p.statsd.numStats.h").as_deref(), Some("7"));
        assert_eq!(
            f.value("p.statsd.graphiteStats.calculationtime.h").as_deref(),
            Some("0")
        );
        assert_eq!(f.value("p.statsd.processing_time.h").as_deref(), Some("0"));
        assert_eq!(
            f.value("p.statsd.graphiteStats.last_exception.h").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn unsanitized_keys_are_cleaned_by_the_backend_only_in_the_name() {
        let mut e = engine(r#"{"keyNameSanitize": false}"#);
        e.handle_packet(b"a b/c:1|c|#t:x y");
        let f = e.flush(1_000_000_010_000);
        assert_eq!(f.value("stats.a_b-c;t=x y").as_deref(), Some("0.1"));
    }

    #[test]
    fn key_limit() {
        let mut e = engine(r#"{"carbideMaxKeys": 2}"#);
        e.handle_packet(b"a:1|c\nb:1|ms\nc:1|g\na:1|c\nd:x|s");
        assert_eq!(e.stats().keys_over_limit, 2);
        let f = e.flush(1_000_000_010_000);
        assert_eq!(f.value("stats_counts.a").as_deref(), Some("2"));
        assert_eq!(f.value("stats.gauges.c").as_deref(), None);
        assert_eq!(
            f.value("stats_counts.statsd.keys_over_limit").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn admin_deletes() {
        let mut e = engine("{}");
        e.handle_packet(b"a.x:1|c\na.y:1|c\nab:1|c\nt:1|ms\ng:1|g");
        assert_eq!(e.delete_stats(StatKind::Counters, "a.*"), ["a.x", "a.y"]);
        assert_eq!(e.delete_stats(StatKind::Counters, "ab"), ["ab"]);
        assert!(e.delete_stats(StatKind::Counters, "zz").is_empty());
        assert_eq!(e.delete_stats(StatKind::Timers, "t"), ["t"]);
        assert_eq!(
            e.delete_stats(StatKind::Counters, "statsd.packets_received"),
            ["statsd.packets_received"]
        );
        e.handle_packet(b"g:+1|g");
        let f = e.flush(1_000_000_010_000);
        assert_eq!(f.value("stats_counts.a.x").as_deref(), None);
        assert_eq!(f.value("stats.timers.t.count").as_deref(), None);
        assert_eq!(f.value("stats.gauges.g").as_deref(), Some("2"));
        // statsd's `undefined + 1`.
        assert_eq!(
            f.value("stats_counts.statsd.packets_received").as_deref(),
            Some("NaN")
        );
    }

    #[test]
    fn flush_delay_aligns_to_start() {
        let e = engine(r#"{"flushInterval": 400}"#);
        assert_eq!(e.next_flush_delay_ms(1_000_000_000_100), 300);
        assert_eq!(e.next_flush_delay_ms(1_000_000_000_250), 550);
    }

    #[test]
    fn js_key_order() {
        let keys: Vec<String> = ["b", "10", "a", "2", "4294967295", "4294967294", "01"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let order: Vec<&str> = js_order(keys.iter())
            .into_iter()
            .map(|i| keys[i].as_str())
            .collect();
        assert_eq!(order, ["2", "10", "4294967294", "b", "a", "4294967295", "01"]);
    }
}
