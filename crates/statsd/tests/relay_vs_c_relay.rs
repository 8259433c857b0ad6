//! StatsRelay's routing against carbon-c-relay 3.7's `jump_fnv1a_ch`: both run FNV-1a-64 and
//! jump hash over the members in order (members without an instance keep config order), so a
//! key must land on the same member index. StatsRelay itself is a Go program that is not
//! installed here; its own test vectors are in the unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use carbide_statsd::relay::Relay;

const RELAY: &str = "/usr/bin/carbon-c-relay";

#[test]
fn jump_routes_match_carbon_c_relay() {
    assert!(
        std::path::Path::new(RELAY).exists(),
        "carbon-c-relay is missing at {RELAY}: run scripts/install-test-deps.sh"
    );
    let sizes = [1usize, 2, 3, 5, 8, 13, 45];
    let mut conf = String::new();
    for n in sizes {
        conf.push_str(&format!("cluster j{n} jump_fnv1a_ch\n"));
        for i in 0..n {
            conf.push_str(&format!("    127.0.0.1:{}\n", 20_000 + i));
        }
        conf.push_str("    ;\n");
    }
    let all: Vec<String> = sizes.iter().map(|n| format!("j{n}")).collect();
    conf.push_str(&format!(
        "match *\n    send to {}\n    stop\n    ;\n",
        all.join(" ")
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.conf");
    std::fs::write(&path, conf).unwrap();

    // Names carbon-c-relay does not rewrite: [a-z0-9_-] components joined by single dots.
    let mut s: u64 = 0x5eed;
    let mut names = Vec::new();
    for _ in 0..3000 {
        let mut name = String::new();
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        for part in 0..(1 + s % 5) {
            if part > 0 {
                name.push('.');
            }
            for c in 0..(1 + (s >> (part * 3)) % 12) {
                let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
                let idx = ((s >> ((c + part) % 50)) as usize + c as usize * 7) % alphabet.len();
                name.push(char::from(alphabet[idx]));
            }
        }
        names.push(name);
    }

    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert!(unique.len() > 2000, "only {} distinct names", unique.len());

    let mut child = Command::new(RELAY)
        .args(["-t", "-f"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = names.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());

    // Per name: "match", "    * -> NAME", then per cluster "    jump_fnv1a_ch(jN)" and its member.
    let mut routed: Vec<(String, usize, usize)> = Vec::new(); // name, cluster size, member index
    let mut name = String::new();
    let mut cluster = 0usize;
    // The config echo comes first; the routes start at the first bare "match".
    let routes = out.find("\nmatch\n").map_or("", |i| &out[i..]);
    for line in routes.lines() {
        if let Some(n) = line.strip_prefix("    * -> ") {
            name = n.to_string();
        } else if let Some(c) = line.strip_prefix("    jump_fnv1a_ch(j") {
            cluster = c.trim_end_matches(')').parse().unwrap();
        } else if let Some(m) = line.strip_prefix("        127.0.0.1:") {
            let port: usize = m.parse().unwrap();
            routed.push((name.clone(), cluster, port - 20_000));
        }
    }
    assert_eq!(
        routed.len(),
        names.len() * sizes.len(),
        "unexpected carbon-c-relay output"
    );
    for (name, size, member) in routed {
        let relay = Relay::new(size, 1400, "statsrelay", None).unwrap();
        assert_eq!(
            relay.backend_for(name.as_bytes()),
            member,
            "{name} over {size} members"
        );
        // The same key as a StatsD line goes to that member's packet.
        let packets = relay.route(format!("{name}:1|c").as_bytes());
        assert!(
            packets
                .iter()
                .any(|p| p.backend == member && p.data.starts_with(name.as_bytes()))
        );
    }
}
