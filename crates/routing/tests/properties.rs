//! Properties every ring keeps, whatever the members and names: routing is a pure function,
//! replicas are distinct (and on distinct servers where asked), the primary does not depend on how
//! many replicas are asked for, and changes that should not move a metric do not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use carbide_routing::{Algorithm, CRelayHash, CarbonHash, Destination, HashRing, NodeId, Ring};
use proptest::prelude::*;

fn algorithms() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        (
            prop_oneof![
                Just(CarbonHash::CarbonCh),
                Just(CarbonHash::Fnv1aCh),
                Just(CarbonHash::Mmh3Ch)
            ],
            any::<bool>()
        )
            .prop_map(|(hash, diverse_replicas)| Algorithm::Carbon {
                hash,
                diverse_replicas
            }),
        Just(Algorithm::CRelay(CRelayHash::CarbonCh)),
        Just(Algorithm::CRelay(CRelayHash::Fnv1aCh)),
        Just(Algorithm::CRelayJump),
        Just(Algorithm::Bucky),
        (
            prop_oneof![
                Just(CarbonHash::CarbonCh),
                Just(CarbonHash::Fnv1aCh),
                Just(CarbonHash::Mmh3Ch)
            ],
            any::<bool>()
        )
            .prop_map(|(hash, diverse_replicas)| Algorithm::CarbonFast {
                hash,
                diverse_replicas
            }),
    ]
}

/// Up to 12 members on a few hosts, instances sometimes, text sometimes odd; unique host/port and
/// host/instance so every algorithm accepts the list.
fn members() -> impl Strategy<Value = Vec<Destination>> {
    prop::collection::vec(
        (
            0u8..5,
            "[a-z0-9'\"\\\\é ]{0,6}",
            prop::option::of("[a-z0-9'é]{0,4}"),
        ),
        1..12,
    )
    .prop_map(|raw| {
        let mut seen_port = HashSet::new();
        let mut seen_inst = HashSet::new();
        let mut out = Vec::new();
        for (i, (host, suffix, instance)) in raw.into_iter().enumerate() {
            let host = format!("h{host}{suffix}");
            let port = 2000 + i as u16;
            if seen_port.insert((host.clone(), port)) && seen_inst.insert((host.clone(), instance.clone())) {
                out.push(Destination { host, port, instance });
            }
        }
        out
    })
}

fn route(ring: &HashRing, key: &[u8], replicas: usize) -> Vec<NodeId> {
    let mut out = Vec::new();
    ring.route(key, replicas, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn routing_is_a_pure_function(alg in algorithms(), dests in members(),
                                  key in prop::collection::vec(any::<u8>(), 0..64), replicas in 1usize..5) {
        let a = HashRing::build(alg, dests.clone()).unwrap();
        let b = HashRing::build(alg, dests).unwrap();
        let first = route(&a, &key, replicas);
        prop_assert_eq!(&first, &route(&a, &key, replicas));
        prop_assert_eq!(&first, &route(&b, &key, replicas));
    }

    #[test]
    fn replicas_are_distinct_and_diverse(alg in algorithms(), dests in members(),
                                         key in prop::collection::vec(any::<u8>(), 0..64), replicas in 0usize..6) {
        let ring = HashRing::build(alg, dests.clone()).unwrap();
        let out = route(&ring, &key, replicas);
        prop_assert!(out.len() <= replicas);
        prop_assert!(out.iter().all(|n| n.index() < dests.len()));
        let distinct: HashSet<_> = out.iter().collect();
        prop_assert_eq!(distinct.len(), out.len(), "repeated member in {:?}", out);
        if replicas > 0 {
            prop_assert!(!out.is_empty());
        }
        let servers: HashSet<&str> = dests.iter().map(|d| d.host.as_str()).collect();
        match alg {
            Algorithm::Carbon { diverse_replicas: true, .. }
            | Algorithm::CarbonFast { diverse_replicas: true, .. } => {
                let used: HashSet<&str> = out.iter().map(|n| dests[n.index()].host.as_str()).collect();
                prop_assert_eq!(used.len(), out.len(), "two replicas on one server");
                prop_assert_eq!(out.len(), replicas.min(servers.len()));
            }
            // Members that lost every point to a collision are unreachable in carbon-c-relay.
            Algorithm::CRelay(_) => {}
            _ => prop_assert_eq!(out.len(), replicas.min(dests.len())),
        }
    }

    #[test]
    fn the_primary_does_not_depend_on_the_replica_count(alg in algorithms(), dests in members(),
                                                         key in prop::collection::vec(any::<u8>(), 0..64)) {
        let ring = HashRing::build(alg, dests).unwrap();
        let three = route(&ring, &key, 3);
        for r in 1..3 {
            let fewer = route(&ring, &key, r);
            prop_assert_eq!(&fewer[..], &three[..fewer.len()]);
        }
    }

    #[test]
    fn ports_do_not_move_metrics_except_in_c_relay_fnv1a(alg in algorithms(), dests in members(),
                                                         key in prop::collection::vec(any::<u8>(), 0..64),
                                                         shift in 1u16..1000) {
        // carbon-c-relay's fnv1a_ch hashes "i-host:port" for members without an instance.
        prop_assume!(alg != Algorithm::CRelay(CRelayHash::Fnv1aCh));
        let moved: Vec<Destination> = dests.iter().cloned().map(|mut d| { d.port += shift; d }).collect();
        let a = HashRing::build(alg, dests).unwrap();
        let b = HashRing::build(alg, moved).unwrap();
        prop_assert_eq!(route(&a, &key, 3), route(&b, &key, 3));
    }

    #[test]
    fn a_new_member_only_takes_metrics(alg in algorithms(), dests in members(),
                                       keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 1..20)) {
        // Consistency: appending a member (without an instance, so carbon-c-relay's jump order
        // puts it last) moves a metric's primary only to the new member. carbon's fast-hashing
        // gives this up on purpose.
        prop_assume!(!matches!(alg, Algorithm::CarbonFast { .. }));
        let mut grown = dests.clone();
        let new = Destination::new("newcomer", 9999);
        prop_assume!(!dests.iter().any(|d| d.host == new.host));
        grown.push(new);
        let a = HashRing::build(alg, dests.clone()).unwrap();
        let b = HashRing::build(alg, grown).unwrap();
        for key in &keys {
            let before = route(&a, key, 1);
            let after = route(&b, key, 1);
            prop_assert!(after == before || after == vec![NodeId(dests.len() as u32)],
                "{:?}: {:?} -> {:?}", key, before, after);
        }
    }

    #[test]
    fn union_covers_every_key(alg in algorithms(), dests in members(),
                              keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 0..6)) {
        let ring = HashRing::build(alg, dests).unwrap();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        ring.route_union(keys.iter().map(Vec::as_slice), 2, &mut out, &mut scratch);
        let all: HashSet<NodeId> = out.iter().copied().collect();
        prop_assert_eq!(all.len(), out.len());
        let mut expected = HashSet::new();
        for key in &keys {
            expected.extend(route(&ring, key, 2));
        }
        prop_assert_eq!(all, expected);
    }
}

#[test]
fn bad_destination_lists_are_refused() {
    use carbide_routing::RingError;
    for alg in [
        Algorithm::Carbon {
            hash: CarbonHash::CarbonCh,
            diverse_replicas: true,
        },
        Algorithm::CRelay(CRelayHash::CarbonCh),
        Algorithm::CRelayJump,
        Algorithm::Bucky,
    ] {
        assert_eq!(HashRing::build(alg, vec![]).unwrap_err(), RingError::Empty);
    }
    let twice = vec![
        Destination::with_instance("a", 1, "x"),
        Destination::with_instance("a", 2, "x"),
    ];
    assert!(matches!(
        HashRing::build(
            Algorithm::Carbon {
                hash: CarbonHash::Fnv1aCh,
                diverse_replicas: false
            },
            twice
        ),
        Err(RingError::DuplicateInstance { .. })
    ));
    let same_port = vec![
        Destination::with_instance("a", 1, "x"),
        Destination::with_instance("a", 1, "y"),
    ];
    assert!(matches!(
        HashRing::build(Algorithm::CRelayJump, same_port.clone()),
        Err(RingError::DuplicateServer { .. })
    ));
    assert!(matches!(
        HashRing::build(Algorithm::CRelay(CRelayHash::Fnv1aCh), same_port),
        Err(RingError::DuplicateServer { .. })
    ));
}

#[test]
fn zero_replicas_route_nowhere() {
    let ring = HashRing::build(
        Algorithm::CRelayJump,
        vec![Destination::new("a", 1), Destination::new("b", 1)],
    )
    .unwrap();
    assert!(route(&ring, b"x", 0).is_empty());
    assert_eq!(route(&ring, b"x", 10).len(), 2);
}
