//! Timer statistics of lib/process_metrics.js, including its edge cases.
//!
//! The arithmetic follows the JS line by line (cumulative sums in sorted order, `sum / n`, a
//! population standard deviation from a second pass), so every float rounds as node's does. A
//! percentile beyond ±100 reads past the array: JS gets `undefined`, which the graphite backend
//! then skips, and `NaN` where `undefined` meets arithmetic. [`Stat::Undefined`] keeps that.

use crate::config::{Bin, HistogramRule};
use crate::jsnum::{js_round, js_to_string};

/// One entry of a timer's flushed data.
#[derive(Debug, Clone, PartialEq)]
pub enum Stat {
    /// A number (written even when NaN or infinite).
    Num(f64),
    /// JS `undefined`: the graphite backend writes nothing for it.
    Undefined,
    /// `histogram`: `bin_<limit>` → frequency.
    Histogram(Vec<(String, f64)>),
}

/// A timer's flushed data in JS property order; a repeated name replaces the value in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimerData(pub Vec<(String, Stat)>);

impl TimerData {
    fn set(&mut self, name: String, value: Stat) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

/// `Number | undefined`, with JS's arithmetic on it.
type Js = Option<f64>;

fn at(v: &[f64], i: f64) -> Js {
    if i < 0.0 || i.fract() != 0.0 {
        return None;
    }
    v.get(i as usize).copied()
}

fn num(x: Js) -> f64 {
    x.unwrap_or(f64::NAN)
}

fn stat(x: Js) -> Stat {
    x.map_or(Stat::Undefined, Stat::Num)
}

/// Computes the flushed data of one timer. `values` is sorted in place (as statsd sorts the
/// stored array); `count` is its sample-rate-weighted count.
pub fn timer_data(
    key: &str,
    values: &mut [f64],
    count: f64,
    thresholds: &[f64],
    flush_interval_ms: u64,
    histogram: &[HistogramRule],
    calculated: Option<&[String]>,
) -> TimerData {
    let mut d = TimerData::default();
    let secs = flush_interval_ms as f64 / 1000.0;
    if values.is_empty() {
        // `data.count = data.count_ps = 0` creates count_ps first.
        d.set("count_ps".into(), Stat::Num(0.0));
        d.set("count".into(), Stat::Num(0.0));
        return filter(d, calculated);
    }
    // No NaN reaches a timer; -0 and 0 compare equal and the sort is stable, as V8's.
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = values.len();
    let nf = n as f64;
    let min = values[0];
    let max = values[n - 1];
    let mut cumul = Vec::with_capacity(n);
    let mut cumul_sq = Vec::with_capacity(n);
    cumul.push(min);
    cumul_sq.push(min * min);
    for i in 1..n {
        cumul.push(values[i] + cumul[i - 1]);
        cumul_sq.push(values[i] * values[i] + cumul_sq[i - 1]);
    }
    let mut sum: Js = Some(min);
    let mut sum_sq: Js = Some(min * min);
    let mut mean: Js = Some(min);
    let mut boundary: Js = Some(max);
    for &pct in thresholds {
        let mut in_threshold = nf;
        if n > 1 {
            in_threshold = js_round(pct.abs() / 100.0 * nf);
            if in_threshold == 0.0 {
                continue;
            }
            if pct > 0.0 {
                boundary = at(values, in_threshold - 1.0);
                sum = at(&cumul, in_threshold - 1.0);
                sum_sq = at(&cumul_sq, in_threshold - 1.0);
            } else {
                boundary = at(values, nf - in_threshold);
                sum = Some(num(at(&cumul, nf - 1.0)) - num(at(&cumul, nf - in_threshold - 1.0)));
                sum_sq = Some(num(at(&cumul_sq, nf - 1.0)) - num(at(&cumul_sq, nf - in_threshold - 1.0)));
            }
            mean = Some(num(sum) / in_threshold);
        }
        let clean = js_to_string(pct).replacen('.', "_", 1).replacen('-', "top", 1);
        d.set(format!("count_{clean}"), Stat::Num(in_threshold));
        d.set(format!("mean_{clean}"), stat(mean));
        let bound = if pct > 0.0 { "upper" } else { "lower" };
        d.set(format!("{bound}_{clean}"), stat(boundary));
        d.set(format!("sum_{clean}"), stat(sum));
        d.set(format!("sum_squares_{clean}"), stat(sum_sq));
    }
    let sum = cumul[n - 1];
    let sum_sq = cumul_sq[n - 1];
    let mean = sum / nf;
    let mut diffs = 0.0;
    for v in values.iter() {
        diffs += (v - mean) * (v - mean);
    }
    let mid = n / 2;
    let median = if n % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    };
    d.set("std".into(), Stat::Num((diffs / nf).sqrt()));
    d.set("upper".into(), Stat::Num(max));
    d.set("lower".into(), Stat::Num(min));
    d.set("count".into(), Stat::Num(count));
    d.set("count_ps".into(), Stat::Num(count / secs));
    d.set("sum".into(), Stat::Num(sum));
    d.set("sum_squares".into(), Stat::Num(sum_sq));
    d.set("mean".into(), Stat::Num(mean));
    d.set("median".into(), Stat::Num(median));

    let bins: &[Bin] = histogram
        .iter()
        .find(|r| key.contains(r.metric.as_str()))
        .map_or(&[], |r| r.bins.as_slice());
    if !bins.is_empty() {
        let mut hist: Vec<(String, f64)> = Vec::with_capacity(bins.len());
        let mut i = 0;
        for bin in bins {
            let mut freq = 0.0;
            while i < n
                && match bin {
                    Bin::Inf => true,
                    Bin::Limit(l) => values[i] < *l,
                }
            {
                freq += 1.0;
                i += 1;
            }
            let label = match bin {
                Bin::Inf => "inf".to_string(),
                Bin::Limit(l) => js_to_string(*l),
            };
            let name = format!("bin_{}", label.replacen('.', "_", 1));
            match hist.iter_mut().find(|(k, _)| *k == name) {
                Some(slot) => slot.1 = freq,
                None => hist.push((name, freq)),
            }
        }
        d.set("histogram".into(), Stat::Histogram(hist));
    }
    filter(d, calculated)
}

/// `filter_timer_metrics`: keep names whose `_<digits>`/`_top<digits>` suffix, read as
/// `_percent`, is listed. `count_99_9` reads as `count_99_percent`, so a fractional
/// threshold never passes a `count_percent` filter — as in statsd.
fn filter(d: TimerData, calculated: Option<&[String]>) -> TimerData {
    let Some(list) = calculated.filter(|l| !l.is_empty()) else {
        return d;
    };
    TimerData(
        d.0.into_iter()
            .filter(|(name, _)| {
                let cleaned = percent_name(name);
                list.contains(&cleaned)
            })
            .collect(),
    )
}

fn percent_name(name: &str) -> String {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == name.len() {
        return name.to_string();
    }
    if let Some(base) = stem.strip_suffix("_top") {
        return format!("{base}_percent");
    }
    if let Some(base) = stem.strip_suffix('_') {
        return format!("{base}_percent");
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(d: &TimerData, name: &str) -> Option<Stat> {
        d.0.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
    }

    #[test]
    fn ten_values_with_thresholds() {
        let mut v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let d = timer_data("t", &mut v, 10.0, &[90.0, -20.0, 99.9], 10_000, &[], None);
        let names: Vec<&str> = d.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "count_90",
                "mean_90",
                "upper_90",
                "sum_90",
                "sum_squares_90",
                "count_top20",
                "mean_top20",
                "lower_top20",
                "sum_top20",
                "sum_squares_top20",
                "count_99_9",
                "mean_99_9",
                "upper_99_9",
                "sum_99_9",
                "sum_squares_99_9",
                "std",
                "upper",
                "lower",
                "count",
                "count_ps",
                "sum",
                "sum_squares",
                "mean",
                "median"
            ]
        );
        assert_eq!(get(&d, "upper_90"), Some(Stat::Num(9.0)));
        assert_eq!(get(&d, "sum_90"), Some(Stat::Num(45.0)));
        assert_eq!(get(&d, "mean_90"), Some(Stat::Num(5.0)));
        assert_eq!(get(&d, "lower_top20"), Some(Stat::Num(9.0)));
        assert_eq!(get(&d, "sum_top20"), Some(Stat::Num(19.0)));
        assert_eq!(get(&d, "median"), Some(Stat::Num(5.5)));
        assert_eq!(get(&d, "count_ps"), Some(Stat::Num(1.0)));
        assert_eq!(get(&d, "std"), Some(Stat::Num(8.25f64.sqrt())));
    }

    #[test]
    fn beyond_one_hundred_percent() {
        let mut v = vec![1.0, 2.0];
        let d = timer_data("t", &mut v, 2.0, &[150.0, -100.0], 1000, &[], None);
        assert_eq!(get(&d, "count_150"), Some(Stat::Num(3.0)));
        assert_eq!(get(&d, "upper_150"), Some(Stat::Undefined));
        assert!(matches!(get(&d, "mean_150"), Some(Stat::Num(x)) if x.is_nan()));
        // -100: cumul[-1] is undefined, so the sum is NaN, but the boundary exists.
        assert!(matches!(get(&d, "sum_top100"), Some(Stat::Num(x)) if x.is_nan()));
        assert_eq!(get(&d, "lower_top100"), Some(Stat::Num(1.0)));
    }

    #[test]
    fn single_value_and_zero_round() {
        let mut v = vec![7.0];
        let d = timer_data("t", &mut v, 4.0, &[10.0], 1000, &[], None);
        assert_eq!(get(&d, "count_10"), Some(Stat::Num(1.0)));
        assert_eq!(get(&d, "upper_10"), Some(Stat::Num(7.0)));
        assert_eq!(get(&d, "count"), Some(Stat::Num(4.0)));
        let mut v = vec![1.0, 2.0, 3.0];
        let d = timer_data("t", &mut v, 3.0, &[10.0], 1000, &[], None);
        assert_eq!(get(&d, "count_10"), None);
    }

    #[test]
    fn histogram_bins_and_filter() {
        let rules = vec![
            HistogramRule {
                metric: "foo".into(),
                bins: vec![],
            },
            HistogramRule {
                metric: "".into(),
                bins: vec![Bin::Limit(0.5), Bin::Limit(2.0), Bin::Limit(1e21), Bin::Inf],
            },
        ];
        let mut v = vec![0.1, 0.5, 1.0, 3.0, 5.0];
        let d = timer_data("bar", &mut v, 5.0, &[], 1000, &rules, None);
        assert_eq!(
            get(&d, "histogram"),
            Some(Stat::Histogram(vec![
                ("bin_0_5".into(), 1.0),
                ("bin_2".into(), 2.0),
                ("bin_1e+21".into(), 2.0),
                ("bin_inf".into(), 0.0),
            ]))
        );
        let d = timer_data("foo.x", &mut v, 5.0, &[], 1000, &rules, None);
        assert_eq!(get(&d, "histogram"), None);
        let list = vec!["count_percent".to_string(), "median".into(), "histogram".into()];
        let d = timer_data(
            "bar",
            &mut v,
            5.0,
            &[90.0, 99.9, -50.0],
            1000,
            &rules,
            Some(&list),
        );
        let names: Vec<&str> = d.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["count_90", "count_top50", "median", "histogram"]);
    }

    #[test]
    fn empty_timer() {
        let d = timer_data("t", &mut [], 0.0, &[90.0], 1000, &[], None);
        assert_eq!(
            d.0,
            vec![
                ("count_ps".into(), Stat::Num(0.0)),
                ("count".into(), Stat::Num(0.0))
            ]
        );
    }
}
