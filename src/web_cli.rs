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
    let storage = Storage::open(&args.data_dir)?;
    tracing::info!(metrics = storage.index().len(), dir = %args.data_dir.display(), "indexed whisper tree");
    let state = Arc::new(WebState {
        storage: Arc::new(storage),
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
