//! The cache role (carbon-cache, and the core of `carbide serve`), wired from settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use carbide_cache::persist::{CreateSpec, WhisperSettings, plain_path};
use carbide_cache::{
    Cache, CacheConfig, Outcome, PersistError, Persister, StoragePolicy, WhisperPersister, WriterPool,
};
use carbide_config::{AggregationSchemas, StorageSchemas};
use carbide_core::name::NameError;
use parking_lot::Mutex;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::admin::{AdminState, router};
use crate::carbonlink::CarbonlinkState;
use crate::ingest::{Ingest, Lists};
use crate::listeners::{ReceiverLimits, Wire, run_tcp, run_udp};
use crate::selfmetrics::Reporter;
use crate::tagdb::TagQueue;

/// How long replaying a dump waits for the writers to make room in a full cache before it gives
/// up on the rest (which is then kept aside with the dump, not lost).
const REPLAY_ROOM_TIMEOUT: Duration = Duration::from_secs(600);

/// storage-schemas.conf and storage-aggregation.conf as the writers' policy.
pub struct ConfigPolicy {
    /// Schemas, first match wins.
    pub schemas: StorageSchemas,
    /// Aggregation rules, first match wins.
    pub aggregation: AggregationSchemas,
    /// TAG_HASH_FILENAMES.
    pub tag_hash_filenames: bool,
}

impl StoragePolicy for ConfigPolicy {
    fn create_spec(&self, metric: &str) -> Option<CreateSpec> {
        let schema = self.schemas.schema_for(metric);
        let (x_files_factor, aggregation) = self.aggregation.settings_for(metric);
        Some(CreateSpec {
            archives: schema.archives.clone(),
            aggregation,
            x_files_factor,
        })
    }

    fn path_for(&self, root: &Path, metric: &str) -> Result<PathBuf, NameError> {
        if metric.contains(';') {
            // Tagged series live under _tagged/, named by hash (or by the name with dots escaped),
            // so the name's own characters never become path components.
            let rel = carbide_protocol::tags::filesystem_path(metric, self.tag_hash_filenames);
            if rel.split('/').any(|c| c.is_empty() || c == ".." || c == ".") || rel.len() > 4000 {
                return Err(NameError::EmptyComponent);
            }
            if rel.bytes().any(|b| b < 0x20) {
                return Err(NameError::ControlCharacter);
            }
            return Ok(root.join(rel));
        }
        plain_path(root, metric)
    }
}

/// Everything the cache role needs; `carbide cache` builds it from carbon.conf, `carbide serve` from
/// embedded defaults.
pub struct RoleOptions {
    /// LOCAL_DATA_DIR: the whisper tree.
    pub data_dir: PathBuf,
    /// Plaintext TCP listener.
    pub line_tcp: Option<SocketAddr>,
    /// Plaintext UDP listener.
    pub line_udp: Option<SocketAddr>,
    /// Pickle listener.
    pub pickle: Option<SocketAddr>,
    /// Protobuf listener (PROTOBUF_RECEIVER_*; off unless configured, as in carbon).
    pub protobuf: Option<SocketAddr>,
    /// go-carbon's HTTP POST receiver (HTTP_RECEIVER_*; a carbide extension, off by default).
    pub http: Option<SocketAddr>,
    /// Carbonlink listener.
    pub carbonlink: Option<SocketAddr>,
    /// Admin HTTP listener.
    pub admin: Option<SocketAddr>,
    /// Cache size and strategy.
    pub cache: CacheConfig,
    /// Writer threads.
    pub writers: usize,
    /// MAX_UPDATES_PER_SECOND.
    pub max_updates_per_second: Option<f64>,
    /// Whisper creation settings.
    pub whisper: WhisperSettings,
    /// The writers' storage policy.
    pub policy: Arc<dyn StoragePolicy>,
    /// Black- and whitelist.
    pub lists: Lists,
    /// CARBON_METRIC_PREFIX.
    pub metric_prefix: String,
    /// CARBON_METRIC_INTERVAL; `None` disables self-metrics.
    pub metric_interval: Option<Duration>,
    /// `<host>[-<instance>]`.
    pub agent: String,
    /// How long shutdown may spend writing before it dumps the rest.
    pub shutdown_deadline: Duration,
    /// Where the shutdown dump goes.
    pub dump_path: PathBuf,
    /// Client limits.
    pub limits: ReceiverLimits,
    /// Called with a metric's name once its whisper file was created and first written (`serve`
    /// tells its web index, so a new metric is found without a rescan).
    pub on_create: Option<OnCreate>,
    /// What received points pass through before the cache (`serve`'s aggregator); see
    /// [`crate::ingest::Stage`].
    pub stage: Option<Arc<dyn crate::ingest::Stage>>,
    /// ENABLE_TAGS: register created and written series with graphite-web's tag database.
    pub tagdb: Option<crate::tagdb::TagDbOptions>,
}

/// A hook told about each newly created metric.
pub type OnCreate = Arc<dyn Fn(&str) + Send + Sync>;

/// The whisper persister, telling `on_create` and the tag queue about what it writes.
struct Announcing {
    inner: Arc<WhisperPersister>,
    on_create: Option<OnCreate>,
    tags: Option<Arc<TagQueue>>,
}

impl Persister for Announcing {
    fn persist(
        &self,
        metric: &str,
        points: &[carbide_whisper::Point],
        throttled: bool,
    ) -> Result<Outcome, PersistError> {
        let outcome = self.inner.persist(metric, points, throttled)?;
        if let Outcome::Written { created } = outcome {
            if created {
                if let Some(hook) = &self.on_create {
                    hook(metric);
                }
                if let Some(tags) = &self.tags {
                    tags.created(metric);
                }
            }
            if let Some(tags) = &self.tags {
                tags.written(metric);
            }
        }
        Ok(outcome)
    }
}

/// A running cache role.
pub struct CacheRole {
    /// The cache.
    pub cache: Arc<Cache>,
    /// The receivers' sink.
    pub ingest: Arc<Ingest>,
    /// The persister (paths, policy reload).
    pub persister: Arc<WhisperPersister>,
    /// Bound addresses, after port 0 was resolved: line, udp, pickle, carbonlink, admin.
    pub addrs: BoundAddrs,
    admin: Arc<AdminState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    deadline: Duration,
    dump_path: PathBuf,
    /// Ends the tag database poster (carbon stops it with the reactor; queued names are lost).
    tag_stop: Arc<AtomicBool>,
}

/// The addresses the role actually listens on.
#[derive(Debug, Clone, Default)]
pub struct BoundAddrs {
    /// Plaintext TCP.
    pub line_tcp: Option<SocketAddr>,
    /// Plaintext UDP.
    pub line_udp: Option<SocketAddr>,
    /// Pickle.
    pub pickle: Option<SocketAddr>,
    /// Protobuf.
    pub protobuf: Option<SocketAddr>,
    /// HTTP POST receiver.
    pub http: Option<SocketAddr>,
    /// Carbonlink.
    pub carbonlink: Option<SocketAddr>,
    /// Admin HTTP.
    pub admin: Option<SocketAddr>,
}

/// What a stop did.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// Whether the writers emptied the cache before the deadline.
    pub drained: bool,
    /// Points written to the dump file.
    pub dumped: usize,
}

async fn bind(addr: Option<SocketAddr>, what: &str) -> std::io::Result<Option<TcpListener>> {
    match addr {
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen for {what} on {a}: {e}"))),
        None => Ok(None),
    }
}

impl CacheRole {
    /// Replays any dump, binds every listener, starts the writers. Must run inside a tokio runtime.
    pub async fn start(opts: RoleOptions) -> std::io::Result<CacheRole> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let cache = Arc::new(Cache::new(opts.cache.clone()));
        let persister = Arc::new(WhisperPersister::new(
            opts.data_dir.clone(),
            opts.policy.clone(),
            opts.whisper,
        ));
        let tag_stop = Arc::new(AtomicBool::new(false));
        let tags = match &opts.tagdb {
            Some(o) => {
                let queue = Arc::new(TagQueue::new(o.queue_size, o.update_interval));
                crate::tagdb::start_poster(o, queue.clone(), tag_stop.clone())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Some(queue)
            }
            None => None,
        };
        let writes_to: Arc<dyn Persister> = if opts.on_create.is_some() || tags.is_some() {
            Arc::new(Announcing {
                inner: persister.clone(),
                on_create: opts.on_create.clone(),
                tags,
            })
        } else {
            persister.clone()
        };
        let pool = WriterPool::start(
            cache.clone(),
            writes_to,
            opts.writers,
            opts.max_updates_per_second,
        )?;
        // Replayed with the writers running, so a dump bigger than MAX_CACHE_SIZE goes in whole:
        // when the cache is full, the writers write (throttles lifted) until there is room.
        let make_room = |c: &Cache| {
            pool.flush();
            let asked = Instant::now();
            while c.should_pause() {
                if asked.elapsed() > REPLAY_ROOM_TIMEOUT {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            true
        };
        let replayed = crate::dump::replay(&opts.dump_path, &cache, &make_room)?;
        if replayed > 0 {
            tracing::info!(points = replayed, dump = %opts.dump_path.display(), "replayed the shutdown dump");
        }
        let ingest = Arc::new(Ingest::new(cache.clone()).with_stage(opts.stage.clone()));
        ingest.set_lists(opts.lists);
        let space = Arc::new(Notify::new());
        let s = space.clone();
        cache.on_space(move || s.notify_waiters());
        let (tx, rx) = watch::channel(false);
        let admin = Arc::new(AdminState {
            cache: cache.clone(),
            ingest: ingest.clone(),
            pool: Arc::new(Mutex::new(Some(pool))),
            persister: persister.clone(),
        });
        let mut tasks = Vec::new();
        let mut addrs = BoundAddrs::default();

        for (addr, wire, slot) in [
            (opts.line_tcp, Wire::Line, &mut addrs.line_tcp),
            (opts.pickle, Wire::Pickle, &mut addrs.pickle),
            (opts.protobuf, Wire::Protobuf, &mut addrs.protobuf),
        ] {
            if let Some(l) = bind(addr, &format!("{wire:?}")).await? {
                *slot = Some(l.local_addr()?);
                tasks.push(tokio::spawn(run_tcp(
                    l,
                    wire,
                    ingest.clone(),
                    space.clone(),
                    opts.limits,
                    rx.clone(),
                )));
            }
        }
        if let Some(a) = opts.line_udp {
            let sock = UdpSocket::bind(a).await?;
            addrs.line_udp = Some(sock.local_addr()?);
            tasks.push(tokio::spawn(run_udp(sock, ingest.clone(), rx.clone())));
        }
        if let Some(l) = bind(opts.http, "the HTTP receiver").await? {
            addrs.http = Some(l.local_addr()?);
            let st = Arc::new(crate::http_receiver::HttpReceiver {
                ingest: ingest.clone(),
                space: space.clone(),
                max_line: opts.limits.max_line,
                max_body: crate::http_receiver::DEFAULT_MAX_BODY,
            });
            tasks.push(tokio::spawn(crate::http_receiver::run(l, st, rx.clone())));
        }
        if let Some(l) = bind(opts.carbonlink, "carbonlink").await? {
            addrs.carbonlink = Some(l.local_addr()?);
            let st = Arc::new(CarbonlinkState {
                cache: cache.clone(),
                persister: persister.clone(),
            });
            tasks.push(tokio::spawn(crate::carbonlink::run(l, st, rx.clone())));
        }
        if let Some(l) = bind(opts.admin, "admin HTTP").await? {
            addrs.admin = Some(l.local_addr()?);
            let app = router(admin.clone());
            let mut stop = rx.clone();
            tasks.push(tokio::spawn(async move {
                let graceful = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = axum::serve(l, app).with_graceful_shutdown(graceful).await {
                    tracing::error!(error = %e, "admin HTTP server failed");
                }
            }));
        }
        if let Some(every) = opts.metric_interval {
            let (cache, ingest, mut stop) = (cache.clone(), ingest.clone(), rx.clone());
            let mut reporter = Reporter::new(&opts.metric_prefix, &opts.agent);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tick.tick() => {}
                    }
                    let now = crate::ingest::now_f64();
                    for (name, v) in reporter.collect(&cache, &ingest) {
                        // Generated, as carbon's instrumentation: no lists, no aggregation.
                        ingest.store(&name, v, now);
                    }
                }
            }));
        }
        tracing::info!(?addrs, data_dir = %opts.data_dir.display(), "cache role started");
        Ok(CacheRole {
            cache,
            ingest,
            persister,
            addrs,
            admin,
            shutdown: tx,
            tasks,
            deadline: opts.shutdown_deadline,
            dump_path: opts.dump_path,
            tag_stop,
        })
    }

    /// The admin state (for SIGQUIT snapshots).
    pub fn admin(&self) -> &Arc<AdminState> {
        &self.admin
    }

    /// Stops the listeners, lets open connections hand over what they already read, writes for up
    /// to the deadline, and dumps whatever is left for the next start.
    pub async fn stop(self) -> std::io::Result<StopReport> {
        let _ = self.shutdown.send(true);
        self.tag_stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let started = Instant::now();
        while self.ingest.stats.active_connections.load(Ordering::SeqCst) > 0
            && started.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(stage) = self.ingest.stage() {
            stage.finish(&self.ingest);
        }
        let pool = self.admin.pool.lock().take();
        let deadline = self.deadline;
        let drained = match pool {
            Some(pool) => tokio::task::spawn_blocking(move || pool.shutdown(deadline))
                .await
                .unwrap_or(false),
            None => self.cache.is_empty(),
        };
        let rest = self.cache.drain_pending();
        let dumped = if rest.is_empty() {
            0
        } else {
            crate::dump::write(&self.dump_path, &rest)?
        };
        if dumped > 0 {
            tracing::warn!(points = dumped, dump = %self.dump_path.display(), "shutdown deadline reached; the rest is dumped and will be replayed at the next start");
        }
        Ok(StopReport { drained, dumped })
    }
}
