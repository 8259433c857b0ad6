//! CLUSTER_SERVERS, differentially: a graphite-web and a carbide web over the same local tree B
//! federate to the same tree A, graphite-web through carbide (so carbide serves graphite-web's
//! remote finder and reader), carbide through graphite-web (so carbide's client reads
//! graphite-web's pickles). Both fronts must find and render the same: A's metrics, B's, and a
//! series in both trees with gaps in B's copy, merged as `_merge_results` merges it in
//! graphite-web's finder order (remote first); tagged series of both trees through seriesByTag;
//! tag autocompletion; the intervals finds report for a leaf both trees have (graphite-web's `_merge_leaf_nodes`);
//! and, through cluster servers that record what they are asked, the find parameters each front
//! sends (`local=1`, `query`, `from`, `until`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carbide_core::Retention;
use common::*;

#[test]
fn cluster_servers_find_and_render_as_graphite_web_does() {
    // Tree A behind graphite-web (s.gw) and carbide (s.ours), with tagged series.
    let s = servers_with(|a| {
        write_tagged(a, "cpu.load;dc=east;host=web1", &|i| i % 7 != 0);
        write_tagged(a, "cpu.load;dc=west;host=web3", &|_| true);
    });
    // Tree B: a metric of its own and a gappy copy of one of A's.
    let b = s.dir.path().join("b");
    let r = Retention::parse_list("60:720,300:600").unwrap();
    write_series(&b, "remote.only", &r, &[(NOW - 120, 1.0), (NOW - 60, 2.0)]);
    let gappy: Vec<_> = (1..=200)
        .filter(|i| i % 3 == 0)
        .map(|i| (NOW - i * 60, 1000.0 + i as f64))
        .collect();
    write_series(&b, "servers.web1.requests", &r, &gappy);
    write_series(&b, "servers.web9.cpu.user", &r, &[(NOW - 60, 5.0)]);
    // A copy of one of A's metrics that keeps far more history (2000 h against A's 50 h), so
    // which copies a find merges shows in the intervals it reports.
    let long = Retention::parse_list("60:720,300:600,3600:2000").unwrap();
    write_series(&b, "servers.web3.requests", &long, &[(NOW - 60, 7.0)]);
    // Tagged series: a gappy copy of one of A's, and one of B's own.
    write_tagged(&b, "cpu.load;dc=east;host=web1", &|i| i % 3 == 0);
    write_tagged(&b, "cpu.load;dc=south;host=b1", &|_| true);
    // Cluster servers that answer nothing and record what each front asks them.
    let (rec_gw, asked_gw) = recorder();
    let (rec_ours, asked_ours) = recorder();

    let front_gw_port = free_port();
    let _front_gw = graphite_web::start(
        &s.dir.path().join("front-gw"),
        &b,
        front_gw_port,
        // Without the worker pool graphite-web fetches finder by finder, local first, and merges
        // in that order, as carbide does. With it (the default), `_merge_results` takes answers
        // in the order they complete, so which copy of a gappy series wins varies run to run:
        // graphite-web itself is nondeterministic there, and the comparison flaked on it.
        &format!(
            "CLUSTER_SERVERS = ['127.0.0.1:{}', '127.0.0.1:{rec_gw}']\nUSE_WORKER_POOL = False",
            s.ours
        ),
        1,
    );
    let cluster = carbide_web::cluster::ClusterServers::parse(
        &format!("127.0.0.1:{},127.0.0.1:{rec_ours}", s.gw),
        Duration::from_secs(30),
    )
    .unwrap();
    let front_ours = start_ours(&b, "UTC", Some(Arc::new(cluster)));

    // Each graphite-web (and carbide) learns its own tree's tagged series.
    let tagged = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("path={}", enc(n)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let a_tags = tagged(&["cpu.load;dc=east;host=web1", "cpu.load;dc=west;host=web3"]);
    let b_tags = tagged(&["cpu.load;dc=east;host=web1", "cpu.load;dc=south;host=b1"]);
    for (port, form) in [
        (s.gw, &a_tags),
        (s.ours, &a_tags),
        (front_gw_port, &b_tags),
        (front_ours, &b_tags),
    ] {
        let (status, body) = http(port, "POST", "/tags/tagMultiSeries", Some(form)).unwrap();
        assert_eq!(status, 200, "tagMultiSeries on {port}: {body}");
    }
    let mut failures = Vec::new();
    for q in ["*", "servers.*", "servers.web1.*", "remote.*", "nothing.*"] {
        for format in ["treejson", "completer"] {
            let path = format!("/metrics/find?query={}&format={format}", enc(q));
            if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", &path, None) {
                failures.push(e);
            }
        }
    }
    // The finds' own formats carry intervals: a leaf in both trees has the union of both
    // copies' when the local copy has data in the find's from..until (or there is none), else
    // the remote copy's alone (graphite-web's `_merge_leaf_nodes`). The local copy of
    // servers.web3.requests reaches 2000 h back, the remote one 50 h; `now=NOW` puts the range
    // years before either file's data; other.single is in tree A alone.
    let mut finds = 0;
    for q in ["servers.web3.*", "servers.*", "other.*", "servers.web1.*"] {
        for range in [
            "",
            "&from=-1h",
            &format!("&from=-1h&now={NOW}"),
            &format!("&from=-3h&until=-1h&now={NOW}"),
            "&until=-100d",
            "&from=-1&until=-1",
        ] {
            let path = format!("/metrics/find?query={}&format=json{range}", enc(q));
            let (gs, gb) = http(front_gw_port, "GET", &path, None).unwrap();
            let (os, ob) = http(front_ours, "GET", &path, None).unwrap();
            finds += 1;
            if gs != 200 || os != 200 {
                failures.push(format!(
                    "{path}: status graphite-web {gs}, ours {os}\n gw: {gb:.300}\n ours: {ob:.300}"
                ));
                continue;
            }
            let (mut g, mut o) = (parse(&gb), parse(&ob));
            for v in [&mut g, &mut o] {
                if let Some(items) = v.as_array_mut() {
                    items.sort_by_key(|x| x.to_string());
                }
            }
            if !intervals_close(&g, &o) {
                failures.push(format!("{path}:\n gw:   {g}\n ours: {o}"));
            }
        }
    }
    // The merge really happened: no range (or one open to the future) gives the union (2000 h
    // back), a range that ends before the local copy's data the remote copy alone (50 h back).
    let start_of = |range: &str| {
        let path = format!("/metrics/find?query=servers.web3.requests&format=json{range}");
        let v = parse(&http(front_ours, "GET", &path, None).unwrap().1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        ((now - v[0]["intervals"][0]["start"].as_f64().unwrap()) / 3600.0).round()
    };
    for (range, hours) in [
        (String::new(), 2000.0),
        (format!("&from=-1h&now={NOW}"), 2000.0),
        (format!("&from=-3h&until=-1h&now={NOW}"), 50.0),
        ("&until=-100d".to_string(), 50.0),
    ] {
        let got = start_of(&range);
        if got != hours {
            failures.push(format!("find{range}: intervals start {got} h back, not {hours}"));
        }
    }
    // A range that does not read is refused, as graphite-web refuses it.
    for bad in ["from=garbage", "until=garbage", "now=garbage&from=-1h"] {
        let path = format!("/metrics/find?query=servers.*&format=completer&{bad}");
        if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", &path, None) {
            failures.push(e);
        }
        finds += 1;
    }
    // What each front asks a cluster server for a find: local=1, the query and the find's range
    // as epoch seconds (format aside: graphite-web asks for pickle, carbide for the same nodes
    // as json, since graphite-web pickles intervals as objects).
    for range in ["", &format!("&from=-3h&until=-1h&now={NOW}"), "&from=-2h"] {
        asked_gw.lock().unwrap().clear();
        asked_ours.lock().unwrap().clear();
        let path = format!("/metrics/find?query=servers.*&format=completer{range}");
        http(front_gw_port, "GET", &path, None).unwrap();
        http(front_ours, "GET", &path, None).unwrap();
        let (g, o) = (finds_asked(&asked_gw), finds_asked(&asked_ours));
        assert_eq!(g.len(), 1, "{g:?}");
        // `from=-2h` without `now` is the wall clock: the two fronts may read it a second apart.
        let same = g.len() == o.len()
            && g.iter().zip(&o).all(|(a, b)| {
                a.len() == b.len()
                    && a.iter().zip(b).all(|((k, v), (l, w))| {
                        k == l
                            && (v == w
                                || (v.parse::<i64>().unwrap_or(0) - w.parse::<i64>().unwrap_or(i64::MIN / 2))
                                    .abs()
                                    <= 2)
                    })
            });
        if !same {
            failures.push(format!(
                "find{range} asks a cluster server\n gw:   {g:?}\n ours: {o:?}"
            ));
        }
    }
    // Both fronts really federate: `other` is only in tree A.
    for port in [front_gw_port, front_ours] {
        let (_, body) = http(port, "GET", "/metrics/find?query=*&format=completer", None).unwrap();
        assert!(
            body.contains("\"other.\"") && body.contains("\"remote.\""),
            "{port}: {body}"
        );
    }
    let targets = [
        "remote.only",
        "servers.web1.requests",
        "servers.web2.requests",
        "servers.*.cpu.user",
        "sumSeries(servers.*.cpu.user)",
        "alias(other.single,'x')",
        "seriesByTag('name=nothing')",
        // graphite-web renders a seriesByTag call on every cluster server too.
        "seriesByTag('name=cpu.load')",
        "seriesByTag('name=cpu.load','host!=web1')",
        "sumSeries(seriesByTag('dc=~(east|west)'))",
        "aliasByTags(seriesByTag('name=cpu.load'),'host','dc')",
    ];
    for t in targets {
        for range in ["from=-1h", "from=-3h&until=-1h", "from=-2d"] {
            let path = format!("/render?target={}&{range}&now={NOW}&format=json", enc(t));
            if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", &path, None) {
                failures.push(e);
            }
        }
    }
    // Tag autocompletion asks the cluster servers too (local=1 does not), merged, sorted, limited.
    for path in [
        "/tags/autoComplete/tags?expr=name%3Dcpu.load",
        "/tags/autoComplete/tags?tagPrefix=d",
        "/tags/autoComplete/tags?expr=dc%3Dwest&limit=1",
        "/tags/autoComplete/values?tag=host",
        "/tags/autoComplete/values?tag=dc&expr=name%3Dcpu.load",
        "/tags/autoComplete/values?tag=host&valuePrefix=w&limit=1",
        "/tags/autoComplete/values?tag=host&local=1",
    ] {
        if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", path, None) {
            failures.push(e);
        }
    }
    let (_, body) = http(front_ours, "GET", "/tags/autoComplete/values?tag=host", None).unwrap();
    if !(body.contains("b1") && body.contains("web3")) {
        failures.push(format!("autoComplete/values does not federate: {body}"));
    }
    // Both fronts really federate seriesByTag: host=web3 is only in tree A, host=b1 only in B.
    for port in [front_gw_port, front_ours] {
        let path = format!(
            "/render?target={}&from=-1h&now={NOW}&format=json",
            enc("seriesByTag('name=cpu.load')")
        );
        let (_, body) = http(port, "GET", &path, None).unwrap();
        if !(body.contains("host=web3") && body.contains("host=b1")) {
            failures.push(format!("{port} does not federate seriesByTag: {body:.400}"));
        }
    }
    // local=1 answers from the tree alone, on both.
    let local = format!("/render?target=servers.web2.requests&now={NOW}&format=json&local=1");
    if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", &local, None) {
        failures.push(e);
    }
    let (_, body) = http(front_ours, "GET", &local, None).unwrap();
    assert_eq!(body, "[]", "local=1 must not ask the cluster");
    // The merged series is A's: graphite-web's finders put the remote first, and B's gappy copy
    // only fills what A lacks (nothing, in this window).
    let (_, body) = http(
        front_ours,
        "GET",
        &format!("/render?target=servers.web1.requests&from=-1h&now={NOW}&format=json"),
        None,
    )
    .unwrap();
    let v = parse(&body);
    let points = v[0]["datapoints"].as_array().unwrap();
    assert!(
        points.iter().filter_map(|p| p[0].as_f64()).all(|x| x < 1000.0),
        "{body}"
    );
    assert!(points.iter().any(|p| p[0].as_f64().is_some()), "{body}");
    assert_eq!(finds, 27);
    assert_no_differences(&failures);
}

/// Writes the tagged series `name` under `root` (readable `_tagged` file name): a point a minute
/// over the last 150 minutes where `keep` holds for the minute's index.
fn write_tagged(root: &std::path::Path, name: &str, keep: &dyn Fn(i64) -> bool) {
    let r = Retention::parse_list("60:720,300:600").unwrap();
    let path = root.join(carbide_protocol::tags::filesystem_path(name, false));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let pts: Vec<(i64, f64)> = (1..=150)
        .filter(|i| keep(*i))
        .map(|i| (NOW - i * 60, (i % 17) as f64 + name.len() as f64))
        .collect();
    carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
    carbide_whisper::file::update_many(&path, &pts, NOW, false).unwrap();
}

/// The parameters of each `/metrics/find` a [`recorder`] was asked, sorted, without `format`.
fn finds_asked(asked: &Mutex<Vec<String>>) -> Vec<Vec<(String, String)>> {
    asked
        .lock()
        .unwrap()
        .iter()
        .filter_map(|target| target.split_once("/metrics/find/?").map(|(_, q)| q))
        .map(|q| {
            let mut params: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .filter(|(k, _)| k != "format")
                .collect();
            params.sort();
            params
        })
        .collect()
}

/// A cluster server that finds and renders nothing (an empty list in the format asked) and
/// records the request target of everything it is asked; its port and the record.
fn recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = carbide_testkit::listen();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let (kind, body): (&str, &[u8]) = if target.contains("format=pickle") {
                ("application/pickle", b"\x80\x02].")
            } else {
                ("application/json", b"[]")
            };
            record.lock().unwrap().push(target);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    (port, asked)
}

/// A cluster server that is down contributes nothing; the local tree still answers.
#[test]
fn a_down_cluster_server_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let r = Retention::parse_list("60:720").unwrap();
    write_series(dir.path(), "a.b", &r, &[(NOW - 60, 3.0)]);
    let dead = free_port();
    let cluster =
        carbide_web::cluster::ClusterServers::parse(&format!("127.0.0.1:{dead}"), Duration::from_secs(2))
            .unwrap();
    let ours = start_ours(dir.path(), "UTC", Some(Arc::new(cluster)));
    let (status, body) = http(ours, "GET", "/metrics/find?query=*&format=completer", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"a.\""), "{body}");
    let (status, body) = http(
        ours,
        "GET",
        &format!("/render?target=a.b&from=-5min&now={NOW}&format=json"),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("[3.0, "), "{body}");
}
