//! Nanoseconds per `route` call for each ring, over 30 members and 100 000 realistic names.
//! Prints one line per ring; no statistics beyond best-of-five, which is enough to catch a
//! regression by an order of magnitude (the thing that matters for a relay's hot path).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use carbide_routing::{Algorithm, CRelayHash, CarbonHash, Destination, HashRing, Ring};

fn names(count: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!(
                "servers.web{:03}.{}.cpu{}.value_{}",
                x % 500,
                ["user", "system", "idle"][i % 3],
                x % 64,
                i
            )
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick") || cfg!(debug_assertions);
    let names = names(if quick { 10_000 } else { 100_000 });
    let members: Vec<Destination> = (0..30)
        .map(|i| Destination::with_instance(format!("10.0.{}.{}", i / 10, i % 10), 2004, ["a", "b"][i % 2]))
        .collect();
    let algorithms = [
        (
            "carbon carbon_ch",
            Algorithm::Carbon {
                hash: CarbonHash::CarbonCh,
                diverse_replicas: true,
            },
        ),
        (
            "carbon fnv1a_ch",
            Algorithm::Carbon {
                hash: CarbonHash::Fnv1aCh,
                diverse_replicas: true,
            },
        ),
        (
            "carbon mmh3_ch",
            Algorithm::Carbon {
                hash: CarbonHash::Mmh3Ch,
                diverse_replicas: true,
            },
        ),
        (
            "carbon fast mmh3",
            Algorithm::CarbonFast {
                hash: CarbonHash::Mmh3Ch,
                diverse_replicas: true,
            },
        ),
        ("c-relay carbon_ch", Algorithm::CRelay(CRelayHash::CarbonCh)),
        ("c-relay fnv1a_ch", Algorithm::CRelay(CRelayHash::Fnv1aCh)),
        ("c-relay jump_fnv1a_ch", Algorithm::CRelayJump),
    ];
    let mut out = Vec::with_capacity(4);
    for (label, alg) in algorithms {
        let ring = HashRing::build(alg, members.clone()).unwrap();
        for replicas in [1, 2] {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let start = Instant::now();
                for n in &names {
                    ring.route(black_box(n.as_bytes()), replicas, &mut out);
                    black_box(&out);
                }
                best = best.min(start.elapsed().as_nanos() as f64 / names.len() as f64);
            }
            println!("{label:<24} replicas {replicas}: {best:>7.1} ns/route");
        }
    }
}
