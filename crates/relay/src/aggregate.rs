//! carbon-aggregator's buffers: values per (output metric, interval), computed every `frequency`
//! seconds. Pure: the caller feeds points and says what time it is.
//!
//! The facts (carbon/aggregator/buffers.py, processor.py):
//! - a metric's buffer takes the frequency and method of the first rule that created it, and keeps
//!   them until the buffer is removed;
//! - interval = timestamp − timestamp mod frequency; the output timestamp is the interval start;
//! - every `frequency` seconds — or WRITE_BACK_FREQUENCY when that is shorter — counted from the
//!   buffer's creation, each interval that received a
//!   value since the last computation is emitted with the method over *all* its values so far (late
//!   data re-emits the interval), then marked inactive;
//! - intervals older than current − MAX_AGGREGATION_INTERVALS × frequency are removed after that
//!   computation, and a buffer left with no intervals is removed;
//! - FORWARD_ALL passes the input on unless it is itself one of the aggregates it produced;
//! - generated points skip rewrite `[post]` (carbon runs only the relay stage for them).

use std::collections::HashMap;

use carbide_config::aggregation_rules::RuleMethod;
use carbide_config::{AggregationRule, RewriteRules};

/// One aggregated datapoint ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The aggregate metric name.
    pub name: String,
    /// Interval start.
    pub timestamp: i64,
    /// The method over the interval's values.
    pub value: f64,
}

#[derive(Debug)]
struct Interval {
    start: i64,
    values: Vec<f64>,
    active: bool,
}

#[derive(Debug)]
struct MetricBuffer {
    frequency: i64,
    /// Seconds between computations: `frequency`, or WRITE_BACK_FREQUENCY when shorter.
    compute_every: f64,
    method: RuleMethod,
    /// In creation order, as Python's dict iterates.
    intervals: Vec<Interval>,
    /// When the next computation is due (seconds, caller's clock).
    next_compute: f64,
}

impl MetricBuffer {
    /// Emits each interval that received a value since its last computation (the method over all
    /// its values so far) and marks it computed; shared by a due computation and the final flush.
    fn emit_active(&mut self, name: &str, out: &mut Vec<Output>) {
        for i in self.intervals.iter_mut().filter(|i| i.active) {
            if let Some(value) = self.method.apply(&i.values) {
                out.push(Output {
                    name: name.to_string(),
                    timestamp: i.start,
                    value,
                });
            }
            i.active = false;
        }
    }
}

/// All buffers of an aggregator.
#[derive(Debug)]
pub struct Buffers {
    rules: Vec<AggregationRule>,
    rewrite: RewriteRules,
    forward_all: bool,
    max_intervals: i64,
    write_back: Option<f64>,
    buffers: HashMap<String, MetricBuffer>,
    /// Points that matched no rule (LOG_AGGREGATOR_MISSES counts them).
    pub misses: u64,
}

/// What one input point turned into right away.
#[derive(Debug, Default, PartialEq)]
pub struct Forward {
    /// The name to forward the raw point under (after `[pre]` and `[post]`), if FORWARD_ALL says so.
    pub name: Option<String>,
    /// How many rules took the point.
    pub aggregated: usize,
}

impl Buffers {
    /// Buffers for `rules` with FORWARD_ALL, MAX_AGGREGATION_INTERVALS and the rewrite rules.
    pub fn new(
        rules: Vec<AggregationRule>,
        rewrite: RewriteRules,
        forward_all: bool,
        max_intervals: u64,
    ) -> Buffers {
        Buffers {
            rules,
            rewrite,
            forward_all,
            max_intervals: i64::try_from(max_intervals).unwrap_or(i64::MAX / 4),
            write_back: None,
            buffers: HashMap::new(),
            misses: 0,
        }
    }

    /// WRITE_BACK_FREQUENCY: buffers made from now on compute every `min(it, frequency)` seconds
    /// (carbon's `configure_aggregation`); `None`, or a value that is not a positive number of
    /// seconds, leaves them at their rule's frequency.
    pub fn with_write_back_frequency(mut self, seconds: Option<f64>) -> Buffers {
        self.write_back = seconds.filter(|s| s.is_finite() && *s > 0.0);
        self
    }

    /// Replaces the rules (aggregation-rules.conf changed) and, as carbon does, clears every
    /// buffer: values not yet emitted are discarded.
    pub fn set_rules(&mut self, rules: Vec<AggregationRule>) {
        self.rules = rules;
        self.buffers.clear();
    }

    /// Replaces the rewrite rules (rewrite-rules.conf changed); buffers are kept.
    pub fn set_rewrite(&mut self, rewrite: RewriteRules) {
        self.rewrite = rewrite;
    }

    /// Number of live metric buffers.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// True when no buffer is live.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// Feeds one point received at `now`.
    pub fn input(&mut self, name: &str, value: f64, timestamp: f64, now: f64) -> Forward {
        let name = RewriteRules::apply(&self.rewrite.pre, name);
        let write_back = self.write_back;
        let mut produced: Vec<String> = Vec::new();
        for rule in &self.rules {
            let Some(agg) = rule.aggregate_metric(&name) else {
                continue;
            };
            let buf = self.buffers.entry(agg.clone()).or_insert_with(|| {
                let frequency = i64::try_from(rule.frequency.max(1)).unwrap_or(i64::MAX / 4);
                let compute_every = write_back.map_or(frequency as f64, |w| w.min(frequency as f64));
                MetricBuffer {
                    frequency,
                    compute_every,
                    method: rule.method,
                    intervals: Vec::new(),
                    next_compute: now + compute_every,
                }
            });
            let ts = timestamp.floor() as i64;
            let start = ts - ts.rem_euclid(buf.frequency);
            match buf.intervals.iter_mut().find(|i| i.start == start) {
                Some(i) => {
                    i.values.push(value);
                    i.active = true;
                }
                None => buf.intervals.push(Interval {
                    start,
                    values: vec![value],
                    active: true,
                }),
            }
            if !produced.contains(&agg) {
                produced.push(agg);
            }
        }
        if produced.is_empty() {
            self.misses += 1;
        }
        let forward = (self.forward_all && !produced.contains(&name))
            .then(|| RewriteRules::apply(&self.rewrite.post, &name));
        Forward {
            name: forward,
            aggregated: produced.len(),
        }
    }

    /// Runs every computation due at `now` and appends what they emit to `out`.
    pub fn tick(&mut self, now: f64, out: &mut Vec<Output>) {
        let now_i = now.floor() as i64;
        let max_intervals = self.max_intervals;
        self.buffers.retain(|name, buf| {
            if now < buf.next_compute {
                return true;
            }
            while buf.next_compute <= now {
                buf.next_compute += buf.compute_every;
            }
            let current = now_i - now_i.rem_euclid(buf.frequency);
            let threshold = current.saturating_sub(max_intervals.saturating_mul(buf.frequency));
            buf.emit_active(name, out);
            buf.intervals.retain(|i| i.start >= threshold);
            !buf.intervals.is_empty()
        });
    }

    /// Emits every interval that received a value since its last computation, due or not, and
    /// marks it computed: a shutdown's last word, so received values do not die with the buffers.
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        for (name, buf) in &mut self.buffers {
            buf.emit_active(name, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_config::{parse_aggregation_rules, parse_rewrite_rules};

    fn buffers(rules: &str, rewrite: &str, forward_all: bool) -> Buffers {
        let (rules, _) = parse_aggregation_rules("aggregation-rules.conf", rules).unwrap();
        let (rw, _) = parse_rewrite_rules("rewrite-rules.conf", rewrite).unwrap();
        Buffers::new(rules, rw, forward_all, 5)
    }

    #[test]
    fn emits_each_active_interval_once_per_tick_and_re_emits_late_data() {
        let mut b = buffers("<a>.sum (10) = sum <a>.*\n<a>.n (10) = count <a>.*\n", "", false);
        let t0 = 1000.0;
        assert_eq!(b.input("x.1", 1.0, 995.0, t0).aggregated, 2);
        b.input("x.2", 2.0, 999.9, t0);
        b.input("x.2", 4.0, 1001.0, t0);
        let mut out = vec![];
        b.tick(t0 + 9.0, &mut out);
        assert!(out.is_empty(), "not due yet");
        b.tick(t0 + 10.0, &mut out);
        out.sort_by(|a, b| (&a.name, a.timestamp).cmp(&(&b.name, b.timestamp)));
        let got: Vec<_> = out
            .iter()
            .map(|o| (o.name.as_str(), o.timestamp, o.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x.n", 990, 2.0),
                ("x.n", 1000, 1.0),
                ("x.sum", 990, 3.0),
                ("x.sum", 1000, 4.0)
            ]
        );
        out.clear();
        b.tick(t0 + 20.0, &mut out);
        assert!(out.is_empty(), "nothing new");
        b.input("x.3", 10.0, 992.0, t0 + 21.0);
        b.tick(t0 + 30.0, &mut out);
        let sum: Vec<_> = out
            .iter()
            .filter(|o| o.name == "x.sum")
            .map(|o| (o.timestamp, o.value))
            .collect();
        assert_eq!(
            sum,
            vec![(990, 13.0)],
            "all values of the interval, not just the late one"
        );
    }

    #[test]
    fn write_back_frequency_computes_partial_intervals_sooner() {
        let (rules, _) = parse_aggregation_rules("a.conf", "<a>.sum (60) = sum <a>.*\n").unwrap();
        let mut b =
            Buffers::new(rules, RewriteRules::default(), false, 5).with_write_back_frequency(Some(10.0));
        b.input("x.1", 1.0, 1200.0, 1000.0);
        let mut out = vec![];
        b.tick(1009.9, &mut out);
        assert!(out.is_empty());
        b.tick(1010.0, &mut out);
        assert_eq!(
            out,
            vec![Output {
                name: "x.sum".into(),
                timestamp: 1200,
                value: 1.0
            }]
        );
        b.input("x.2", 2.0, 1210.0, 1015.0);
        out.clear();
        b.tick(1020.0, &mut out);
        assert_eq!(
            out,
            vec![Output {
                name: "x.sum".into(),
                timestamp: 1200,
                value: 3.0
            }],
            "re-emitted whole"
        );
        // Longer than the frequency: the frequency wins (min), and junk is ignored.
        for wb in [Some(600.0), Some(0.0), Some(f64::NAN), None] {
            let (rules, _) = parse_aggregation_rules("a.conf", "<a>.sum (60) = sum <a>.*\n").unwrap();
            let mut b = Buffers::new(rules, RewriteRules::default(), false, 5).with_write_back_frequency(wb);
            b.input("x.1", 1.0, 1200.0, 1000.0);
            let mut out = vec![];
            b.tick(1059.0, &mut out);
            assert!(out.is_empty(), "{wb:?}");
            b.tick(1060.0, &mut out);
            assert_eq!(out.len(), 1, "{wb:?}");
        }
    }

    #[test]
    fn old_intervals_expire_and_empty_buffers_go() {
        let mut b = buffers("<a>.avg (10) = avg <a>.*\n", "", false);
        b.input("x.1", 1.0, 900.0, 1000.0);
        let mut out = vec![];
        b.tick(1010.0, &mut out);
        assert_eq!(out.len(), 1);
        assert!(b.is_empty(), "900 < 1010 - 5×10: removed after being emitted");
    }

    #[test]
    fn forward_all_skips_own_aggregates_and_applies_rewrites() {
        let mut b = buffers(
            "<a>.total (10) = sum <a>.*\n",
            "[pre]\n^pre\\. = \n[post]\n^x\\. = y.\n",
            true,
        );
        let f = b.input("pre.x.1", 1.0, 1000.0, 1000.0);
        assert_eq!(
            f,
            Forward {
                name: Some("y.1".into()),
                aggregated: 1
            }
        );
        // x.total matches <a>.* itself (a = x): carbon aggregates it into x.total and does not forward.
        let f = b.input("x.total", 1.0, 1000.0, 1000.0);
        assert_eq!(
            f,
            Forward {
                name: None,
                aggregated: 1
            }
        );
        let f = b.input("lonely", 1.0, 1000.0, 1000.0);
        assert_eq!(
            f,
            Forward {
                name: Some("lonely".into()),
                aggregated: 0
            }
        );
        assert_eq!(b.misses, 1);
    }
}
