//! The writer pool: threads that take metrics from the cache and persist them.
//!
//! Whisper IO is blocking file IO, so writers are plain threads, never async tasks. Each writer
//! publishes what it is doing, on which metric and since when, so a stuck writer is visible
//! (`/admin/writers`, SIGQUIT) instead of silently holding up the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cache::Cache;
use crate::persist::{Outcome, Persister};
use crate::stats::Stats;
use crate::throttle::TokenBucket;

/// What one writer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// Waiting for work.
    Idle,
    /// Waiting for MAX_UPDATES_PER_SECOND.
    Throttled,
    /// Inside a persist call.
    Writing,
    /// Backing off after an error.
    BackingOff,
    /// Finished.
    Stopped,
}

/// A writer's state, the metric it works on and when it started it.
#[derive(Debug, Clone)]
pub struct WriterSnapshot {
    /// Writer number.
    pub id: usize,
    /// What it is doing.
    pub state: WriterState,
    /// The metric, while writing.
    pub metric: Option<String>,
    /// How long it has been in this state.
    pub for_how_long: Duration,
}

struct Status {
    state: WriterState,
    metric: Option<Arc<str>>,
    since: Instant,
}

struct Shared {
    cache: Arc<Cache>,
    persister: Arc<dyn Persister>,
    updates: TokenBucket,
    stop: AtomicBool,
    /// Set by flush and shutdown: throttles are lifted until the cache is empty.
    unthrottled: AtomicBool,
    status: Vec<Mutex<Status>>,
}

/// Running writers; dropping the pool without [`WriterPool::shutdown`] detaches them.
pub struct WriterPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl WriterPool {
    /// Starts `n` writers draining `cache` into `persister`, at most `max_updates_per_second`
    /// update_many calls per second (`None` = unlimited).
    pub fn start(
        cache: Arc<Cache>,
        persister: Arc<dyn Persister>,
        n: usize,
        max_updates_per_second: Option<f64>,
    ) -> std::io::Result<Self> {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            cache,
            persister,
            updates: TokenBucket::new(max_updates_per_second, Duration::from_secs(1)),
            stop: AtomicBool::new(false),
            unthrottled: AtomicBool::new(false),
            status: (0..n)
                .map(|_| {
                    Mutex::new(Status {
                        state: WriterState::Idle,
                        metric: None,
                        since: Instant::now(),
                    })
                })
                .collect(),
        });
        let mut handles = Vec::with_capacity(n);
        for id in 0..n {
            let s = shared.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("writer-{id}"))
                    .spawn(move || run(&s, id))?,
            );
        }
        Ok(WriterPool { shared, handles })
    }

    /// Each writer's state: `/admin/writers`.
    pub fn snapshot(&self) -> Vec<WriterSnapshot> {
        self.shared
            .status
            .iter()
            .enumerate()
            .map(|(id, s)| {
                let s = s.lock();
                WriterSnapshot {
                    id,
                    state: s.state,
                    metric: s.metric.as_ref().map(|m| m.to_string()),
                    for_how_long: s.since.elapsed(),
                }
            })
            .collect()
    }

    /// Lifts the throttles until the cache is empty: `POST /admin/flush`.
    pub fn flush(&self) {
        self.shared.unthrottled.store(true, Ordering::SeqCst);
    }

    /// Writes until the cache is empty or `deadline` passes, then stops the writers. Returns whether
    /// the cache was emptied; whatever is left is the caller's to dump.
    pub fn shutdown(self, deadline: Duration) -> bool {
        self.shared.unthrottled.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while !self.shared.cache.is_empty() && start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            let _ = h.join();
        }
        self.shared.cache.is_empty()
    }
}

fn set(s: &Shared, id: usize, state: WriterState, metric: Option<Arc<str>>) {
    let mut st = s.status[id].lock();
    if st.state != state || st.metric.as_deref() != metric.as_deref() {
        *st = Status {
            state,
            metric,
            since: Instant::now(),
        };
    }
}

fn run(s: &Shared, id: usize) {
    let mut deferred_in_a_row = 0usize;
    while !s.stop.load(Ordering::Relaxed) {
        let Some(job) = s.cache.take_due(s.unthrottled.load(Ordering::Relaxed)) else {
            if s.cache.is_empty() {
                s.unthrottled.store(false, Ordering::Relaxed);
            }
            set(s, id, WriterState::Idle, None);
            s.cache.idle_wait(Duration::from_millis(100));
            continue;
        };
        let throttled = !s.unthrottled.load(Ordering::Relaxed);
        if throttled {
            while let Err(wait) = s.updates.try_take() {
                set(s, id, WriterState::Throttled, None);
                std::thread::sleep(wait.min(Duration::from_millis(50)));
                if s.unthrottled.load(Ordering::Relaxed) || s.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        set(s, id, WriterState::Writing, Some(job.metric.clone()));
        let started = Instant::now();
        let n = job.points.len() as u64;
        match s.persister.persist(&job.metric, &job.points, throttled) {
            Ok(Outcome::Written { created }) => {
                let st = &s.cache.stats;
                Stats::add(&st.update_micros, started.elapsed().as_micros() as u64);
                Stats::add(&st.update_operations, 1);
                Stats::add(&st.committed_points, n);
                if created {
                    Stats::add(&st.creates, 1);
                }
                s.cache.confirm(job);
                deferred_in_a_row = 0;
            }
            Ok(Outcome::CreateDeferred) => {
                Stats::add(&s.cache.stats.deferred_creates, 1);
                s.cache.requeue(job);
                deferred_in_a_row += 1;
                // Every ready metric waits for a create: don't spin over them.
                if deferred_in_a_row >= 64 {
                    set(s, id, WriterState::Throttled, None);
                    std::thread::sleep(Duration::from_millis(100));
                    deferred_in_a_row = 0;
                }
            }
            Err(e) if e.is_retryable() => {
                Stats::add(&s.cache.stats.errors, 1);
                tracing::warn!(metric = %job.metric, points = n, error = %e, "write failed; points kept for retry");
                s.cache.requeue(job);
                set(s, id, WriterState::BackingOff, None);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                let st = &s.cache.stats;
                Stats::add(&st.errors, 1);
                Stats::add(&st.dropped_points, n);
                if matches!(e, crate::persist::PersistError::InvalidName(_)) {
                    Stats::add(&st.invalid_names, 1);
                }
                tracing::error!(metric = %job.metric, points = n, error = %e, "write impossible; points dropped");
                s.cache.confirm(job);
            }
        }
    }
    set(s, id, WriterState::Stopped, None);
}
