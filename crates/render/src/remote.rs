//! Other graphite-web (or `carbide web`) instances whose series a render includes: graphite-web's
//! `CLUSTER_SERVERS` remote finder and reader, behind a trait so the evaluator needs no HTTP.
//!
//! A path expression is fetched from every remote as graphite-web's `RemoteReader` does
//! (`/render/?format=pickle&local=1&target=…`), and the answers are merged with the local series
//! as `datalib._merge_results` merges stores (REMOTE_STORE_MERGE_RESULTS, on by default): a series
//! already known that has any `None` has them filled from a non-empty answer of the same length,
//! or is replaced by a non-empty answer of another length (with merging on, graphite-web counts
//! the answer's own `None`s as zero); unknown names are added.

use crate::TimeSeries;

/// One series a remote answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSeries {
    /// The metric path.
    pub name: String,
    /// Timestamp of the first value.
    pub start: i64,
    /// End of the range.
    pub end: i64,
    /// Seconds per value.
    pub step: i64,
    /// The values.
    pub values: Vec<Option<f64>>,
}

/// Remote stores a render federates to.
pub trait Remote: Send + Sync + std::fmt::Debug {
    /// The series every remote has for `pattern` over `start..end` at `now` (failures are the
    /// implementation's to log; they contribute nothing, as a down cluster member does).
    fn fetch(&self, pattern: &str, start: i64, end: i64, now: i64) -> Vec<RemoteSeries>;
}

/// Merges remote answers into the local series of one path expression (sorted by name after).
pub fn merge_remote(
    local: &mut Vec<TimeSeries>,
    remote: Vec<RemoteSeries>,
    pattern: &str,
    x_files_factor: f64,
) {
    for r in remote {
        match local.iter_mut().find(|s| s.name == r.name) {
            Some(known) => {
                if !known.values.iter().any(Option::is_none) || r.values.is_empty() {
                    continue;
                }
                if known.values.len() == r.values.len() {
                    for (k, v) in known.values.iter_mut().zip(&r.values) {
                        if k.is_none() {
                            *k = *v;
                        }
                    }
                } else {
                    *known = series(r, pattern, x_files_factor);
                }
            }
            None => local.push(series(r, pattern, x_files_factor)),
        }
    }
    local.sort_by(|a, b| a.name.cmp(&b.name));
}

fn series(r: RemoteSeries, pattern: &str, x_files_factor: f64) -> TimeSeries {
    let mut s = TimeSeries::new(&r.name, r.start, r.end, r.step, r.values);
    s.path_expression = pattern.to_string();
    s.x_files_factor = x_files_factor;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, values: Vec<Option<f64>>) -> RemoteSeries {
        RemoteSeries {
            name: name.into(),
            start: 0,
            end: 60 * values.len() as i64,
            step: 60,
            values,
        }
    }

    #[test]
    fn merges_as_graphite_web_merges_stores() {
        let mut local = vec![TimeSeries::new("b", 0, 120, 60, vec![Some(1.0), None])];
        merge_remote(
            &mut local,
            vec![r("b", vec![Some(9.0), Some(2.0)]), r("a", vec![Some(5.0)])],
            "*",
            0.0,
        );
        assert_eq!(local.len(), 2);
        assert_eq!(local[0].name, "a");
        assert_eq!(local[1].values, vec![Some(1.0), Some(2.0)]);
        // A complete series is kept; one with a gap is replaced by an answer of another length,
        // however many gaps that has.
        merge_remote(&mut local, vec![r("a", vec![None, None])], "*", 0.0);
        assert_eq!(local[0].values, vec![Some(5.0)]);
        local[1].values[1] = None;
        merge_remote(&mut local, vec![r("b", vec![None, None, None])], "*", 0.0);
        assert_eq!(local[1].values, vec![None, None, None]);
    }
}
