//! graphite-web's own carbonlink client (`graphite.carbonlink.CarbonLinkPool`, run by
//! /usr/bin/python3, protocol-5 pickled requests over real TCP) reads the points still in the cache
//! from `carbide cache` and from the real carbon-cache, with the same expectations for both.
//! Writers are throttled (MAX_UPDATES_PER_SECOND = 1, sorted strategy: biggest queues first) and
//! the queried metrics are the smallest queues, sent last, so they are still cached when asked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use cache_common::{Kind, Server, Ts, carbonlink_query, pickle_frame, send};

#[test]
fn graphite_web_reads_the_cache_of_both() {
    let tmp = tempfile::tempdir().unwrap();
    let throttle = "MAX_UPDATES_PER_SECOND = 1";
    let servers = [
        Server::start(Kind::Carbide, &tmp.path().join("carbide"), throttle, &[]),
        Server::start(Kind::Carbon, &tmp.path().join("carbon"), throttle, &[]),
    ];
    let t = (cache_common::now() / 60) * 60 - 600;
    let mut lines = String::new();
    for i in 0..100 {
        for j in 0..20 {
            lines.push_str(&format!("link.big.m{i} {j} {}\n", t + j));
        }
    }
    lines.push_str(&format!(
        "link.small 1 {t}\nlink.small 2 {}\nlink.small 3.5 {}\n",
        t + 1,
        t + 2
    ));
    lines.push_str(&format!("link.dup 1 {t}\nlink.dup 5 {t}\n"));
    lines.push_str(&format!("link.tag;b=2;a=1 8 {t}\n"));
    let pickled = pickle_frame(&[("link.pickled", Ts::Int(t as i32 + 7), -1.25)]);
    for s in &servers {
        send(s.ports.line, lines.as_bytes());
        send(s.ports.pickle, &pickled);
    }
    let asked: Vec<String> = [
        "link.small",
        "link.dup",
        "link.tag;a=1;b=2",
        "link.pickled",
        "link.never.sent",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tf = t as f64;
    for s in &servers {
        let got = carbonlink_query(s.ports.query, &asked);
        assert_eq!(
            got["link.small"],
            vec![(tf, 1.0), (tf + 1.0, 2.0), (tf + 2.0, 3.5)],
            "{:?}",
            s.kind
        );
        assert_eq!(got["link.dup"], vec![(tf, 5.0)], "{:?}", s.kind);
        assert_eq!(got["link.tag;a=1;b=2"], vec![(tf, 8.0)], "{:?}", s.kind);
        assert_eq!(got["link.pickled"], vec![(tf + 7.0, -1.25)], "{:?}", s.kind);
        assert_eq!(got["link.never.sent"], vec![], "{:?}", s.kind);
    }
    // The big queues: whatever either server still holds must be exactly what was sent.
    let big: Vec<String> = (0..100).map(|i| format!("link.big.m{i}")).collect();
    for s in &servers {
        let got = carbonlink_query(s.ports.query, &big);
        // A queue a writer popped early (while the first points were still arriving) holds the
        // rest; either way every cached point is one that was sent, and most queues are whole.
        let want: Vec<(f64, f64)> = (0..20).map(|j| (tf + j as f64, j as f64)).collect();
        let mut cached = 0;
        for (m, pts) in &got {
            assert!(
                pts.iter().all(|p| want.contains(p)),
                "{m} on {:?}: {pts:?}",
                s.kind
            );
            if pts == &want {
                cached += 1;
            }
        }
        assert!(
            cached >= 50,
            "{:?}: only {cached} of 100 queues still wholly cached",
            s.kind
        );
    }
}
