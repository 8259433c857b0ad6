//! carbon's fast-hashing and fast-aggregated-hashing "ring" (`FastHashRing`): no points at all,
//! just the members sorted by the hash of `str((server, instance))`, and a metric starts at index
//! `hash(metric) mod members` and takes the following members in that order.
//!
//! Rebalancing moves most metrics when a member is added; carbon accepts that for speed. Members
//! whose hashes tie are ordered by carbon in Python set order, which varies from run to run
//! (string hashing is randomised), so carbon itself is not deterministic there; we keep
//! configuration order for ties.

use std::collections::HashSet;

use crate::consistent::CarbonHash;
use crate::destination::{Destination, NodeId};
use crate::error::RingError;
use crate::hash;
use crate::pyrepr::push_repr;

/// carbon's `FastHashRing` behind `FastHashingRouter`.
#[derive(Debug, Clone)]
pub struct FastRing {
    destinations: Vec<Destination>,
    /// Destination indexes sorted by the hash of their tuple text.
    order: Vec<u32>,
    server_of: Vec<u32>,
    servers: usize,
    hash: CarbonHash,
    diverse: bool,
}

/// `carbonHash(key, hash_type)`: 16 bits for carbon_ch and fnv1a_ch, a signed 32-bit value for mmh3.
fn carbon_hash(hash_type: CarbonHash, key: &[u8]) -> i64 {
    match hash_type {
        CarbonHash::CarbonCh => i64::from(hash::md5_position(key)),
        CarbonHash::Fnv1aCh => i64::from(hash::fold16(hash::fnv1a_32(key))),
        CarbonHash::Mmh3Ch => i64::from(hash::murmur3_32(key)),
    }
}

impl FastRing {
    /// Builds the member order. `hash_type` is ROUTER_HASH_TYPE (carbon's default here: mmh3_ch).
    pub fn carbon(
        hash_type: CarbonHash,
        destinations: Vec<Destination>,
        diverse_replicas: bool,
    ) -> Result<Self, RingError> {
        if destinations.is_empty() {
            return Err(RingError::Empty);
        }
        let n = u32::try_from(destinations.len()).map_err(|_| RingError::TooMany(destinations.len()))?;
        let mut seen = HashSet::new();
        for d in &destinations {
            if !seen.insert((d.host.as_str(), d.instance.as_deref())) {
                return Err(RingError::DuplicateInstance {
                    host: d.host.clone(),
                    instance: d.instance.clone().unwrap_or_else(|| "None".to_owned()),
                });
            }
        }
        let mut keyed: Vec<(i64, u32)> = (0..n)
            .map(|i| {
                let d = &destinations[i as usize];
                let mut key = String::from("(");
                push_repr(&mut key, &d.host);
                key.push_str(", ");
                match &d.instance {
                    Some(inst) => push_repr(&mut key, inst),
                    None => key.push_str("None"),
                }
                key.push(')');
                (carbon_hash(hash_type, key.as_bytes()), i)
            })
            .collect();
        // Stable: ties keep configuration order.
        keyed.sort_by_key(|&(h, _)| h);
        let mut hosts: Vec<&str> = Vec::new();
        let server_of = destinations
            .iter()
            .map(|d| match hosts.iter().position(|h| *h == d.host) {
                Some(p) => p as u32,
                None => {
                    hosts.push(&d.host);
                    (hosts.len() - 1) as u32
                }
            })
            .collect();
        let servers = hosts.len();
        Ok(FastRing {
            order: keyed.into_iter().map(|(_, i)| i).collect(),
            destinations,
            server_of,
            servers,
            hash: hash_type,
            diverse: diverse_replicas,
        })
    }

    /// The destinations, indexed by [`NodeId`].
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    /// Destination indexes in the ring's order.
    pub fn member_order(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.order.iter().map(|&o| NodeId(o))
    }

    /// Writes into `out` (cleared first) up to `replicas` destinations for `key`, primary first.
    pub fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        out.clear();
        let n = self.order.len();
        let want = replicas.min(if self.diverse { self.servers } else { n });
        if want == 0 {
            return;
        }
        // Python's % takes the sign of the divisor: the start is never negative.
        let start = carbon_hash(self.hash, key).rem_euclid(n as i64) as usize;
        for step in 0..n {
            let node = self.order[(start + step) % n];
            if self.diverse {
                let server = self.server_of[node as usize];
                if out.iter().any(|o| self.server_of[o.index()] == server) {
                    continue;
                }
            }
            out.push(NodeId(node));
            if out.len() == want {
                return;
            }
        }
    }
}
