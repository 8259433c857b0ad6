//! `carbide web`: graphite-web's HTTP API over an existing whisper tree, for Grafana and any other
//! graphite-web client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use carbide_storage::Storage;
use carbide_web::WebState;

/// Options of `carbide web`.
#[derive(Debug, clap::Args)]
pub struct WebArgs {
    /// The whisper tree to serve (graphite-web's WHISPER_DIR).
    #[arg(long, default_value = "/var/lib/graphite/whisper")]
    data_dir: PathBuf,
    /// Address to listen on; loopback unless you choose otherwise.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Default time zone of from/until and csv output (graphite-web's TIME_ZONE).
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// Most series one path expression may match before the request is refused.
    #[arg(long, default_value_t = 10_000)]
    max_series: usize,
    /// Most points one request may fetch before it is refused.
    #[arg(long, default_value_t = 50_000_000)]
    max_points: usize,
    /// Seconds a render may run before it is abandoned with HTTP 503.
    #[arg(long, default_value_t = 60.0)]
    max_time: f64,
    /// Carbon caches to ask for points not yet on disk, `host:port[:instance],...` (their
    /// carbonlink ports; graphite-web's CARBONLINK_HOSTS), picked per metric on a carbon_ch ring.
    #[arg(long, value_name = "HOSTS")]
    carbonlink_hosts: Option<String>,
    /// Seconds one carbonlink query may take (graphite-web's CARBONLINK_TIMEOUT).
    #[arg(long, default_value_t = 1.0)]
    carbonlink_timeout: f64,
    /// Other graphite-web or carbide web instances, `host:port,...`, whose metrics this one also
    /// finds and renders (graphite-web's CLUSTER_SERVERS; they are asked with local=1).
    #[arg(long, value_name = "SERVERS")]
    cluster_servers: Option<String>,
    /// Seconds one request to a cluster server may take.
    #[arg(long, default_value_t = 6.0)]
    cluster_timeout: f64,
}

/// Runs the web role until SIGINT or SIGTERM.
pub fn run(args: WebArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carbide web: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: WebArgs) -> anyhow::Result<()> {
    let mut storage = Storage::open(&args.data_dir)?;
    if let Some(hosts) = &args.carbonlink_hosts {
        let hosts = carbide_web::carbonlink::parse_hosts(hosts)?;
        if !hosts.is_empty() {
            let timeout = std::time::Duration::try_from_secs_f64(args.carbonlink_timeout)
                .map_err(|e| anyhow::anyhow!("--carbonlink-timeout {}: {e}", args.carbonlink_timeout))?;
            tracing::info!(
                hosts = hosts.len(),
                "querying carbonlink hosts for unwritten points"
            );
            let pool = carbide_web::carbonlink::CarbonlinkPool::new(hosts, timeout)?;
            storage = storage.with_hot_points(Arc::new(pool));
        }
    }
    tracing::info!(metrics = storage.index().len(), dir = %args.data_dir.display(), "indexed whisper tree");
    let cluster = match &args.cluster_servers {
        None => None,
        Some(list) => {
            let timeout = std::time::Duration::try_from_secs_f64(args.cluster_timeout)
                .map_err(|e| anyhow::anyhow!("--cluster-timeout {}: {e}", args.cluster_timeout))?;
            let c = carbide_web::cluster::ClusterServers::parse(list, timeout)?;
            (!c.is_empty()).then(|| Arc::new(c))
        }
    };
    let state = Arc::new(WebState {
        storage: Arc::new(storage),
        cluster,
        time_zone: args.tz,
        limits: carbide_render::Limits {
            max_series: args.max_series,
            max_points: args.max_points,
            max_time: std::time::Duration::try_from_secs_f64(args.max_time)
                .map_err(|e| anyhow::anyhow!("--max-time {}: {e}", args.max_time))?,
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let shutdown = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        carbide_web::run(listener, state, shutdown).await?;
        Ok(())
    })
}
