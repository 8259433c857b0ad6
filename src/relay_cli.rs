//! `carbide relay` (carbon-relay.py) and `carbide aggregator` (carbon-aggregator.py), each from an
//! existing carbon.conf and the rule files beside it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use carbide_config::carbon_conf::RelayMethod;
use carbide_config::{
    CarbonSettings, ConfigEnv, parse_aggregation_rules, parse_carbon_conf, parse_relay_rules,
};
use carbide_relay::pipeline::{Pipeline, RulePaths};
use carbide_relay::router::Router;
use carbide_relay::service::{Options, Role, Running, start};

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
    }
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

async fn run_until_signalled(
    settings: CarbonSettings,
    router: Router,
    role: Role,
    opts: Options,
    grace: Duration,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let what = match role {
        Role::Relay => Reload::Router,
        Role::Aggregator(_) => Reload::Aggregator,
    };
    let running = start(&settings, router, role, opts).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match reload(&what, &settings, &running) {
                Ok(()) => tracing::info!("SIGHUP: rules re-read and in use"),
                Err(e) => tracing::error!("SIGHUP: {e:#}; keeping the previous rules"),
            },
        }
    }
    tracing::info!("shutting down: receivers closed, emptying queues");
    running.shutdown(grace).await;
    Ok(())
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
        runtime()?.block_on(run_until_signalled(settings, router, Role::Relay, opts, grace))
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
            settings.forward_all,
            settings.max_aggregation_intervals,
        )?;
        let router = Router::from_settings(&settings, None, vec![])?;
        let opts = options(&args, &settings, "aggregator");
        let grace = Duration::from_secs(args.shutdown_timeout);
        runtime()?.block_on(run_until_signalled(
            settings,
            router,
            Role::Aggregator(Arc::new(pipeline)),
            opts,
            grace,
        ))
    })())
}
