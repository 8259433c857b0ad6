//! CLUSTER_SERVERS, differentially: a graphite-web and a carbide web over the same local tree B
//! federate to the same tree A, graphite-web through carbide (so carbide serves graphite-web's
//! remote finder and reader), carbide through graphite-web (so carbide's client reads
//! graphite-web's pickles). Both fronts must find and render the same: A's metrics, B's, and a
//! series in both trees with gaps in B's copy, merged as `_merge_results` merges it in
//! graphite-web's finder order (remote first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use carbide_core::Retention;
use common::*;

#[test]
fn cluster_servers_find_and_render_as_graphite_web_does() {
    // Tree A behind graphite-web (s.gw) and carbide (s.ours).
    let s = servers();
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
            "CLUSTER_SERVERS = ['127.0.0.1:{}']\nUSE_WORKER_POOL = False",
            s.ours
        ),
        1,
    );
    let cluster =
        carbide_web::cluster::ClusterServers::parse(&format!("127.0.0.1:{}", s.gw), Duration::from_secs(30))
            .unwrap();
    let front_ours = start_ours(&b, "UTC", Some(Arc::new(cluster)));

    let mut failures = Vec::new();
    for q in ["*", "servers.*", "servers.web1.*", "remote.*", "nothing.*"] {
        for format in ["treejson", "completer"] {
            let path = format!("/metrics/find?query={}&format={format}", enc(q));
            if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", &path, None) {
                failures.push(e);
            }
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
    ];
    for t in targets {
        for range in ["from=-1h", "from=-3h&until=-1h", "from=-2d"] {
            let path = format!("/render?target={}&{range}&now={NOW}&format=json", enc(t));
            if let Err(e) = compare_ports(front_gw_port, front_ours, "GET", &path, None) {
                failures.push(e);
            }
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
    assert_no_differences(&failures);
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
