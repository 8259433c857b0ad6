//! `carbide serve`: a whole single-node Graphite in one process, on embedded defaults with no
//! config: the cache role (line 2003, pickle 2004, carbonlink 7002, admin 7080), graphite-web's
//! HTTP API (8080) and a StatsD server (8125 UDP and TCP, console 8126). Each port has a flag;
//! port 0 turns that listener off.
//!
//! The three share the cache in-process:
//! - The web API's storage reads the cache's points as [`HotPoints`], merged into every whisper
//!   fetch the way graphite-web merges carbonlink's answer: a point is in /render the moment it is
//!   received, and stays there while a writer persists it (the cache confirms only after the write).
//! - The web index learns a metric when its writer creates the whisper file (`on_create`), not when
//!   its first point reaches the cache. That is graphite-web's own rule — a metric exists when its
//!   file does, so find never lists a name render cannot read, and a name no schema can store or
//!   that is refused never shows — and in `serve` it costs nothing: creates are not rate-limited,
//!   so the file follows the first point within milliseconds.
//! - StatsD flushes go through the cache's ingest path (lists, tags, cache) as points, with no TCP
//!   loopback.
//! - With `--aggregation-rules` (and/or `--rewrite-rules`) the process is carbon-aggregator-cache:
//!   every received point — line, pickle, UDP and StatsD's flushes alike, since carbon would have
//!   received those over TCP — runs rewrite `[pre]`, the aggregator and rewrite `[post]` before
//!   the cache ([`AggregateStage`]); aggregates and self-metrics are stored directly. FORWARD_ALL
//!   (`--forward-all`, default true as carbon's) decides whether raw points are stored too.
//!
//! Heavy queries must not starve ingestion: the web API runs on its own tokio runtime whose
//! threads run at a lower CPU priority (nice +10), renders run on at most `--web-threads` threads
//! at once (the rest wait their turn), and each request is bounded by `--max-series` and
//! `--max-points`.
//!
//! SIGTERM or SIGINT stops StatsD first, with a final flush into the cache, then the web API, then
//! the cache writes what it holds and dumps the rest for the next start, as `carbide cache` does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use carbide_cache::persist::WhisperSettings;
use carbide_cache::{Cache, CacheConfig};
use carbide_config::{AggregationSchemas, parse_storage_schemas};
use carbide_relay::pipeline::{Pipeline, PipelineSettings, RulePaths};
use carbide_server::cache_role::{ConfigPolicy, RoleOptions};
use carbide_server::ingest::{Ingest, Lists, Stage};
use carbide_server::listeners::ReceiverLimits;
use carbide_server::{CacheRole, selfmetrics};
use carbide_statsd_server::carbide_statsd::{Flush, FlushTimings};
use carbide_statsd_server::server::now_ms;
use carbide_statsd_server::{FlushSink, PointSink, ServerOptions, StatsdServer};
use carbide_storage::{HotPoints, Storage};
use carbide_web::WebState;

use crate::roles::{finish, runtime, wait_for_stop};

/// `carbide serve`: a whole single-node Graphite on embedded defaults, no config needed.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the whisper tree lives.
    #[arg(long, default_value = "carbide-data")]
    data_dir: PathBuf,
    /// Address every listener binds (the admin ports excepted); loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Plaintext protocol port (TCP); 0 turns it off.
    #[arg(long, default_value_t = 2003)]
    line_port: u16,
    /// Plaintext protocol port (UDP); off unless given.
    #[arg(long)]
    udp_port: Option<u16>,
    /// carbon's protobuf receiver port (carbon.Payload frames); off unless given, as in carbon.
    #[arg(long)]
    protobuf_port: Option<u16>,
    /// go-carbon's HTTP receiver port (POST lines, pickle or protobuf); off unless given.
    #[arg(long)]
    http_port: Option<u16>,
    /// Pickle protocol port; 0 turns it off.
    #[arg(long, default_value_t = 2004)]
    pickle_port: u16,
    /// Carbonlink (cache query) port, for graphite-webs elsewhere; 0 turns it off.
    #[arg(long, default_value_t = 7002)]
    carbonlink_port: u16,
    /// Admin HTTP port (/admin/*, /metrics), always on loopback; 0 turns it off.
    #[arg(long, default_value_t = 7080)]
    admin_port: u16,
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Whisper update calls per second, all writers together (carbon's MAX_UPDATES_PER_SECOND:
    /// spares a slow disk, the cache holds the rest); unlimited unless given.
    #[arg(long)]
    max_updates_per_second: Option<f64>,
    /// Seconds between self-metrics (carbon.agents.*); 0 turns them off.
    #[arg(long, default_value_t = 60)]
    metric_interval: u64,
    /// Seconds shutdown may spend writing the cache before dumping the rest for the next start.
    #[arg(long, default_value_t = 60)]
    shutdown_timeout: u64,
    /// graphite-web HTTP API port (/render, /metrics/find, …); 0 turns it off.
    #[arg(long, default_value_t = 8080)]
    web_port: u16,
    /// Renders computed at once; more wait their turn, so queries cannot take every core.
    #[arg(long, default_value_t = 2)]
    web_threads: usize,
    /// Most series one path expression may match before the request is refused (400).
    #[arg(long, default_value_t = 10_000)]
    max_series: usize,
    /// Most points one request may fetch before it is refused (400); lower than `carbide web`'s,
    /// since the cache shares the memory.
    #[arg(long, default_value_t = 10_000_000)]
    max_points: usize,
    /// Default time zone of from/until and csv output (graphite-web's TIME_ZONE).
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// StatsD port, UDP and TCP; 0 turns StatsD off.
    #[arg(long, default_value_t = 8125)]
    statsd_port: u16,
    /// StatsD management console port, always on loopback; 0 turns it off.
    #[arg(long, default_value_t = 8126)]
    statsd_admin_port: u16,
    /// Milliseconds between StatsD flushes into the cache (etsy's flushInterval).
    #[arg(long, default_value_t = 10_000)]
    statsd_flush_interval: u64,
    /// carbon's aggregation-rules.conf: received points (line, pickle, UDP, and StatsD's flushes,
    /// which carbon would receive over TCP) are aggregated before the cache, as
    /// carbon-aggregator-cache does. Re-read when it changes and on SIGHUP.
    #[arg(long)]
    aggregation_rules: Option<PathBuf>,
    /// carbon's rewrite-rules.conf: `[pre]` renames received points before aggregation, `[post]`
    /// the ones passed on to the cache (aggregates are not rewritten). Re-read like the rules.
    #[arg(long)]
    rewrite_rules: Option<PathBuf>,
    /// FORWARD_ALL, as carbon (default true): received points are stored too, under their
    /// rewritten names; `--forward-all false` stores only the aggregates.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    forward_all: bool,
    /// MAX_AGGREGATION_INTERVALS: how many past intervals a late point can still update.
    #[arg(long, default_value_t = 5)]
    max_aggregation_intervals: u64,
}

/// The schemas `carbide serve` uses: its own metrics at a minute for 90 days, everything else at
/// 10 s for 6 hours, a minute for a week, 10 minutes for 5 years.
const SERVE_SCHEMAS: &str = "\
[carbon]
pattern = ^carbon\\.
retentions = 60:90d

[default]
pattern = .*
retentions = 10s:6h,1m:7d,10m:5y
";

/// A final StatsD flush is not made within this many ms of a periodic one: it waits for that one.
const FLUSH_GUARD_MS: i64 = 300;
/// Seconds per point of StatsD's metrics under [`SERVE_SCHEMAS`] (the `[default]` schema).
const STATSD_SLOT: i64 = 10;
/// How long shutdown waits for in-flight web requests.
const WEB_STOP_TIMEOUT: Duration = Duration::from_secs(5);

fn serve_options(args: &ServeArgs) -> Result<RoleOptions> {
    let (schemas, _) = parse_storage_schemas("<embedded storage-schemas.conf>", SERVE_SCHEMAS)?;
    let policy = ConfigPolicy {
        schemas,
        aggregation: AggregationSchemas::builtin(),
        tag_hash_filenames: true,
    };
    let at = |port: u16| (port != 0).then(|| SocketAddr::new(args.bind, port));
    Ok(RoleOptions {
        data_dir: args.data_dir.clone(),
        line_tcp: at(args.line_port),
        line_udp: args.udp_port.and_then(at),
        pickle: at(args.pickle_port),
        protobuf: args.protobuf_port.and_then(at),
        http: args.http_port.and_then(at),
        carbonlink: at(args.carbonlink_port),
        admin: (args.admin_port != 0).then(|| SocketAddr::from(([127, 0, 0, 1], args.admin_port))),
        cache: CacheConfig::default(),
        writers: args.writers,
        max_updates_per_second: args.max_updates_per_second,
        whisper: WhisperSettings {
            sparse: true,
            ..WhisperSettings::default()
        },
        policy: Arc::new(policy),
        lists: Lists::default(),
        metric_prefix: "carbon".into(),
        metric_interval: (args.metric_interval > 0).then(|| Duration::from_secs(args.metric_interval)),
        agent: selfmetrics::agent_name(None),
        shutdown_deadline: Duration::from_secs(args.shutdown_timeout),
        dump_path: args.data_dir.join(".carbide-cache.dump"),
        limits: ReceiverLimits::default(),
        on_create: None,
        stage: None,
        // The web part in this process indexes tags itself; no graphite-web to post to.
        tagdb: None,
    })
}

/// The cache as the web API's source of points not yet on disk; empty until the cache has started.
#[derive(Default)]
struct CacheHot(OnceLock<Arc<Cache>>);

impl HotPoints for CacheHot {
    fn points(&self, name: &str) -> Vec<(i64, f64)> {
        self.0.get().map(|c| c.get(name)).unwrap_or_default()
    }
}

/// Lowers the calling thread's CPU priority by 10 nice steps (Linux: per thread), so renders
/// yield to the receivers and writers when the cores are busy.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), (current + 10).min(19)) {
        tracing::debug!(error = %e, "cannot lower the web thread's priority");
    }
}

/// The web API, built before the cache starts so that no file created meanwhile is missed.
struct Web {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
}

fn prepare_web(args: &ServeArgs, hot: Arc<CacheHot>) -> Result<Option<Web>> {
    if args.web_port == 0 {
        return Ok(None);
    }
    let storage = Storage::open(&args.data_dir)
        .with_context(|| format!("cannot index {}", args.data_dir.display()))?
        .with_hot_points(hot);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(args.web_threads.max(1))
        .thread_name("carbide-web")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()?;
    let addr = SocketAddr::new(args.bind, args.web_port);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("cannot listen for the web API on {addr}"))?;
    let state = Arc::new(WebState {
        storage: Arc::new(storage),
        time_zone: args.tz.clone(),
        limits: carbide_render::Limits {
            max_series: args.max_series,
            max_points: args.max_points,
            ..carbide_render::Limits::default()
        },
        cluster: None,
    });
    Ok(Some(Web {
        runtime,
        listener,
        state,
    }))
}

/// The aggregator in front of the cache: carbon-aggregator-cache's `rewrite:pre, aggregate,
/// rewrite:post, write`. Received points go in; what FORWARD_ALL passes on is stored at once,
/// aggregates by the pipeline's clock (see [`start_aggregator_tasks`]) and, at shutdown, by
/// [`Stage::finish`].
struct AggregateStage(Arc<Pipeline>);

impl Stage for AggregateStage {
    fn point(&self, ingest: &Ingest, name: &str, value: f64, timestamp: f64) -> bool {
        match self.0.input(name, value, timestamp) {
            Some(n) => ingest.store(&n, value, timestamp),
            None => true,
        }
    }

    fn finish(&self, ingest: &Ingest) {
        let mut stored = 0usize;
        self.0.flush(&mut |name, value, ts| {
            stored += usize::from(ingest.store(name, value, ts));
        });
        if stored > 0 {
            tracing::info!(
                points = stored,
                "aggregator: pending intervals computed into the cache at shutdown"
            );
        }
    }
}

/// Reads `--aggregation-rules` and `--rewrite-rules`; `None` when neither is given. A named file
/// must exist (carbon's aggregator refuses to start without its rules file).
fn open_pipeline(args: &ServeArgs) -> Result<Option<Arc<Pipeline>>> {
    if args.aggregation_rules.is_none() && args.rewrite_rules.is_none() {
        return Ok(None);
    }
    for p in [&args.aggregation_rules, &args.rewrite_rules]
        .into_iter()
        .flatten()
    {
        anyhow::ensure!(p.exists(), "{}: does not exist", p.display());
    }
    let paths = RulePaths {
        aggregation: args.aggregation_rules.clone(),
        rewrite: args.rewrite_rules.clone(),
    };
    let pipeline = Pipeline::open(
        paths,
        PipelineSettings {
            forward_all: args.forward_all,
            max_intervals: args.max_aggregation_intervals,
            write_back_frequency: None,
        },
    )?;
    if !args.forward_all {
        tracing::info!("--forward-all false: only aggregates are stored");
    }
    Ok(Some(Arc::new(pipeline)))
}

/// Starts the aggregator's clock (aggregates into the cache, rule files re-read on change) and
/// its SIGHUP handler (rule files re-read now); abort the tasks to stop them.
fn start_aggregator_tasks(
    pipeline: &Arc<Pipeline>,
    ingest: &Arc<Ingest>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (p, i) = (pipeline.clone(), ingest.clone());
    let clock = tokio::spawn(async move {
        p.run_clock(move |name, value, ts| {
            i.store(name, value, ts);
        })
        .await;
    });
    let mut hup = signal(SignalKind::hangup())?;
    let p = pipeline.clone();
    let reload = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match p.reload(true) {
                Ok(_) => tracing::info!("SIGHUP: aggregation and rewrite rules re-read"),
                Err(e) => tracing::error!("SIGHUP: {e}; keeping the previous rules"),
            }
        }
    });
    Ok(vec![clock, reload])
}

/// What the periodic StatsD flushes did, for the final flush's timing.
#[derive(Debug)]
struct FlushTrack {
    /// Periodic flushes delivered so far.
    delivered: AtomicU64,
    /// The timestamp of the last one delivered (`i64::MIN`: none yet).
    last_ts: AtomicI64,
    /// Periodic flushes stamped at or after this second are not delivered: the final flush took
    /// their place.
    closed_from: AtomicI64,
}

fn cache_sink(ingest: Arc<Ingest>) -> impl FlushSink {
    PointSink::new(move |name: &str, value: f64, ts: i64| ingest.point(name, value, ts as f64))
}

fn start_statsd(args: &ServeArgs, ingest: &Arc<Ingest>) -> Result<Option<(StatsdServer, Arc<FlushTrack>)>> {
    if args.statsd_port == 0 {
        return Ok(None);
    }
    let mut o = ServerOptions::default();
    let at = SocketAddr::new(args.bind, args.statsd_port);
    o.udp = Some(at);
    o.tcp = Some(at);
    o.mgmt = (args.statsd_admin_port != 0)
        .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.statsd_admin_port));
    o.config.flush_interval = args.statsd_flush_interval;
    o.raw
        .insert("flushInterval".into(), args.statsd_flush_interval.into());
    o.config.validate().context("--statsd-flush-interval")?;
    let track = Arc::new(FlushTrack {
        delivered: AtomicU64::new(0),
        last_ts: AtomicI64::new(i64::MIN),
        closed_from: AtomicI64::new(i64::MAX),
    });
    let mut points = cache_sink(ingest.clone());
    let t = track.clone();
    let sink = move |flush: &Flush| -> std::io::Result<()> {
        if flush.timestamp >= t.closed_from.load(Ordering::SeqCst) {
            tracing::warn!(
                lines = flush.lines.len(),
                "statsd: a flush after the final one is not stored"
            );
            return Ok(());
        }
        let r = points.deliver(flush);
        t.last_ts.store(flush.timestamp, Ordering::SeqCst);
        t.delivered.fetch_add(1, Ordering::SeqCst);
        r
    };
    let server = StatsdServer::start(o, Some(Box::new(sink))).context("cannot start StatsD")?;
    tracing::info!(udp = ?server.udp_addr(), tcp = ?server.tcp_addr(), console = ?server.mgmt_addr(), "statsd started, flushing into the cache");
    Ok(Some((server, track)))
}

/// When the next periodic flush is due (ms). statsd's `getFlushTimeout` rounds, so asked late in
/// an interval it names the flush after next; one interval less is then the next one.
fn next_due(server: &StatsdServer, interval_ms: i64) -> i64 {
    let now = now_ms();
    let delay = server.with_engine(|e| e.next_flush_delay_ms(now));
    if delay > interval_ms {
        now + delay - interval_ms
    } else {
        now + delay
    }
}

/// Stops StatsD after one last flush into the cache, so what it counted since the last flush is
/// kept (etsy flushes on exit too, but its sockets are gone by then).
///
/// Whisper keeps one value per slot, so a final flush in the slot the last periodic flush filled
/// would overwrite that flush's counters with a partial interval's. The final flush therefore
/// waits for the next slot when that is the case (at most [`STATSD_SLOT`] seconds; StatsD keeps
/// receiving meanwhile), unless flushes are more frequent than slots anyway. It is never made
/// within [`FLUSH_GUARD_MS`] of a periodic flush: it waits for that one to be delivered first.
fn stop_statsd(mut server: StatsdServer, track: &FlushTrack, ingest: Arc<Ingest>, interval_ms: i64) {
    let give_up = Instant::now()
        + Duration::from_millis(interval_ms.clamp(0, 60_000).unsigned_abs())
        + Duration::from_secs(2 * STATSD_SLOT.unsigned_abs());
    while Instant::now() < give_up {
        let now = now_ms();
        if next_due(&server, interval_ms) - now < FLUSH_GUARD_MS {
            let seen = track.delivered.load(Ordering::SeqCst);
            let until = Instant::now() + Duration::from_millis(2 * FLUSH_GUARD_MS.unsigned_abs() + 1000);
            while track.delivered.load(Ordering::SeqCst) == seen && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let last = track.last_ts.load(Ordering::SeqCst);
        let now_s = (now + 500).div_euclid(1000);
        if interval_ms >= STATSD_SLOT * 1000
            && last != i64::MIN
            && now_s.div_euclid(STATSD_SLOT) == last.div_euclid(STATSD_SLOT)
        {
            // The first ms whose rounded second is in the next slot.
            let next_slot_ms = (last.div_euclid(STATSD_SLOT) + 1) * STATSD_SLOT * 1000 - 500;
            let wait = (next_slot_ms - now).clamp(0, STATSD_SLOT * 1000) + 5;
            tracing::info!(
                wait_ms = wait,
                "statsd: final flush waits for the next whisper slot"
            );
            std::thread::sleep(Duration::from_millis(wait.unsigned_abs()));
            continue;
        }
        break;
    }
    // Receivers first: what their sockets already hold goes into the engine before the flush.
    server.stop_receiving();
    let at = now_ms();
    track
        .closed_from
        .store((at + 500).div_euclid(1000), Ordering::SeqCst);
    let flush = server.with_engine(|e| e.flush_with(at, FlushTimings::default()));
    if let Err(e) = cache_sink(ingest).deliver(&flush) {
        tracing::error!(error = %e, "statsd: final flush not stored whole");
    }
    tracing::info!(
        lines = flush.lines.len(),
        timestamp = flush.timestamp,
        "statsd: final flush into the cache"
    );
    server.shutdown();
}

async fn run_started(
    args: &ServeArgs,
    role: CacheRole,
    web: Option<WebTask>,
    pipeline: Option<Arc<Pipeline>>,
) -> Result<()> {
    let started = match &pipeline {
        Some(p) => start_aggregator_tasks(p, &role.ingest),
        None => Ok(Vec::new()),
    }
    .and_then(|tasks| match start_statsd(args, &role.ingest) {
        Ok(s) => Ok((s, tasks)),
        Err(e) => {
            tasks.iter().for_each(|t| t.abort());
            Err(e)
        }
    });
    let (statsd, aggregator_tasks) = match started {
        Ok(s) => s,
        Err(e) => {
            if let Some(task) = web {
                task.stop().await;
            }
            role.stop().await?;
            return Err(e);
        }
    };
    let waited = wait_for_stop(&role, None).await;
    tracing::info!("shutting down: statsd, then the web API, then the cache");
    if let Some((server, track)) = statsd {
        let ingest = role.ingest.clone();
        let interval = i64::try_from(args.statsd_flush_interval).unwrap_or(i64::MAX);
        let stopped =
            tokio::task::spawn_blocking(move || stop_statsd(server, &track, ingest, interval)).await;
        if let Err(e) = stopped {
            tracing::error!(error = %e, "statsd: stopping failed");
        }
    }
    if let Some(task) = web {
        task.stop().await;
    }
    // The cache's stop computes what the aggregator still holds (Stage::finish) once the
    // receivers are closed; the clock is not needed for that.
    for t in aggregator_tasks {
        t.abort();
    }
    let report = role.stop().await?;
    tracing::info!(drained = report.drained, dumped = report.dumped, "stopped");
    waited
}

/// The running web server and how to stop it.
struct WebTask {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), carbide_web::WebError>>,
}

impl WebTask {
    /// Stops accepting, waits a bounded time for requests in flight.
    async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(WEB_STOP_TIMEOUT, self.handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "web API failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "web API task failed"),
            Err(_) => tracing::warn!("web API requests still running at shutdown; abandoned"),
        }
    }
}

fn run_inner(args: ServeArgs) -> Result<()> {
    let hot = Arc::new(CacheHot::default());
    let web = prepare_web(&args, hot.clone())?;
    let mut opts = serve_options(&args)?;
    let pipeline = open_pipeline(&args)?;
    opts.stage = pipeline
        .clone()
        .map(|p| Arc::new(AggregateStage(p)) as Arc<dyn Stage>);
    if let Some(w) = &web {
        let storage = w.state.storage.clone();
        // Plain names join the metric index, tagged ones the tag index (seriesByTag).
        opts.on_create = Some(Arc::new(move |name: &str| storage.on_create(name)));
    }
    let rt = runtime()?;
    let (web_rt, web_parts) = match web {
        Some(w) => (Some(w.runtime), Some((w.listener, w.state))),
        None => (None, None),
    };
    let result = rt.block_on(async {
        let role = CacheRole::start(opts).await.context("cannot start the cache")?;
        if hot.0.set(role.cache.clone()).is_err() {
            tracing::warn!("the web API's cache handle was already set");
        }
        let web = match (&web_rt, web_parts) {
            (Some(r), Some((listener, state))) => {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let shutdown = async move {
                    let _ = rx.await;
                };
                let handle = r.spawn(carbide_web::run(listener, state, shutdown));
                tracing::info!(
                    port = args.web_port,
                    "web API started, reading the cache in-process"
                );
                Some(WebTask { stop: tx, handle })
            }
            _ => None,
        };
        run_started(&args, role, web, pipeline).await
    });
    if let Some(r) = web_rt {
        r.shutdown_timeout(Duration::from_secs(1));
    }
    result
}

/// `carbide serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    finish(run_inner(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(storage: &Storage, from: i64, until: i64, now: i64) -> Vec<(i64, f64)> {
        let f = storage.fetch("m", from, until, now).unwrap().unwrap();
        f.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (f.start + i as i64 * f.step, v)))
            .collect()
    }

    /// The web sees a point while it waits in the cache, while a writer holds it, and from the
    /// file once the writer confirmed it: never a gap.
    #[test]
    fn web_reads_pending_then_inflight_then_written_points() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_700_000_000;
        let path = dir.path().join("m.wsp");
        let r = carbide_core::Retention::parse_list("10s:1h").unwrap();
        carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
        carbide_whisper::file::update_many(&path, &[(now - 30, 1.0)], now, false).unwrap();
        let hot = Arc::new(CacheHot::default());
        let storage = Storage::open(dir.path()).unwrap().with_hot_points(hot.clone());
        let cache = Arc::new(Cache::new(CacheConfig::default()));
        cache.insert("m", now - 20, 2.0).unwrap();
        assert_eq!(
            fetch(&storage, now - 60, now, now),
            vec![(now - 30, 1.0)],
            "no cache yet: the file alone"
        );
        assert!(hot.0.set(cache.clone()).is_ok());
        let both = vec![(now - 30, 1.0), (now - 20, 2.0)];
        assert_eq!(fetch(&storage, now - 60, now, now), both, "pending");
        let job = cache.take().unwrap();
        assert_eq!(fetch(&storage, now - 60, now, now), both, "in flight");
        carbide_whisper::file::update_many(&path, &job.points, now, false).unwrap();
        cache.confirm(job);
        assert!(cache.get("m").is_empty());
        assert_eq!(fetch(&storage, now - 60, now, now), both, "written");
    }
}
