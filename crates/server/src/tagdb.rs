//! Registering series with graphite-web's tag database, as carbon-cache does with `ENABLE_TAGS`.
//!
//! carbon's writer queues every metric whose file it creates, and one write in every
//! `TAG_UPDATE_INTERVAL` (a count of writes over all metrics, not seconds), on two bounded queues
//! (`TAG_QUEUE_SIZE`; a full queue drops the name). A thread takes up to `TAG_BATCH_SIZE` names,
//! creates first, and POSTs them as `path` fields to `GRAPHITE_URL/tags/tagMultiSeries`; when
//! both queues are empty it sleeps a second. A failed request loses that batch, logged
//! (`carbon/writer.py` `TagQueue`, `writeTagsForever`; `carbon/database.py` `tag`). Without this,
//! graphite-web's `seriesByTag` never sees a series a carbide cache created.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// carbon's `httpRequest` timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The tag database settings from carbon.conf.
#[derive(Debug, Clone)]
pub struct TagDbOptions {
    /// GRAPHITE_URL: `http://host[:port][/prefix]`.
    pub url: String,
    /// TAG_BATCH_SIZE: names per request.
    pub batch_size: usize,
    /// TAG_QUEUE_SIZE: each queue's bound (0 is unbounded, as Python's `Queue(0)`).
    pub queue_size: usize,
    /// TAG_UPDATE_INTERVAL: one write in this many is queued for an update.
    pub update_interval: u64,
}

/// Why a tag request failed.
#[derive(Debug, thiserror::Error)]
pub enum TagDbError {
    /// GRAPHITE_URL is not a plain `http://` URL.
    #[error("GRAPHITE_URL {0:?} is not http://host[:port][/path] (https is not supported)")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// graphite-web answered something else than 200.
    #[error("graphite-web answered {0}")]
    Status(String),
}

/// Where requests go, parsed once from GRAPHITE_URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    authority: String,
    /// The `Host` header.
    host: String,
    /// The request path: GRAPHITE_URL's path plus `/tags/tagMultiSeries`.
    path: String,
}

impl Endpoint {
    /// Parses GRAPHITE_URL.
    pub fn parse(url: &str) -> Result<Endpoint, TagDbError> {
        let bad = || TagDbError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Endpoint {
            authority: with_port,
            host: authority.to_string(),
            path: format!("{prefix}/tags/tagMultiSeries"),
        })
    }

    /// POSTs `paths` as form fields and waits for graphite-web's 200.
    pub fn post(&self, paths: &[String]) -> Result<(), TagDbError> {
        let body = form_body(paths);
        let addr = self
            .authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| TagDbError::Url(self.authority.clone()))?;
        let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.set_write_timeout(Some(TIMEOUT))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            body.len()
        );
        conn.write_all(head.as_bytes())?;
        conn.write_all(body.as_bytes())?;
        // Only the status line matters; the reply is read up to its end so the server is not
        // cut off mid-write, but no further than a few KiB.
        let mut reply = Vec::new();
        conn.take(16 * 1024).read_to_end(&mut reply)?;
        let status = String::from_utf8_lossy(&reply);
        let line = status.lines().next().unwrap_or("");
        if line.split_whitespace().nth(1) == Some("200") {
            Ok(())
        } else {
            Err(TagDbError::Status(line.chars().take(200).collect()))
        }
    }
}

/// `path=a&path=b`, form-encoded.
fn form_body(paths: &[String]) -> String {
    let mut out = String::new();
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str("path=");
        for b in p.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    out
}

/// carbon's `TagQueue`: names of created metrics, and of one write in `update_interval`.
#[derive(Debug)]
pub struct TagQueue {
    adds: Mutex<VecDeque<String>>,
    updates: Mutex<VecDeque<String>>,
    bound: usize,
    update_interval: u64,
    writes: AtomicU64,
    /// Names not queued because a queue was full.
    pub dropped: AtomicU64,
}

impl TagQueue {
    /// Empty queues of at most `bound` names each (0: unbounded).
    pub fn new(bound: usize, update_interval: u64) -> TagQueue {
        TagQueue {
            adds: Mutex::new(VecDeque::new()),
            updates: Mutex::new(VecDeque::new()),
            bound,
            update_interval: update_interval.max(1),
            writes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn push(&self, queue: &Mutex<VecDeque<String>>, metric: &str) {
        let mut q = queue.lock();
        if self.bound > 0 && q.len() >= self.bound {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.push_back(metric.to_string());
    }

    /// A metric's file was created.
    pub fn created(&self, metric: &str) {
        self.push(&self.adds, metric);
    }

    /// A metric was written: queued once every `update_interval` writes (the first included).
    pub fn written(&self, metric: &str) {
        if self
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(self.update_interval)
        {
            self.push(&self.updates, metric);
        }
    }

    /// Up to `max` names, creates first.
    pub fn batch(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        for queue in [&self.adds, &self.updates] {
            let mut q = queue.lock();
            while out.len() < max {
                match q.pop_front() {
                    Some(m) => out.push(m),
                    None => break,
                }
            }
        }
        out
    }
}

/// The thread that posts the queue's batches; it ends once `stop` is set.
pub fn start_poster(
    options: &TagDbOptions,
    queue: Arc<TagQueue>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, TagDbError> {
    let endpoint = Endpoint::parse(&options.url)?;
    let batch_size = options.batch_size.max(1);
    let thread = std::thread::Builder::new()
        .name("tagdb".into())
        .spawn(move || {
            let mut last_complaint: Option<Instant> = None;
            let mut failed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch = queue.batch(batch_size);
                if batch.is_empty() {
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                if let Err(e) = endpoint.post(&batch) {
                    failed += batch.len() as u64;
                    // carbon logs every failure; at most one line a minute here, with the count.
                    if last_complaint.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        last_complaint = Some(Instant::now());
                        tracing::warn!(error = %e, series_lost = failed, url = %endpoint.path, "tagging series in graphite-web failed");
                    }
                }
            }
        })?;
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_carbon_joins_them() {
        let e = Endpoint::parse("http://127.0.0.1:80").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("127.0.0.1:80", "/tags/tagMultiSeries")
        );
        let e = Endpoint::parse("http://graphite.example/graphite/").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.host.as_str(), e.path.as_str()),
            (
                "graphite.example:80",
                "graphite.example",
                "/graphite/tags/tagMultiSeries"
            )
        );
        for bad in ["https://x", "ftp://x", "http://", "127.0.0.1:80", "http://u@h/"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn form_body_escapes_tag_syntax() {
        let body = form_body(&["disk.used;dc=x y".into(), "a.b".into()]);
        assert_eq!(body, "path=disk.used%3Bdc%3Dx+y&path=a.b");
    }

    #[test]
    fn queue_takes_creates_first_every_nth_write_and_drops_when_full() {
        let q = TagQueue::new(2, 3);
        for m in ["w1", "w2", "w3", "w4"] {
            q.written(m);
        }
        q.created("c1");
        q.created("c2");
        q.created("c3"); // over the bound
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(q.batch(3), vec!["c1", "c2", "w1"]);
        assert_eq!(q.batch(10), vec!["w4"]);
        assert!(q.batch(10).is_empty());
    }
}
