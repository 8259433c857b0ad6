//! Ring members as the configuration names them, and the ids routes return.

use std::fmt;

/// One member of a ring: `host:port[:instance]` in carbon's DESTINATIONS,
/// `host[:port][=instance]` in carbon-c-relay's cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The server exactly as written: rings hash this text, never a resolved address.
    pub host: String,
    /// The port to send to (part of the ring key only in carbon-c-relay's fnv1a_ch).
    pub port: u16,
    /// The instance name; `None` is hashed as Python's `None` by carbon.
    pub instance: Option<String>,
}

impl Destination {
    /// A destination without an instance.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Destination {
            host: host.into(),
            port,
            instance: None,
        }
    }

    /// A destination with an instance.
    pub fn with_instance(host: impl Into<String>, port: u16, instance: impl Into<String>) -> Self {
        Destination {
            host: host.into(),
            port,
            instance: Some(instance.into()),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.instance {
            Some(i) => write!(f, "{}:{}:{}", self.host, self.port, i),
            None => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// A destination's index in the list the ring was built from, so callers keep their own
/// per-destination state (queues, connections) in a plain `Vec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The index into the destination list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
