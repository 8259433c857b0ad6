//! The path of a decoded point into the cache: blacklist, whitelist, tag normalisation, then the
//! cache. Counters for each refusal, the names carbon uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use carbide_cache::{Cache, Refused, Tally};
use carbide_config::RegexList;
use parking_lot::{Mutex, RwLock};

/// Black- and whitelist, swapped whole on reload.
#[derive(Default)]
pub struct Lists {
    /// Names matching any of these are dropped (blacklistMatches).
    pub blacklist: Option<RegexList>,
    /// With USE_WHITELIST, names matching none of these are dropped (whitelistRejects).
    pub whitelist: Option<RegexList>,
}

/// Counters of what the receivers saw.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Lines or pickle entries that could not be parsed.
    pub bad_lines: AtomicU64,
    /// Points dropped by the blacklist.
    pub blacklist_matches: AtomicU64,
    /// Points dropped for missing the whitelist.
    pub whitelist_rejects: AtomicU64,
    /// Points refused because the cache was over its hard limit.
    pub overflow: AtomicU64,
    /// Open receiver connections.
    pub active_connections: AtomicU64,
    /// Connections refused or dropped (limit reached, oversized frame, accept errors).
    pub refused_connections: AtomicU64,
}

/// A stage between the receivers and the cache, as carbon-aggregator-cache runs its rewrite and
/// aggregate processors before `write`. It sees every received point that passed the lists and
/// stores what it yields with [`Ingest::store`].
pub trait Stage: Send + Sync {
    /// Takes one received point; false when it was dropped.
    fn point(&self, ingest: &Ingest, name: &str, value: f64, timestamp: f64) -> bool;
    /// Called at shutdown once the receivers have stopped, before the cache is written out: the
    /// stage stores what it still holds.
    fn finish(&self, _ingest: &Ingest) {}
}

/// The receivers' shared sink.
pub struct Ingest {
    /// Where points go.
    pub cache: Arc<Cache>,
    /// Current filters.
    pub lists: RwLock<Arc<Lists>>,
    /// Counters.
    pub stats: IngestStats,
    last_complaint: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
    stage: Option<Arc<dyn Stage>>,
}

/// Seconds since the epoch, as a float (the line protocol's `-1` means this).
pub fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Ingest {
    /// A sink into `cache` with no filters.
    pub fn new(cache: Arc<Cache>) -> Self {
        Ingest {
            cache,
            lists: RwLock::new(Arc::new(Lists::default())),
            stats: IngestStats::default(),
            last_complaint: Mutex::new(None),
            suppressed: AtomicU64::new(0),
            stage: None,
        }
    }

    /// Puts `stage` between the lists and the cache for every received point.
    pub fn with_stage(mut self, stage: Option<Arc<dyn Stage>>) -> Self {
        self.stage = stage;
        self
    }

    /// The stage in front of the cache, if any.
    pub fn stage(&self) -> Option<&Arc<dyn Stage>> {
        self.stage.as_ref()
    }

    /// Replaces the filters (reload).
    pub fn set_lists(&self, lists: Lists) {
        *self.lists.write() = Arc::new(lists);
    }

    /// Takes one received point: filters, then the stage if there is one, else [`Ingest::store`].
    /// Returns false when dropped.
    pub fn point(&self, name: &str, value: f64, timestamp: f64) -> bool {
        self.batch().point_now(name, value, timestamp)
    }

    /// Stores a point with no filter or stage: carbon's path for generated points (self-metrics,
    /// aggregates), and the end of the received ones. Normalises a tagged name. False when the
    /// cache refused it.
    pub fn store(&self, name: &str, value: f64, timestamp: f64) -> bool {
        let mut tally = Tally::default();
        let stored = store_tallied(&self.cache, name, value, timestamp, &mut tally);
        self.cache.settle(tally);
        self.refused(name, stored)
    }

    /// Counts (and for a bad timestamp, logs) a point the cache refused; true when it was stored.
    fn refused(&self, name: &str, stored: Result<(), Refused>) -> bool {
        match stored {
            Ok(()) => return true,
            Err(Refused::Overflow) => self.stats.overflow.fetch_add(1, Ordering::Relaxed),
            Err(why @ Refused::Timestamp(ts)) => {
                self.bad_line("-", format!("{name} {ts}").as_bytes(), &why);
                0
            }
        };
        false
    }

    /// A batch of points from one receive buffer: the filters are looked up once and the shared
    /// counters are published once, when the batch is dropped.
    pub fn batch<'n>(&self) -> IngestBatch<'_, 'n> {
        IngestBatch {
            ingest: self,
            lists: self.lists.read().clone(),
            queued: Vec::new(),
            tally: Tally::default(),
            blacklisted: 0,
            rejected: 0,
            overflow: 0,
        }
    }
    /// Counts a bad line and logs it (truncated to carbon's 400 characters), at most once a second;
    /// the number of lines not logged is reported with the next one.
    pub fn bad_line(&self, peer: &str, line: &[u8], why: &dyn std::fmt::Display) {
        self.stats.bad_lines.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_complaint.lock();
        if last.is_some_and(|t| t.elapsed().as_secs() < 1) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        drop(last);
        let shown = String::from_utf8_lossy(&line[..line.len().min(400)]).into_owned();
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(peer, line = %shown, error = %why, suppressed, "invalid line received");
    }
}

/// Points being taken from one receive buffer; see [`Ingest::batch`]. Names borrowed from the
/// buffer for `'n` wait in the batch and go into the cache together (see [`Cache::insert_many`]).
pub struct IngestBatch<'a, 'n> {
    ingest: &'a Ingest,
    lists: Arc<Lists>,
    queued: Vec<(&'n str, i64, f64)>,
    tally: Tally,
    blacklisted: u64,
    rejected: u64,
    overflow: u64,
}

/// Queued points are stored once this many have gathered (a 64 KiB read holds ~1 800 lines).
const QUEUE_POINTS: usize = 4096;

impl<'n> IngestBatch<'_, 'n> {
    /// Blacklist, then whitelist.
    fn passes_lists(&mut self, name: &str) -> bool {
        if self.lists.blacklist.as_ref().is_some_and(|bl| bl.contains(name)) {
            self.blacklisted += 1;
            return false;
        }
        if self.lists.whitelist.as_ref().is_some_and(|wl| !wl.contains(name)) {
            self.rejected += 1;
            return false;
        }
        true
    }

    /// Checks the lists for a point carbon drops only after them (a NaN value, a timestamp
    /// `int()` refuses; protocols.py `metricReceived`): true when the lists drop it, counted as
    /// blacklistMatches or whitelistRejects, so the receiver drops it without calling it bad input.
    pub fn listed_out(&mut self, name: &str) -> bool {
        !self.passes_lists(name)
    }

    /// Takes one received point whose name outlives the batch: filters, then the stage if there
    /// is one, else it waits in the batch for the cache (a full cache counts it as overflow
    /// then). Returns false when a filter dropped it.
    pub fn point(&mut self, name: &'n str, value: f64, timestamp: f64) -> bool {
        if !self.passes_lists(name) {
            return false;
        }
        if self.ingest.stage.is_some() || name.bytes().any(|b| b == b';' || b == b'{') {
            return self.store_now(name, value, timestamp);
        }
        // int() truncates toward zero, as whisper does with the float carbon keeps.
        let ts = timestamp as i64;
        if u32::try_from(ts).is_err() {
            return self.ingest.refused(name, Err(Refused::Timestamp(ts)));
        }
        self.queued.push((name, ts, value));
        if self.queued.len() >= QUEUE_POINTS {
            self.store_queued();
        }
        true
    }

    /// [`IngestBatch::point`] for a name that does not outlive the call: stored at once.
    /// Returns false when dropped (a filter, or the cache is full).
    pub fn point_now(&mut self, name: &str, value: f64, timestamp: f64) -> bool {
        self.passes_lists(name) && self.store_now(name, value, timestamp)
    }

    fn store_now(&mut self, name: &str, value: f64, timestamp: f64) -> bool {
        if let Some(stage) = &self.ingest.stage {
            return stage.point(self.ingest, name, value, timestamp);
        }
        match store_tallied(&self.ingest.cache, name, value, timestamp, &mut self.tally) {
            Err(Refused::Overflow) => {
                self.overflow += 1;
                false
            }
            stored => self.ingest.refused(name, stored),
        }
    }

    fn store_queued(&mut self) {
        let refused = self.ingest.cache.insert_many(&self.queued, &mut self.tally);
        self.overflow += refused as u64;
        self.queued.clear();
    }
}

/// Normalises a tagged name and puts the point in the cache, counting into `tally`.
fn store_tallied(
    cache: &Cache,
    name: &str,
    value: f64,
    timestamp: f64,
    tally: &mut Tally,
) -> Result<(), Refused> {
    let name = if name.bytes().any(|b| b == b';' || b == b'{') {
        carbide_protocol::tags::normalize(name)
    } else {
        std::borrow::Cow::Borrowed(name)
    };
    // int() truncates toward zero, as whisper does with the float carbon keeps.
    cache.insert_tallied(&name, timestamp as i64, value, tally)
}

impl Drop for IngestBatch<'_, '_> {
    fn drop(&mut self) {
        self.store_queued();
        self.ingest.cache.settle(std::mem::take(&mut self.tally));
        let stats = &self.ingest.stats;
        for (counter, n) in [
            (&stats.blacklist_matches, self.blacklisted),
            (&stats.whitelist_rejects, self.rejected),
            (&stats.overflow, self.overflow),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbide_cache::CacheConfig;
    use carbide_config::parse_regex_list;

    #[test]
    fn blacklist_then_whitelist_then_cache() {
        let ingest = Ingest::new(Arc::new(Cache::new(CacheConfig::default())));
        let list = |text: &str| parse_regex_list("test.conf", text).map(|l| l.0).ok();
        ingest.set_lists(Lists {
            blacklist: list("^secret\\.\n"),
            whitelist: list("^app\\.\n^secret\\.\n"),
        });
        assert!(ingest.point("app.requests", 1.0, 100.0));
        assert!(
            !ingest.point("secret.key", 1.0, 100.0),
            "blacklist wins over the whitelist"
        );
        assert!(!ingest.point("other.metric", 1.0, 100.0));
        assert_eq!(ingest.stats.blacklist_matches.load(Ordering::Relaxed), 1);
        assert_eq!(ingest.stats.whitelist_rejects.load(Ordering::Relaxed), 1);
        assert_eq!(ingest.cache.get("app.requests"), vec![(100, 1.0)]);
        assert!(ingest.cache.get("secret.key").is_empty() && ingest.cache.get("other.metric").is_empty());
        // Tagged names are stored in carbon's normal form; float timestamps truncate as int() does.
        assert!(ingest.point("app.cpu;host=a;dc=x", 2.0, 200.9));
        assert_eq!(ingest.cache.get("app.cpu;dc=x;host=a"), vec![(200, 2.0)]);
    }

    /// Renames every received point, as a rewrite rule would.
    struct Prefix;
    impl Stage for Prefix {
        fn point(&self, ingest: &Ingest, name: &str, value: f64, timestamp: f64) -> bool {
            ingest.store(&format!("staged.{name}"), value, timestamp)
        }
    }

    #[test]
    fn received_points_pass_the_lists_then_the_stage_and_generated_ones_neither() {
        let ingest =
            Ingest::new(Arc::new(Cache::new(CacheConfig::default()))).with_stage(Some(Arc::new(Prefix)));
        let list = |text: &str| parse_regex_list("test.conf", text).map(|l| l.0).ok();
        ingest.set_lists(Lists {
            blacklist: list("^carbon\\.\n"),
            whitelist: None,
        });
        assert!(ingest.point("app.x", 1.0, 100.0));
        assert!(!ingest.point("carbon.x", 1.0, 100.0), "the lists come first");
        assert!(ingest.store("carbon.agents.h.x", 2.0, 100.0));
        assert_eq!(ingest.cache.get("staged.app.x"), vec![(100, 1.0)]);
        assert!(ingest.cache.get("app.x").is_empty());
        assert!(ingest.cache.get("staged.carbon.x").is_empty());
        assert_eq!(ingest.cache.get("carbon.agents.h.x"), vec![(100, 2.0)]);
    }

    #[test]
    fn timestamps_whisper_cannot_store_are_bad_lines_not_overflow() {
        let ingest = Ingest::new(Arc::new(Cache::new(CacheConfig::default())));
        assert!(!ingest.point("a.b", 1.0, -10.0));
        assert!(!ingest.store("a.b", 1.0, 4_294_967_296.0));
        {
            let mut batch = ingest.batch();
            assert!(!batch.point("a.b", 1.0, 1e12));
            assert!(batch.point("a.b", 2.0, 100.0));
        }
        assert_eq!(ingest.stats.bad_lines.load(Ordering::Relaxed), 3);
        assert_eq!(ingest.stats.overflow.load(Ordering::Relaxed), 0);
        assert_eq!(
            ingest.cache.get("a.b"),
            vec![(100, 2.0)],
            "the good point is kept"
        );
    }
}
