//! `carbide cache` (carbon-cache with its carbon.conf): settings in, a running [`CacheRole`] out,
//! and the signals an operator expects. `carbide serve` (in `serve.rs`) runs the same engine on
//! embedded defaults and shares the signal loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use carbide_cache::persist::WhisperSettings;
use carbide_cache::{CacheConfig, WriteStrategy};
use carbide_config::{
    AggregationSchemas, CarbonSettings, ConfigEnv, parse_carbon_conf, parse_regex_list,
    parse_storage_aggregation, parse_storage_schemas,
};
use carbide_server::cache_role::{ConfigPolicy, RoleOptions};
use carbide_server::ingest::Lists;
use carbide_server::listeners::ReceiverLimits;
use carbide_server::{CacheRole, selfmetrics};

/// `carbide cache`: a drop-in for carbon-cache.py reading an existing carbon.conf.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// carbon.conf to read; storage-schemas.conf and the other files are read from beside it.
    #[arg(short, long, default_value = "/etc/carbon/carbon.conf")]
    config: PathBuf,
    /// The instance: settings from `[cache:<instance>]` override `[cache]`.
    #[arg(long)]
    instance: Option<String>,
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Seconds shutdown may spend writing the cache before dumping the rest for the next start.
    #[arg(long, default_value_t = 60)]
    shutdown_timeout: u64,
    /// Admin HTTP (/admin/*, /metrics) address; loopback unless you say otherwise.
    #[arg(long, default_value = "127.0.0.1:7080")]
    admin: SocketAddr,
    /// carbon-cache's `start` action, accepted so init scripts keep working.
    #[arg(hide = true)]
    action: Option<String>,
}

fn inf_to_none(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn read_optional(path: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{path}: cannot read")),
    }
}

/// Loads schemas, aggregation rules and lists from beside carbon.conf (what SIGHUP re-reads).
fn load_policy(settings: &CarbonSettings) -> Result<(ConfigPolicy, Lists)> {
    let schemas_path = settings.storage_schemas_path();
    let schemas = match read_optional(&schemas_path)? {
        Some(text) => {
            let (s, warnings) = parse_storage_schemas(&schemas_path, &text)?;
            warnings.iter().for_each(|w| tracing::warn!("{w}"));
            s
        }
        None => anyhow::bail!("{schemas_path}: missing (carbon-cache needs storage-schemas.conf)"),
    };
    let agg_path = settings.storage_aggregation_path();
    let aggregation = match read_optional(&agg_path)? {
        Some(text) => parse_storage_aggregation(&agg_path, &text)?.0,
        None => AggregationSchemas::builtin(),
    };
    let mut lists = Lists::default();
    let bl = settings.blacklist_path();
    // carbon reads blacklist.conf only with USE_WHITELIST (service.py), so a drop-in must ignore
    // it otherwise: dropping names carbon stores would lose data the day the binary is swapped.
    if !settings.use_whitelist {
        if Path::new(&bl).exists() {
            tracing::warn!("{bl}: ignored, as carbon ignores it, because USE_WHITELIST is off");
        }
    } else if let Some(text) = read_optional(&bl)? {
        lists.blacklist = Some(parse_regex_list(&bl, &text)?.0);
    }
    if settings.use_whitelist {
        let wl = settings.whitelist_path();
        if let Some(text) = read_optional(&wl)? {
            lists.whitelist = Some(parse_regex_list(&wl, &text)?.0);
        }
    }
    let policy = ConfigPolicy {
        schemas,
        aggregation,
        tag_hash_filenames: settings.tag_hash_filenames,
    };
    Ok((policy, lists))
}

/// Re-reads schemas, aggregation rules and lists from beside carbon.conf; on an error (logged
/// with file:line) the settings in force stay.
fn reload(role: &CacheRole, settings: &CarbonSettings, why: &str) {
    match load_policy(settings) {
        Ok((policy, lists)) => {
            role.persister.set_policy(Arc::new(policy));
            role.ingest.set_lists(lists);
            tracing::info!("{why}: schemas, aggregation rules and lists reloaded");
        }
        Err(e) => tracing::error!("{why}: reload failed, keeping the old settings: {e:#}"),
    }
}

fn addr(interface: &str, port: u16) -> Result<Option<SocketAddr>> {
    if port == 0 {
        return Ok(None);
    }
    let ip: std::net::IpAddr = interface
        .parse()
        .with_context(|| format!("bad interface address {interface}"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

fn cache_options(args: &CacheArgs) -> Result<(RoleOptions, CarbonSettings)> {
    let path = args.config.display().to_string();
    let text = carbide_config::load(&args.config)?;
    let env = ConfigEnv {
        graphite_root: std::env::var("GRAPHITE_ROOT").unwrap_or_else(|_| "/opt/graphite".into()),
        storage_dir: std::env::var("GRAPHITE_STORAGE_DIR").ok(),
        home: std::env::var("HOME").ok(),
    };
    let (settings, warnings) = parse_carbon_conf(&path, &text, "cache", args.instance.as_deref(), &env)?;
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let (policy, lists) = load_policy(&settings)?;
    let strategy = settings
        .cache_write_strategy
        .parse::<WriteStrategy>()
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let data_dir = PathBuf::from(&settings.local_data_dir);
    let agent = selfmetrics::agent_name(args.instance.as_deref());
    let opts = RoleOptions {
        line_tcp: addr(&settings.line_receiver_interface, settings.line_receiver_port)?,
        line_udp: if settings.enable_udp_listener {
            addr(&settings.udp_receiver_interface, settings.udp_receiver_port)?
        } else {
            None
        },
        pickle: addr(&settings.pickle_receiver_interface, settings.pickle_receiver_port)?,
        protobuf: match &settings.protobuf_receiver {
            Some((interface, port)) => addr(interface, *port)?,
            None => None,
        },
        http: match &settings.http_receiver {
            Some((interface, port)) => addr(interface, *port)?,
            None => None,
        },
        carbonlink: addr(&settings.cache_query_interface, settings.cache_query_port)?,
        admin: Some(args.admin),
        cache: CacheConfig {
            max_size: inf_to_none(settings.max_cache_size).map(|m| m as usize),
            strategy,
            shards: 256,
        },
        writers: args.writers,
        max_updates_per_second: inf_to_none(settings.max_updates_per_second),
        whisper: WhisperSettings {
            lock: settings.whisper_lock_writes,
            sparse: settings.whisper_sparse_create,
            fallocate: settings.whisper_fallocate_create,
            max_creates_per_minute: inf_to_none(settings.max_creates_per_minute),
        },
        policy: Arc::new(policy),
        lists,
        metric_prefix: settings.carbon_metric_prefix.clone(),
        metric_interval: (settings.carbon_metric_interval > 0)
            .then(|| Duration::from_secs(settings.carbon_metric_interval)),
        agent,
        shutdown_deadline: Duration::from_secs(args.shutdown_timeout),
        dump_path: data_dir.join(format!(
            ".carbide-cache-{}.dump",
            args.instance.as_deref().unwrap_or("default")
        )),
        on_create: None,
        stage: None,
        tagdb: settings.enable_tags.then(|| carbide_server::tagdb::TagDbOptions {
            url: settings.graphite_url.clone(),
            batch_size: settings.tag_batch_size as usize,
            queue_size: settings.tag_queue_size as usize,
            update_interval: settings.tag_update_interval,
        }),
        limits: ReceiverLimits {
            max_connections: inf_to_none(settings.max_receiver_connections).map_or(100_000, |m| m as usize),
            max_frame: settings.pickle_receiver_max_length as usize,
            idle_timeout: settings
                .metric_client_idle_timeout
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            ..ReceiverLimits::default()
        },
        data_dir,
    };
    Ok((opts, settings))
}

/// Runs a role until SIGTERM or SIGINT; SIGHUP reloads, SIGQUIT logs a snapshot.
async fn run_until_signalled(opts: RoleOptions, settings: Option<CarbonSettings>) -> Result<()> {
    let role = CacheRole::start(opts).await.context("cannot start the cache")?;
    wait_for_stop(&role, settings.as_ref()).await?;
    tracing::info!("shutting down: listeners closed, writing the cache");
    let report = role.stop().await?;
    tracing::info!(drained = report.drained, dumped = report.dumped, "stopped");
    Ok(())
}

/// Handles signals until SIGTERM or SIGINT: SIGHUP reloads schemas, rules and lists (when there is
/// a carbon.conf), SIGQUIT logs the admin snapshot.
pub(crate) async fn wait_for_stop(role: &CacheRole, settings: Option<&CarbonSettings>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut watch = settings.map(|s| {
        carbide_server::reload::ConfigWatch::new(
            [
                s.storage_schemas_path(),
                s.storage_aggregation_path(),
                s.blacklist_path(),
                s.whitelist_path(),
            ]
            .map(PathBuf::from),
        )
    });
    let mut tick = tokio::time::interval(carbide_server::reload::CHECK_EVERY);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match settings {
                Some(s) => {
                    reload(role, s, "SIGHUP");
                    if let Some(w) = watch.as_mut() {
                        w.mark_seen();
                    }
                }
                None => tracing::info!("SIGHUP: schemas and lists are embedded defaults, nothing of the cache to reload"),
            },
            // carbon re-reads these files on its own (schemas every 60 s, lists every 10 s) and
            // ignores SIGHUP, so operators edit them and expect them to apply: so do we.
            _ = tick.tick(), if watch.is_some() => {
                if let (Some(w), Some(s)) = (watch.as_mut(), settings) && w.changed() {
                    reload(role, s, "config files changed");
                }
            }
            _ = quit.recv() => {
                let a = role.admin();
                tracing::info!(cache = %carbide_server::admin::cache_snapshot(a), writers = %carbide_server::admin::writers_snapshot(a), "SIGQUIT snapshot");
            }
        }
    }
    Ok(())
}

/// The runtime of the cache role's listeners.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The exit code of a role, printing its error.
pub(crate) fn finish(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carbide: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `carbide cache`.
pub fn cache(args: CacheArgs) -> ExitCode {
    finish((|| {
        let (opts, settings) = cache_options(&args)?;
        runtime()?.block_on(run_until_signalled(opts, Some(settings)))
    })())
}

/// What every daemon does first: structured logs, then as many file descriptors as the hard limit
/// allows.
pub fn init_daemon() {
    init_logging();
    raise_fd_limit();
    ignore_sigxfsz();
}

/// Ignores SIGXFSZ, as the Python interpreter does for carbon: a write past the process's file
/// size limit (`ulimit -f`) then fails with EFBIG, which the writers and the relay's spill handle
/// as a full disk (counted, logged, points kept), instead of the kernel killing the daemon and
/// everything it holds in memory.
#[allow(unsafe_code)]
fn ignore_sigxfsz() {
    // SAFETY: signal(2) with SIG_IGN installs no handler, so no code ever runs in signal context;
    // it only sets this process's disposition for SIGXFSZ, which nothing else in the program
    // touches (tokio registers SIGINT, SIGTERM, SIGHUP and SIGQUIT), and it runs at start-up.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit. Each client connection and each whisper file
/// being written costs a descriptor, and distributions start services with a soft limit of 1 024
/// under a hard one of 500 000 or more: carbon-cache.py then fails with EMFILE at about a
/// thousand senders. Go daemons (go-carbon, carbon-relay-ng) get this raise from their runtime;
/// we do it ourselves. A failure only costs headroom, so it is logged, not fatal.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        return; // already unlimited
    };
    // An unlimited hard limit still stops at the kernel's fs.nr_open (setrlimit refuses more).
    let target = hard.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    if soft >= target {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: Some(target),
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(from = soft, to = target, "raised the open-file limit"),
        Err(e) => tracing::warn!(soft, error = %e, "could not raise the open-file limit"),
    }
}

/// Logs to stderr as structured lines; RUST_LOG or CARBIDE_LOG picks the level (default info).
pub fn init_logging() {
    let filter = std::env::var("CARBIDE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // colour codes only on a terminal: a log file or journald gets plain text
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
