//! The relay and aggregator roles wired together: receivers → [`Sink`] → router → destination
//! queues → senders, plus self-metrics and an orderly shutdown.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use carbide_config::CarbonSettings;
use carbide_routing::NodeId;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::listen::{ReceiverLimits, Wire, run_tcp};
use crate::lists::{Filtered, ListFilter};
use crate::pipeline::Pipeline;
use crate::queue::{DestQueue, Point};
use crate::router::Router;
use crate::sender::{SenderConfig, WireFormat};
use crate::spill::Spill;
use crate::{Incoming, RelayError, Sink, now_f64};

/// Options not in carbon.conf (or overriding it).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where spill files go; `None` turns spilling off.
    pub spool_dir: Option<PathBuf>,
    /// Largest a destination's spill file may grow.
    pub spill_max_bytes: u64,
    /// A write blocked this long marks its destination as stalled (down).
    pub stall_timeout: Duration,
    /// `carbon.relays` or `carbon.aggregator`: where self-metrics go under CARBON_METRIC_PREFIX.
    pub metric_group: &'static str,
    /// The host part of self-metric names (hostname with dots as `_`, `-instance` appended).
    pub metric_host: String,
    /// The whitelist and blacklist applied to received points (USE_WHITELIST); the caller keeps
    /// a handle to swap them on reload. `None` lets everything through.
    pub lists: Option<Arc<ListFilter>>,
}

/// Per-destination batches, routes and ring scratch, kept per thread between batches.
struct Scratch {
    per: Vec<Vec<Point>>,
    out: Vec<usize>,
    ring: Vec<NodeId>,
}

/// The destination queues and the router in front of them.
pub struct Outputs {
    /// Swapped whole on reload; senders of a batch keep the router they started with.
    router: RwLock<Arc<Router>>,
    /// One queue per DESTINATIONS entry, same order.
    pub queues: Vec<Arc<DestQueue>>,
    /// Points no destination took (the rules matched none).
    pub unrouted: AtomicU64,
}

impl Outputs {
    /// Routes one point and queues it on each of its destinations.
    pub fn send(&self, name: &str, value: f64, timestamp: f64) -> bool {
        self.send_batch(&[Incoming {
            name,
            value,
            timestamp,
        }]) == 0
    }

    /// Routes points and queues them, in order, each destination's share under one lock;
    /// returns how many were unrouted or dropped.
    pub fn send_batch(&self, batch: &[Incoming<'_>]) -> u64 {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = const {
                RefCell::new(Scratch { per: Vec::new(), out: Vec::new(), ring: Vec::new() })
            };
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => {
                let Scratch { per, out, ring } = &mut *s;
                self.send_batch_with(batch, per, out, ring)
            }
            // Only reachable if a queue push re-entered send_batch on this thread.
            Err(_) => self.send_batch_with(batch, &mut Vec::new(), &mut Vec::new(), &mut Vec::new()),
        })
    }

    fn send_batch_with(
        &self,
        batch: &[Incoming<'_>],
        per: &mut Vec<Vec<Point>>,
        out: &mut Vec<usize>,
        scratch: &mut Vec<NodeId>,
    ) -> u64 {
        let router = self.router();
        per.resize_with(self.queues.len(), Vec::new);
        let mut lost = 0u64;
        for p in batch {
            router.route(p.name, out, scratch);
            if out.is_empty() {
                lost += 1;
                continue;
            }
            for &i in out.iter() {
                if let Some(v) = per.get_mut(i) {
                    v.push(Point {
                        name: p.name.to_string(),
                        value: p.value,
                        timestamp: p.timestamp,
                    });
                }
            }
        }
        if lost > 0 {
            self.unrouted.fetch_add(lost, Ordering::Relaxed);
        }
        for (q, pts) in self.queues.iter().zip(per.iter_mut()) {
            if !pts.is_empty() {
                lost += q.push_many(pts.drain(..));
            }
        }
        lost
    }

    /// The router in use now.
    pub fn router(&self) -> Arc<Router> {
        self.router.read().clone()
    }

    /// Routes every point from now on with `router` (a reload of the rules); it must come from
    /// the same DESTINATIONS, which a reload does not change.
    pub fn set_router(&self, router: Router) {
        *self.router.write() = Arc::new(router);
    }

    /// True while any live destination's queue is full.
    pub fn should_pause(&self) -> bool {
        self.queues.iter().any(|q| q.should_pause())
    }

    /// True when every queue (memory and spill) is empty.
    pub fn is_drained(&self) -> bool {
        self.queues.iter().all(|q| q.is_empty())
    }
}

/// Counters of the receiving side.
#[derive(Debug, Default)]
pub struct InputStats {
    /// Points received (`metricsReceived`).
    pub received: AtomicU64,
    /// Lines or entries that did not decode.
    pub bad: AtomicU64,
    /// The lists applied before a point counts as received, and their counters.
    pub lists: Arc<ListFilter>,
}

/// The relay: every point is routed as received.
pub struct Relay {
    /// Where points go.
    pub outputs: Arc<Outputs>,
    /// Input counters.
    pub stats: Arc<InputStats>,
}

impl Sink for Relay {
    fn point(&self, name: &str, value: f64, timestamp: f64) -> bool {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.outputs.send(name, value, timestamp)
    }
    fn points(&self, batch: &[Incoming<'_>]) {
        self.stats
            .received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.outputs.send_batch(batch);
    }
    fn should_pause(&self) -> bool {
        self.outputs.should_pause()
    }
    fn bad_input(&self, peer: &str, what: &str) {
        self.stats.bad.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, "invalid input: {what}");
    }
}

/// The aggregator: points go through the [`Pipeline`]; what it passes on (FORWARD_ALL) and the
/// aggregates it computes go to the destinations.
pub struct Aggregator {
    /// Where results go.
    pub outputs: Arc<Outputs>,
    /// Rewrite, buffers and rule files.
    pub pipeline: Arc<Pipeline>,
    /// Input counters.
    pub stats: Arc<InputStats>,
}

impl Sink for Aggregator {
    fn point(&self, name: &str, value: f64, timestamp: f64) -> bool {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        match self.pipeline.input(name, value, timestamp) {
            Some(n) => self.outputs.send(&n, value, timestamp),
            None => true,
        }
    }
    fn should_pause(&self) -> bool {
        self.outputs.should_pause()
    }
    fn bad_input(&self, peer: &str, what: &str) {
        self.stats.bad.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, "invalid input: {what}");
    }
}

/// carbon's destination name in metric paths: `host:port:instance` with dots as `_`.
fn dest_metric_name(d: &carbide_config::Destination) -> String {
    let inst = d.instance.as_deref().unwrap_or("None");
    format!("{}:{}:{}", d.host, d.port, inst).replace('.', "_")
}

/// One destination's figures since start, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct DestFigures {
    /// The DESTINATIONS entry (`host:port[:instance]`).
    pub name: String,
    /// Points routed to it (carbon's attemptedRelays).
    pub attempted: u64,
    /// Points written to its socket.
    pub sent: u64,
    /// Batches written.
    pub batches: u64,
    /// Points dropped because its queue (and spill) was full (fullQueueDrops).
    pub dropped: u64,
    /// Points written to its spill file.
    pub spilled: u64,
    /// Points the spill file refused because the disk failed (also in `dropped`).
    pub spill_errors: u64,
    /// Writes that failed.
    pub send_failures: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Points queued while it was not connected (queuedUntilConnected).
    pub queued_until_connected: u64,
    /// Points waiting in memory now.
    pub queued: u64,
    /// Points waiting in the spill file now.
    pub spill_queued: u64,
    /// Whether it is connected now.
    pub connected: bool,
}

/// The role's figures since start: what `/metrics` shows (the carbon self-metrics carry the same
/// counters per interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Points received (metricsReceived).
    pub received: u64,
    /// Lines or entries that did not decode.
    pub bad_input: u64,
    /// Points no destination took.
    pub unrouted: u64,
    /// Points the blacklist dropped (blacklistMatches).
    pub blacklist_matches: u64,
    /// Points the whitelist dropped (whitelistRejects).
    pub whitelist_rejects: u64,
    /// One per DESTINATIONS entry, same order.
    pub destinations: Vec<DestFigures>,
    /// The aggregator's aggregates emitted and live buffers; `None` for a relay.
    pub aggregator: Option<(u64, usize)>,
}

/// A handle that reads a running role's [`Figures`], for an admin endpoint.
#[derive(Clone)]
pub struct FiguresSource {
    outputs: Arc<Outputs>,
    input: Arc<InputStats>,
    aggregator: Option<Arc<Aggregator>>,
}

impl FiguresSource {
    /// The figures now.
    pub fn figures(&self) -> Figures {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Figures {
            received: load(&self.input.received),
            bad_input: load(&self.input.bad),
            unrouted: load(&self.outputs.unrouted),
            blacklist_matches: load(&self.input.lists.blacklist_matches),
            whitelist_rejects: load(&self.input.lists.whitelist_rejects),
            destinations: self
                .outputs
                .queues
                .iter()
                .map(|q| {
                    let s = &q.stats;
                    DestFigures {
                        name: q.name.clone(),
                        attempted: load(&s.attempted),
                        sent: load(&s.sent),
                        batches: load(&s.batches),
                        dropped: load(&s.dropped),
                        spilled: load(&s.spilled),
                        spill_errors: load(&s.spill_errors),
                        send_failures: load(&s.send_failures),
                        connect_failures: load(&s.connect_failures),
                        queued_until_connected: load(&s.queued_until_connected),
                        queued: q.len() as u64,
                        spill_queued: q.spilled_pending(),
                        connected: s.connected.load(Ordering::Relaxed),
                    }
                })
                .collect(),
            aggregator: self
                .aggregator
                .as_ref()
                .map(|a| (load(&a.pipeline.emitted), a.pipeline.buffers())),
        }
    }
}

/// A running role.
pub struct Running {
    /// The line receiver's address.
    pub line_addr: Option<SocketAddr>,
    /// The pickle receiver's address.
    pub pickle_addr: Option<SocketAddr>,
    /// The queues, for tests and admin.
    pub outputs: Arc<Outputs>,
    aggregator: Option<Arc<Aggregator>>,
    input: Arc<InputStats>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    senders: Vec<JoinHandle<()>>,
    others: Vec<JoinHandle<()>>,
}

impl Running {
    /// A handle on the role's figures, which outlives this borrow (for `/metrics`).
    pub fn figures(&self) -> FiguresSource {
        FiguresSource {
            outputs: self.outputs.clone(),
            input: self.input.clone(),
            aggregator: self.aggregator.clone(),
        }
    }

    /// Routes from now on with `router` (relay-rules.conf re-read on SIGHUP).
    pub fn reload_router(&self, router: Router) {
        self.outputs.set_router(router);
    }

    /// Re-reads the aggregator's rule files now (SIGHUP); see [`Pipeline::reload`]. A relay has
    /// none: `Ok(false)`.
    pub fn reload_aggregator(&self) -> Result<bool, RelayError> {
        self.aggregator
            .as_ref()
            .map_or(Ok(false), |a| a.pipeline.reload(true))
    }

    /// Stops the receivers, gives the senders up to `grace` to empty their memory queues, then
    /// stops. What is left in memory goes to the front of the spill file (when spilling is on), so
    /// the next start replays it, in order, before the rest.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for l in self.listeners {
            let _ = l.await;
        }
        for o in self.others {
            o.abort();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && self.outputs.queues.iter().any(|q| !q.is_empty()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for s in self.senders {
            s.abort();
        }
        for q in &self.outputs.queues {
            let saved = q.persist();
            if saved > 0 {
                tracing::info!(destination = %q.name, points = saved, "shutdown: queued points saved to the spill file");
            }
            let left = q.len();
            if left > 0 {
                tracing::warn!(destination = %q.name, points = left, "shutdown: points still in memory were not delivered");
            }
            let spilled = q.spilled_pending();
            if spilled > 0 {
                tracing::info!(destination = %q.name, points = spilled, "shutdown: spilled points kept for the next start");
            }
        }
    }
}

/// Builds the destination queues (opening spill files) and the sender configs.
pub fn build_outputs(
    settings: &CarbonSettings,
    router: Router,
    opts: &Options,
) -> Result<(Arc<Outputs>, Vec<SenderConfig>), RelayError> {
    if settings.destinations.is_empty() {
        return Err(RelayError::Setting("DESTINATIONS is empty".into()));
    }
    let format = match settings.destination_protocol.as_str() {
        "pickle" => WireFormat::Pickle,
        "line" => WireFormat::Line,
        other => {
            return Err(RelayError::Setting(format!(
                "DESTINATION_PROTOCOL = {other}: carbide sends pickle or line"
            )));
        }
    };
    let max = usize::try_from(settings.max_queue_size).unwrap_or(usize::MAX / 2);
    let batch = usize::try_from(settings.max_datapoints_per_message.max(1)).unwrap_or(500);
    let mut queues = Vec::new();
    let mut configs = Vec::new();
    for d in &settings.destinations {
        let name = d.to_string();
        let spill = match &opts.spool_dir {
            Some(dir) => {
                let path = dir.join(format!("{}.spill", dest_metric_name(d)));
                Some(
                    Spill::open(&path, opts.spill_max_bytes).map_err(|source| RelayError::Io {
                        what: format!("spill file {}", path.display()),
                        source,
                    })?,
                )
            }
            None => None,
        };
        if let Some(s) = &spill
            && s.pending() > 0
        {
            tracing::info!(destination = %name, points = s.pending(), "replaying points spilled by an earlier run");
        }
        queues.push(Arc::new(DestQueue::new(name, max, spill)));
        let host = if d.host.contains(':') {
            format!("[{}]", d.host)
        } else {
            d.host.clone()
        };
        configs.push(SenderConfig {
            addr: format!("{host}:{}", d.port),
            format,
            batch,
            int_timestamps: false,
            stall_timeout: opts.stall_timeout,
            max_backoff: Duration::from_secs(5),
        });
    }
    Ok((
        Arc::new(Outputs {
            router: RwLock::new(Arc::new(router)),
            queues,
            unrouted: AtomicU64::new(0),
        }),
        configs,
    ))
}

async fn bind(iface: &str, port: u16) -> Result<TcpListener, RelayError> {
    let host = if iface.contains(':') {
        format!("[{iface}]")
    } else {
        iface.to_string()
    };
    TcpListener::bind(format!("{host}:{port}"))
        .await
        .map_err(|source| RelayError::Io {
            what: format!("binding {host}:{port}"),
            source,
        })
}

/// Which role [`start`] runs.
pub enum Role {
    /// carbon-relay.
    Relay,
    /// carbon-aggregator with its pipeline (rewrite, buffers, rule files).
    Aggregator(Arc<Pipeline>),
}

/// Starts a role on the current tokio runtime: receivers on LINE_RECEIVER_* and
/// PICKLE_RECEIVER_* (port 0 picks a free one), senders, self-metrics, and the aggregator's clock.
pub async fn start(
    settings: &CarbonSettings,
    router: Router,
    role: Role,
    opts: Options,
) -> Result<Running, RelayError> {
    let (outputs, configs) = build_outputs(settings, router, &opts)?;
    let (tx, rx) = watch::channel(false);
    let mut senders = Vec::new();
    for (q, cfg) in outputs.queues.iter().zip(configs) {
        senders.push(tokio::spawn(crate::sender::run(q.clone(), cfg, rx.clone())));
    }
    let mut others = Vec::new();
    let input_stats = Arc::new(InputStats {
        lists: opts.lists.clone().unwrap_or_default(),
        ..InputStats::default()
    });
    let (sink, aggregator): (Arc<dyn Sink>, Option<Arc<Aggregator>>) = match role {
        Role::Relay => (
            Arc::new(Relay {
                outputs: outputs.clone(),
                stats: input_stats.clone(),
            }),
            None,
        ),
        Role::Aggregator(pipeline) => {
            let a = Arc::new(Aggregator {
                outputs: outputs.clone(),
                pipeline,
                stats: input_stats.clone(),
            });
            let t = a.clone();
            others.push(tokio::spawn(async move {
                let out = t.outputs.clone();
                t.pipeline
                    .run_clock(move |name, value, ts| {
                        out.send(name, value, ts);
                    })
                    .await;
            }));
            (a.clone(), Some(a))
        }
    };
    let sink: Arc<dyn Sink> = match &opts.lists {
        Some(filter) => Arc::new(Filtered {
            filter: filter.clone(),
            inner: sink,
        }),
        None => sink,
    };
    let limits = ReceiverLimits {
        max_connections: if settings.max_receiver_connections.is_finite() {
            settings.max_receiver_connections as usize
        } else {
            usize::MAX / 2
        },
        max_frame: usize::try_from(settings.pickle_receiver_max_length).unwrap_or(1 << 20),
        ..ReceiverLimits::default()
    };
    let mut listeners = Vec::new();
    let mut line_addr = None;
    let mut pickle_addr = None;
    for (iface, port, wire) in [
        (
            &settings.line_receiver_interface,
            settings.line_receiver_port,
            Wire::Line,
        ),
        (
            &settings.pickle_receiver_interface,
            settings.pickle_receiver_port,
            Wire::Pickle,
        ),
    ] {
        let l = bind(iface, port).await?;
        let addr = l.local_addr().ok();
        if wire == Wire::Line {
            line_addr = addr;
        } else {
            pickle_addr = addr;
        }
        tracing::info!(?addr, ?wire, "listening");
        listeners.push(tokio::spawn(run_tcp(l, wire, sink.clone(), limits, rx.clone())));
    }
    let aggregator_handle = aggregator.clone();
    if settings.carbon_metric_interval > 0 {
        let every = Duration::from_secs(settings.carbon_metric_interval);
        let base = format!(
            "{}.{}.{}",
            settings.carbon_metric_prefix, opts.metric_group, opts.metric_host
        );
        let names: Vec<String> = settings.destinations.iter().map(dest_metric_name).collect();
        let outputs2 = outputs.clone();
        others.push(tokio::spawn(self_metrics(
            base,
            names,
            outputs2,
            input_stats.clone(),
            aggregator,
            every,
        )));
    }
    Ok(Running {
        line_addr,
        pickle_addr,
        aggregator: aggregator_handle,
        input: input_stats,
        outputs,
        shutdown: tx,
        listeners,
        senders,
        others,
    })
}

/// Publishes carbon's relay/aggregator self-metrics through the role's own outputs, every
/// CARBON_METRIC_INTERVAL, as `<prefix>.relays.<host>.…` (`.aggregator.` for the aggregator).
///
/// Per destination, `destinations.<host_port_instance>.` (carbon's name: `host:port:instance`
/// with dots as `_`) followed by carbon client.py's names — attemptedRelays, sent, batchesSent,
/// fullQueueDrops, queuedUntilConnected (counts for the interval, as carbon resets them) and
/// relayMaxQueueLength (the interval's largest memory queue) — and carbide's own: spilled, spillErrors and
/// sendFailures, connectFailures (counts), queued and spillQueued (points waiting now, in memory
/// and in the spill file) and connected (1 or 0). Role-wide: metricsReceived, badInput,
/// blacklistMatches, whitelistRejects, unroutedDatapoints, and for the aggregator aggregateDatapointsSent and allocatedBuffers.
async fn self_metrics(
    base: String,
    names: Vec<String>,
    outputs: Arc<Outputs>,
    input: Arc<InputStats>,
    aggregator: Option<Arc<Aggregator>>,
    every: Duration,
) {
    let mut prior: HashMap<String, u64> = HashMap::new();
    let mut iv = tokio::time::interval(every);
    iv.tick().await;
    loop {
        iv.tick().await;
        let now = now_f64().floor();
        let mut pts: Vec<(String, f64)> = Vec::new();
        let mut delta = |key: String, total: u64, pts: &mut Vec<(String, f64)>| {
            let before = prior.insert(key.clone(), total).unwrap_or(0);
            pts.push((key, total.saturating_sub(before) as f64));
        };
        for (q, n) in outputs.queues.iter().zip(&names) {
            let s = &q.stats;
            let d = format!("destinations.{n}");
            delta(
                format!("{d}.attemptedRelays"),
                s.attempted.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(format!("{d}.sent"), s.sent.load(Ordering::Relaxed), &mut pts);
            delta(
                format!("{d}.fullQueueDrops"),
                s.dropped.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(
                format!("{d}.spilled"),
                s.spilled.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(
                format!("{d}.spillErrors"),
                s.spill_errors.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(
                format!("{d}.sendFailures"),
                s.send_failures.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(
                format!("{d}.connectFailures"),
                s.connect_failures.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(
                format!("{d}.batchesSent"),
                s.batches.load(Ordering::Relaxed),
                &mut pts,
            );
            delta(
                format!("{d}.queuedUntilConnected"),
                s.queued_until_connected.load(Ordering::Relaxed),
                &mut pts,
            );
            let len = q.len() as u64;
            let max = s.max_queue_len.swap(len, Ordering::Relaxed).max(len);
            pts.push((format!("{d}.relayMaxQueueLength"), max as f64));
            pts.push((format!("{d}.queued"), q.len() as f64));
            pts.push((format!("{d}.spillQueued"), q.spilled_pending() as f64));
            pts.push((
                format!("{d}.connected"),
                if s.connected.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            ));
        }
        delta(
            "unroutedDatapoints".into(),
            outputs.unrouted.load(Ordering::Relaxed),
            &mut pts,
        );
        delta(
            "metricsReceived".into(),
            input.received.load(Ordering::Relaxed),
            &mut pts,
        );
        delta("badInput".into(), input.bad.load(Ordering::Relaxed), &mut pts);
        delta(
            "blacklistMatches".into(),
            input.lists.blacklist_matches.load(Ordering::Relaxed),
            &mut pts,
        );
        delta(
            "whitelistRejects".into(),
            input.lists.whitelist_rejects.load(Ordering::Relaxed),
            &mut pts,
        );
        if let Some(a) = &aggregator {
            delta(
                "aggregateDatapointsSent".into(),
                a.pipeline.emitted.load(Ordering::Relaxed),
                &mut pts,
            );
            pts.push(("allocatedBuffers".into(), a.pipeline.buffers() as f64));
        }
        for (k, v) in pts {
            outputs.send(&format!("{base}.{k}"), v, now);
        }
    }
}
