//! The tunnel: agents behind NAT dial the gateway over one WebSocket and expose services through
//! it (docs/tunnel.md). This module holds what both sides share.

pub mod hub;
pub mod limits;
pub mod ports;
pub mod session;
pub mod wire;

/// Copy buffer per direction where a tunnel stream meets a socket: a multiplexed stream costs
/// a frame and a WebSocket message per write, so large writes matter (tokio's default is 8 KiB).
/// A read this size is one yamux frame (`session`'s largest) and one WebSocket message.
pub const COPY_BYTES: usize = 60 * 1024;
pub mod ws_io;
