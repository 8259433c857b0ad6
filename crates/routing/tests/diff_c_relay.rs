//! Differential test against carbon-c-relay 3.7 in test mode (`-t`): one config with a cluster for
//! every member list × {carbon_ch, fnv1a_ch, jump_fnv1a_ch} × replication 1..3, one relay run over
//! 10 000 random names (raw bytes, including invalid UTF-8), and every printed destination list
//! must equal ours; plus an any_of cluster (fnv1a_32 % members).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use carbide_routing::{Algorithm, CRelayHash, Destination, HashRing, Ring};

const RELAY: &str = "/usr/bin/carbon-c-relay";

fn d(host: &str, port: u16, instance: Option<&str>) -> Destination {
    Destination {
        host: host.to_owned(),
        port,
        instance: instance.map(str::to_owned),
    }
}

/// Member lists. carbon-c-relay identifies a server by host and port across the whole config, so
/// each list has addresses of its own.
fn member_lists() -> Vec<Vec<Destination>> {
    let long = "i".repeat(300);
    vec![
        // test/issue236.conf's members.
        (0..7)
            .map(|i| d(&format!("127.0.0.{}", i + 1), 2003 + i, None))
            .collect(),
        // Instances: names, numbers (compared numerically by jump_fnv1a_ch), none, IPv6.
        vec![
            d("127.0.1.1", 2003, Some("a")),
            d("127.0.1.1", 2004, Some("b")),
            d("127.0.1.2", 2003, Some("10")),
            d("127.0.1.3", 2003, Some("9")),
            d("127.0.1.4", 2003, None),
            d("127.0.1.5", 2005, Some("foo")),
            d("127.0.1.6", 2003, None),
            d("::1", 2103, Some("v6")),
            d("::1", 2104, None),
            d("127.0.1.7", 2003, Some("-3")),
            d("127.0.1.8", 2003, Some("+7")),
        ],
        // Forty members: 4000 points on a 65536 ring, so positions collide.
        (1..=40).map(|i| d(&format!("127.0.2.{i}"), 2003, None)).collect(),
        // One host on three ports: identical carbon_ch keys, so the first member owns every point.
        vec![
            d("127.0.3.1", 2003, None),
            d("127.0.3.1", 2004, None),
            d("127.0.3.1", 2005, None),
        ],
        // A shared instance: fnv1a_ch keys by instance alone, so .2 loses all its points to .1.
        vec![
            d("127.0.4.1", 2003, Some("x")),
            d("127.0.4.2", 2003, Some("x")),
            d("127.0.4.3", 2003, Some("y")),
            d("127.0.4.4", 2003, Some("z")),
        ],
        // Keys longer than carbon-c-relay's 256-byte buffer are cut at 255 bytes.
        vec![
            d("127.0.5.1", 2003, Some(&long)),
            d("127.0.5.2", 2003, Some(&format!("{long}x"))),
            d("127.0.5.3", 2003, Some("b")),
        ],
    ]
}

/// any_of members may not appear in another cluster.
fn any_of_members() -> Vec<Destination> {
    (1..=13)
        .map(|i| d(&format!("127.0.9.{i}"), 2003 + i, None))
        .collect()
}

fn member_text(m: &Destination) -> String {
    let host = if m.host.contains(':') {
        format!("[{}]", m.host)
    } else {
        m.host.clone()
    };
    match &m.instance {
        Some(i) => format!("{host}:{}={i}", m.port),
        None => format!("{host}:{}", m.port),
    }
}

/// What carbon-c-relay prints for a destination in test mode.
fn printed(m: &Destination) -> String {
    if m.host.contains(':') {
        format!("[{}]:{}", m.host, m.port)
    } else {
        format!("{}:{}", m.host, m.port)
    }
}

struct Cluster {
    name: String,
    kind: &'static str,
    replication: usize,
    ring: HashRing,
}

fn clusters() -> Vec<Cluster> {
    let mut out = Vec::new();
    for (li, members) in member_lists().into_iter().enumerate() {
        for (kind, alg) in [
            ("carbon", Algorithm::CRelay(CRelayHash::CarbonCh)),
            ("fnv1a", Algorithm::CRelay(CRelayHash::Fnv1aCh)),
            ("jump_fnv1a", Algorithm::CRelayJump),
        ] {
            let ring = HashRing::build(alg, members.clone()).unwrap();
            // carbon-c-relay loops forever when fewer distinct members own points than the
            // replication asks for (see the report): only ask for what the ring can give.
            let owners: BTreeSet<u32> = match &ring {
                HashRing::Consistent(r) => r.points().map(|(_, n)| n.0).collect(),
                HashRing::Jump(r) => r.bucket_order().map(|n| n.0).collect(),
                HashRing::Fast(r) => r.member_order().map(|n| n.0).collect(),
            };
            for replication in 1..=3usize.min(owners.len()) {
                out.push(Cluster {
                    name: format!("l{li}_{kind}_r{replication}"),
                    kind,
                    replication,
                    ring: ring.clone(),
                });
            }
        }
    }
    out
}

fn config(clusters: &[Cluster]) -> String {
    let mut conf = String::new();
    for c in clusters {
        let members: Vec<String> = c.ring.destinations().iter().map(member_text).collect();
        conf.push_str(&format!(
            "cluster {} {}_ch replication {}\n    {}\n    ;\n",
            c.name,
            c.kind,
            c.replication,
            members.join("\n    ")
        ));
    }
    // An any_of cluster too: it prints the member fnv1a_32 % n picks.
    let any: Vec<String> = any_of_members().iter().map(member_text).collect();
    conf.push_str(&format!(
        "cluster anyof any_of\n    {}\n    ;\n",
        any.join("\n    ")
    ));
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    conf.push_str(&format!(
        "match *\n    send to {} anyof\n    stop\n    ;\n",
        names.join(" ")
    ));
    conf
}

/// Runs the relay in test mode, failing after two minutes rather than hanging the suite.
fn run_relay(conf_path: &std::path::Path, input: Vec<u8>) -> String {
    common::require(RELAY, "carbon-c-relay 3.7");
    let mut child = Command::new(RELAY)
        .arg("-t")
        .arg("-f")
        .arg(conf_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start carbon-c-relay");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("carbon-c-relay -t did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let written = writer.join().unwrap();
    let out = reader.join().unwrap().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(
        status.success(),
        "carbon-c-relay -t failed: {err}{}",
        String::from_utf8_lossy(&out[..out.len().min(2000)])
    );
    written.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn c_relay_routes_match_carbon_c_relay() {
    let clusters = clusters();
    assert!(clusters.len() >= 40, "{} clusters", clusters.len());
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("relay.conf");
    std::fs::write(&conf_path, config(&clusters)).unwrap();

    let names = common::byte_names(0xc4e1a7, 10_000);
    assert!(
        names.iter().any(|n| std::str::from_utf8(n).is_err()),
        "no invalid UTF-8 among the names"
    );
    let mut input = Vec::new();
    for n in &names {
        input.extend_from_slice(n);
        input.push(b'\n');
    }
    let out = run_relay(&conf_path, input);

    // After the config dump, each name prints "match", "    * -> NAME", then per cluster
    // "    KIND_ch(NAME)" and one "        host:port" line per replica, then "    stop".
    let by_name: HashMap<&str, usize> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut results: Vec<Vec<Vec<String>>> = Vec::new();
    let mut any_of: Vec<String> = Vec::new();
    let mut in_any_of = false;
    let mut current: Option<usize> = None;
    let mut in_routes = false;
    for line in out.lines() {
        if line == "match" {
            in_routes = true;
            results.push(vec![Vec::new(); clusters.len()]);
            current = None;
            continue;
        }
        if !in_routes {
            continue;
        }
        if line == "    any_of(anyof)" {
            in_any_of = true;
            continue;
        }
        if in_any_of {
            any_of.push(line.trim().to_owned());
            in_any_of = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix("        ") {
            let c = current.expect("destination before a cluster line");
            results.last_mut().unwrap()[c].push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("    ")
            && let Some(open) = rest.find("_ch(")
        {
            current = Some(by_name[rest[open + 4..].trim_end_matches(')')]);
        }
    }
    assert_eq!(
        results.len(),
        names.len(),
        "relay printed {} routes",
        results.len()
    );

    let mut out_ids = Vec::new();
    let mut compared = 0;
    for (name, theirs) in names.iter().zip(&results) {
        for (c, want) in clusters.iter().zip(theirs) {
            c.ring.route(name, c.replication, &mut out_ids);
            let got: Vec<String> = out_ids
                .iter()
                .map(|n| printed(&c.ring.destinations()[n.index()]))
                .collect();
            assert_eq!(&got, want, "{} for {:?}", c.name, String::from_utf8_lossy(name));
            compared += 1;
        }
    }
    assert_eq!(compared, names.len() * clusters.len());

    let any_members = any_of_members();
    assert_eq!(any_of.len(), names.len());
    for (name, want) in names.iter().zip(&any_of) {
        let i = carbide_routing::hash::any_of_member(name, any_members.len()).unwrap();
        assert_eq!(
            &printed(&any_members[i]),
            want,
            "any_of for {:?}",
            String::from_utf8_lossy(name)
        );
    }
}
