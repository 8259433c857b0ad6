//! Folding finer points into one coarser point, exactly as whisper.py's `aggregate()` computes it.
//!
//! Exactness matters because the result is stored: sums are plain left-to-right double additions (what
//! CPython 3.11's `sum()` does for floats), `max`/`min` keep the first of equal values and compare the
//! way Python does (so a NaN behaves as it does there), and `absmax`/`absmin` compare magnitudes but keep
//! the signed value.

use carbide_core::AggregationMethod;

fn py_sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |acc, v| acc + v)
}

/// Python's `max`/`min` over a non-empty slice: replace the champion only when `better(new, champion)`.
fn py_pick(values: &[f64], key: impl Fn(f64) -> f64, better: impl Fn(f64, f64) -> bool) -> Option<f64> {
    let (&first, rest) = values.split_first()?;
    Some(rest.iter().fold(
        first,
        |champ, &v| if better(key(v), key(champ)) { v } else { champ },
    ))
}

/// Aggregates `known` (the values whose timestamps matched) with `neighbors` (every slot, `None` where
/// unknown, which `avg_zero` counts as zero). `None` when there is nothing to aggregate.
pub fn aggregate(method: AggregationMethod, known: &[f64], neighbors: &[Option<f64>]) -> Option<f64> {
    if known.is_empty() {
        return None;
    }
    let id = |v: f64| v;
    Some(match method {
        AggregationMethod::Average => py_sum(known.iter().copied()) / known.len() as f64,
        AggregationMethod::Sum => py_sum(known.iter().copied()),
        AggregationMethod::Last => *known.last()?,
        AggregationMethod::Max => py_pick(known, id, |a, b| a > b)?,
        AggregationMethod::Min => py_pick(known, id, |a, b| a < b)?,
        AggregationMethod::AvgZero => {
            if neighbors.is_empty() {
                return None;
            }
            py_sum(neighbors.iter().map(|v| v.unwrap_or(0.0))) / neighbors.len() as f64
        }
        AggregationMethod::AbsMax => py_pick(known, f64::abs, |a, b| a > b)?,
        AggregationMethod::AbsMin => py_pick(known, f64::abs, |a, b| a < b)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AggregationMethod::*;

    #[test]
    fn table() {
        let k = [3.0, -7.0, 7.0, 1.0];
        let n = [Some(3.0), None, Some(-7.0), Some(7.0), Some(1.0)];
        assert_eq!(aggregate(Average, &k, &n), Some(1.0));
        assert_eq!(aggregate(Sum, &k, &n), Some(4.0));
        assert_eq!(aggregate(Last, &k, &n), Some(1.0));
        assert_eq!(aggregate(Max, &k, &n), Some(7.0));
        assert_eq!(aggregate(Min, &k, &n), Some(-7.0));
        assert_eq!(aggregate(AvgZero, &k, &n), Some(0.8));
        // Ties on magnitude keep the first, as Python's max(key=abs) does.
        assert_eq!(aggregate(AbsMax, &k, &n), Some(-7.0));
        assert_eq!(aggregate(AbsMin, &k, &n), Some(1.0));
        assert_eq!(aggregate(Sum, &[], &n), None);
    }

    #[test]
    fn nan_behaves_as_in_python() {
        // max([nan, 1.0]) is nan in Python (1.0 > nan is False); max([1.0, nan]) is 1.0.
        assert!(aggregate(Max, &[f64::NAN, 1.0], &[]).is_some_and(f64::is_nan));
        assert_eq!(aggregate(Max, &[1.0, f64::NAN], &[]), Some(1.0));
    }

    #[test]
    fn sums_left_to_right() {
        // (0.1 + 0.2) + 0.3 differs from 0.1 + (0.2 + 0.3) in the last bit.
        assert_eq!(aggregate(Sum, &[0.1, 0.2, 0.3], &[]), Some(0.1 + 0.2 + 0.3));
        assert_eq!(
            aggregate(Sum, &[-0.0], &[]).map(f64::to_bits),
            Some(0.0f64.to_bits())
        );
    }
}
