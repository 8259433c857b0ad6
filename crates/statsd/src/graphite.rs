//! Names and lines as etsy statsd's backends/graphite.js writes them.
//!
//! `format(namespace, key, parts…)` splits the key at `;`: the first piece is the name, the rest
//! are tags re-appended after the suffix (`stats.timers.api.upper_90.host;env=prod`).

use std::fmt::Write as _;

use crate::config::Config;
use crate::jsnum::JsNumber;
use crate::parse::sanitize_key;

/// One line of the graphite plaintext protocol: `name value timestamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphiteLine {
    /// The full metric name, tags included.
    pub name: String,
    /// The value, kept as a number (a million-key flush is millions of lines; a String each
    /// cost ~50 bytes more) and printed as JS prints it (`0.30000000000000004`, `NaN`, `1e+21`).
    pub value: JsNumber,
    /// Unix seconds.
    pub timestamp: i64,
}

/// The namespaces of graphite.js's `init`, resolved once.
#[derive(Debug, Clone)]
pub struct Namer {
    legacy: bool,
    global: Vec<String>,
    counter: Vec<String>,
    timer: Vec<String>,
    gauge: Vec<String>,
    set: Vec<String>,
    suffix: String,
    prefix_stats: String,
    sanitize_names: bool,
    flush_counts: bool,
}

impl Namer {
    /// Builds the namespaces from a config.
    pub fn new(config: &Config) -> Self {
        let g = &config.graphite;
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (global, counter, timer, gauge, set) = if g.legacy_namespace {
            (
                s(&["stats"]),
                s(&["stats"]),
                s(&["stats", "timers"]),
                s(&["stats", "gauges"]),
                s(&["stats", "sets"]),
            )
        } else {
            let global: Vec<String> = if g.global_prefix.is_empty() {
                vec![]
            } else {
                vec![g.global_prefix.clone()]
            };
            let with = |p: &str| {
                let mut v = global.clone();
                if !p.is_empty() {
                    v.push(p.to_string());
                }
                v
            };
            (
                global.clone(),
                with(&g.prefix_counter),
                with(&g.prefix_timer),
                with(&g.prefix_gauge),
                with(&g.prefix_set),
            )
        };
        Namer {
            legacy: g.legacy_namespace,
            global,
            counter,
            timer,
            gauge,
            set,
            suffix: g
                .global_suffix
                .as_ref()
                .map_or(String::new(), |s| format!(".{s}")),
            prefix_stats: config.prefix_stats.clone(),
            sanitize_names: !config.key_name_sanitize,
            flush_counts: config.flush_counts,
        }
    }

    /// graphite.js `format`: namespace, name, parts joined by `.`, then suffix, then tags.
    fn format(&self, namespace: &[String], key: &str, parts: &[&str]) -> String {
        let (name, tags) = match key.split_once(';') {
            Some((n, t)) => (n, Some(t)),
            None => (key, None),
        };
        let name = if self.sanitize_names {
            sanitize_key(name)
        } else {
            name.into()
        };
        let mut out = String::with_capacity(key.len() + 32);
        for ns in namespace {
            out.push_str(ns);
            out.push('.');
        }
        out.push_str(&name);
        for p in parts {
            out.push('.');
            out.push_str(p);
        }
        out.push_str(&self.suffix);
        if let Some(t) = tags {
            out.push(';');
            out.push_str(t);
        }
        out
    }

    /// The two lines of a counter: rate and (with flush_counts) count.
    pub fn counter(&self, out: &mut Vec<GraphiteLine>, key: &str, count: f64, rate: f64, ts: i64) {
        if self.legacy {
            out.push(line(self.format(&self.counter, key, &[]), rate, ts));
            if self.flush_counts {
                out.push(line(
                    self.format(&["stats_counts".to_string()], key, &[]),
                    count,
                    ts,
                ));
            }
        } else {
            out.push(line(self.format(&self.counter, key, &["rate"]), rate, ts));
            if self.flush_counts {
                out.push(line(self.format(&self.counter, key, &["count"]), count, ts));
            }
        }
    }

    /// A timer statistic (`parts` = `["upper_90"]` or `["histogram", "bin_5"]`).
    pub fn timer(&self, out: &mut Vec<GraphiteLine>, key: &str, parts: &[&str], v: f64, ts: i64) {
        out.push(line(self.format(&self.timer, key, parts), v, ts));
    }

    /// A gauge.
    pub fn gauge(&self, out: &mut Vec<GraphiteLine>, key: &str, v: f64, ts: i64) {
        out.push(line(self.format(&self.gauge, key, &[]), v, ts));
    }

    /// A set's size.
    pub fn set(&self, out: &mut Vec<GraphiteLine>, key: &str, size: f64, ts: i64) {
        out.push(line(self.format(&self.set, key, &["count"]), size, ts));
    }

    /// statsd's own lines after the metrics: numStats, calculationtime, processing_time.
    pub fn internals(
        &self,
        out: &mut Vec<GraphiteLine>,
        num_stats: f64,
        calculation_ms: f64,
        processing_ms: f64,
        ts: i64,
    ) {
        let p = &self.prefix_stats;
        let sfx = &self.suffix;
        if self.legacy {
            out.push(line(format!("{p}.numStats{sfx}"), num_stats, ts));
            out.push(line(
                format!("stats.{p}.graphiteStats.calculationtime{sfx}"),
                calculation_ms,
                ts,
            ));
            out.push(line(format!("stats.{p}.processing_time{sfx}"), processing_ms, ts));
        } else {
            out.push(line(self.format(&self.global, p, &["numStats"]), num_stats, ts));
            out.push(line(
                self.format(&self.global, p, &["graphiteStats", "calculationtime"]),
                calculation_ms,
                ts,
            ));
            out.push(line(
                self.format(&self.global, p, &["processing_time"]),
                processing_ms,
                ts,
            ));
        }
    }

    /// post_stats's four `graphiteStats` lines, added when the connection opens.
    pub fn backend_stats(&self, out: &mut Vec<GraphiteLine>, stats: &BackendStats, ts: i64) {
        let mut ns = self.global.join(".");
        if !ns.is_empty() {
            ns.push('.');
        }
        ns.push_str(&self.prefix_stats);
        let sfx = &self.suffix;
        out.push(line(
            format!("{ns}.graphiteStats.last_exception{sfx}"),
            stats.last_exception as f64,
            ts,
        ));
        out.push(line(
            format!("{ns}.graphiteStats.last_flush{sfx}"),
            stats.last_flush as f64,
            ts,
        ));
        out.push(line(
            format!("{ns}.graphiteStats.flush_time{sfx}"),
            stats.flush_time_ms,
            ts,
        ));
        out.push(line(
            format!("{ns}.graphiteStats.flush_length{sfx}"),
            stats.flush_length as f64,
            ts,
        ));
    }
}

fn line(name: String, value: f64, timestamp: i64) -> GraphiteLine {
    GraphiteLine {
        name,
        value: JsNumber(value),
        timestamp,
    }
}

/// The graphite backend's own bookkeeping (`graphiteStats`), reported with the next flush.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendStats {
    /// Unix seconds of the last send error (0: none).
    pub last_exception: i64,
    /// Unix seconds of the last send (the start time before the first).
    pub last_flush: i64,
    /// How long the last write took, in ms.
    pub flush_time_ms: f64,
    /// Length of the last payload in UTF-16 code units, as JS counts `string.length`.
    pub flush_length: usize,
}

/// The lines of one flush, in the order graphite.js writes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flush {
    /// The flush timestamp (Unix seconds).
    pub timestamp: i64,
    /// Every line, statsd's own included.
    pub lines: Vec<GraphiteLine>,
}

impl Flush {
    /// The plaintext payload: one `name value ts` per line, newline-terminated.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let _ = writeln!(s, "{} {} {}", l.name, l.value, l.timestamp);
        }
        if self.lines.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Writes [`Flush::to_text`]'s bytes to `w` line by line, so a sender need not hold the
    /// whole text (143 MB for a million keys) beside the lines.
    pub fn write_text(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        for l in &self.lines {
            writeln!(w, "{} {} {}", l.name, l.value, l.timestamp)?;
        }
        if self.lines.is_empty() {
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The length of [`Flush::to_text`] in UTF-16 code units (graphite.js's `flush_length`),
    /// without building the text: a flush of a million keys is hundreds of MB of it.
    pub fn text_len_utf16(&self) -> usize {
        if self.lines.is_empty() {
            return 1;
        }
        let utf16 = |s: &str| {
            if s.is_ascii() {
                s.len()
            } else {
                s.encode_utf16().count()
            }
        };
        self.lines
            .iter()
            .map(|l| utf16(&l.name) + printed_len(l.value) + decimal_len(l.timestamp) + 3)
            .sum()
    }

    /// The value of the first line with this name, as JS prints it.
    pub fn value(&self, name: &str) -> Option<String> {
        self.lines
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.to_string())
    }
}

/// Characters of a number as JS prints it (always ASCII), counted without allocating.
fn printed_len(v: JsNumber) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = write!(c, "{v}");
    c.0
}

/// Characters of `n` printed in decimal, sign included.
fn decimal_len(n: i64) -> usize {
    let mut len = usize::from(n < 0) + 1;
    let mut m = n.unsigned_abs();
    while m >= 10 {
        m /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_len_matches_the_text() {
        let l = |name: &str, value: f64, timestamp: i64| GraphiteLine {
            name: name.into(),
            value: JsNumber(value),
            timestamp,
        };
        for lines in [
            vec![],
            vec![l("a", 1.0, 0)],
            vec![l("stats.x", 0.1 + 0.2, 1_700_000_000), l("é;t=ü", f64::NAN, -5)],
            vec![
                l("𝄞", f64::NEG_INFINITY, 9),
                l("b", 1e21, 10),
                l("c", 2.0, -1_000_000),
                l("d", 5e-7, 0),
            ],
        ] {
            let f = Flush { timestamp: 0, lines };
            assert_eq!(f.text_len_utf16(), f.to_text().encode_utf16().count(), "{f:?}");
            let mut written = Vec::new();
            f.write_text(&mut written).unwrap();
            assert_eq!(written, f.to_text().into_bytes());
        }
    }
}
