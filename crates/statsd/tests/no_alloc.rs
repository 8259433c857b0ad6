//! The "no allocation per line": once a key exists, applying a line to it allocates
//! nothing — not the decode, not the line split, not the parse, not the bucket lookup. A
//! counting global allocator (counting only on the test's own thread) shows it for every type.
//!
//! What does allocate, by design: a key seen for the first time (its name), a set member seen
//! for the first time, a tagged key (its name is rebuilt with the tags), a key the sanitiser
//! rewrites, and a timer's sample vector when it grows (amortised: a handful of reallocations
//! for thousands of samples).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use carbide_statsd::{Config, Statsd};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the only
// addition is a thread-local counter that never allocates (const-initialised `Cell`s).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCS.with(|n| n.get())
}

fn engine() -> Statsd {
    Statsd::new(Config::from_json("{}").unwrap(), 1_700_000_000_000).unwrap()
}

#[test]
fn lines_on_known_keys_allocate_nothing() {
    let mut e = engine();
    // Multi-metric packets of every type (sampled, deltas, several values per key), as a
    // client library batches them; UDP and TCP decoding both.
    let packets: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            format!(
                "api.hits.{i}:1|c\napi.sampled.{i}:3|c|@0.1\nq.depth.{i}:+2|g\nq.level.{i}:7|g\n\
                 users.{i}:alice|s\nusers.{i}:bob|s\nmulti.{i}:1|c:2|c\nbadline{i}\n"
            )
            .into_bytes()
        })
        .collect();
    for p in &packets {
        e.handle_packet(p);
    }
    let rounds = 50;
    let n = allocations(|| {
        for _ in 0..rounds {
            for p in &packets {
                e.handle_packet(p);
                e.handle_tcp_packet(p);
            }
        }
    });
    assert_eq!(
        n,
        0,
        "{n} allocations for {} known-key lines",
        rounds * 2 * 100 * 8
    );
    // They were applied: 1 + 2 × 50 rounds of `api.hits.7:1|c`.
    let hits = e.counters().find(|(k, _)| *k == "api.hits.7").map(|(_, v)| v);
    assert_eq!(hits, Some(101.0));
    let flush = e.flush(1_700_000_010_000);
    assert_eq!(flush.value("stats_counts.api.sampled.3").as_deref(), Some("3030"));
    assert_eq!(flush.value("stats_counts.multi.3").as_deref(), Some("303"));
    assert_eq!(flush.value("stats.sets.users.3.count").as_deref(), Some("2"));
    assert_eq!(flush.value("stats.gauges.q.depth.3").as_deref(), Some("202"));
    assert_eq!(
        flush.value("stats_counts.statsd.bad_lines_seen").as_deref(),
        Some("10100")
    );

    // Timers: only the sample vector's growth, amortised.
    let timing: Vec<u8> = b"api.time:12|ms\napi.time:7|ms|@0.5\n".to_vec();
    e.handle_packet(&timing);
    let n = allocations(|| {
        for _ in 0..5_000 {
            e.handle_packet(&timing);
        }
    });
    assert!(n <= 16, "{n} allocations for 10 000 timer samples");

    // The control: a new key does allocate, so the counter counts.
    let n = allocations(|| e.handle_packet(b"brand.new.key:1|c"));
    assert!(n > 0, "the counting allocator saw nothing");
}
