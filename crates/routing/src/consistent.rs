//! Consistent-hash rings with 100 points per member: carbon's `ConsistentHashRing` (carbon_ch,
//! fnv1a_ch, mmh3_ch), carbon-c-relay's carbon_ch and fnv1a_ch, and buckytools' carbon ring.
//!
//! All three agree on the shape (sorted positions, a metric goes to the first point at or after its
//! own position, wrapping, and further replicas are the next distinct members clockwise) and differ
//! in the details that decide where a metric lands:
//!
//! | | carbon ≥ 1.0 | carbon-c-relay | buckytools (carbon 0.9) |
//! |---|---|---|---|
//! | carbon_ch point key | `str((server, instance))` + `:i`, Python repr | `('%s', '%s'):%d` or `('%s', None):%d`, no escaping, 255 bytes max | as carbon-c-relay, unbounded |
//! | fnv1a_ch point key | `%d-%s` of i and instance (or `None`) | `%d-%s` of i and instance, else `%d-%s:%u` of i, host, port | — |
//! | equal positions | bumped +1 until free, in DESTINATIONS order | sorted by host, then instance (carbon_ch; none last) or port (fnv1a_ch); each later one takes the first one's member | sorted by host, then instance (none first); all kept |
//! | replicas | distinct (server, instance); DIVERSE_REPLICAS: distinct server | distinct member | distinct member |

use std::collections::HashSet;

use crate::destination::{Destination, NodeId};
use crate::error::RingError;
use crate::hash;
use crate::msort;
use crate::pyrepr::push_repr;

/// Points each member gets on the ring: hard-wired in carbon and copied by carbon-c-relay.
pub const REPLICA_POINTS: u32 = 100;

/// carbon-c-relay formats point keys into a 256-byte buffer with `snprintf`.
const CRELAY_KEY_MAX: usize = 255;

/// Which hash carbon's `ConsistentHashRing` uses (`ROUTER_HASH_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CarbonHash {
    /// MD5, first two bytes: the default for consistent-hashing.
    CarbonCh,
    /// FNV-1a-32 folded to 16 bits; points keyed by instance alone.
    Fnv1aCh,
    /// MurmurHash3-32 as a signed number (carbon needs the Python mmh3 module for it).
    Mmh3Ch,
}

/// Which hash a carbon-c-relay consistent-hash cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CRelayHash {
    /// `carbon_ch`: MD5 positions from carbon-style keys, without carbon's collision bumping.
    CarbonCh,
    /// `fnv1a_ch`: FNV-1a-32 positions; keys include host and port unless an instance is given.
    Fnv1aCh,
}

/// How a metric name becomes a ring position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PositionHash {
    Md5,
    Fnv1a,
    Fnv1aSignedChar,
    Mmh3,
}

impl PositionHash {
    fn position(self, key: &[u8]) -> i64 {
        match self {
            PositionHash::Md5 => i64::from(hash::md5_position(key)),
            PositionHash::Fnv1a => i64::from(hash::fold16(hash::fnv1a_32(key))),
            PositionHash::Fnv1aSignedChar => i64::from(hash::fold16(hash::fnv1a_32_signed_char(key))),
            PositionHash::Mmh3 => i64::from(hash::murmur3_32(key)),
        }
    }
}

/// Which program's walk the ring reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// carbon's `get_nodes`: stops one point short of a full turn; optional server diversity.
    Carbon { diverse: bool },
    /// carbon-c-relay and buckytools: a full turn at most.
    FullTurn,
}

/// A consistent-hash ring with [`REPLICA_POINTS`] points per member.
///
/// Built once from the destination list; [`ConsistentRing::route`] then neither allocates nor
/// locks, so one ring can be shared by every connection.
#[derive(Debug, Clone)]
pub struct ConsistentRing {
    destinations: Vec<Destination>,
    /// Sorted point positions (carbon's bumped positions may exceed 65535; mmh3's may be negative).
    positions: Vec<i64>,
    /// The member owning each point.
    owners: Vec<u32>,
    /// Per destination: an id shared by all destinations on the same server (DIVERSE_REPLICAS).
    server_of: Vec<u32>,
    servers: usize,
    hash: PositionHash,
    walk: Walk,
}

fn node_count(dests: &[Destination]) -> Result<u32, RingError> {
    if dests.is_empty() {
        return Err(RingError::Empty);
    }
    u32::try_from(dests.len())
        .ok()
        .filter(|n| n.checked_mul(REPLICA_POINTS).is_some())
        .ok_or(RingError::TooMany(dests.len()))
}

fn instance_text(d: &Destination) -> String {
    d.instance.clone().unwrap_or_else(|| "None".to_owned())
}

fn reject_duplicate_instances(dests: &[Destination]) -> Result<(), RingError> {
    let mut seen = HashSet::new();
    for d in dests {
        if !seen.insert((d.host.as_str(), d.instance.as_deref())) {
            return Err(RingError::DuplicateInstance {
                host: d.host.clone(),
                instance: instance_text(d),
            });
        }
    }
    Ok(())
}

fn reject_duplicate_servers(dests: &[Destination]) -> Result<(), RingError> {
    let mut seen = HashSet::new();
    for d in dests {
        if !seen.insert((d.host.as_str(), d.port)) {
            return Err(RingError::DuplicateServer {
                host: d.host.clone(),
                port: d.port,
            });
        }
    }
    Ok(())
}

/// carbon's point key for carbon_ch and mmh3_ch: `"%s:%d" % ((server, instance), i)`.
fn carbon_python_key(d: &Destination, i: u32) -> String {
    let mut key = String::with_capacity(d.host.len() + 24);
    key.push('(');
    push_repr(&mut key, &d.host);
    key.push_str(", ");
    match &d.instance {
        Some(inst) => push_repr(&mut key, inst),
        None => key.push_str("None"),
    }
    key.push_str("):");
    key.push_str(&i.to_string());
    key
}

/// carbon-c-relay's and buckytools' carbon_ch point key: Python's tuple text, quoted naively.
fn carbon_naive_key(d: &Destination, i: u32) -> String {
    match &d.instance {
        Some(inst) => format!("('{}', '{}'):{}", d.host, inst, i),
        None => format!("('{}', None):{}", d.host, i),
    }
}

fn truncated(key: &[u8]) -> &[u8] {
    &key[..key.len().min(CRELAY_KEY_MAX)]
}

fn server_ids(dests: &[Destination]) -> (Vec<u32>, usize) {
    let mut ids: Vec<(&str, u32)> = Vec::new();
    let mut out = Vec::with_capacity(dests.len());
    for d in dests {
        let id = match ids.iter().find(|(h, _)| *h == d.host) {
            Some(&(_, id)) => id,
            None => {
                let id = ids.len() as u32;
                ids.push((&d.host, id));
                id
            }
        };
        out.push(id);
    }
    (out, ids.len())
}

impl ConsistentRing {
    /// carbon's `ConsistentHashRing` fed by `ConsistentHashingRouter`: destinations added in order,
    /// colliding points bumped, replicas on distinct servers when `diverse_replicas` (carbon's
    /// DIVERSE_REPLICAS, default true) or else on distinct (server, instance) pairs.
    pub fn carbon(
        hash_type: CarbonHash,
        destinations: Vec<Destination>,
        diverse_replicas: bool,
    ) -> Result<Self, RingError> {
        let n = node_count(&destinations)?;
        reject_duplicate_instances(&destinations)?;
        let position_hash = match hash_type {
            CarbonHash::CarbonCh => PositionHash::Md5,
            CarbonHash::Fnv1aCh => PositionHash::Fnv1a,
            CarbonHash::Mmh3Ch => PositionHash::Mmh3,
        };
        let mut taken: HashSet<i64> = HashSet::with_capacity((n * REPLICA_POINTS) as usize);
        let mut points: Vec<(i64, u32)> = Vec::with_capacity((n * REPLICA_POINTS) as usize);
        for (node, d) in (0u32..).zip(&destinations) {
            for i in 0..REPLICA_POINTS {
                let key = match hash_type {
                    CarbonHash::Fnv1aCh => format!("{}-{}", i, instance_text(d)),
                    CarbonHash::CarbonCh | CarbonHash::Mmh3Ch => carbon_python_key(d, i),
                };
                let mut pos = position_hash.position(key.as_bytes());
                while !taken.insert(pos) {
                    pos += 1;
                }
                points.push((pos, node));
            }
        }
        // Positions are unique, so the order is total.
        points.sort_unstable();
        Ok(Self::assemble(
            destinations,
            points,
            position_hash,
            Walk::Carbon {
                diverse: diverse_replicas,
            },
        ))
    }

    /// carbon-c-relay's `carbon_ch` or `fnv1a_ch` cluster, members in config order.
    pub fn c_relay(hash_type: CRelayHash, destinations: Vec<Destination>) -> Result<Self, RingError> {
        let n = node_count(&destinations)?;
        reject_duplicate_servers(&destinations)?;
        let mut points: Vec<(i64, u32)> = Vec::with_capacity((n * REPLICA_POINTS) as usize);
        for (node, d) in (0u32..).zip(&destinations) {
            for i in 0..REPLICA_POINTS {
                let pos = match (hash_type, &d.instance) {
                    (CRelayHash::CarbonCh, _) => {
                        hash::md5_position(truncated(carbon_naive_key(d, i).as_bytes()))
                    }
                    (CRelayHash::Fnv1aCh, Some(inst)) => hash::fold16(hash::fnv1a_32_signed_char(truncated(
                        format!("{i}-{inst}").as_bytes(),
                    ))),
                    (CRelayHash::Fnv1aCh, None) => hash::fold16(hash::fnv1a_32_signed_char(truncated(
                        format!("{}-{}:{}", i, d.host, d.port).as_bytes(),
                    ))),
                };
                points.push((i64::from(pos), node));
            }
        }
        let dests = &destinations;
        match hash_type {
            CRelayHash::CarbonCh => msort::sort(&mut points, |a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    let (l, r) = (&dests[a.1 as usize], &dests[b.1 as usize]);
                    l.host
                        .as_bytes()
                        .cmp(r.host.as_bytes())
                        .then_with(|| match (&l.instance, &r.instance) {
                            (None, None) => std::cmp::Ordering::Equal,
                            (None, Some(_)) => std::cmp::Ordering::Greater,
                            (Some(_), None) => std::cmp::Ordering::Less,
                            (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()),
                        })
                })
            }),
            CRelayHash::Fnv1aCh => msort::sort(&mut points, |a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    let (l, r) = (&dests[a.1 as usize], &dests[b.1 as usize]);
                    l.host.as_bytes().cmp(r.host.as_bytes()).then(l.port.cmp(&r.port))
                })
            }),
        }
        // carbon-c-relay gives every point at an already-seen position to the member of the first
        // one, so its binary search may land on any of them: the later members lose that point.
        for i in 1..points.len() {
            if points[i].0 == points[i - 1].0 {
                points[i].1 = points[i - 1].1;
            }
        }
        let position_hash = match hash_type {
            CRelayHash::CarbonCh => PositionHash::Md5,
            CRelayHash::Fnv1aCh => PositionHash::Fnv1aSignedChar,
        };
        Ok(Self::assemble(
            destinations,
            points,
            position_hash,
            Walk::FullTurn,
        ))
    }

    /// buckytools' `CarbonHashRing` (and carbon before 1.0): carbon_ch without bumping; equal
    /// positions ordered by host, then instance with "no instance" first, all of them kept.
    pub fn bucky(destinations: Vec<Destination>) -> Result<Self, RingError> {
        let n = node_count(&destinations)?;
        reject_duplicate_instances(&destinations)?;
        let mut points: Vec<(i64, u32)> = Vec::with_capacity((n * REPLICA_POINTS) as usize);
        for (node, d) in (0u32..).zip(&destinations) {
            for i in 0..REPLICA_POINTS {
                let pos = hash::md5_position(carbon_naive_key(d, i).as_bytes());
                points.push((i64::from(pos), node));
            }
        }
        let dests = &destinations;
        // Stable, so equal keys keep insertion order, as buckytools' insert-after-equals does.
        points.sort_by(|a, b| {
            let (l, r) = (&dests[a.1 as usize], &dests[b.1 as usize]);
            a.0.cmp(&b.0).then_with(|| l.host.cmp(&r.host)).then_with(|| {
                l.instance
                    .as_deref()
                    .unwrap_or("")
                    .cmp(r.instance.as_deref().unwrap_or(""))
            })
        });
        Ok(Self::assemble(
            destinations,
            points,
            PositionHash::Md5,
            Walk::FullTurn,
        ))
    }

    fn assemble(
        destinations: Vec<Destination>,
        points: Vec<(i64, u32)>,
        hash: PositionHash,
        walk: Walk,
    ) -> Self {
        let (server_of, servers) = server_ids(&destinations);
        let (positions, owners) = points.into_iter().unzip();
        ConsistentRing {
            destinations,
            positions,
            owners,
            server_of,
            servers,
            hash,
            walk,
        }
    }

    /// The destinations, indexed by [`NodeId`].
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    /// The ring's points as (position, member), in ring order: for debugging output like
    /// carbon-c-relay's `-d` ring dump, and for tests.
    pub fn points(&self) -> impl Iterator<Item = (i64, NodeId)> + '_ {
        self.positions
            .iter()
            .copied()
            .zip(self.owners.iter().map(|&o| NodeId(o)))
    }

    /// Where `key` falls on the ring (carbon-c-relay prints this as `hash_pos` in `-t -d` mode).
    pub fn position(&self, key: &[u8]) -> i64 {
        self.hash.position(key)
    }

    /// Writes into `out` (cleared first) up to `replicas` destinations for `key`, primary first.
    pub fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        out.clear();
        let len = self.positions.len();
        if len == 0 || replicas == 0 {
            return;
        }
        let diverse = matches!(self.walk, Walk::Carbon { diverse: true });
        let reachable = if diverse {
            self.servers
        } else {
            self.destinations.len()
        };
        let want = replicas.min(reachable);
        // carbon's get_nodes yields the lone member up front when there is only one.
        if self.destinations.len() == 1 {
            out.push(NodeId(0));
            return;
        }
        let pos = self.hash.position(key);
        let mut idx = self.positions.partition_point(|&p| p < pos);
        if idx == len {
            idx = 0;
        }
        // carbon stops when it comes back to the point just before the start, never examining it.
        let steps = match self.walk {
            Walk::Carbon { .. } => len - 1,
            Walk::FullTurn => len,
        };
        for _ in 0..steps {
            let node = self.owners[idx];
            let taken = if diverse {
                let server = self.server_of[node as usize];
                out.iter().any(|o| self.server_of[o.index()] == server)
            } else {
                out.contains(&NodeId(node))
            };
            if !taken {
                out.push(NodeId(node));
                if out.len() == want {
                    return;
                }
            }
            idx += 1;
            if idx == len {
                idx = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_keys() {
        let plain = Destination::new("127.0.0.1", 2004);
        let quoted = Destination::with_instance("it's", 2004, "a\\b");
        let cases = [
            (carbon_python_key(&plain, 0), "('127.0.0.1', None):0"),
            (carbon_python_key(&quoted, 7), "(\"it's\", 'a\\\\b'):7"),
            (carbon_naive_key(&plain, 99), "('127.0.0.1', None):99"),
            (carbon_naive_key(&quoted, 7), "('it's', 'a\\b'):7"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn carbon_bumps_collisions_in_destination_order() {
        // fnv1a_ch keys members without an instance as "i-None": every point of the second member
        // collides with the first's and moves up by one (or more, if that is taken too).
        let ring = ConsistentRing::carbon(
            CarbonHash::Fnv1aCh,
            vec![Destination::new("a", 1), Destination::new("b", 1)],
            true,
        )
        .unwrap();
        let points: Vec<(i64, NodeId)> = ring.points().collect();
        assert_eq!(points.len(), 200);
        let positions: HashSet<i64> = points.iter().map(|p| p.0).collect();
        assert_eq!(positions.len(), 200, "positions must be unique after bumping");
        // Every point of b was pushed up from an occupied position, so the one below is taken.
        for (p, node) in &points {
            if *node == NodeId(1) {
                assert!(positions.contains(&(p - 1)), "b's point {p} was not bumped");
            }
        }
        let bases: HashSet<i64> = (0..REPLICA_POINTS)
            .map(|i| i64::from(hash::fold16(hash::fnv1a_32(format!("{i}-None").as_bytes()))))
            .collect();
        assert!(
            bases.iter().all(|b| points.contains(&(*b, NodeId(0)))),
            "a keeps its own positions"
        );
        // Member a was added first, so it keeps every unbumped position.
        let a_first = points.iter().filter(|p| p.1 == NodeId(0)).count();
        assert_eq!(a_first, 100);
    }

    #[test]
    fn c_relay_collisions_go_to_the_first_member_and_routes_stay_bounded() {
        // Same host on three ports: identical carbon_ch keys, identical positions. The sort keeps
        // config order for equal keys and the first member takes every point.
        let ring = ConsistentRing::c_relay(
            CRelayHash::CarbonCh,
            vec![
                Destination::new("h", 1),
                Destination::new("h", 2),
                Destination::new("h", 3),
            ],
        )
        .unwrap();
        assert!(ring.points().all(|(_, n)| n == NodeId(0)));
        let mut out = Vec::new();
        // carbon-c-relay itself spins forever here (it refuses only replication > members).
        ring.route(b"anything", 3, &mut out);
        assert_eq!(out, vec![NodeId(0)]);
    }

    #[test]
    fn c_relay_keys_are_cut_at_255_bytes() {
        let long = "x".repeat(400);
        let a = ConsistentRing::c_relay(
            CRelayHash::Fnv1aCh,
            vec![Destination::with_instance("a", 1, &long)],
        )
        .unwrap();
        let b = ConsistentRing::c_relay(
            CRelayHash::Fnv1aCh,
            vec![Destination::with_instance("a", 1, format!("{long}tail"))],
        )
        .unwrap();
        assert!(a.points().eq(b.points()));
    }

    #[test]
    fn the_walk_wraps_around() {
        let ring = ConsistentRing::c_relay(
            CRelayHash::CarbonCh,
            vec![
                Destination::new("a", 1),
                Destination::new("b", 1),
                Destination::new("c", 1),
            ],
        )
        .unwrap();
        let last = ring.points().last().unwrap();
        let first = ring.points().next().unwrap();
        // Find a name whose position lies beyond the last point: it must land on the first point.
        let name = (0..100_000)
            .map(|i| format!("m{i}"))
            .find(|n| ring.position(n.as_bytes()) > last.0)
            .unwrap();
        let mut out = Vec::new();
        ring.route(name.as_bytes(), 1, &mut out);
        assert_eq!(out, vec![first.1]);
    }
}
