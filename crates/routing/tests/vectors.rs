//! Published test vectors: carbon's tests/test_hashing.py, buckytools' hashing_test.go and
//! carbon-c-relay's test/issue236.out (ring dumps and routes).

// Test helpers outside #[test] functions may fail loudly: a broken fixture must stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use carbide_routing::{
    Algorithm, CRelayHash, CarbonHash, ConsistentRing, Destination, HashRing, JumpRing, NodeId, Ring,
};

fn route_one(ring: &impl Ring, key: &str) -> Destination {
    let mut out = Vec::new();
    ring.route(key.as_bytes(), 1, &mut out);
    assert_eq!(out.len(), 1, "{key}");
    ring.destinations()[out[0].index()].clone()
}

#[test]
fn carbon_fnv1a_ch_from_carbon_test_hashing() {
    let dests = vec![
        Destination::with_instance("127.0.0.1", 2004, "ba603c36342304ed77953f84ac4d357b"),
        Destination::with_instance("127.0.0.2", 2004, "5dd63865534f84899c6e5594dba6749a"),
        Destination::with_instance("127.0.0.3", 2004, "866a18b81f2dc4649517a1df13e26f28"),
    ];
    let ring = ConsistentRing::carbon(CarbonHash::Fnv1aCh, dests, true).unwrap();
    for (metric, pos) in [
        ("hosts.worker1.cpu", 59573),
        ("hosts.worker1.load", 57163),
        ("hosts.worker2.cpu", 35749),
        ("hosts.worker2.network", 43584),
        ("hosts.worker3.cpu", 12600),
        ("hosts.worker3.irq", 10052),
    ] {
        assert_eq!(ring.position(metric.as_bytes()), pos, "{metric}");
    }
    assert_eq!(route_one(&ring, "hosts.worker1.cpu").host, "127.0.0.1");
    assert_eq!(route_one(&ring, "hosts.worker2.cpu").host, "127.0.0.3");
    assert_eq!(
        route_one(
            &ring,
            "stats.checkout.cluster.padamski-wro.api.v1.payment-initialize.count"
        )
        .host,
        "127.0.0.3"
    );
}

#[test]
fn bucky_carbon_ch_without_instances() {
    let ring =
        ConsistentRing::bucky(vec![Destination::new("test01", 0), Destination::new("test02", 0)]).unwrap();
    assert_eq!(route_one(&ring, "statsd.disk.free1").host, "test02");
    assert_eq!(route_one(&ring, "statsd.disk.free2").host, "test02");
    assert_eq!(route_one(&ring, "statsd.disk.free3").host, "test01");
}

/// buckytools' 39-node ring: 13 hosts, instances a, b, c each, in that order.
fn bucky_39() -> Vec<Destination> {
    let mut hosts: Vec<String> = (10..=18).map(|i| format!("graphite0{i}-g5")).collect();
    hosts.extend((19..=22).map(|i| format!("graphite-data0{i}-g5")));
    hosts
        .iter()
        .flat_map(|h| ["a", "b", "c"].map(|i| Destination::with_instance(h.clone(), 0, i)))
        .collect()
}

#[test]
fn bucky_carbon_ch_39_nodes() {
    let ring = ConsistentRing::bucky(bucky_39()).unwrap();
    let cases = [
        ("1sec.mysql.db109-shard7-g5.4417.Com_help", "graphite015-g5", "a"),
        (
            "10min.sar.disk_stats.app-test-57164838110fc9dc.sda.wr_sec",
            "graphite010-g5",
            "a",
        ),
        (
            "10min.sar.disk_stats.db047-shard35-g4.sda.rd_sec",
            "graphite010-g5",
            "a",
        ),
        (
            "1min.statsd.prod.intercom.corporate.challenge.participation.count_95",
            "graphite-data020-g5",
            "b",
        ),
    ];
    for (metric, host, inst) in cases {
        let d = route_one(&ring, metric);
        assert_eq!(
            (d.host.as_str(), d.instance.as_deref()),
            (host, Some(inst)),
            "{metric}"
        );
    }
}

#[test]
fn carbon_bumping_moves_the_collision_case() {
    // The last bucky case sits on a collided position (8731); carbon >= 1.0 bumps the later point.
    let metric = "1min.statsd.prod.intercom.corporate.challenge.participation.count_95";
    let ring = ConsistentRing::carbon(CarbonHash::CarbonCh, bucky_39(), true).unwrap();
    assert_eq!(ring.position(metric.as_bytes()), 8731);
    let d = route_one(&ring, metric);
    assert_eq!(
        (d.host.as_str(), d.instance.as_deref()),
        ("graphite015-g5", Some("c"))
    );
    // The non-colliding ones agree with buckytools.
    let d = route_one(&ring, "1sec.mysql.db109-shard7-g5.4417.Com_help");
    assert_eq!(
        (d.host.as_str(), d.instance.as_deref()),
        ("graphite015-g5", Some("a"))
    );
}

/// Reads tests/data/issue236.txt: ring dumps and routes.
struct Issue236 {
    rings: Vec<(String, Vec<(i64, String)>)>,
    routes: Vec<(String, String, i64, [String; 2])>,
}

fn issue236() -> Issue236 {
    let text = include_str!("data/issue236.txt");
    let mut rings: Vec<(String, Vec<(i64, String)>)> = Vec::new();
    let mut routes = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ring", name] => rings.push((name.to_string(), Vec::new())),
            ["route", metric, cluster, pos, a, b] => routes.push((
                metric.to_string(),
                cluster.to_string(),
                pos.parse().unwrap(),
                [a.to_string(), b.to_string()],
            )),
            [pos, member] => rings
                .last_mut()
                .unwrap()
                .1
                .push((pos.parse().unwrap(), member.to_string())),
            _ => panic!("bad fixture line {line:?}"),
        }
    }
    Issue236 { rings, routes }
}

/// The cluster members of tests/data/issue236.conf.
fn issue236_members(cluster: &str) -> Vec<Destination> {
    if cluster == "jump2" {
        let inst = [None, Some("1"), None, Some("2"), None, Some("foo"), None];
        return (0..7)
            .map(|i| Destination {
                host: format!("127.0.0.{}", 11 + i),
                port: 2003 + i as u16,
                instance: inst[i].map(str::to_owned),
            })
            .collect();
    }
    (0..7)
        .map(|i| Destination::new(format!("127.0.0.{}", 1 + i), 2003 + i as u16))
        .collect()
}

fn member_text(d: &Destination) -> String {
    match &d.instance {
        Some(i) => format!("{}:{}={}", d.host, d.port, i),
        None => format!("{}:{}", d.host, d.port),
    }
}

#[test]
fn c_relay_issue236_ring_dumps() {
    let data = issue236();
    assert_eq!(data.rings.len(), 4);
    for (name, dump) in &data.rings {
        let members = issue236_members(name);
        let ours: Vec<(i64, String)> = match name.as_str() {
            "carbon" | "fnv" => {
                let hash = if name == "carbon" {
                    CRelayHash::CarbonCh
                } else {
                    CRelayHash::Fnv1aCh
                };
                let ring = ConsistentRing::c_relay(hash, members).unwrap();
                ring.points()
                    .map(|(p, n)| (p, member_text(&ring.destinations()[n.index()])))
                    .collect()
            }
            _ => {
                let ring = JumpRing::c_relay(members.clone()).unwrap();
                // The dump shows each member with its config index as "position".
                ring.bucket_order()
                    .map(|n: NodeId| (i64::from(n.0), member_text(&members[n.index()])))
                    .collect()
            }
        };
        assert_eq!(&ours, dump, "ring {name}");
    }
}

#[test]
fn c_relay_issue236_routes() {
    let data = issue236();
    assert_eq!(data.routes.len(), 132);
    let build = |cluster: &str| {
        let alg = match cluster {
            "carbon" => Algorithm::CRelay(CRelayHash::CarbonCh),
            "fnv" => Algorithm::CRelay(CRelayHash::Fnv1aCh),
            _ => Algorithm::CRelayJump,
        };
        HashRing::build(alg, issue236_members(cluster)).unwrap()
    };
    let rings = [
        ("carbon", build("carbon")),
        ("fnv", build("fnv")),
        ("jump", build("jump")),
    ];
    let mut out = Vec::new();
    for (metric, cluster, pos, want) in &data.routes {
        let ring = &rings.iter().find(|(n, _)| n == cluster).unwrap().1;
        if let HashRing::Consistent(r) = ring {
            assert_eq!(r.position(metric.as_bytes()), *pos, "{metric} in {cluster}");
        }
        ring.route(metric.as_bytes(), 2, &mut out);
        let got: Vec<String> = out
            .iter()
            .map(|n| member_text(&ring.destinations()[n.index()]))
            .collect();
        assert_eq!(&got, want, "{metric} in {cluster}");
    }
}
