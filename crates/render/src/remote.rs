//! Other graphite-web (or `carbide web`) instances whose series a render includes: graphite-web's
//! `CLUSTER_SERVERS` remote finder and reader, behind a trait so the evaluator needs no HTTP.
//!
//! A path expression is fetched from every remote as graphite-web's `RemoteReader` does
//! (`/render/?format=pickle&local=1&target=…`), and the answers are merged with the local series
//! as `datalib._merge_results` merges stores (REMOTE_STORE_MERGE_RESULTS, on by default): a series
//! already known that has any `None` has them filled from a non-empty answer of the same length,
//! or is replaced by a non-empty answer of another length (with merging on, graphite-web counts
//! the answer's own `None`s as zero); unknown names are added.
//!
//! The order matters, since the first answer for a name is the one others fill: graphite-web
//! merges in the order of STORAGE_FINDERS, whose default puts the `RemoteFinder` before the
//! `StandardFinder`, so the remotes' answers come first and the local tree fills their gaps. (With
//! its default worker pool graphite-web takes answers as they complete instead, so which copy wins
//! varies from request to request; without the pool it is this order every time.)

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

/// Merges remote answers with the local series of one path expression, remotes first (see the
/// module docs); the result is sorted by name.
pub fn merge_remote(
    local: &mut Vec<TimeSeries>,
    remote: Vec<RemoteSeries>,
    pattern: &str,
    x_files_factor: f64,
) {
    let mut merged: Vec<TimeSeries> = Vec::with_capacity(local.len() + remote.len());
    let answers = remote.into_iter().map(|r| series(r, pattern, x_files_factor));
    for candidate in answers.chain(local.drain(..)) {
        merge_one(&mut merged, candidate);
    }
    merged.sort_by(|a, b| a.name.cmp(&b.name));
    *local = merged;
}

/// One store's answer for a name, merged as `_merge_results` does.
fn merge_one(known: &mut Vec<TimeSeries>, candidate: TimeSeries) {
    let Some(k) = known.iter_mut().find(|s| s.name == candidate.name) else {
        known.push(candidate);
        return;
    };
    if !k.values.iter().any(Option::is_none) || candidate.values.is_empty() {
        return;
    }
    if k.values.len() == candidate.values.len() {
        for (slot, v) in k.values.iter_mut().zip(&candidate.values) {
            if slot.is_none() {
                *slot = *v;
            }
        }
    } else {
        *k = candidate;
    }
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
        // Remotes first: a complete remote copy wins over the local one; a gap in it is filled
        // from the local copy of the same length.
        let mut local = vec![TimeSeries::new("b", 0, 120, 60, vec![Some(1.0), None])];
        merge_remote(
            &mut local,
            vec![r("b", vec![Some(9.0), Some(2.0)]), r("a", vec![Some(5.0)])],
            "*",
            0.0,
        );
        assert_eq!(local.len(), 2);
        assert_eq!(local[0].name, "a");
        assert_eq!(local[1].values, vec![Some(9.0), Some(2.0)]);
        let mut local = vec![TimeSeries::new("b", 0, 120, 60, vec![Some(1.0), Some(3.0)])];
        merge_remote(&mut local, vec![r("b", vec![None, Some(2.0)])], "*", 0.0);
        assert_eq!(local[0].values, vec![Some(1.0), Some(2.0)]);
        // A remote copy with a gap is replaced by a local copy of another length, however many
        // gaps that has; a series only one side has is kept.
        let mut local = vec![
            TimeSeries::new("b", 0, 180, 60, vec![None, None, None]),
            TimeSeries::new("c", 0, 60, 60, vec![Some(7.0)]),
        ];
        merge_remote(&mut local, vec![r("b", vec![Some(1.0), None])], "*", 0.0);
        assert_eq!(local[0].values, vec![None, None, None]);
        assert_eq!(local[1].values, vec![Some(7.0)]);
    }
}
