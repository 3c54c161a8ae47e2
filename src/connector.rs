//! Connectors say *where* bytes go: a [`Target`] is dialled and yields an [`Upstream`] stream.
//!
//! Handlers never know which connector they were given (DESIGN.md): today the only way to reach
//! a target is a direct dial; the agent connector joins [`Connector`] with the tunnel.

pub mod agent;
pub mod direct;
pub mod proxy_protocol;
pub mod tls;
pub mod upstream;

use std::{io, net::SocketAddr, time::Duration};

use http::StatusCode;

pub use crate::config::target::{ProxyProtocol, Target};
pub use agent::AgentConnector;
pub use direct::DirectConnector;
pub use upstream::Upstream;

/// How a dial behaves, per route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOptions {
    /// Past this the client gets 504; 10 s is long enough for a slow LAN host and short
    /// enough that a browser has not given up yet.
    pub connect_timeout: Duration,
    /// Announce the client's address to the target with a PROXY protocol header.
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl Default for DialOptions {
    fn default() -> Self {
        DialOptions {
            connect_timeout: crate::config::route::DEFAULT_CONNECT_TIMEOUT,
            proxy_protocol: None,
        }
    }
}

/// When TCP keepalive starts probing an idle connection: a peer that vanished (a closed
/// laptop, a NAT that dropped the mapping, a crashed host) is found in about two minutes
/// instead of never, without closing idle WebSockets that are merely quiet.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Interval between keepalive probes once they start (the kernel gives up after 9).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(7);

/// Turns on TCP keepalive for a client or upstream connection; failure only loses the probe.
pub fn keep_alive(stream: &tokio::net::TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// The two ends of the client's connection, for PROXY headers, forwarding headers and logs.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddrs {
    /// The client's address as the gateway sees it.
    pub peer: SocketAddr,
    /// The gateway address the client connected to.
    pub local: SocketAddr,
    /// Whether the client's connection is TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// The closed set of ways to reach a target.
#[derive(Debug, Clone)]
pub enum Connector {
    /// Dial the target from the gateway itself.
    Direct(DirectConnector),
    /// Open a stream to a service of a connected agent.
    Agent(AgentConnector),
}

impl Connector {
    /// Opens a byte stream to the target, ready for the handler's bytes.
    pub async fn connect(&self, client: ClientAddrs) -> Result<Upstream, ConnectError> {
        match self {
            Connector::Direct(direct) => direct.connect(client).await,
            Connector::Agent(agent) => agent.connect().await,
        }
    }

    /// How long dialling may take (a TLS handshake on top gets as long again).
    pub fn connect_timeout(&self) -> Duration {
        match self {
            Connector::Direct(direct) => direct.options.connect_timeout,
            Connector::Agent(agent) => agent.connect_timeout,
        }
    }

    /// The target, for logs: `tcp://host:port`, `unix:/path` or `agent:NAME/SERVICE`.
    pub fn target(&self) -> String {
        match self {
            Connector::Direct(direct) => direct.target.to_string(),
            Connector::Agent(agent) => agent.to_string(),
        }
    }
}

/// Why a target could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("resolve {target}: {source}")]
    Resolve {
        /// What was dialled.
        target: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The target refused or could not be reached.
    #[error("connect {target}: {source}")]
    Refused {
        /// What was dialled.
        target: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The target did not answer in time.
    #[error("connect {target}: timed out after {after:?}")]
    Timeout {
        /// What was dialled.
        target: String,
        /// The configured connect timeout.
        after: Duration,
    },
    /// The agent's session is gone, or the agent could not reach its local service.
    #[error("{target}: {reason}")]
    Agent {
        /// The agent and service.
        target: String,
        /// What the agent or the session said.
        reason: String,
    },
    /// A gateway budget (tunnel memory) has no room for another stream now.
    #[error("{target}: {reason}")]
    Busy {
        /// The agent and service.
        target: String,
        /// Which budget is full.
        reason: String,
    },
}

impl ConnectError {
    /// The status a client sees before its upgrade: 504 for a timeout, 503 when a budget is
    /// full (the gateway's state, not the upstream's), else 502.
    pub fn http_status(&self) -> StatusCode {
        match self {
            ConnectError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ConnectError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ConnectError::Resolve { .. }
            | ConnectError::Refused { .. }
            | ConnectError::Agent { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keep_alive_turns_on_probing_with_our_timings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        keep_alive(&stream);
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
    }
}
