//! Why a ring could not be built.

/// A destination list that no real program would accept as a ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Routing over nothing is a configuration mistake, not a state to run in.
    #[error("a hash ring needs at least one destination")]
    Empty,
    /// carbon keys its ring by (server, instance): a second destination with the same pair would
    /// share every position with the first (carbon raises "destination instance already configured").
    #[error("destination ({host}, {instance}) is configured twice")]
    DuplicateInstance {
        /// The server as written.
        host: String,
        /// The instance, or `None` as carbon prints it.
        instance: String,
    },
    /// carbon-c-relay and buckytools key members by host and port: a repeat is the same server.
    #[error("destination {host}:{port} is configured twice")]
    DuplicateServer {
        /// The server as written.
        host: String,
        /// Its port.
        port: u16,
    },
    /// Node ids are 32 bits wide; no real cluster comes near this.
    #[error("{0} destinations are more than a ring can index")]
    TooMany(usize),
}
