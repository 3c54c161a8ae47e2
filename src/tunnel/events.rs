//! What the hub tells the gateway: a service of an agent is live (with what is needed to
//! reach it), or a session's services are gone. The gateway turns these into routes and port
//! listeners; the hub builds neither.

use crate::{session::SessionHandle, tunnel::registry::Claimed, wire::Service};

/// How long an agent may take to reach its local service for a visitor: a dial's default, as
/// for a configured route's target.
pub(crate) const AGENT_CONNECT_TIMEOUT: std::time::Duration =
    crate::config::route::DEFAULT_CONNECT_TIMEOUT;

/// A service that was granted and should now be reachable.
#[derive(Debug, Clone)]
pub struct LiveService {
    /// The agent session's id in the hub.
    pub session: u64,
    /// The agent's name.
    pub agent: String,
    /// The service as registered.
    pub service: Service,
    /// What the registry granted.
    pub claimed: Claimed,
    /// The session to open the service's streams on.
    pub handle: SessionHandle,
}

/// Which of a session's services are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Its routes and private services: the same agent's new session took them over (its
    /// ports stay until the old session is released or the new one claims them).
    Replaced,
    /// Everything it held: the session ended.
    Ended,
}

/// Why the gateway could not make a granted service reachable; the agent is told.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The service's gateway port could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The route could not be assembled.
    #[error("{0}")]
    Route(String),
}

/// Where the hub sends its events: the gateway's assembler. Called before the agent hears the
/// answer, so that a route the agent was told about is already there.
pub trait ServiceSink: Send + Sync + std::fmt::Debug {
    /// `live` was granted: make it reachable.
    fn live(&self, live: &LiveService) -> Result<(), SinkError>;
    /// Session `session`'s services are gone, as `gone` says.
    fn gone(&self, session: u64, gone: Gone);
}
