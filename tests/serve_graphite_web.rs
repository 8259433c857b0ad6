//! `carbide serve`'s in-process read of the cache against graphite-web 1.1.8 reading the same
//! whisper files and the same cache over carbonlink (`CARBONLINK_HOSTS` = serve's carbonlink
//! port): for points that are only in the cache (the writers are throttled to a standstill), the
//! two /render answers must be equal, in the raw archive and in coarser ones where graphite-web
//! consolidates the cached points with the file's aggregation method (`merge_with_cache`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;
#[path = "../crates/web/tests/common/graphite_web.rs"]
mod graphite_web;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cache_common::{carbide_exe, free_port, now, send, wait_until, wsp_path};
use carbide_core::{AggregationMethod, Retention};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split_whitespace().nth(1)?.parse().ok()?, body.to_string()))
}

/// graphite-web 1.1.8 under gunicorn over `whisper`, asking carbonlink on `carbonlink`.
fn graphite_web(dir: &Path, whisper: &Path, port: u16, carbonlink: u16) -> graphite_web::Gunicorn {
    let carbonlink = format!("CARBONLINK_HOSTS = ['127.0.0.1:{carbonlink}:a']");
    graphite_web::start(dir, whisper, port, &carbonlink, 1)
}

/// Numbers equal, or within graphite-web's float rounding.
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn serve_merges_the_cache_as_graphite_web_merges_carbonlink() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let t0 = now() - now() % 60;
    // Files with history (serve's own layout), one per aggregation method.
    let layout = Retention::parse_list("10s:6h,1m:7d,10m:5y").unwrap();
    let history: Vec<(i64, f64)> = (30..600).map(|i| (t0 - 10 * i, (i % 17) as f64)).collect();
    for (name, method) in [
        ("gw.sum", AggregationMethod::Sum),
        ("gw.avg", AggregationMethod::Average),
        ("gw.max", AggregationMethod::Max),
        ("gw.last", AggregationMethod::Last),
    ] {
        let path = wsp_path(&data, name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let opts = carbide_whisper::file::CreateOptions {
            aggregation: method,
            ..Default::default()
        };
        carbide_whisper::file::create(&path, &layout, &opts).unwrap();
        carbide_whisper::file::update_many(&path, &history, t0, false).unwrap();
    }
    let (line, carbonlink, web, gw) = (free_port(), free_port(), free_port(), free_port());
    let serve = Command::new(carbide_exe())
        .arg("serve")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--line-port={line}"))
        .arg(format!("--carbonlink-port={carbonlink}"))
        .arg(format!("--web-port={web}"))
        .args(["--pickle-port=0", "--admin-port=0", "--statsd-port=0"])
        .args([
            "--metric-interval=0",
            "--writers=1",
            "--max-updates-per-second=0.0001",
        ])
        .env("CARBIDE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _serve = Kill(serve);
    wait_until(Duration::from_secs(30), "carbide serve listening", || {
        TcpStream::connect(("127.0.0.1", web)).is_ok() && TcpStream::connect(("127.0.0.1", line)).is_ok()
    });
    // The writers' one update token goes to a primer; after that nothing is written.
    send(line, format!("gw.primer 1 {}\n", t0 - 600).as_bytes());
    wait_until(Duration::from_secs(30), "the primer written", || {
        wsp_path(&data, "gw.primer").is_file()
    });
    // The last five minutes, only in the cache: several points per 10 s slot (the last wins).
    let mut lines = String::new();
    for (k, name) in ["gw.sum", "gw.avg", "gw.max", "gw.last"].iter().enumerate() {
        for i in 0..90 {
            let ts = t0 - 300 + 3 * i;
            lines.push_str(&format!("{name} {} {ts}\n", (i * (k as i64 + 2)) % 23));
        }
    }
    send(line, lines.as_bytes());
    // Received by the cache: carbide's web shows the newest point; the file does not have it.
    wait_until(Duration::from_secs(10), "the points in the cache", || {
        let path = format!("/render?target=gw.last&from={}&until={t0}&format=json", t0 - 60);
        http(web, &path).is_some_and(|(s, b)| {
            let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
            s == 200
                && v[0]["datapoints"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|p| !p[0].is_null()))
        })
    });
    let on_disk = carbide_whisper::file::fetch(&wsp_path(&data, "gw.sum"), t0 - 300, Some(t0), now(), None)
        .unwrap()
        .unwrap();
    assert!(
        on_disk.values.iter().all(Option::is_none),
        "the test points reached the file: the throttle did not hold them in the cache"
    );

    let _gw = graphite_web(&tmp.path().join("gw"), &data, gw, carbonlink);
    let until = t0 - 1;
    let mut failures = Vec::new();
    let mut compared = 0;
    for target in ["gw.sum", "gw.avg", "gw.max", "gw.last", "sumSeries(gw.*)"] {
        // The 10 s archive, then the 1 min one (hot points consolidated), then the 10 min one.
        for from in [t0 - 1800, t0 - 8 * 3600, t0 - 8 * 86400] {
            let path = format!("/render?target={target}&from={from}&until={until}&format=json");
            let (gs, gb) = http(gw, &path).expect("graphite-web answers");
            let (os, ob) = http(web, &path).expect("carbide answers");
            assert_eq!((gs, os), (200, 200), "{path}\n gw: {gb:.300}\n ours: {ob:.300}");
            let (g, o): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&gb).unwrap(),
                serde_json::from_str(&ob).unwrap(),
            );
            if !close(&g, &o) {
                failures.push(format!("{path}:\n gw:   {g:.2000}\n ours: {o:.2000}"));
            }
            compared += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
