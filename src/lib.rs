//! wsgate: a WebSocket gateway in one binary — a WebSocket→TCP bridge (a websockify drop-in),
//! a WebSocket and HTTP reverse proxy, static files, and a tunnel for services behind NAT.
//!
//! # Layout
//!
//! In the order a connection meets them:
//!
//! - [`config`]: TOML or websockify's argv → validated runtime [`config::Config`].
//! - [`gateway`]: binds the listeners, then serves until shutdown.
//! - [`listener`]: accept loop, one task per connection, TLS and HTTP/1.1 handshakes.
//! - [`http`]: the hyper service; checks each request, puts it in canonical form, routes it.
//! - [`router`]: host and path-prefix matching with a fixed precedence; host checks and path
//!   normalisation.
//! - [`handler`]: *how* bytes are spoken — bridge (WebSocket ↔ bytes), proxy (HTTP and
//!   WebSocket to upstreams, spliced or message by message) and static files.
//! - [`connector`]: *where* bytes go — a direct TCP or Unix dial, optional PROXY header, TLS
//!   toward `wss://`/`https://` upstreams, or a stream to a connected agent's service.
//! - [`tunnel`]: the agents' side of the gateway — one yamux session per agent over one
//!   WebSocket, the control conversation, and services turned into routes and ports.
//! - [`egress`]: connections agents ask to make out of the gateway (or out of an exit agent)
//!   for their SOCKS5 and HTTP proxies — the policy, the dial, UDP datagrams.
//! - [`agent`], [`pipe`], [`client`]: the other processes — `wsgate agent` behind NAT (with
//!   its local SOCKS5 and HTTP proxies),
//!   `wsgate pipe` for SSH, and the WebSocket dialler they share.
//! - [`access_log`], [`log_escape`], [`shutdown`], [`tls`], [`io`], [`refusal`]: cross-cutting
//!   pieces; [`refusal`] is the one table of how each failure is refused.
//! - `fuzzing` (hidden): entry points to private decoders for the targets in `fuzz/`.

pub mod access_log;
pub mod agent;
pub mod body;
pub mod budget;
pub mod client;
pub mod config;
pub mod connector;
pub mod egress;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod handler;
pub mod handshake;
pub mod hop;
pub mod io;
pub mod log_escape;
pub mod matching;
pub mod pipe;
pub mod refusal;
pub mod router;
pub mod secret;
pub mod session;
pub mod shutdown;
pub mod tls;
pub mod tunnel;
pub mod units;
pub mod wire;
