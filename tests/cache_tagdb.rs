//! ENABLE_TAGS: a cache registers the series it creates with graphite-web's tag database.
//!
//! 1. Differential: Debian's carbon-cache and `carbide cache` get the same tagged and plain lines
//!    with GRAPHITE_URL pointed at an HTTP listener in this test; both must POST the same set of
//!    series names to `/tags/tagMultiSeries` (carbon sends multipart form fields, we send
//!    urlencoded ones: graphite-web reads both).
//! 2. The real graphite-web 1.1.8 as the tag database: after `carbide cache` creates a tagged
//!    series, graphite-web's `/tags/findSeries` finds it.
//! 3. `carbide web` as the tag database, as an operator swaps both programs: the standalone cache
//!    registers the series with it, and `seriesByTag` renders the point, also after a restart of
//!    the web (the registration is kept in the tree's tag log: `_tagged/` paths are hashes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;
#[path = "../crates/web/tests/common/graphite_web.rs"]
mod graphite_web;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_common::{Kind, Ports, Server, free_port, now, send, wait_until, write_conf};

/// An HTTP listener that answers 200 to everything and keeps the `path` fields POSTed to
/// `/tags/tagMultiSeries`.
fn tag_sink() -> (u16, Arc<Mutex<BTreeSet<String>>>) {
    let listener = carbide_testkit::listen();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let seen = seen.clone();
            std::thread::spawn(move || serve_one(conn, &seen));
        }
    });
    (port, got)
}

fn serve_one(conn: TcpStream, seen: &Mutex<BTreeSet<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0usize;
    let mut content_type = String::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        match k.to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap(),
            "content-type" => content_type = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    assert!(
        request_line.starts_with("POST /tags/tagMultiSeries "),
        "{request_line}"
    );
    let paths = if content_type.starts_with("multipart/form-data") {
        // urllib3's fields: `name="path"` then a blank line then the value.
        body.split("name=\"path\"\r\n\r\n")
            .skip(1)
            .map(|p| p.split("\r\n").next().unwrap().to_string())
            .collect::<Vec<_>>()
    } else {
        body.split('&')
            .map(|f| decode(f.strip_prefix("path=").unwrap()))
            .collect()
    };
    seen.lock().unwrap().extend(paths);
    let mut conn = conn;
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]")
        .unwrap();
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

const LINES: &str =
    "disk.used;server=a;dc=x 1 T\nplain.metric 2 T\ncpu;host=b 3 T\ndisk.used;dc=x;server=a 4 U\n";

fn tags_conf(url: &str) -> String {
    format!("ENABLE_TAGS = True\nGRAPHITE_URL = {url}\nTAG_BATCH_SIZE = 2\n")
}

#[test]
fn carbide_posts_the_series_carbon_posts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = now() - 60;
    let lines = LINES
        .replace('T', &t.to_string())
        .replace('U', &(t + 1).to_string());
    let mut posted = Vec::new();
    for kind in [Kind::Carbon, Kind::Carbide] {
        let (sink, got) = tag_sink();
        let dir = tmp.path().join(format!("{kind:?}"));
        let ports = Ports::free();
        write_conf(&dir, ports, &tags_conf(&format!("http://127.0.0.1:{sink}")));
        let s = Server::start_with(kind, &dir, ports, &[]);
        send(s.ports.line, lines.as_bytes());
        wait_until(
            Duration::from_secs(60),
            &format!("{kind:?} tags 3 series"),
            || got.lock().unwrap().len() >= 3,
        );
        // A moment for anything else it would post.
        std::thread::sleep(Duration::from_secs(2));
        posted.push(got.lock().unwrap().clone());
        drop(s);
    }
    let want: BTreeSet<String> = ["cpu;host=b", "disk.used;dc=x;server=a", "plain.metric"]
        .map(String::from)
        .into();
    assert_eq!(posted[0], want, "carbon-cache");
    assert_eq!(posted[1], posted[0], "carbide cache against carbon-cache");
}

#[test]
fn graphite_web_finds_what_carbide_created() {
    let tmp = tempfile::tempdir().unwrap();
    let web_port = free_port();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, &tags_conf(&format!("http://127.0.0.1:{web_port}/")));
    let _gw = graphite_web::start(&tmp.path().join("gw"), &dir.join("whisper"), web_port, "", 1);
    let s = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    let t = now() - 60;
    send(
        s.ports.line,
        format!("app.latency;dc=x;server=web1 5 {t}\n").as_bytes(),
    );
    let find = "/tags/findSeries?expr=server%3Dweb1";
    wait_until(Duration::from_secs(60), "graphite-web knows the series", || {
        http_get(web_port, find).contains("app.latency;dc=x;server=web1")
    });
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&http_get(web_port, find)).unwrap(),
        serde_json::json!(["app.latency;dc=x;server=web1"])
    );
}

/// `carbide web` on `whisper` at `port`, killed when dropped.
struct Web(std::process::Child);

impl Web {
    fn start(whisper: &std::path::Path, port: u16) -> Web {
        let child = std::process::Command::new(cache_common::carbide_exe())
            .args(["web", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(whisper)
            .env("CARBIDE_LOG", "warn")
            .spawn()
            .unwrap();
        let mut web = Web(child);
        wait_until(Duration::from_secs(30), "carbide web answers", || {
            // What answers must be this web, not something else given the port meanwhile.
            if let Some(st) = web.0.try_wait().unwrap() {
                panic!("carbide web on port {port} exited with {st}");
            }
            !http_get(port, "/version").is_empty()
        });
        web
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn carbide_web_is_the_tag_database_of_a_standalone_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let web_port = free_port();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, &tags_conf(&format!("http://127.0.0.1:{web_port}")));
    let whisper = dir.join("whisper");
    let web = Web::start(&whisper, web_port);
    let s = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    let t = now() - 60;
    send(
        s.ports.line,
        format!("app.latency;dc=x;server=web1 5 {t}\n").as_bytes(),
    );
    let render = format!(
        "/render?target=seriesByTag(%27server%3Dweb1%27)&from={}&until={}&format=json",
        t - 10,
        t + 10
    );
    let points = |port: u16| -> Vec<f64> {
        let body = http_get(port, &render);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["target"] == "app.latency;dc=x;server=web1")
            .flat_map(|s| s["datapoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p[0].as_f64())
            .collect()
    };
    wait_until(Duration::from_secs(60), "seriesByTag renders the point", || {
        points(web_port) == vec![5.0]
    });
    drop(web);
    let _web = Web::start(&whisper, web_port);
    // Known at once from the tag log (the file's name is hashed).
    assert_eq!(
        points(web_port),
        vec![5.0],
        "after the web restarted: {}\ntag log: {:?}\nfiles: {:?}",
        http_get(web_port, &render),
        std::fs::read_to_string(whisper.join(".carbide-tags.log")),
        cache_common::files(&whisper)
    );
}

fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}
