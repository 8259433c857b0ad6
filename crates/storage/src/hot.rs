//! Points that are not on disk yet (the in-process cache), merged into a whisper fetch the way
//! graphite-web merges carbonlink's answer (`readers/utils.py merge_with_cache`).

use std::collections::BTreeMap;

use carbide_core::AggregationMethod;

/// A source of points that may be newer than the whisper file: the in-process cache.
pub trait HotPoints: Send + Sync {
    /// The unwritten `(timestamp, value)` points of one metric, in arrival order.
    fn points(&self, name: &str) -> Vec<(i64, f64)>;
}

fn consolidate(method: AggregationMethod, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    Some(match method {
        AggregationMethod::Sum => values.iter().sum(),
        AggregationMethod::Average | AggregationMethod::AvgZero => values.iter().sum::<f64>() / n,
        AggregationMethod::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        AggregationMethod::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        AggregationMethod::Last => *values.last()?,
        AggregationMethod::AbsMax => values
            .iter()
            .copied()
            .fold(0.0_f64, |a, v| if v.abs() > a.abs() { v } else { a }),
        AggregationMethod::AbsMin => {
            let mut best = values[0];
            for &v in &values[1..] {
                if v.abs() < best.abs() {
                    best = v;
                }
            }
            best
        }
    })
}

/// Overwrites `values` (starting at `start`, one per `step`) with hot points: first the last point
/// per raw step (what whisper would keep), then, when the fetched archive is coarser, those points
/// consolidated per `step` with the file's aggregation method. Points outside the range are ignored.
pub fn merge_hot_points(
    points: &[(i64, f64)],
    start: i64,
    step: i64,
    values: &mut [Option<f64>],
    method: AggregationMethod,
    raw_step: i64,
) {
    if step <= 0 {
        return;
    }
    let mut per_raw: BTreeMap<i64, f64> = BTreeMap::new();
    for &(ts, v) in points {
        let slot = if raw_step > 1 {
            ts - ts.rem_euclid(raw_step)
        } else {
            ts
        };
        per_raw.insert(slot, v);
    }
    let merged: Vec<(i64, Option<f64>)> = if step != raw_step {
        let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (ts, v) in per_raw {
            buckets.entry(ts - ts.rem_euclid(step)).or_default().push(v);
        }
        buckets
            .into_iter()
            .map(|(ts, vs)| (ts, consolidate(method, &vs)))
            .collect()
    } else {
        per_raw.into_iter().map(|(t, v)| (t, Some(v))).collect()
    };
    for (ts, v) in merged {
        let i = (ts - start).div_euclid(step);
        if i < 0 {
            continue;
        }
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| values.get_mut(i))
            && v.is_some()
        {
            *slot = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_per_raw_step_then_consolidated() {
        let mut values = vec![None, Some(1.0), None];
        // raw step 10, archive step 60: 65 and 68 share a raw slot (last wins: 4), 110 is another.
        merge_hot_points(
            &[
                (65, 3.0),
                (68, 4.0),
                (110, 8.0),
                (130, 9.0),
                (200, 5.0),
                (-100, 1.0),
            ],
            0,
            60,
            &mut values,
            AggregationMethod::Average,
            10,
        );
        assert_eq!(values, vec![None, Some(6.0), Some(9.0)]);
    }
}
