//! wsgate: a WebSocket gateway in one binary — a WebSocket→TCP bridge (a websockify drop-in),
//! a WebSocket and HTTP reverse proxy, static files, and a tunnel for services behind NAT.
//!
//! # Layout
//!
//! Layer by layer, top down; a module imports only from its own layer or lower ones
//! (docs/architecture.md has the table, `tests/layers.rs` enforces it):
//!
//! - [`gateway`], [`agent`], [`pipe`]: the processes — the gateway (specs assembled into live
//!   routes, connectors and listeners; lifetime; remote ports), `wsgate agent`, `wsgate pipe`.
//! - `front`: where connections arrive — listeners and the one accept loop, TLS, the request
//!   checks, the HTTP/1.1 service.
//! - [`router`]: the route table and its precedence.
//! - [`handler`], [`tunnel`]: bridge, proxy and static files; the agents' hub (sessions, the
//!   claims registry, live/gone events, egress for agents).
//! - [`connector`], `egress`, `client`: the whole dial behind one
//!   [`connector::Stream`]; the egress dial and datagrams; the WebSocket dialler.
//! - [`session`]: the tunnel session, yamux over a WebSocket, with its stream budgets.
//! - [`config`]: plain data — specs loaded from TOML, websockify's argv or an agent's URL
//!   forms, validated; builds nothing live.
//! - [`wire`]: the tunnel protocol's messages, pure encode/decode.
//! - Leaf primitives: [`units`], [`secret`], `log_escape`, [`shutdown`], `budget`, `tls`,
//!   `access_log`, [`io`] (the byte pumps), `body`, `handshake`, `hop`, [`matching`],
//!   and `refusal`, the one table of how each failure is refused.
//! - `fuzzing` (hidden): entry points to private decoders for the targets in `fuzz/`.

pub(crate) mod access_log;
pub mod agent;
pub(crate) mod body;
pub(crate) mod budget;
pub(crate) mod client;
pub mod config;
pub mod connector;
pub(crate) mod egress;
pub(crate) mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod handler;
pub(crate) mod handshake;
pub(crate) mod hop;
pub mod io;
pub(crate) mod log_escape;
pub mod matching;
pub mod pipe;
pub(crate) mod refusal;
pub mod router;
pub mod secret;
pub mod session;
pub mod shutdown;
pub(crate) mod tls;
pub mod tunnel;
pub mod units;
pub mod wire;
