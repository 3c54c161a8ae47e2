//! Connectors say *where* bytes go: a [`Connector`] owns the whole dial (TCP or Unix with
//! keepalive and the PROXY header, a stream to an agent's service, TLS with its timeout and
//! SNI on top of either) and yields one [`Stream`] type.
//!
//! Handlers never know which connector they were given (DESIGN.md), nor what the stream is.

pub mod agent;
pub mod direct;
pub mod proxy_protocol;
pub mod stream;
pub mod tls;

use std::{io, net::SocketAddr, time::Duration};

use crate::refusal::Refusal;

pub use crate::config::target::{ProxyProtocol, Target};
pub(crate) use agent::AgentConnector;
pub(crate) use direct::DirectConnector;
pub use stream::Stream;
pub(crate) use tls::TlsDial;

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
    /// Reach the target by the inner connector, then speak TLS over the stream.
    Tls(Box<TlsConnector>),
}

/// TLS over another connector's stream; the handshake gets the inner connect timeout again.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    /// How the stream under TLS is reached.
    pub inner: Connector,
    /// Roots, SNI and ALPN.
    pub tls: TlsDial,
}

impl Connector {
    /// A direct dial of `target`.
    pub fn direct(target: Target, options: DialOptions) -> Self {
        Connector::Direct(DirectConnector { target, options })
    }

    /// This connector, with TLS on top when `tls` is set (`wss://`, `https://`).
    pub(crate) fn with_tls(self, tls: Option<TlsDial>) -> Self {
        match tls {
            Some(tls) => Connector::Tls(Box::new(TlsConnector { inner: self, tls })),
            None => self,
        }
    }

    /// Opens a byte stream to the target, ready for the handler's bytes.
    pub async fn connect(&self, client: ClientAddrs) -> Result<Stream, ConnectError> {
        match self {
            Connector::Direct(direct) => direct.connect(client).await,
            Connector::Agent(agent) => agent.connect().await,
            Connector::Tls(tls) => tls.connect(client).await,
        }
    }

    /// How long dialling may take (a TLS handshake on top gets as long again).
    pub fn connect_timeout(&self) -> Duration {
        match self {
            Connector::Direct(direct) => direct.options.connect_timeout,
            Connector::Agent(agent) => agent.connect_timeout,
            Connector::Tls(tls) => tls.inner.connect_timeout(),
        }
    }

    /// The target, for logs: `tcp://host:port`, `unix:/path` or `agent:NAME/SERVICE`.
    pub fn target(&self) -> String {
        match self {
            Connector::Direct(direct) => direct.target.to_string(),
            Connector::Agent(agent) => agent.to_string(),
            Connector::Tls(tls) => tls.inner.target(),
        }
    }
}

impl TlsConnector {
    /// Reaches the target, then runs the TLS handshake under the connect timeout.
    async fn connect(&self, client: ClientAddrs) -> Result<Stream, ConnectError> {
        // Boxed: the inner connect is this same function's caller, a recursive future.
        let stream = Box::pin(self.inner.connect(client)).await?;
        let after = self.inner.connect_timeout();
        match tokio::time::timeout(after, self.tls.handshake(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(ConnectError::Tls {
                target: self.inner.target(),
                source,
            }),
            Err(_) => Err(ConnectError::TlsTimeout {
                target: self.inner.target(),
                after,
            }),
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
    /// The TLS handshake with the target failed.
    #[error("TLS with {target}: {source}")]
    Tls {
        /// What was dialled.
        target: String,
        /// What rustls said.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake took longer than the connect timeout.
    #[error("TLS with {target}: no handshake within {after:?}")]
    TlsTimeout {
        /// What was dialled.
        target: String,
        /// The connect timeout.
        after: Duration,
    },
}

impl ConnectError {
    /// How the client is refused: a timeout, a full budget (the gateway's state, not the
    /// upstream's), a failed TLS handshake, else unreachable.
    pub fn refusal(&self) -> Refusal {
        match self {
            ConnectError::Timeout { .. } => Refusal::UpstreamConnectTimeout,
            ConnectError::TlsTimeout { .. } => Refusal::UpstreamTlsTimeout,
            ConnectError::Tls { .. } => Refusal::UpstreamTls,
            ConnectError::Busy { .. } => Refusal::GatewayBusy,
            ConnectError::Resolve { .. }
            | ConnectError::Refused { .. }
            | ConnectError::Agent { .. } => Refusal::UpstreamUnreachable,
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
