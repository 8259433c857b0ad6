//! `carbide statsd`: etsy statsd 0.9 (UDP/TCP 8125, console 8126, flush to graphite), or with
//! `--proxy` a StatsRelay-compatible consistent-hashing proxy in front of several statsds.
//!
//! Settings come from an etsy-style JSON config (`--config statsd.json`, etsy's key names), then
//! the flags, which win. Everything binds loopback unless told otherwise.
//!
//! SIGTERM or SIGINT stops the receivers, lets them hand over what their sockets already hold,
//! then makes one final flush to the graphite destinations and exits: a packet accepted before
//! the signal is never lost (etsy statsd loses everything since its last flush). The proxy
//! forwards what its sockets hold, then exits.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use carbide_statsd_server::{GraphiteProtocol, ProxyOptions, ServerOptions, StatsdProxy, StatsdServer};

/// `carbide statsd`.
#[derive(Debug, clap::Args)]
pub struct StatsdArgs {
    /// etsy statsd config as JSON (flushInterval, percentThreshold, graphiteHost, port, …).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address the UDP and TCP receivers bind (etsy's `address`).
    #[arg(long)]
    address: Option<IpAddr>,
    /// UDP and TCP port (etsy's `port`, 8125).
    #[arg(long)]
    port: Option<u16>,
    /// Management console address (etsy's `mgmt_address`).
    #[arg(long)]
    mgmt_address: Option<IpAddr>,
    /// Management console port (etsy's `mgmt_port`, 8126).
    #[arg(long)]
    mgmt_port: Option<u16>,
    /// Graphite destinations, `host:port[,host:port…]`; every flush goes to each.
    #[arg(long, value_delimiter = ',')]
    graphite: Vec<String>,
    /// Wire format to the graphite destinations: text (port 2003) or pickle (port 2004), etsy's
    /// `graphiteProtocol`.
    #[arg(long, value_parser = parse_protocol)]
    graphite_protocol: Option<GraphiteProtocol>,
    /// Milliseconds between flushes (etsy's `flushInterval`).
    #[arg(long)]
    flush_interval: Option<u64>,
    /// UDP receiver threads sharing the port (SO_REUSEPORT).
    #[arg(long)]
    receivers: Option<usize>,
    /// No TCP receiver.
    #[arg(long)]
    no_tcp: bool,
    /// Proxy mode: backends `host:port,host:port…` in ring order (StatsRelay).
    #[arg(long, value_delimiter = ',')]
    proxy: Vec<String>,
    /// Proxy mode: largest packet sent to a backend (StatsRelay's -packetlen).
    #[arg(long, default_value_t = 1400)]
    packet_len: usize,
    /// Proxy mode: prefix of its own statsProcessed counter (StatsRelay's -prefix).
    #[arg(long, default_value = "statsrelay")]
    prefix: String,
    /// Proxy mode: prefix added to every key (StatsRelay's -metrics-prefix).
    #[arg(long)]
    metrics_prefix: Option<String>,
}

fn parse_protocol(s: &str) -> Result<GraphiteProtocol, String> {
    s.parse()
}

fn with_ip(addr: Option<SocketAddr>, ip: Option<IpAddr>, port: Option<u16>) -> Option<SocketAddr> {
    addr.map(|mut a| {
        if let Some(ip) = ip {
            a.set_ip(ip);
        }
        if let Some(p) = port {
            a.set_port(p);
        }
        a
    })
}

fn options(args: &StatsdArgs) -> Result<ServerOptions> {
    let mut o = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            ServerOptions::from_json(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => ServerOptions::default(),
    };
    o.udp = with_ip(o.udp, args.address, args.port);
    o.tcp = if args.no_tcp {
        None
    } else {
        with_ip(o.tcp, args.address, args.port)
    };
    o.mgmt = with_ip(o.mgmt, args.mgmt_address, args.mgmt_port);
    if !args.graphite.is_empty() {
        o.graphite = args.graphite.clone();
    }
    if let Some(p) = args.graphite_protocol {
        o.graphite_protocol = p;
    }
    if let Some(ms) = args.flush_interval {
        o.config.flush_interval = ms;
        o.raw.insert("flushInterval".into(), ms.into());
    }
    if let Some(n) = args.receivers {
        o.receivers = n.max(1);
    }
    o.config.validate()?;
    Ok(o)
}

/// Waits for SIGTERM or SIGINT. The handlers are installed before this returns the waiter, so a
/// signal sent once the banner is printed is never the default (killing) action.
fn signal_waiter() -> Result<impl FnOnce()> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal runtime")?;
    let (mut term, mut int) = {
        let _guard = rt.enter();
        (
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        )
    };
    Ok(move || {
        rt.block_on(async {
            tokio::select! {
                _ = term.recv() => tracing::info!("statsd: SIGTERM"),
                _ = int.recv() => tracing::info!("statsd: SIGINT"),
            }
        })
    })
}

fn run_inner(args: StatsdArgs) -> Result<()> {
    let o = options(&args)?;
    let wait_for_signal = signal_waiter()?;
    if !args.proxy.is_empty() {
        let listen = o.udp.context("proxy mode needs a UDP address")?;
        let proxy = StatsdProxy::start(ProxyOptions {
            listen,
            backends: args.proxy.clone(),
            packet_len: args.packet_len,
            prefix: args.prefix.clone(),
            metrics_prefix: args.metrics_prefix.clone(),
            receivers: o.receivers,
            recv_buffer: o.recv_buffer,
        })?;
        println!(
            "statsd proxy listening udp={} backends={}",
            proxy.addr(),
            args.proxy.join(",")
        );
        tracing::info!(addr = %proxy.addr(), "statsd proxy is up");
        wait_for_signal();
        // Dropping it stops the receivers after they forwarded what their sockets hold.
        drop(proxy);
        return Ok(());
    }
    let server = StatsdServer::start(o, None)?;
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
    println!(
        "statsd listening udp={} tcp={} mgmt={}",
        show(server.udp_addr()),
        show(server.tcp_addr()),
        show(server.mgmt_addr())
    );
    tracing::info!("statsd server is up");
    wait_for_signal();
    server.shutdown_with_final_flush();
    Ok(())
}

/// Runs the server (or proxy) until SIGTERM or SIGINT.
pub fn run(args: StatsdArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carbide statsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
