//! One destination's queue: bounded memory, a spill file behind it, and its counters.
//!
//! The policy, in order, for a point routed to this destination:
//! 1. while the spill file holds points, new points go there too (so replay keeps the order);
//! 2. below MAX_QUEUE_SIZE, into memory;
//! 3. full and the destination down: into the spill file (other destinations keep flowing);
//! 4. full and the destination up (a slow consumer): into memory up to MAX_QUEUE_SIZE × 1.25,
//!    while [`DestQueue::should_pause`] stops the receivers (carbon's flow control);
//! 5. beyond that, the spill file; when that is full or absent, the point is dropped, counted in
//!    `fullQueueDrops` and logged (once a second at most, with the running total).
//!
//! "Full" is either the spill file's size limit (`--spill-max-mib`) or the disk refusing writes
//! (ENOSPC, EFBIG): the latter is also counted in `spillErrors`. Either way the relay keeps
//! running, the other destinations are not affected, and every point the queue accepted (memory
//! or spill) is delivered, in order, when the destination returns; see [`crate::spill`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::spill::{Spill, SpillError};

/// One datapoint on its way to a destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Seconds since the epoch.
    pub timestamp: f64,
}

/// A destination's counters, published as `carbon.relays.<host>.destinations.<dest>.*`.
#[derive(Debug, Default)]
pub struct DestStats {
    /// Points handed to this destination (carbon's `attemptedRelays`).
    pub attempted: AtomicU64,
    /// Points written to its socket (`sent`).
    pub sent: AtomicU64,
    /// Points dropped because memory and spill were full (`fullQueueDrops`).
    pub dropped: AtomicU64,
    /// Points written to the spill file (`spilled`).
    pub spilled: AtomicU64,
    /// Points refused by the spill file because the disk failed (ENOSPC, EFBIG), not because
    /// it reached its size limit (`spillErrors`); each is also in `dropped`.
    pub spill_errors: AtomicU64,
    /// Batches that failed to send and were queued again (`sendFailures`).
    pub send_failures: AtomicU64,
    /// Connection attempts that failed (`connectFailures`).
    pub connect_failures: AtomicU64,
    /// Batches written to its socket (`batchesSent`).
    pub batches: AtomicU64,
    /// Points queued while the destination was not connected (`queuedUntilConnected`).
    pub queued_until_connected: AtomicU64,
    /// Longest the memory queue has been since the last self-metrics report
    /// (`relayMaxQueueLength`); the report resets it.
    pub max_queue_len: AtomicU64,
    /// Whether the destination is connected now (`connected`, 0 or 1).
    pub connected: AtomicBool,
}

#[derive(Debug)]
struct State {
    mem: VecDeque<Point>,
    spill: Option<Spill>,
    last_drop_log: Option<Instant>,
}

/// A destination's bounded queue.
#[derive(Debug)]
pub struct DestQueue {
    /// `host:port[:instance]`, for logs and metric names.
    pub name: String,
    state: Mutex<State>,
    /// Wakes the sender when points arrive.
    pub ready: Notify,
    /// Counters.
    pub stats: DestStats,
    max: usize,
    hard: usize,
}

impl DestQueue {
    /// A queue holding `max` points in memory (MAX_QUEUE_SIZE), with an optional spill file.
    pub fn new(name: String, max: usize, spill: Option<Spill>) -> DestQueue {
        let max = max.max(1);
        DestQueue {
            name,
            state: Mutex::new(State {
                mem: VecDeque::new(),
                spill,
                last_drop_log: None,
            }),
            ready: Notify::new(),
            stats: DestStats::default(),
            max,
            hard: max + max / 4,
        }
    }

    /// Queues one point following the module's policy; `false` when it was dropped.
    pub fn push(&self, p: Point) -> bool {
        self.push_many(std::iter::once(p)) == 0
    }

    /// Queues points in order, each following the module's policy, under one lock and with one
    /// wake-up of the sender; returns how many were dropped.
    pub fn push_many(&self, points: impl IntoIterator<Item = Point>) -> u64 {
        let connected = self.stats.connected.load(Ordering::Relaxed);
        let (mut attempted, mut queued, mut spilled, mut dropped) = (0u64, 0u64, 0u64, 0u64);
        let mut spill_errors = 0u64;
        let mut st = self.state.lock();
        for p in points {
            attempted += 1;
            let spilling = st.spill.as_ref().is_some_and(|s| s.pending() > 0);
            let len = st.mem.len();
            if !spilling && (len < self.max || (connected && len < self.hard)) {
                st.mem.push_back(p);
                queued += 1;
            } else if let Some(spill) = st.spill.as_mut() {
                match spill.append(&p) {
                    Ok(()) => spilled += 1,
                    Err(e) => {
                        dropped += 1;
                        if matches!(e, SpillError::Io { .. }) {
                            spill_errors += 1;
                        }
                        self.drop_point(&mut st, &p, &e.to_string(), dropped);
                    }
                }
            } else if len < self.hard {
                st.mem.push_back(p);
                queued += 1;
            } else {
                dropped += 1;
                self.drop_point(&mut st, &p, "queue full and no spill file", dropped);
            }
        }
        let len = st.mem.len() as u64;
        drop(st);
        self.stats.max_queue_len.fetch_max(len, Ordering::Relaxed);
        if !connected {
            self.stats
                .queued_until_connected
                .fetch_add(queued + spilled, Ordering::Relaxed);
        }
        self.stats.attempted.fetch_add(attempted, Ordering::Relaxed);
        if spilled > 0 {
            self.stats.spilled.fetch_add(spilled, Ordering::Relaxed);
        }
        if spill_errors > 0 {
            self.stats.spill_errors.fetch_add(spill_errors, Ordering::Relaxed);
        }
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if queued + spilled > 0 {
            self.ready.notify_one();
        }
        dropped
    }

    /// Logs a drop, once a second at most; `batch_drops` counts this batch's drops so far (not yet
    /// added to the counter).
    fn drop_point(&self, st: &mut State, p: &Point, why: &str, batch_drops: u64) {
        let n = self.stats.dropped.load(Ordering::Relaxed) + batch_drops;
        let now = Instant::now();
        if st
            .last_drop_log
            .is_none_or(|t| now.duration_since(t).as_secs() >= 1)
        {
            st.last_drop_log = Some(now);
            tracing::warn!(destination = %self.name, metric = %p.name, dropped_total = n, "dropping point: {why}");
        }
    }

    /// Takes up to `n` points, oldest first: memory, then the spill file.
    pub fn take(&self, n: usize, out: &mut Vec<Point>) {
        out.clear();
        let mut st = self.state.lock();
        let k = n.min(st.mem.len());
        out.extend(st.mem.drain(..k));
        if out.len() < n
            && let Some(spill) = st.spill.as_mut()
            && spill.pending() > 0
        {
            match spill.read_back(n - out.len(), out) {
                Ok(0) => {}
                Ok(bad) => {
                    tracing::warn!(destination = %self.name, bad, "unreadable lines in the spill file skipped")
                }
                Err(e) => {
                    tracing::error!(destination = %self.name, error = %e, "reading the spill file failed")
                }
            }
        }
    }

    /// Puts a batch that could not be sent back at the front, in its order.
    pub fn requeue_front(&self, batch: Vec<Point>) {
        let mut st = self.state.lock();
        for p in batch.into_iter().rev() {
            st.mem.push_front(p);
        }
    }

    /// Moves what is still in memory into the front of the spill file, so the next start replays
    /// it before the rest; returns how many points were saved (0 without a spill file).
    pub fn persist(&self) -> usize {
        let mut st = self.state.lock();
        let mem: Vec<Point> = st.mem.drain(..).collect();
        let Some(spill) = st.spill.as_mut() else {
            st.mem.extend(mem);
            return 0;
        };
        match spill.prepend(&mem) {
            Ok(()) => mem.len(),
            Err(e) => {
                tracing::error!(destination = %self.name, error = %e, points = mem.len(), "could not save the queue to the spill file");
                st.mem.extend(mem);
                0
            }
        }
    }

    /// Points in memory.
    pub fn len(&self) -> usize {
        self.state.lock().mem.len()
    }

    /// True when nothing waits in memory or in the spill file.
    pub fn is_empty(&self) -> bool {
        let st = self.state.lock();
        st.mem.is_empty() && st.spill.as_ref().is_none_or(|s| s.pending() == 0)
    }

    /// Points waiting in the spill file.
    pub fn spilled_pending(&self) -> u64 {
        self.state.lock().spill.as_ref().map_or(0, |s| s.pending())
    }

    /// True while this queue wants the receivers to stop: full and its destination up, so reading
    /// more would only grow memory (a down destination spills instead).
    pub fn should_pause(&self) -> bool {
        let len = self.state.lock().mem.len();
        len >= self.max && self.stats.connected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(i: usize) -> Point {
        Point {
            name: format!("m.{i}"),
            value: i as f64,
            timestamp: 1000.0 + i as f64,
        }
    }

    fn drain(q: &DestQueue) -> Vec<Point> {
        let (mut all, mut b) = (vec![], vec![]);
        loop {
            q.take(7, &mut b);
            if b.is_empty() {
                return all;
            }
            all.append(&mut b);
        }
    }

    #[test]
    fn down_destination_spills_past_memory_and_replays_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(&dir.path().join("q.spill"), 1 << 20).unwrap();
        let q = DestQueue::new("d".into(), 10, Some(spill));
        for i in 0..50 {
            assert!(q.push(p(i)));
        }
        assert_eq!(q.len(), 10);
        assert_eq!(q.spilled_pending(), 40);
        assert!(!q.should_pause(), "a down destination spills, it does not pause");
        // Room in memory again, but the spill is not empty: still appended behind it.
        let mut b = vec![];
        q.take(5, &mut b);
        assert!(q.push(p(50)));
        q.requeue_front(b);
        assert_eq!(drain(&q), (0..51).map(p).collect::<Vec<_>>());
        assert!(q.is_empty());
        assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn live_destination_pauses_then_spills_then_drops_at_the_spill_limit() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::open(&dir.path().join("q.spill"), 200).unwrap();
        let q = DestQueue::new("d".into(), 8, Some(spill));
        q.stats.connected.store(true, Ordering::Relaxed);
        for i in 0..8 {
            q.push(p(i));
        }
        assert!(q.should_pause());
        q.push(p(8));
        q.push(p(9));
        assert_eq!(q.len(), 10, "up to 1.25 × MAX in memory");
        let mut i = 10;
        while q.stats.dropped.load(Ordering::Relaxed) == 0 {
            q.push(p(i));
            i += 1;
        }
        let spilled = q.stats.spilled.load(Ordering::Relaxed) as usize;
        assert!(spilled > 0);
        assert_eq!(q.stats.attempted.load(Ordering::Relaxed) as usize, i);
        let got = drain(&q);
        assert_eq!(got, (0..10 + spilled).map(p).collect::<Vec<_>>());
    }

    #[test]
    fn without_spill_drops_beyond_the_hard_limit() {
        let q = DestQueue::new("d".into(), 4, None);
        for i in 0..10 {
            q.push(p(i));
        }
        assert_eq!(q.len(), 5);
        assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 5);
        assert!(!q.should_pause(), "a dead destination must not stall the others");
        q.stats.connected.store(true, Ordering::Relaxed);
        assert!(q.should_pause());
    }
}
