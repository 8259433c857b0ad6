//! The sharded map of metric → points, with confirm-on-persist and flow control.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use carbide_whisper::Point;
use parking_lot::{Condvar, Mutex};

use crate::stats::Stats;
use crate::strategy::WriteStrategy;

/// How big the cache may grow and how writers drain it.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// MAX_CACHE_SIZE in points; `None` is carbon's `inf`.
    pub max_size: Option<usize>,
    /// CACHE_WRITE_STRATEGY.
    pub strategy: WriteStrategy,
    /// Number of independently locked shards (a power of two is not required).
    pub shards: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: None,
            strategy: WriteStrategy::default(),
            shards: 256,
        }
    }
}

/// A metric's points, taken by a writer; they stay readable in the cache until confirmed.
#[derive(Debug)]
pub struct Job {
    /// The metric name as received.
    pub metric: Arc<str>,
    /// Its points, oldest first, one per timestamp.
    pub points: Arc<Vec<Point>>,
}

/// A held point at whisper's own width: a u32 timestamp (the only kind whisper can store) and the
/// value, 12 bytes where `(i64, f64)` takes 16. Held points are most of the cache's memory in a
/// burst, and this is a quarter of it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, packed(4))]
struct Held {
    ts: u32,
    value: f64,
}

impl Held {
    fn point(self) -> Point {
        (i64::from(self.ts), self.value)
    }

    /// From a point already in range (points come back from a writer as they went out).
    fn from_point((ts, value): Point) -> Held {
        Held {
            ts: u32::try_from(ts).unwrap_or(u32::MAX),
            value,
        }
    }
}

/// The held points as `(timestamp, value)` pairs.
fn points_of(held: &[Held]) -> Vec<Point> {
    held.iter().map(|h| h.point()).collect()
}

#[derive(Debug, Default)]
struct Entry {
    /// Points waiting for a writer, one per timestamp (a duplicate overwrites in place).
    pending: Vec<Held>,
    /// The newest timestamp in `pending` (meaningless while it is empty). Kept here so that the
    /// usual insert, a point newer than all held, need not read the points' buffer: with many
    /// metrics that read is a cache miss on every insert (a third of the insert's time, perf).
    newest: u32,
    /// Points a writer is persisting right now.
    inflight: Option<Arc<Vec<Point>>>,
    /// Whether the name sits in its shard's FIFO or in the writers' snapshot.
    queued: bool,
    /// The tick at which it was put in the FIFO, while it is there: a FIFO slot whose tick differs
    /// is stale (the metric left through the `full` list) and is skipped.
    listed_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Arc<str>, Entry, ahash::RandomState>,
    /// Metrics in the order they became ready, with the tick: the front has waited longest.
    fifo: VecDeque<(Arc<str>, u64)>,
    /// Metrics in the FIFO that gathered [`BATCH_POINTS`]: due without waiting for their turn.
    full: Vec<Arc<str>>,
}

/// The cache: many shards, each a mutex over a map, so ingestion never waits on one global lock.
pub struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: ahash::RandomState,
    size: AtomicUsize,
    config: CacheConfig,
    /// What the cache did, for self-metrics.
    pub stats: Stats,
    paused: AtomicBool,
    on_space: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    work: (Mutex<usize>, Condvar),
    next_shard: AtomicUsize,
    snapshot: Mutex<Snapshot>,
    /// Names waiting in the shards' ready lists (sorted strategies), so an idle writer need not
    /// visit every shard to learn there is nothing to do.
    listed: AtomicUsize,
    /// Ticks (milliseconds) are counted from here.
    epoch: Instant,
    /// The tick of the last insert batch: writers hold points back only while points keep coming.
    last_insert: AtomicU64,
}

/// Counts of a batch of inserts not yet published to the cache's shared counters.
#[derive(Debug, Default)]
#[must_use = "pass it to Cache::settle, or the cache's size and the writers' wake-up are lost"]
pub struct Tally {
    /// The tick, read once per batch when first needed.
    tick: Option<u64>,
    received: u64,
    grown: usize,
    listed: usize,
    ready: bool,
}

/// The sorted strategies' current order of metrics to write, and when it was taken.
#[derive(Debug)]
struct Snapshot {
    order: VecDeque<Arc<str>>,
    taken: Instant,
}

/// The shortest time between two snapshots of the ready metrics. When writers keep up, a metric
/// would otherwise be written once per point it receives; waiting this long lets points gather, so
/// one update_many carries several (fewer syscalls per point) while a point reaches disk at most
/// this much later. Readers see waiting points in the cache all along.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(50);

/// With the sorted strategies, a metric is written once it holds this many points, or once its
/// oldest unwritten point has waited [`MAX_HOLD`], or as soon as no point has arrived for a
/// [`SNAPSHOT_INTERVAL`] (a pause has nothing left to batch). While points stream in, holding them
/// turns a burst into a few large update_many calls instead of one per point: a whisper update
/// costs a dozen syscalls whether it carries one point or fifty. Readers see held points in the
/// cache all along, and flush and shutdown write them at once.
pub const BATCH_POINTS: usize = 32;

/// The longest a point waits in the cache for others to batch with while points keep arriving.
pub const MAX_HOLD: Duration = Duration::from_secs(5);

/// Beyond this many points held, writers stop holding any back (with MAX_CACHE_SIZE set, beyond
/// half of it): batching must not cost unbounded memory, nor pause the receivers.
pub const MAX_HELD_POINTS: usize = 4_000_000;

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("size", &self.len())
            .field("config", &self.config)
            .finish()
    }
}

/// Why a point was not taken into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The cache is beyond its hard limit (carbon's cache.overflow).
    #[error("cache full: point dropped")]
    Overflow,
    /// Whisper stores timestamps as u32 seconds: this one could never be written (whisper.py
    /// fails the whole update on it, losing the metric's other points too).
    #[error("timestamp {0} is outside whisper's range (0 to 4294967295)")]
    Timestamp(i64),
}

/// Makes room for one more point, growing a list by 8 points (by an eighth beyond 64) instead of
/// doubling it. Held points are most of the cache's memory in a burst (millions at once with
/// 100 000 metrics): doubling left a list of 40 points in room for 64, and a jump to
/// [`BATCH_POINTS`] left a list of 5 in room for 32 (heaptrack: 51 MiB allocated for 2 M points
/// held). Steps of 8 waste at most 8 points a metric, and a realloc per 8 points costs far less
/// than the insert of those points.
fn reserve_one(pending: &mut Vec<Held>) {
    let len = pending.len();
    if len < pending.capacity() || len < 4 {
        return;
    }
    pending.reserve_exact((len / 8).max(8));
}

/// Appends a point; writers sort a list when they take it.
fn push_point(pending: &mut Vec<Held>, ts: u32, value: f64) {
    reserve_one(pending);
    pending.push(Held { ts, value });
}

/// Puts `(ts, value)` into a pending list, overwriting a point with the same timestamp.
fn upsert(pending: &mut Vec<Held>, ts: u32, value: f64) -> bool {
    // Points mostly arrive in time order: one newer than the last cannot be a duplicate, and
    // skipping the scan keeps a metric's inserts linear in its points, not quadratic.
    if pending.last().is_none_or(|p| p.ts < ts) {
        push_point(pending, ts, value);
        return true;
    }
    // Newest points are at the end and duplicates are usually recent: scan backwards.
    if let Some(p) = pending.iter_mut().rev().find(|p| p.ts == ts) {
        p.value = value;
        false
    } else {
        push_point(pending, ts, value);
        true
    }
}

impl Cache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        let n = config.shards.max(1);
        Cache {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: ahash::RandomState::new(),
            size: AtomicUsize::new(0),
            config,
            stats: Stats::default(),
            paused: AtomicBool::new(false),
            on_space: Mutex::new(None),
            work: (Mutex::new(0), Condvar::new()),
            next_shard: AtomicUsize::new(0),
            snapshot: Mutex::new(Snapshot {
                order: VecDeque::new(),
                // The first snapshot may be taken at once.
                taken: Instant::now()
                    .checked_sub(SNAPSHOT_INTERVAL)
                    .unwrap_or_else(Instant::now),
            }),
            listed: AtomicUsize::new(0),
            epoch: Instant::now(),
            last_insert: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the cache was made.
    fn tick(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn shard_of(&self, metric: &str) -> &Mutex<Shard> {
        let i = (self.hasher.hash_one(metric) as usize) % self.shards.len();
        &self.shards[i]
    }

    /// Points held (pending and in flight): carbon's cache.size.
    pub fn len(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Metrics with points held: carbon's cache.queues.
    pub fn queues(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// Beyond this many points new points are refused (5% above MAX_CACHE_SIZE: room for what the
    /// receivers had already read when they were paused).
    fn hard_limit(&self) -> Option<usize> {
        self.config.max_size.map(|m| m.saturating_add(m / 20))
    }

    /// Whether receivers should stop reading now (size ≥ MAX_CACHE_SIZE). Sets the paused flag so
    /// that the space callback fires once the writers bring the size under the low watermark.
    pub fn should_pause(&self) -> bool {
        match self.config.max_size {
            Some(max) if self.len() >= max => {
                self.paused.store(true, Ordering::SeqCst);
                // Re-check: a writer may have freed space between the test and the store.
                if self.len() < self.low_watermark() {
                    self.paused.store(false, Ordering::SeqCst);
                    return false;
                }
                true
            }
            _ => false,
        }
    }

    fn low_watermark(&self) -> usize {
        self.config.max_size.map_or(usize::MAX, |m| m - m / 20)
    }

    /// Registers what to call when a paused cache has room again (the receivers' wake-up).
    pub fn on_space(&self, f: impl Fn() + Send + Sync + 'static) {
        *self.on_space.lock() = Some(Box::new(f));
    }

    fn freed(&self, n: usize) {
        let after = self.size.fetch_sub(n, Ordering::SeqCst) - n;
        if after < self.low_watermark()
            && self.paused.swap(false, Ordering::SeqCst)
            && let Some(f) = self.on_space.lock().as_ref()
        {
            f();
        }
    }

    fn wake_writer(&self) {
        let (lock, cv) = &self.work;
        let mut pending = lock.lock();
        *pending += 1;
        cv.notify_one();
    }

    /// Blocks a writer until some metric may be ready, or `timeout` passes.
    pub fn wait_for_work(&self, timeout: Duration) {
        let (lock, cv) = &self.work;
        let mut pending = lock.lock();
        if *pending == 0 {
            cv.wait_for(&mut pending, timeout);
        }
        *pending = pending.saturating_sub(1);
    }

    /// Adds one point. A point with the timestamp of a point already held replaces its value without
    /// growing the cache.
    pub fn insert(&self, metric: &str, ts: i64, value: f64) -> Result<(), Refused> {
        let mut tally = Tally::default();
        let r = self.insert_tallied(metric, ts, value, &mut tally);
        self.settle(tally);
        r
    }

    /// [`Cache::insert`] for a receiver's batch of points: the shared counters and the writers'
    /// wake-up are left in `tally` until [`Cache::settle`], so a batch touches them once instead of
    /// once per point (with several receivers, per-point atomics on shared cache lines cost more
    /// than the insert itself). The size seen by the overflow check lags by the unsettled points,
    /// which the 5 % above MAX_CACHE_SIZE absorbs.
    pub fn insert_tallied(
        &self,
        metric: &str,
        ts: i64,
        value: f64,
        tally: &mut Tally,
    ) -> Result<(), Refused> {
        let ts = u32::try_from(ts).map_err(|_| Refused::Timestamp(ts))?;
        if self.hard_limit().is_some_and(|h| self.len() >= h) {
            Stats::add(&self.stats.overflow, 1);
            return Err(Refused::Overflow);
        }
        let mut shard = self.shard_of(metric).lock();
        self.insert_locked(&mut shard, metric, ts, value, tally);
        Ok(())
    }

    /// One insert into a shard already locked.
    fn insert_locked(&self, shard: &mut Shard, metric: &str, ts: u32, value: f64, tally: &mut Tally) {
        let Shard { map, fifo, full } = shard;
        let entry = match map.get_mut(metric) {
            Some(e) => e,
            None => map.entry(Arc::from(metric)).or_default(),
        };
        let grew = if entry.pending.is_empty() || ts > entry.newest {
            push_point(&mut entry.pending, ts, value);
            entry.newest = ts;
            true
        } else {
            upsert(&mut entry.pending, ts, value)
        };
        let became_full =
            grew && entry.pending.len() == BATCH_POINTS && entry.listed_at.is_some() && self.holds();
        // `max` scans the maps instead; a ready list it never drains would only grow.
        let mut listed_now = None;
        if !entry.queued && entry.inflight.is_none() {
            entry.queued = true;
            tally.ready = true;
            if self.config.strategy != WriteStrategy::Max {
                let now = *tally.tick.get_or_insert_with(|| self.tick());
                entry.listed_at = Some(now);
                listed_now = Some(now);
            }
        }
        tally.grown += usize::from(grew);
        tally.received += 1;
        if (became_full || listed_now.is_some())
            && let Some((key, _)) = map.get_key_value(metric)
        {
            if became_full {
                full.push(key.clone());
            }
            if let Some(now) = listed_now {
                fifo.push_back((key.clone(), now));
                tally.listed += 1;
            }
        }
    }

    /// Inserts a receiver's batch of points, each shard locked once for all of its points, in
    /// order within a metric (so the last duplicate still wins). Between two inserts under one
    /// lock the CPU overlaps their memory accesses; a lock release after each insert would
    /// make it wait for every one (with 100 000 metrics, each insert misses the CPU cache 3 times,
    /// and lock + unlock per point cost half the insert, perf). Returns how many points were
    /// refused (the cache is full, or a timestamp whisper cannot store).
    pub fn insert_many(&self, points: &[(&str, i64, f64)], tally: &mut Tally) -> usize {
        if points.len() < 8 || self.hard_limit().is_some_and(|h| self.len() + points.len() >= h) {
            return points
                .iter()
                .filter(|(m, ts, v)| self.insert_tallied(m, *ts, *v, tally).is_err())
                .count();
        }
        let n = self.shards.len();
        let in_range = |ts: i64| u32::try_from(ts).is_ok();
        let mut order: Vec<u64> = points
            .iter()
            .enumerate()
            .filter(|(_, (_, ts, _))| in_range(*ts))
            .map(|(i, (m, _, _))| {
                let shard = (self.hasher.hash_one(m) as usize % n) as u64;
                (shard << 32) | i as u64
            })
            .collect();
        order.sort_unstable();
        let mut at = 0;
        while let Some(&first) = order.get(at) {
            let shard_index = (first >> 32) as usize;
            let mut shard = self.shards[shard_index].lock();
            while let Some(&key) = order.get(at) {
                if (key >> 32) as usize != shard_index {
                    break;
                }
                let (m, ts, v) = points[(key & 0xffff_ffff) as usize];
                self.insert_locked(&mut shard, m, ts as u32, v, tally);
                at += 1;
            }
        }
        points.len() - order.len()
    }

    /// Publishes a batch's counts and wakes a writer if the batch made a metric ready.
    pub fn settle(&self, tally: Tally) {
        if tally.grown > 0 {
            self.size.fetch_add(tally.grown, Ordering::Relaxed);
        }
        if tally.listed > 0 {
            self.listed.fetch_add(tally.listed, Ordering::Relaxed);
        }
        if tally.received > 0 {
            Stats::add(&self.stats.received, tally.received);
            let now = tally.tick.unwrap_or_else(|| self.tick());
            self.last_insert.store(now, Ordering::Relaxed);
        }
        if tally.ready {
            self.wake_writer();
        }
    }

    /// The points held for `metric`, oldest first, in-flight ones included (a newer pending value for
    /// the same timestamp wins): what carbonlink and the web API merge with the file.
    pub fn get(&self, metric: &str) -> Vec<Point> {
        let shard = self.shard_of(metric).lock();
        let Some(entry) = shard.map.get(metric) else {
            return Vec::new();
        };
        let mut out: Vec<Held> = entry
            .inflight
            .as_deref()
            .map(|p| p.iter().copied().map(Held::from_point).collect())
            .unwrap_or_default();
        for p in &entry.pending {
            upsert(&mut out, p.ts, p.value);
        }
        drop(shard);
        out.sort_by_key(|p| p.ts);
        points_of(&out)
    }

    /// Takes the next metric to write, by the configured strategy, holding nothing back (tests,
    /// tools); `None` when nothing is ready.
    pub fn take(&self) -> Option<Job> {
        self.take_due(true)
    }

    /// Takes the next metric a writer should write now. With the sorted strategies a metric is due
    /// once it holds [`BATCH_POINTS`], or has waited [`MAX_HOLD`], or when points have stopped
    /// arriving; `flush` makes everything ready due (admin flush, shutdown).
    pub fn take_due(&self, flush: bool) -> Option<Job> {
        match self.config.strategy {
            WriteStrategy::Naive => self.take_fifo(),
            WriteStrategy::Max => self.take_max(),
            WriteStrategy::Sorted | WriteStrategy::TimeSorted => self.take_sorted(flush),
        }
    }

    /// Whether the strategy holds points back to batch them (see [`BATCH_POINTS`]).
    fn holds(&self) -> bool {
        matches!(
            self.config.strategy,
            WriteStrategy::Sorted | WriteStrategy::TimeSorted
        )
    }

    fn take_from(&self, shard: &mut Shard, metric: &Arc<str>) -> Option<Job> {
        let entry = shard.map.get_mut(metric)?;
        entry.queued = false;
        entry.listed_at = None;
        if entry.inflight.is_some() || entry.pending.is_empty() {
            return None;
        }
        let mut held = std::mem::take(&mut entry.pending);
        held.sort_by_key(|p| p.ts);
        let points = Arc::new(points_of(&held));
        entry.inflight = Some(points.clone());
        Some(Job {
            metric: metric.clone(),
            points,
        })
    }

    fn take_fifo(&self) -> Option<Job> {
        let n = self.shards.len();
        let start = self.next_shard.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let mut shard = self.shards[(start + i) % n].lock();
            while let Some((name, _)) = shard.fifo.pop_front() {
                self.listed.fetch_sub(1, Ordering::Relaxed);
                if let Some(job) = self.take_from(&mut shard, &name) {
                    return Some(job);
                }
            }
        }
        None
    }

    fn take_max(&self) -> Option<Job> {
        let mut best: Option<(usize, Arc<str>)> = None;
        for shard in self.shards.iter() {
            for (name, e) in shard.lock().map.iter() {
                if e.inflight.is_none() && e.pending.len() > best.as_ref().map_or(0, |b| b.0) {
                    best = Some((e.pending.len(), name.clone()));
                }
            }
        }
        let (_, name) = best?;
        let mut shard = self.shard_of(&name).lock();
        self.take_from(&mut shard, &name)
    }

    /// carbon's sorted (and timesorted) strategy: a snapshot of the due metrics, most points (or
    /// oldest point) first, handed out in order; a new snapshot once it is used up. The snapshot is
    /// built from the shards' ready lists (the `full` list and the FIFO's long-waiting front), so
    /// its cost is proportional to the metrics it takes, not to every metric the cache knows (a
    /// full scan per snapshot cost a third of the CPU when writers kept up with single points).
    fn take_sorted(&self, flush: bool) -> Option<Job> {
        loop {
            let next = self.snapshot.lock().order.pop_front();
            let Some(name) = next else { break };
            let mut shard = self.shard_of(&name).lock();
            if let Some(job) = self.take_from(&mut shard, &name) {
                return Some(job);
            }
        }
        let mut snapshot = self.snapshot.lock();
        // Another writer may have rebuilt it while this one waited for the lock.
        if snapshot.order.is_empty() {
            if self.listed.load(Ordering::Relaxed) == 0 || snapshot.taken.elapsed() < SNAPSHOT_INTERVAL {
                return None;
            }
            snapshot.taken = Instant::now();
            let now = self.tick();
            let quiet_ms = SNAPSHOT_INTERVAL.as_millis() as u64;
            let held_limit = self.config.max_size.map_or(MAX_HELD_POINTS, |m| m / 2);
            let everything = flush
                || now.saturating_sub(self.last_insert.load(Ordering::Relaxed)) >= quiet_ms
                || self.len() >= held_limit;
            let hold_ms = MAX_HOLD.as_millis() as u64;
            let mut ready: Vec<(i64, Arc<str>)> = Vec::new();
            let mut due = |e: &mut Entry, name: Arc<str>| {
                e.listed_at = None;
                if e.inflight.is_some() || e.pending.is_empty() {
                    // Not takeable now: the next insert or confirm lists it again.
                    e.queued = false;
                } else {
                    let key = match self.config.strategy {
                        WriteStrategy::TimeSorted => {
                            e.pending.iter().map(|p| i64::from(p.ts)).min().unwrap_or(0)
                        }
                        _ => -(e.pending.len() as i64),
                    };
                    ready.push((key, name));
                }
            };
            for shard in self.shards.iter() {
                let mut shard = shard.lock();
                let Shard { map, fifo, full } = &mut *shard;
                for name in full.drain(..) {
                    // Its FIFO slot turns stale and is skipped when it reaches the front.
                    if let Some(e) = map.get_mut(&name)
                        && e.listed_at.is_some()
                    {
                        due(e, name);
                    }
                }
                while let Some((_, t)) = fifo.front() {
                    if !everything && now.saturating_sub(*t) < hold_ms {
                        break;
                    }
                    let Some((name, t)) = fifo.pop_front() else { break };
                    self.listed.fetch_sub(1, Ordering::Relaxed);
                    if let Some(e) = map.get_mut(&name)
                        && e.listed_at == Some(t)
                    {
                        due(e, name);
                    }
                }
            }
            ready.sort_by_key(|a| a.0);
            snapshot.order.extend(ready.into_iter().map(|(_, n)| n));
        }
        while let Some(name) = snapshot.order.pop_front() {
            let mut shard = self.shard_of(&name).lock();
            if let Some(job) = self.take_from(&mut shard, &name) {
                return Some(job);
            }
        }
        None
    }

    /// How long an idle writer should wait before asking again: until the next snapshot may be
    /// taken when metrics are ready but the last one is too recent, else until woken by new work
    /// or `timeout`.
    pub fn idle_wait(&self, timeout: Duration) {
        if self.holds() && self.listed.load(Ordering::Relaxed) > 0 {
            // Metrics are waiting but none is due yet (or the last snapshot is too recent): look
            // again at the next snapshot time.
            let left = SNAPSHOT_INTERVAL.saturating_sub(self.snapshot.lock().taken.elapsed());
            let left = if left.is_zero() { SNAPSHOT_INTERVAL } else { left };
            std::thread::sleep(left.min(timeout));
            return;
        }
        self.wait_for_work(timeout);
    }

    /// The job was written: its points leave the cache.
    pub fn confirm(&self, job: Job) {
        self.finish(job, false);
    }

    /// The job could not be written now: its points go back, newer pending values still winning.
    pub fn requeue(&self, job: Job) {
        self.finish(job, true);
    }

    fn finish(&self, job: Job, keep: bool) {
        let n = job.points.len();
        let mut freed = n;
        let mut ready = false;
        {
            let mut shard = self.shard_of(&job.metric).lock();
            let holds = self.holds();
            let Shard { map, fifo, full } = &mut *shard;
            if let Some(entry) = map.get_mut(&job.metric) {
                entry.inflight = None;
                if keep {
                    let mut merged: Vec<Held> = job.points.iter().copied().map(Held::from_point).collect();
                    for p in &entry.pending {
                        upsert(&mut merged, p.ts, p.value);
                    }
                    // Points held before = n (in flight) + pending; after = merged.len().
                    freed = n + entry.pending.len() - merged.len();
                    entry.newest = merged.iter().map(|p| p.ts).max().unwrap_or(0);
                    entry.pending = merged;
                }
                if entry.pending.is_empty() {
                    map.remove(&job.metric);
                } else if !entry.queued {
                    entry.queued = true;
                    if self.config.strategy != WriteStrategy::Max {
                        let now = self.tick();
                        entry.listed_at = Some(now);
                        fifo.push_back((job.metric.clone(), now));
                        self.listed.fetch_add(1, Ordering::Relaxed);
                        if holds && entry.pending.len() >= BATCH_POINTS {
                            full.push(job.metric.clone());
                        }
                    }
                    ready = true;
                }
            }
        }
        if freed > 0 {
            self.freed(freed);
        }
        if ready {
            self.wake_writer();
        }
    }

    /// The `n` metrics holding the most points, with their counts: `/admin/cache`.
    pub fn largest(&self, n: usize) -> Vec<(String, usize)> {
        let mut all: Vec<(String, usize)> = Vec::new();
        for shard in self.shards.iter() {
            for (name, e) in shard.lock().map.iter() {
                let held = e.pending.len() + e.inflight.as_ref().map_or(0, |p| p.len());
                all.push((name.to_string(), held));
            }
        }
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Removes and returns everything not in flight, for the shutdown dump.
    pub fn drain_pending(&self) -> Vec<(Arc<str>, Vec<Point>)> {
        let mut out = Vec::new();
        let mut freed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            self.listed.fetch_sub(shard.fifo.len(), Ordering::Relaxed);
            shard.fifo.clear();
            shard.full.clear();
            shard.map.retain(|name, e| {
                if !e.pending.is_empty() {
                    freed += e.pending.len();
                    let mut held = std::mem::take(&mut e.pending);
                    held.sort_by_key(|p| p.ts);
                    out.push((name.clone(), points_of(&held)));
                }
                e.queued = false;
                e.listed_at = None;
                e.inflight.is_some()
            });
        }
        if freed > 0 {
            self.freed(freed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(strategy: WriteStrategy, max: Option<usize>) -> Cache {
        Cache::new(CacheConfig {
            max_size: max,
            strategy,
            shards: 4,
        })
    }

    #[test]
    fn duplicates_overwrite_without_growing() {
        let c = cache(WriteStrategy::Naive, None);
        c.insert("a.b", 10, 1.0).unwrap();
        c.insert("a.b", 20, 2.0).unwrap();
        c.insert("a.b", 10, 3.0).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a.b"), vec![(10, 3.0), (20, 2.0)]);
        assert_eq!(c.queues(), 1);
    }

    #[test]
    fn points_stay_readable_until_confirmed() {
        let c = cache(WriteStrategy::Naive, None);
        c.insert("m", 10, 1.0).unwrap();
        let job = c.take().unwrap();
        assert!(c.take().is_none(), "a metric in flight is not handed out twice");
        assert_eq!(c.get("m"), vec![(10, 1.0)]);
        c.insert("m", 10, 5.0).unwrap();
        c.insert("m", 20, 6.0).unwrap();
        assert_eq!(c.get("m"), vec![(10, 5.0), (20, 6.0)], "newer pending values win");
        assert_eq!(c.len(), 3);
        c.confirm(job);
        assert_eq!(c.len(), 2);
        let job = c.take().unwrap();
        assert_eq!(*job.points, vec![(10, 5.0), (20, 6.0)]);
        c.confirm(job);
        assert!(c.is_empty());
        assert_eq!(c.queues(), 0);
    }

    #[test]
    fn requeue_keeps_points_and_newer_values() {
        let c = cache(WriteStrategy::Naive, None);
        c.insert("m", 10, 1.0).unwrap();
        c.insert("m", 20, 2.0).unwrap();
        let job = c.take().unwrap();
        c.insert("m", 20, 9.0).unwrap();
        c.insert("m", 30, 3.0).unwrap();
        c.requeue(job);
        assert_eq!(c.len(), 3);
        let job = c.take().unwrap();
        assert_eq!(*job.points, vec![(10, 1.0), (20, 9.0), (30, 3.0)]);
    }

    #[test]
    fn strategies_hand_out_every_metric_once() {
        for s in [
            WriteStrategy::Naive,
            WriteStrategy::Max,
            WriteStrategy::Sorted,
            WriteStrategy::TimeSorted,
        ] {
            let c = cache(s, None);
            for i in 0..100 {
                for t in 0..=(i % 7) {
                    c.insert(&format!("m{i}"), 100 - i64::from(t), 1.0).unwrap();
                }
            }
            let mut seen = std::collections::HashSet::new();
            let mut sizes = Vec::new();
            while let Some(job) = c.take() {
                assert!(
                    seen.insert(job.metric.to_string()),
                    "{s:?} handed out {} twice",
                    job.metric
                );
                sizes.push(job.points.len());
                c.confirm(job);
            }
            assert_eq!(seen.len(), 100, "{s:?}");
            assert!(c.is_empty());
            if matches!(s, WriteStrategy::Max | WriteStrategy::Sorted) {
                assert!(
                    sizes.windows(2).all(|w| w[0] >= w[1]),
                    "{s:?} not largest-first: {sizes:?}"
                );
            }
        }
    }

    #[test]
    fn flow_control_pauses_and_resumes() {
        let c = Arc::new(cache(WriteStrategy::Naive, Some(100)));
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        c.on_space(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        for i in 0..100 {
            c.insert(&format!("m{i}"), 1, 1.0).unwrap();
        }
        assert!(c.should_pause());
        // Up to the hard limit (5% slack) points are still taken, beyond it they are refused.
        for i in 100..105 {
            c.insert(&format!("m{i}"), 1, 1.0).unwrap();
        }
        assert_eq!(c.insert("x", 1, 1.0), Err(Refused::Overflow));
        assert_eq!(Stats::get(&c.stats.overflow), 1);
        while c.len() >= 95 {
            let job = c.take().unwrap();
            c.confirm(job);
        }
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(!c.should_pause());
    }

    /// Sorted holds a metric back while points keep arriving, until it has BATCH_POINTS or the
    /// stream pauses; a flush takes it at once.
    #[test]
    fn sorted_holds_points_while_they_stream_in() {
        let c = cache(WriteStrategy::Sorted, None);
        let keep_streaming = |c: &Cache| c.insert("other", 1, 1.0).unwrap();
        c.insert("few", 10, 1.0).unwrap();
        for t in 0..BATCH_POINTS as i64 {
            c.insert("many", t, 1.0).unwrap();
        }
        keep_streaming(&c);
        let job = c
            .take_due(false)
            .expect("a metric with BATCH_POINTS is due at once");
        assert_eq!(&*job.metric, "many");
        assert_eq!(job.points.len(), BATCH_POINTS);
        c.confirm(job);
        // Still streaming: "few" is held. (A test thread descheduled for a whole snapshot
        // interval between the insert and the take sees a pause; it puts the job back and tries
        // again.)
        let mut held = false;
        for _ in 0..20 {
            std::thread::sleep(SNAPSHOT_INTERVAL + Duration::from_millis(5));
            let asked = Instant::now();
            keep_streaming(&c);
            match c.take_due(false) {
                None => {
                    held = true;
                    break;
                }
                Some(job) => {
                    assert!(
                        asked.elapsed() >= SNAPSHOT_INTERVAL / 2,
                        "{} not held",
                        job.metric
                    );
                    c.requeue(job);
                }
            }
        }
        assert!(held, "few points, still streaming: held back");
        assert_eq!(c.get("few"), vec![(10, 1.0)], "held points stay readable");
        // The stream pauses: after a snapshot interval with no insert everything is due.
        std::thread::sleep(SNAPSHOT_INTERVAL + Duration::from_millis(10));
        let mut taken: Vec<String> = std::iter::from_fn(|| c.take_due(false))
            .map(|j| {
                let name = j.metric.to_string();
                c.confirm(j);
                name
            })
            .collect();
        taken.sort();
        assert_eq!(taken, ["few", "other"]);
        assert!(c.is_empty());
        // A flush does not wait for a pause.
        c.insert("flushed", 10, 1.0).unwrap();
        std::thread::sleep(SNAPSHOT_INTERVAL + Duration::from_millis(5));
        keep_streaming(&c);
        let job = c.take_due(true).expect("flush takes everything");
        c.confirm(job);
    }

    /// A metric that reaches BATCH_POINTS while a writer holds its earlier points is due as soon
    /// as that write is confirmed, without waiting for MAX_HOLD.
    #[test]
    fn a_full_metric_is_due_after_its_write_confirms() {
        let c = cache(WriteStrategy::Sorted, None);
        c.insert("m", 0, 1.0).unwrap();
        let first = c.take().unwrap();
        for t in 1..=BATCH_POINTS as i64 {
            c.insert("m", t, 1.0).unwrap();
        }
        c.confirm(first);
        std::thread::sleep(SNAPSHOT_INTERVAL + Duration::from_millis(5));
        c.insert("other", 1, 1.0).unwrap();
        let job = c.take_due(false).expect("full after confirm");
        assert_eq!(&*job.metric, "m");
        assert_eq!(job.points.len(), BATCH_POINTS);
    }

    /// The batched insert ends in the same cache as inserting one by one: every point, the last
    /// duplicate winning, the same size and counters.
    #[test]
    fn pending_lists_grow_by_eight_then_by_an_eighth() {
        let mut pending = Vec::new();
        for ts in 0..5 {
            push_point(&mut pending, ts, 0.0);
        }
        assert_eq!(pending.capacity(), 12, "4 points, then room for 8 more");
        for ts in 5..1000 {
            push_point(&mut pending, ts, 0.0);
            let cap = pending.capacity();
            let bound = pending.len() + (pending.len() / 8).max(8);
            assert!(cap <= bound, "room for {cap} with {} points", pending.len());
        }
        assert_eq!(std::mem::size_of::<Held>(), 12);
    }

    #[test]
    fn timestamps_whisper_cannot_store_are_refused() {
        let c = cache(WriteStrategy::Sorted, None);
        assert_eq!(c.insert("m", -5, 1.0), Err(Refused::Timestamp(-5)));
        assert_eq!(c.insert("m", 1 << 32, 1.0), Err(Refused::Timestamp(1 << 32)));
        c.insert("m", u32::MAX.into(), 2.0).unwrap();
        let many: Vec<(&str, i64, f64)> = (0..10).map(|i| ("n", if i == 3 { -1 } else { i }, 1.0)).collect();
        let mut tally = Tally::default();
        assert_eq!(c.insert_many(&many, &mut tally), 1);
        c.settle(tally);
        assert_eq!(c.len(), 10);
        assert_eq!(c.get("m"), vec![(i64::from(u32::MAX), 2.0)]);
        assert_eq!(c.get("n").len(), 9);
    }
    #[test]
    fn insert_many_equals_one_by_one() {
        let names: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let mut points: Vec<(&str, i64, f64)> = Vec::new();
        for round in 0..4i64 {
            for (i, n) in names.iter().enumerate() {
                // Timestamps repeat (10 and 20 twice each): the later value must win.
                points.push((n, 10 * (1 + round % 2), (round as usize * 100 + i) as f64));
            }
        }
        let one = cache(WriteStrategy::Sorted, None);
        let many = cache(WriteStrategy::Sorted, None);
        for &(m, ts, v) in &points {
            one.insert(m, ts, v).unwrap();
        }
        let mut tally = Tally::default();
        assert_eq!(many.insert_many(&points, &mut tally), 0);
        many.settle(tally);
        assert_eq!(many.len(), one.len());
        assert_eq!(many.queues(), 50);
        assert_eq!(Stats::get(&many.stats.received), 200);
        for n in &names {
            assert_eq!(many.get(n), one.get(n), "{n}");
        }
    }

    #[test]
    fn drain_pending_returns_everything_sorted() {
        let c = cache(WriteStrategy::Naive, None);
        c.insert("a", 30, 3.0).unwrap();
        c.insert("a", 10, 1.0).unwrap();
        c.insert("b", 5, 5.0).unwrap();
        let mut d = c.drain_pending();
        d.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1, vec![(10, 1.0), (30, 3.0)]);
        assert!(c.is_empty());
        assert_eq!(c.queues(), 0);
    }
}
