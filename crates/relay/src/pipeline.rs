//! carbon's aggregation pipeline — `rewrite:pre`, `aggregate`, `rewrite:post` — with its two rule
//! files, independent of where its output goes: the relay's destinations (`carbide aggregator`,
//! carbon-aggregator.py) or the local cache (`carbide serve --aggregation-rules`,
//! carbon-aggregator-cache.py, whose pipeline ends in `write` instead of `relay`).
//!
//! The facts (carbon/service.py, pipeline.py, aggregator/*.py, rewrite.py):
//! - a received point runs `[pre]`, then the aggregation rules; with FORWARD_ALL (carbon's default
//!   True) the point goes on, under its `[post]` name, unless it is itself one of the aggregates
//!   it fed. Without FORWARD_ALL only aggregates leave: the raw point is neither relayed nor stored;
//! - aggregates are *generated* points: carbon runs them through `relay` or `write` alone, so
//!   they skip both rewrite stages and are never aggregated again;
//! - both files are re-read when their mtime changes (checked every 10 s); new aggregation rules
//!   clear every buffer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::aggregate::{Buffers, Output};
use crate::{RelayError, now_f64};

/// How often due aggregates are computed; carbon's frequencies are whole seconds.
pub const TICK: Duration = Duration::from_millis(100);
/// Ticks between checks of the rule files' mtimes (carbon's 10 s LoopingCall).
const TICKS_PER_RELOAD_CHECK: u64 = 100;

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Reads a rule file, a missing one as empty text (carbon clears the rules then, as at start).
fn read_rule_file(p: &Path) -> Result<String, carbide_config::ConfigError> {
    if p.exists() {
        carbide_config::load(p)
    } else {
        Ok(String::new())
    }
}

fn parse_aggregation(p: &Path) -> Result<Vec<carbide_config::AggregationRule>, RelayError> {
    let (rules, warnings) =
        carbide_config::parse_aggregation_rules(&p.display().to_string(), &read_rule_file(p)?)?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    Ok(rules)
}

fn parse_rewrite(p: &Path) -> Result<carbide_config::RewriteRules, RelayError> {
    let (rules, warnings) =
        carbide_config::parse_rewrite_rules(&p.display().to_string(), &read_rule_file(p)?)?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    Ok(rules)
}

/// The pipeline's rule files; either may be absent (no rules of that kind).
#[derive(Debug, Clone, Default)]
pub struct RulePaths {
    /// aggregation-rules.conf.
    pub aggregation: Option<PathBuf>,
    /// rewrite-rules.conf.
    pub rewrite: Option<PathBuf>,
}

/// carbon.conf's aggregator settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    /// FORWARD_ALL: received points go on (under their `[post]` name) besides being aggregated.
    pub forward_all: bool,
    /// MAX_AGGREGATION_INTERVALS: how many past intervals a late point can still update.
    pub max_intervals: u64,
    /// WRITE_BACK_FREQUENCY: compute at least this often (seconds), partial intervals included.
    pub write_back_frequency: Option<f64>,
}

/// The aggregation buffers behind a lock, the rule files they came from, and what they emitted.
#[derive(Debug)]
pub struct Pipeline {
    buffers: Mutex<Buffers>,
    paths: RulePaths,
    /// The mtimes the files had when last read (aggregation, rewrite).
    seen: Mutex<[Option<SystemTime>; 2]>,
    /// Aggregates emitted (carbon's `aggregateDatapointsSent`).
    pub emitted: AtomicU64,
}

impl Pipeline {
    /// A pipeline over `buffers`, which were built from `paths` as they are now (their mtimes are
    /// taken as read).
    pub fn new(buffers: Buffers, paths: RulePaths) -> Pipeline {
        let seen = [&paths.aggregation, &paths.rewrite].map(|p| p.as_deref().and_then(mtime));
        Pipeline {
            buffers: Mutex::new(buffers),
            paths,
            seen: Mutex::new(seen),
            emitted: AtomicU64::new(0),
        }
    }

    /// Reads both files (a missing one means no rules of that kind; a malformed one is an error
    /// naming file:line) and builds the pipeline with FORWARD_ALL, MAX_AGGREGATION_INTERVALS and
    /// WRITE_BACK_FREQUENCY.
    pub fn open(paths: RulePaths, settings: PipelineSettings) -> Result<Pipeline, RelayError> {
        let seen = [&paths.aggregation, &paths.rewrite].map(|p| p.as_deref().and_then(mtime));
        let rules = match &paths.aggregation {
            Some(p) => parse_aggregation(p)?,
            None => Vec::new(),
        };
        let rewrite = match &paths.rewrite {
            Some(p) => parse_rewrite(p)?,
            None => carbide_config::RewriteRules::default(),
        };
        let buffers = Buffers::new(rules, rewrite, settings.forward_all, settings.max_intervals)
            .with_write_back_frequency(settings.write_back_frequency);
        let mut pipeline = Pipeline::new(buffers, paths);
        // The mtimes from before the read: an edit made while reading is picked up by the poll.
        pipeline.seen = Mutex::new(seen);
        Ok(pipeline)
    }

    /// Takes one received point at the current time; returns the name to pass it on under
    /// (after `[pre]` and `[post]`) when FORWARD_ALL says it goes on.
    pub fn input(&self, name: &str, value: f64, timestamp: f64) -> Option<String> {
        self.buffers.lock().input(name, value, timestamp, now_f64()).name
    }

    /// Number of live metric buffers (carbon's `allocatedBuffers`).
    pub fn buffers(&self) -> usize {
        self.buffers.lock().len()
    }

    /// Computes what is due now and hands each aggregate to `emit` (name, value, timestamp), after
    /// the buffers' lock is released.
    pub fn tick(&self, emit: &mut dyn FnMut(&str, f64, f64)) {
        let mut out: Vec<Output> = Vec::new();
        self.buffers.lock().tick(now_f64(), &mut out);
        self.emit_all(out, emit);
    }

    /// Computes every interval that received a value since its last computation, due or not, and
    /// hands the aggregates to `emit`: at shutdown, so that what was received is not lost with
    /// the buffers (carbon drops it).
    pub fn flush(&self, emit: &mut dyn FnMut(&str, f64, f64)) {
        let mut out: Vec<Output> = Vec::new();
        self.buffers.lock().flush(&mut out);
        self.emit_all(out, emit);
    }

    fn emit_all(&self, out: Vec<Output>, emit: &mut dyn FnMut(&str, f64, f64)) {
        self.emitted.fetch_add(out.len() as u64, Ordering::Relaxed);
        for o in out {
            emit(&o.name, o.value, o.timestamp as f64);
        }
    }

    /// Re-reads aggregation-rules.conf and rewrite-rules.conf: both when `force` (SIGHUP), else
    /// only a file whose mtime changed since it was last read (carbon's 10 s poll). Both files
    /// are parsed before either is applied, so a broken one keeps every previous rule; the error
    /// names file:line. Returns whether anything was replaced. New aggregation rules clear the
    /// buffers, as carbon's do.
    pub fn reload(&self, force: bool) -> Result<bool, RelayError> {
        let paths = [self.paths.aggregation.as_deref(), self.paths.rewrite.as_deref()];
        let now = paths.map(|p| p.and_then(mtime));
        let changed = {
            let mut seen = self.seen.lock();
            let changed = [0, 1].map(|i| paths[i].is_some() && (force || seen[i] != now[i]));
            // Remember the mtime even when the file is broken: the poll logs it once, not every 10 s.
            *seen = now;
            changed
        };
        let aggregation = match paths[0] {
            Some(p) if changed[0] => Some(parse_aggregation(p)?),
            _ => None,
        };
        let rewrite = match paths[1] {
            Some(p) if changed[1] => Some(parse_rewrite(p)?),
            _ => None,
        };
        let replaced = aggregation.is_some() || rewrite.is_some();
        let mut b = self.buffers.lock();
        if let Some(r) = rewrite {
            tracing::info!(pre = r.pre.len(), post = r.post.len(), "rewrite rules re-read");
            b.set_rewrite(r);
        }
        if let Some(rules) = aggregation {
            tracing::info!(rules = rules.len(), "aggregation rules re-read; buffers cleared");
            b.set_rules(rules);
        }
        Ok(replaced)
    }

    /// Runs the pipeline's clock until dropped (abort its task): computes due aggregates every
    /// [`TICK`] into `emit`, and re-reads a rule file whose mtime changed every 10 s (a broken
    /// one is logged and the previous rules kept).
    pub async fn run_clock(&self, mut emit: impl FnMut(&str, f64, f64) + Send) {
        let mut iv = tokio::time::interval(TICK);
        let mut n = 0u64;
        loop {
            iv.tick().await;
            self.tick(&mut emit);
            n += 1;
            if n.is_multiple_of(TICKS_PER_RELOAD_CHECK)
                && let Err(e) = self.reload(false)
            {
                tracing::error!("{e}; keeping the previous rules");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(forward_all: bool) -> PipelineSettings {
        PipelineSettings {
            forward_all,
            max_intervals: 5,
            write_back_frequency: None,
        }
    }

    fn write(p: &Path, text: &str) {
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn open_reads_both_files_and_flush_emits_what_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (a, r) = (dir.path().join("agg.conf"), dir.path().join("rw.conf"));
        write(&a, "<x>.sum (60) = sum <x>.*\n");
        write(&r, "[pre]\n^in\\. = \n[post]\n^a\\. = out.\n");
        let p = Pipeline::open(
            RulePaths {
                aggregation: Some(a),
                rewrite: Some(r),
            },
            settings(true),
        )
        .unwrap();
        let now = now_f64().floor();
        let ts = now - now.rem_euclid(60.0);
        assert_eq!(p.input("in.a.1", 2.0, ts), Some("out.1".into()));
        assert_eq!(p.input("a.2", 3.0, ts), Some("out.2".into()));
        let mut got = vec![];
        p.tick(&mut |n, v, t| got.push((n.to_string(), v, t)));
        assert!(got.is_empty(), "not due for 60 s");
        p.flush(&mut |n, v, t| got.push((n.to_string(), v, t)));
        assert_eq!(got, vec![("a.sum".to_string(), 5.0, ts)]);
        assert_eq!(p.emitted.load(Ordering::Relaxed), 1);
        got.clear();
        p.flush(&mut |n, v, t| got.push((n.to_string(), v, t)));
        assert!(got.is_empty(), "an emitted interval is inactive until new data");
    }

    #[test]
    fn without_forward_all_only_aggregates_leave() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("agg.conf");
        write(&a, "<x>.sum (60) = sum <x>.*\n");
        let p = Pipeline::open(
            RulePaths {
                aggregation: Some(a),
                rewrite: None,
            },
            settings(false),
        )
        .unwrap();
        assert_eq!(p.input("a.1", 1.0, 1000.0), None);
        assert_eq!(p.input("unmatched", 1.0, 1000.0), None);
        assert_eq!(p.buffers(), 1);
    }

    #[test]
    fn a_broken_file_names_its_line_and_keeps_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("agg.conf");
        write(&a, "<x>.sum (60) = sum <x>.*\n");
        let paths = RulePaths {
            aggregation: Some(a.clone()),
            rewrite: None,
        };
        let p = Pipeline::open(paths.clone(), settings(false)).unwrap();
        write(&a, "<x>.sum (60) = sum <x>.*\nnot a rule\n");
        let e = p.reload(true).unwrap_err().to_string();
        assert!(e.contains("agg.conf:2"), "{e}");
        assert!(p.input("a.1", 1.0, 1000.0).is_none());
        assert_eq!(p.buffers(), 1, "the old rule still aggregates");
        let e = Pipeline::open(paths, settings(false)).unwrap_err().to_string();
        assert!(e.contains("agg.conf:2"), "{e}");
    }
}
