//! `carbide relay` (carbon-relay.py) and `carbide aggregator` (carbon-aggregator.py), each from an
//! existing carbon.conf and the rule files beside it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use carbide_config::carbon_conf::RelayMethod;
use carbide_config::{
    CarbonSettings, ConfigEnv, parse_aggregation_rules, parse_carbon_conf, parse_relay_rules,
};
use carbide_relay::lists::{ListFilter, Lists};
use carbide_relay::pipeline::{Pipeline, PipelineSettings, RulePaths};
use carbide_relay::router::Router;
use carbide_relay::service::{Figures, Options, Role, Running, start};
use carbide_server::prometheus::{Exposition, Kind};

/// Arguments shared by `carbide relay` and `carbide aggregator`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// carbon.conf to read; relay-rules.conf, aggregation-rules.conf and rewrite-rules.conf are
    /// read from beside it.
    #[arg(short, long, default_value = "/etc/carbon/carbon.conf")]
    config: PathBuf,
    /// The instance: `[relay:<instance>]` (or `[aggregator:<instance>]`) overrides the section.
    #[arg(long)]
    instance: Option<String>,
    /// Directory for per-destination spill files; default RELAY_SPOOL_DIR from carbon.conf, else
    /// <STORAGE_DIR>/relay-spool.
    #[arg(long)]
    spool_dir: Option<PathBuf>,
    /// Turn disk spilling off: a full queue for a down destination then drops (counted).
    #[arg(long)]
    no_spill: bool,
    /// Largest a destination's spill file may grow, in MiB.
    #[arg(long, default_value_t = 1024)]
    spill_max_mib: u64,
    /// Seconds a write may block before its destination counts as stalled (and is reconnected).
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
    /// Seconds shutdown may spend emptying memory queues (spilled points stay for the next start).
    #[arg(long, default_value_t = 10)]
    shutdown_timeout: u64,
    /// Admin HTTP address serving Prometheus `/metrics` (per-destination sent, queued, spilled,
    /// dropped, connection state); default 127.0.0.1:7081 for the relay, 127.0.0.1:7082 for the
    /// aggregator. Loopback unless you say otherwise. A given address that cannot be bound stops
    /// the start; the default one only logs a warning (a second instance on the same host).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// No admin HTTP endpoint.
    #[arg(long, conflicts_with = "admin")]
    no_admin: bool,
    /// carbon's `start` action, accepted so init scripts keep working.
    #[arg(hide = true)]
    action: Option<String>,
}

fn env() -> ConfigEnv {
    ConfigEnv {
        graphite_root: std::env::var("GRAPHITE_ROOT").unwrap_or_else(|_| "/opt/graphite".into()),
        storage_dir: std::env::var("GRAPHITE_STORAGE_DIR").ok(),
        home: std::env::var("HOME").ok(),
    }
}

fn read(path: &str) -> Result<String> {
    Ok(carbide_config::load(std::path::Path::new(path))?)
}

fn host_name(instance: Option<&str>) -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
        .replace('.', "_");
    match instance {
        Some(i) => format!("{h}-{i}"),
        None => h,
    }
}

fn options(args: &RelayArgs, settings: &CarbonSettings, group: &'static str) -> Options {
    let spool_dir = if args.no_spill {
        None
    } else {
        Some(
            args.spool_dir
                .clone()
                .unwrap_or_else(|| match settings.unknown.get("RELAY_SPOOL_DIR") {
                    Some(carbide_config::carbon_conf::PyValue::Str(s)) if !s.is_empty() => PathBuf::from(s),
                    _ => PathBuf::from(&settings.storage_dir).join("relay-spool"),
                }),
        )
    };
    Options {
        spool_dir,
        spill_max_bytes: args.spill_max_mib.saturating_mul(1 << 20),
        stall_timeout: Duration::from_secs(args.stall_timeout.max(1)),
        metric_group: group,
        metric_host: host_name(args.instance.as_deref()),
        lists: None,
    }
}

/// Reads one list file: `None` when it does not exist (carbon then lets everything through).
fn read_list(path: &str) -> Result<Option<carbide_config::RegexList>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{path}: cannot read")),
    };
    let (list, warnings) = carbide_config::parse_regex_list(path, &text)?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    Ok(Some(list))
}

/// whitelist.conf and blacklist.conf as carbon's receivers apply them: only with USE_WHITELIST
/// (service.py reads neither file otherwise, so neither do we, lest a swap drop data).
fn read_lists(settings: &CarbonSettings) -> Result<Lists> {
    if !settings.use_whitelist {
        let bl = settings.blacklist_path();
        if std::path::Path::new(&bl).exists() {
            tracing::warn!("{bl}: ignored, as carbon ignores it, because USE_WHITELIST is off");
        }
        return Ok(Lists::default());
    }
    Ok(Lists {
        blacklist: read_list(&settings.blacklist_path())?,
        whitelist: read_list(&settings.whitelist_path())?,
    })
}

fn load(args: &RelayArgs, program: &str) -> Result<CarbonSettings> {
    let path = args.config.display().to_string();
    let text = carbide_config::load(&args.config)?;
    let (settings, warnings) = parse_carbon_conf(&path, &text, program, args.instance.as_deref(), &env())?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    Ok(settings)
}

fn relay_router(settings: &CarbonSettings) -> Result<Router> {
    let rules = if settings.relay_method == RelayMethod::Rules {
        let p = settings.relay_rules_path();
        let rules = parse_relay_rules(&p, &read(&p)?)?;
        rules
            .unconfigured_destinations(&p, &settings.destinations)
            .iter()
            .for_each(|w| tracing::warn!("{w}"));
        Some(rules)
    } else {
        None
    };
    let agg = if matches!(
        settings.relay_method,
        RelayMethod::AggregatedConsistentHashing | RelayMethod::FastAggregatedHashing
    ) {
        let p = settings.aggregation_rules_path();
        parse_aggregation_rules(&p, &read(&p)?)?.0
    } else {
        vec![]
    };
    Ok(Router::from_settings(settings, rules, agg)?)
}

/// What SIGHUP re-reads: the relay's router (relay-rules.conf, or aggregation-rules.conf for
/// aggregated-consistent-hashing), or the aggregator's aggregation and rewrite rules.
enum Reload {
    Router,
    Aggregator,
}

/// Re-reads the rule files; on any error the running rules stay as they were.
fn reload(what: &Reload, settings: &CarbonSettings, running: &Running) -> Result<()> {
    match what {
        Reload::Router => running.reload_router(relay_router(settings)?),
        Reload::Aggregator => {
            running.reload_aggregator()?;
        }
    }
    Ok(())
}

/// Re-reads the lists; on an error (logged with file:line) the lists in force stay.
fn reload_lists(settings: &CarbonSettings, filter: &ListFilter, why: &str) {
    match read_lists(settings) {
        Ok(l) => {
            filter.set(l);
            tracing::info!("{why}: whitelist and blacklist re-read and in use");
        }
        Err(e) => tracing::error!("{why}: {e:#}; keeping the previous lists"),
    }
}

/// The `/metrics` page: the role's [`Figures`] (totals since start) and the process's CPU and memory.
fn metrics_page(f: &Figures) -> String {
    type Get = fn(&carbide_relay::service::DestFigures) -> f64;
    let mut e = Exposition::new();
    e.counter(
        "carbide_relay_points_received_total",
        "Points received (metricsReceived).",
        f.received as f64,
    );
    e.counter(
        "carbide_relay_bad_input_total",
        "Lines or pickle entries that did not decode.",
        f.bad_input as f64,
    );
    e.counter(
        "carbide_relay_blacklist_matches_total",
        "Points the blacklist dropped (blacklistMatches).",
        f.blacklist_matches as f64,
    );
    e.counter(
        "carbide_relay_whitelist_rejects_total",
        "Points the whitelist dropped (whitelistRejects).",
        f.whitelist_rejects as f64,
    );
    e.counter(
        "carbide_relay_unrouted_total",
        "Points no destination took (no rule matched).",
        f.unrouted as f64,
    );
    let labels: Vec<[(&str, &str); 1]> = f
        .destinations
        .iter()
        .map(|d| [("destination", d.name.as_str())])
        .collect();
    let families: [(&str, &str, Kind, Get); 12] = [
        (
            "carbide_relay_destination_attempted_total",
            "Points routed to the destination (attemptedRelays).",
            Kind::Counter,
            |d| d.attempted as f64,
        ),
        (
            "carbide_relay_destination_sent_total",
            "Points written to the destination.",
            Kind::Counter,
            |d| d.sent as f64,
        ),
        (
            "carbide_relay_destination_batches_total",
            "Batches written to the destination (batchesSent).",
            Kind::Counter,
            |d| d.batches as f64,
        ),
        (
            "carbide_relay_destination_dropped_total",
            "Points dropped on a full queue (fullQueueDrops).",
            Kind::Counter,
            |d| d.dropped as f64,
        ),
        (
            "carbide_relay_destination_spilled_total",
            "Points written to the spill file.",
            Kind::Counter,
            |d| d.spilled as f64,
        ),
        (
            "carbide_relay_destination_spill_errors_total",
            "Points the spill file refused because the disk failed (ENOSPC, EFBIG); also dropped.",
            Kind::Counter,
            |d| d.spill_errors as f64,
        ),
        (
            "carbide_relay_destination_send_failures_total",
            "Writes to the destination that failed.",
            Kind::Counter,
            |d| d.send_failures as f64,
        ),
        (
            "carbide_relay_destination_connect_failures_total",
            "Connection attempts that failed.",
            Kind::Counter,
            |d| d.connect_failures as f64,
        ),
        (
            "carbide_relay_destination_queued_until_connected_total",
            "Points queued while the destination was not connected.",
            Kind::Counter,
            |d| d.queued_until_connected as f64,
        ),
        (
            "carbide_relay_destination_queued",
            "Points waiting in memory.",
            Kind::Gauge,
            |d| d.queued as f64,
        ),
        (
            "carbide_relay_destination_spill_queued",
            "Points waiting in the spill file.",
            Kind::Gauge,
            |d| d.spill_queued as f64,
        ),
        (
            "carbide_relay_destination_connected",
            "1 while connected, else 0.",
            Kind::Gauge,
            |d| if d.connected { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, kind, get) in families {
        e.labelled(
            name,
            help,
            kind,
            labels.iter().zip(&f.destinations).map(|(l, d)| (&l[..], get(d))),
        );
    }
    if let Some((emitted, buffers)) = f.aggregator {
        e.counter(
            "carbide_aggregator_points_emitted_total",
            "Aggregates computed (aggregateDatapointsSent).",
            emitted as f64,
        );
        e.gauge(
            "carbide_aggregator_buffers",
            "Live aggregation buffers (allocatedBuffers).",
            buffers as f64,
        );
    }
    e.gauge(
        "carbide_resident_memory_bytes",
        "Resident memory.",
        carbide_server::selfmetrics::rss_bytes() as f64,
    );
    e.counter(
        "carbide_cpu_seconds_total",
        "CPU seconds used.",
        carbide_server::selfmetrics::cpu_seconds(),
    );
    e.finish()
}

/// Binds the admin address and serves `/metrics` until `stop` fires.
async fn start_admin(
    addr: SocketAddr,
    running: &Running,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for admin HTTP on {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "admin HTTP (/metrics) listening");
    let source = running.figures();
    let page: carbide_server::admin::MetricsPage = Arc::new(move || metrics_page(&source.figures()));
    Ok(tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.await;
        };
        if let Err(e) = carbide_server::admin::serve_metrics(listener, page, stopped).await {
            tracing::error!(error = %e, "admin HTTP server failed");
        }
    }))
}

async fn run_until_signalled(
    settings: CarbonSettings,
    router: Router,
    role: Role,
    opts: Options,
    grace: Duration,
    admin: Option<Admin>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let what = match role {
        Role::Relay => Reload::Router,
        Role::Aggregator(_) => Reload::Aggregator,
    };
    let mut opts = opts;
    let lists = Arc::new(ListFilter::new(read_lists(&settings)?));
    opts.lists = Some(lists.clone());
    // carbon re-reads the lists every 10 s on its own (regexlist.py), SIGHUP or not.
    let mut watch = settings.use_whitelist.then(|| {
        carbide_server::reload::ConfigWatch::new(
            [settings.blacklist_path(), settings.whitelist_path()].map(PathBuf::from),
        )
    });
    let mut tick = tokio::time::interval(carbide_server::reload::CHECK_EVERY);
    let running = start(&settings, router, role, opts).await?;
    let (stop_admin, stopped) = tokio::sync::oneshot::channel();
    let admin_task = match admin {
        Some(a) => match start_admin(a.addr, &running, stopped).await {
            Ok(t) => Some(t),
            Err(e) if !a.explicit => {
                tracing::warn!("{e:#}; no /metrics (give --admin ADDR, or --no-admin)");
                None
            }
            Err(e) => {
                running.shutdown(grace).await;
                return Err(e);
            }
        },
        None => None,
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match reload(&what, &settings, &running) {
                    Ok(()) => tracing::info!("SIGHUP: rules re-read and in use"),
                    Err(e) => tracing::error!("SIGHUP: {e:#}; keeping the previous rules"),
                }
                if let Some(w) = watch.as_mut() {
                    w.mark_seen();
                    reload_lists(&settings, &lists, "SIGHUP");
                }
            }
            _ = tick.tick(), if watch.is_some() => {
                if watch.as_mut().is_some_and(|w| w.changed()) {
                    reload_lists(&settings, &lists, "list files changed");
                }
            }
        }
    }
    tracing::info!("shutting down: receivers closed, emptying queues");
    running.shutdown(grace).await;
    let _ = stop_admin.send(());
    if let Some(t) = admin_task
        && tokio::time::timeout(Duration::from_secs(5), t).await.is_err()
    {
        tracing::warn!("admin HTTP requests still running at shutdown; abandoned");
    }
    Ok(())
}

/// Where `/metrics` is served, and whether the operator chose it.
#[derive(Debug, Clone, Copy)]
struct Admin {
    addr: SocketAddr,
    explicit: bool,
}

/// `--admin`, else loopback on the role's default port, unless `--no-admin`.
fn admin_addr(args: &RelayArgs, default_port: u16) -> Option<Admin> {
    if args.no_admin {
        return None;
    }
    Some(match args.admin {
        Some(addr) => Admin { addr, explicit: true },
        None => Admin {
            addr: SocketAddr::from(([127, 0, 0, 1], default_port)),
            explicit: false,
        },
    })
}

fn finish(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carbide: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// `carbide relay`.
pub fn relay(args: RelayArgs) -> ExitCode {
    finish((|| {
        let settings = load(&args, "relay")?;
        let router = relay_router(&settings)?;
        let opts = options(&args, &settings, "relays");
        let grace = Duration::from_secs(args.shutdown_timeout);
        let admin = admin_addr(&args, 7081);
        runtime()?.block_on(run_until_signalled(
            settings,
            router,
            Role::Relay,
            opts,
            grace,
            admin,
        ))
    })())
}

/// `carbide aggregator`.
pub fn aggregator(args: RelayArgs) -> ExitCode {
    finish((|| {
        let mut settings = load(&args, "aggregator")?;
        // carbon-aggregator always routes its output by consistent hashing.
        settings.relay_method = RelayMethod::ConsistentHashing;
        let pipeline = Pipeline::open(
            RulePaths {
                aggregation: Some(PathBuf::from(settings.aggregation_rules_path())),
                rewrite: Some(PathBuf::from(settings.rewrite_rules_path())),
            },
            PipelineSettings {
                forward_all: settings.forward_all,
                max_intervals: settings.max_aggregation_intervals,
                write_back_frequency: settings.write_back_frequency,
            },
        )?;
        let router = Router::from_settings(&settings, None, vec![])?;
        let opts = options(&args, &settings, "aggregator");
        let grace = Duration::from_secs(args.shutdown_timeout);
        let admin = admin_addr(&args, 7082);
        runtime()?.block_on(run_until_signalled(
            settings,
            router,
            Role::Aggregator(Arc::new(pipeline)),
            opts,
            grace,
            admin,
        ))
    })())
}
