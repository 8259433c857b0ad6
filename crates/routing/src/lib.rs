//! Where a metric goes: the hash rings of carbon-relay, carbon-c-relay and buckytools, byte-exact,
//! so a Carbide relay sends every metric to the same cache as the program it replaces and a cluster
//! can switch over without rebalancing.
//!
//! Pure code: build a ring once from the destination list, then [`Ring::route`] a metric name into
//! a caller-owned `Vec` of [`NodeId`]s (indexes into that list) without allocating.
//!
//! ```
//! use carbide_routing::{Algorithm, CarbonHash, Destination, HashRing, NodeId, Ring};
//! let ring = HashRing::build(
//!     Algorithm::Carbon { hash: CarbonHash::CarbonCh, diverse_replicas: true },
//!     vec![Destination::new("10.0.0.1", 2004), Destination::new("10.0.0.2", 2004)],
//! )?;
//! let mut out = Vec::new();
//! ring.route(b"servers.web1.cpu", 1, &mut out);
//! assert_eq!(out.len(), 1);
//! # Ok::<(), carbide_routing::RingError>(())
//! ```
//!
//! carbon's aggregated-consistent-hashing routes a metric by each aggregate name the aggregation
//! rules make of it; [`HashRing::route_union`] takes those names from the rules crate.
//!
//! # Layout
//! - [`hash`]: MD5 positions, FNV-1a-32/64 (with carbon-c-relay's signed-`char` quirk), jump hash,
//!   MurmurHash3, and carbon-c-relay's any_of pick.
//! - [`consistent`]: [`ConsistentRing`], the 100-points-per-member ring in its three flavours
//!   (carbon ≥ 1.0, carbon-c-relay, buckytools); the module doc tabulates how they differ.
//! - [`jump`]: [`JumpRing`], carbon-c-relay's jump_fnv1a_ch.
//! - [`fast`]: [`FastRing`], carbon's fast-hashing (members sorted by hash, no points).
//! - [`destination`]: [`Destination`] (host, port, instance) and [`NodeId`].
//! - [`error`]: [`RingError`], the destination lists no real program would accept.
//! - `pyrepr`: Python's `repr()` of a string (carbon hashes the repr of its node tuples).
//! - `msort`: glibc's merge sort, so carbon-c-relay's comparators give carbon-c-relay's orders.

pub mod consistent;
pub mod destination;
pub mod error;
pub mod fast;
pub mod hash;
pub mod jump;
mod msort;
mod pyrepr;
mod pyrepr_table;

pub use consistent::{CRelayHash, CarbonHash, ConsistentRing, REPLICA_POINTS};
pub use destination::{Destination, NodeId};
pub use error::RingError;
pub use fast::FastRing;
pub use jump::JumpRing;

/// Something that maps a routing key to destinations.
pub trait Ring {
    /// Writes into `out` (cleared first) up to `replicas` distinct destinations for `key`, the
    /// primary first. Fewer when the ring has fewer eligible members. Never allocates once `out` has
    /// room for `replicas` ids.
    fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>);

    /// The destinations the ring was built from; a [`NodeId`] indexes this slice.
    fn destinations(&self) -> &[Destination];
}

/// Which program's hashing to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// carbon-relay.py ≥ 1.0, RELAY_METHOD consistent-hashing with ROUTER_HASH_TYPE `hash` and
    /// DIVERSE_REPLICAS (carbon's default: true).
    Carbon {
        /// ROUTER_HASH_TYPE.
        hash: CarbonHash,
        /// DIVERSE_REPLICAS: replicas on distinct servers rather than distinct instances.
        diverse_replicas: bool,
    },
    /// A carbon-c-relay `carbon_ch` or `fnv1a_ch` cluster.
    CRelay(CRelayHash),
    /// A carbon-c-relay `jump_fnv1a_ch` cluster.
    CRelayJump,
    /// buckytools' carbon ring (carbon before 1.0): carbon_ch without collision bumping.
    Bucky,
    /// carbon-relay.py's fast-hashing (and fast-aggregated-hashing) with ROUTER_HASH_TYPE `hash`
    /// (carbon's default there: mmh3_ch) and DIVERSE_REPLICAS.
    CarbonFast {
        /// ROUTER_HASH_TYPE.
        hash: CarbonHash,
        /// DIVERSE_REPLICAS.
        diverse_replicas: bool,
    },
}

/// Any of the rings, chosen at configuration time.
#[derive(Debug, Clone)]
pub enum HashRing {
    /// carbon, carbon-c-relay or buckytools consistent hashing.
    Consistent(ConsistentRing),
    /// carbon-c-relay jump hashing.
    Jump(JumpRing),
    /// carbon's fast-hashing.
    Fast(FastRing),
}

impl HashRing {
    /// Builds the ring `algorithm` describes over `destinations`, in configuration order (the order
    /// matters: carbon bumps colliding points in that order, carbon-c-relay breaks ties with it).
    pub fn build(algorithm: Algorithm, destinations: Vec<Destination>) -> Result<Self, RingError> {
        Ok(match algorithm {
            Algorithm::Carbon {
                hash,
                diverse_replicas,
            } => HashRing::Consistent(ConsistentRing::carbon(hash, destinations, diverse_replicas)?),
            Algorithm::CRelay(hash) => HashRing::Consistent(ConsistentRing::c_relay(hash, destinations)?),
            Algorithm::CRelayJump => HashRing::Jump(JumpRing::c_relay(destinations)?),
            Algorithm::Bucky => HashRing::Consistent(ConsistentRing::bucky(destinations)?),
            Algorithm::CarbonFast {
                hash,
                diverse_replicas,
            } => HashRing::Fast(FastRing::carbon(hash, destinations, diverse_replicas)?),
        })
    }

    /// Routes each of `keys` and writes the union of their destinations into `out` (cleared first),
    /// in first-seen order: carbon's aggregated-consistent-hashing, which sends a metric to every
    /// destination of every aggregate it feeds. `scratch` is reused between calls.
    pub fn route_union<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        replicas: usize,
        out: &mut Vec<NodeId>,
        scratch: &mut Vec<NodeId>,
    ) {
        out.clear();
        for key in keys {
            self.route(key, replicas, scratch);
            for id in scratch.iter() {
                if !out.contains(id) {
                    out.push(*id);
                }
            }
        }
    }
}

impl Ring for HashRing {
    fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        match self {
            HashRing::Consistent(r) => r.route(key, replicas, out),
            HashRing::Jump(r) => r.route(key, replicas, out),
            HashRing::Fast(r) => r.route(key, replicas, out),
        }
    }

    fn destinations(&self) -> &[Destination] {
        match self {
            HashRing::Consistent(r) => r.destinations(),
            HashRing::Jump(r) => r.destinations(),
            HashRing::Fast(r) => r.destinations(),
        }
    }
}

impl Ring for ConsistentRing {
    fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        ConsistentRing::route(self, key, replicas, out);
    }

    fn destinations(&self) -> &[Destination] {
        ConsistentRing::destinations(self)
    }
}

impl Ring for JumpRing {
    fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        JumpRing::route(self, key, replicas, out);
    }

    fn destinations(&self) -> &[Destination] {
        JumpRing::destinations(self)
    }
}

impl Ring for FastRing {
    fn route(&self, key: &[u8], replicas: usize, out: &mut Vec<NodeId>) {
        FastRing::route(self, key, replicas, out);
    }

    fn destinations(&self) -> &[Destination] {
        FastRing::destinations(self)
    }
}
