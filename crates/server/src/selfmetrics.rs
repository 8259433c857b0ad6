//! carbon's self-metrics, `carbon.agents.<host>[-<instance>].*`, computed per interval exactly as
//! carbon names them, plus the same figures in Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use carbide_cache::{Cache, Stats};

use crate::ingest::Ingest;

/// The agent name carbon uses: the host name with dots made underscores, then `-instance`.
pub fn agent_name(instance: Option<&str>) -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .replace('.', "_");
    match instance {
        Some(i) => format!("{host}-{i}"),
        None => host,
    }
}

/// CPU seconds (user + system) this process has used.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the state field.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Remembers the previous totals so each report carries per-interval figures, as carbon's do.
pub struct Reporter {
    prefix: String,
    last: [u64; 12],
    last_cpu: (f64, Instant),
}

impl Reporter {
    /// A reporter writing under `<metric_prefix>.agents.<agent>.`.
    pub fn new(metric_prefix: &str, agent: &str) -> Self {
        Reporter {
            prefix: format!("{metric_prefix}.agents.{agent}."),
            last: [0; 12],
            last_cpu: (cpu_seconds(), Instant::now()),
        }
    }

    fn totals(cache: &Cache, ingest: &Ingest) -> [u64; 12] {
        let s = &cache.stats;
        [
            Stats::get(&s.received),
            Stats::get(&s.committed_points),
            Stats::get(&s.update_operations),
            Stats::get(&s.update_micros),
            Stats::get(&s.creates),
            Stats::get(&s.deferred_creates),
            Stats::get(&s.errors),
            Stats::get(&s.queries),
            load(&ingest.stats.blacklist_matches),
            load(&ingest.stats.whitelist_rejects),
            load(&ingest.stats.overflow),
            load(&ingest.stats.bad_lines),
        ]
    }

    /// The datapoints for this interval, named as carbon names them.
    pub fn collect(&mut self, cache: &Cache, ingest: &Ingest) -> Vec<(String, f64)> {
        let now = Self::totals(cache, ingest);
        let d: Vec<f64> = now
            .iter()
            .zip(self.last.iter())
            .map(|(a, b)| a.saturating_sub(*b) as f64)
            .collect();
        self.last = now;
        let (cpu0, t0) = self.last_cpu;
        let cpu = cpu_seconds();
        let wall = t0.elapsed().as_secs_f64().max(1e-9);
        self.last_cpu = (cpu, Instant::now());
        let updates = d[2];
        let mut out = vec![
            ("metricsReceived", d[0]),
            ("committedPoints", d[1]),
            ("updateOperations", updates),
            ("creates", d[4]),
            ("droppedCreates", d[5]),
            ("errors", d[6]),
            ("cache.queries", d[7]),
            ("blacklistMatches", d[8]),
            ("whitelistRejects", d[9]),
            ("cache.overflow", d[10]),
            ("cache.size", cache.len() as f64),
            ("cache.queues", cache.queues() as f64),
            ("activeConnections", load(&ingest.stats.active_connections) as f64),
            ("cpuUsage", (cpu - cpu0) / wall),
            ("memUsage", rss_bytes() as f64),
        ];
        if updates > 0.0 {
            out.push(("pointsPerUpdate", d[1] / updates));
            out.push(("avgUpdateTime", d[3] / 1e6 / updates));
        }
        out.into_iter()
            .map(|(k, v)| (format!("{}{k}", self.prefix), v))
            .collect()
    }
}

/// Every counter and gauge in Prometheus text exposition format, for `/metrics`.
pub fn prometheus(cache: &Cache, ingest: &Ingest) -> String {
    let s = &cache.stats;
    let i = &ingest.stats;
    let counters: [(&str, &str, u64); 15] = [
        (
            "carbide_points_received_total",
            "Points accepted into the cache.",
            Stats::get(&s.received),
        ),
        (
            "carbide_points_committed_total",
            "Points written to whisper.",
            Stats::get(&s.committed_points),
        ),
        (
            "carbide_update_operations_total",
            "update_many calls.",
            Stats::get(&s.update_operations),
        ),
        (
            "carbide_update_seconds_total",
            "Seconds spent in update_many.",
            Stats::get(&s.update_micros) / 1_000_000,
        ),
        (
            "carbide_creates_total",
            "Whisper files created.",
            Stats::get(&s.creates),
        ),
        (
            "carbide_creates_deferred_total",
            "Creates postponed by MAX_CREATES_PER_MINUTE.",
            Stats::get(&s.deferred_creates),
        ),
        (
            "carbide_write_errors_total",
            "Failed writes.",
            Stats::get(&s.errors),
        ),
        (
            "carbide_points_dropped_total",
            "Points dropped after a write that cannot succeed.",
            Stats::get(&s.dropped_points),
        ),
        (
            "carbide_invalid_names_total",
            "Metric names refused before touching the filesystem.",
            Stats::get(&s.invalid_names),
        ),
        (
            "carbide_cache_queries_total",
            "Carbonlink cache queries.",
            Stats::get(&s.queries),
        ),
        (
            "carbide_cache_overflow_total",
            "Points refused by a full cache.",
            Stats::get(&s.overflow),
        ),
        (
            "carbide_bad_lines_total",
            "Unparseable lines and pickle entries.",
            load(&i.bad_lines),
        ),
        (
            "carbide_blacklist_matches_total",
            "Points dropped by the blacklist.",
            load(&i.blacklist_matches),
        ),
        (
            "carbide_whitelist_rejects_total",
            "Points dropped by the whitelist.",
            load(&i.whitelist_rejects),
        ),
        (
            "carbide_refused_connections_total",
            "Connections refused or dropped.",
            load(&i.refused_connections),
        ),
    ];
    let gauges: [(&str, &str, f64); 5] = [
        (
            "carbide_cache_points",
            "Points held in the cache.",
            cache.len() as f64,
        ),
        (
            "carbide_cache_queues",
            "Metrics with points in the cache.",
            cache.queues() as f64,
        ),
        (
            "carbide_active_connections",
            "Open receiver connections.",
            load(&i.active_connections) as f64,
        ),
        (
            "carbide_resident_memory_bytes",
            "Resident memory.",
            rss_bytes() as f64,
        ),
        ("carbide_cpu_seconds_total", "CPU seconds used.", cpu_seconds()),
    ];
    let mut out = crate::prometheus::Exposition::new();
    for (name, help, v) in counters {
        out.counter(name, help, v as f64);
    }
    for (name, help, v) in gauges {
        out.gauge(name, help, v);
    }
    out.finish()
}
