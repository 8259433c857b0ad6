//! `carbide`: the one binary whose subcommands are Graphite's roles.
//!
//! Each role lives in its own module and exposes a clap subcommand type and a `run` function; this file
//! only parses the command line and hands over, so roles can be added without touching one another.
//!
//! # Layout
//! - [`whisper_cli`]: `carbide whisper …`, the whisper-*.py scripts.
//! - [`roles`]: `carbide cache`.
//! - [`serve`]: `carbide serve`, the cache, web API and StatsD in one process.

/// jemalloc instead of glibc's malloc. A cache burst allocates held points on the receivers'
/// threads and frees them on the writers'; with glibc that cost 11 % of the CPU in malloc and left
/// ~45 MiB of freed memory resident (RSS 101-105 MiB for 56 MiB of live heap, 5 M-point bench).
/// jemalloc with pages returned at once (below) peaked at 82 MiB and wrote 2.30 M points/s against
/// glibc's 2.17 M at the same CPU (cargo bench --bench cache, quiet machine).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer jemalloc reads once, at its initialisation.
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer targets a `'static`, immutable, NUL-terminated byte string; nothing ever
// writes through it, so sharing it between threads cannot race.
#[allow(unsafe_code)]
unsafe impl Sync for MallocConf {}

/// jemalloc's compiled-in options (its `malloc_conf`, under tikv-jemallocator's `_rjem_` prefix):
/// freed pages go back to the system after 100 ms instead of 10 s, which a burst's peak RSS
/// otherwise counts (123-139 MiB at 5 M points). Not at once: each immediate purge is an
/// madvise whose TLB shootdown interrupts the other core, 6.5 % of all CPU in a cache burst;
/// 100 ms cost 20-25 % less CPU than 0 ms for 11-15 MiB more (80-86 vs 69-71 MiB, cache bench).
/// `_RJEM_MALLOC_CONF` in the environment still overrides it.
// SAFETY: jemalloc declares `extern const char *malloc_conf`; this exports one pointer-sized
// static, `#[repr(transparent)]` over a thin `*const c_char`, pointing at a NUL-terminated string, and
// no other symbol of this program has the name.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: MallocConf = MallocConf(c"dirty_decay_ms:100,muzzy_decay_ms:0".as_ptr());

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
