//! `carbide`: the one binary whose subcommands are Graphite's roles.
//!
//! Each role lives in its own module and exposes a clap subcommand type and a `run` function; this file
//! only parses the command line and hands over, so roles can be added without touching one another.
//!
//! # Layout
//! - [`whisper_cli`]: `carbide whisper …`, the whisper-*.py scripts.
//! - [`roles`]: `carbide cache`.
//! - [`serve`]: `carbide serve`, the cache, web API and StatsD in one process.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod relay_cli;
mod roles;
mod serve;
mod statsd_cli;
mod web_cli;
mod whisper_cli;

/// The Graphite metrics stack as one binary.
#[derive(Debug, Parser)]
#[command(name = "carbide", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The roles and tool groups of the binary.
#[derive(Debug, Subcommand)]
enum Command {
    /// A single-node Graphite on embedded defaults: cache, writers, carbonlink, admin, web API, StatsD.
    Serve(serve::ServeArgs),
    /// carbon-cache: ingest (line, pickle), cache, persist to whisper, carbonlink, from carbon.conf.
    Cache(roles::CacheArgs),
    /// carbon-relay: route by relay rules or consistent hashing, with bounded, disk-spilling queues.
    Relay(relay_cli::RelayArgs),
    /// carbon-aggregator: buffer and aggregate by aggregation-rules.conf, forward the results.
    Aggregator(relay_cli::RelayArgs),
    /// graphite-web: the HTTP render/find API over a whisper tree (Grafana's Graphite datasource).
    Web(web_cli::WebArgs),
    /// Whisper file tools, argument-compatible with the whisper-*.py scripts.
    #[command(subcommand)]
    Whisper(whisper_cli::WhisperCommand),
    /// etsy statsd (UDP/TCP 8125, console 8126, flush to graphite), or a StatsRelay proxy.
    Statsd(statsd_cli::StatsdArgs),
}

/// optparse's and argparse's habits, for the script-compatible tools: a long option may be shortened to
/// any unambiguous prefix, and giving an option twice keeps the last value instead of failing.
fn script_style(cmd: clap::Command) -> clap::Command {
    cmd.infer_long_args(true)
        .args_override_self(true)
        .mut_subcommands(script_style)
}

fn main() -> ExitCode {
    let matches = Cli::command()
        .mut_subcommand("whisper", script_style)
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Whisper(cmd) => whisper_cli::run(cmd),
        Command::Statsd(args) => {
            roles::init_daemon();
            statsd_cli::run(args)
        }
        Command::Serve(args) => {
            roles::init_daemon();
            serve::run(args)
        }
        Command::Relay(args) => {
            roles::init_daemon();
            relay_cli::relay(args)
        }
        Command::Aggregator(args) => {
            roles::init_daemon();
            relay_cli::aggregator(args)
        }
        Command::Web(args) => {
            roles::init_daemon();
            web_cli::run(args)
        }
        Command::Cache(args) => {
            roles::init_daemon();
            roles::cache(args)
        }
    }
}
