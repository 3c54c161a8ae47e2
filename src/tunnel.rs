//! The tunnel: agents behind NAT dial the gateway over one WebSocket and expose services through
//! it (docs/tunnel.md). This module holds what both sides share.

pub mod claim_rules;
pub mod events;
pub mod frames;
pub mod hub;
pub mod limits;
pub mod names;
pub mod registry;
pub mod session;
pub mod wire;

/// Copy buffer per direction where a tunnel stream meets a socket: a multiplexed stream costs
/// a frame and a WebSocket message per write, so large writes matter (tokio's default is 8 KiB).
/// A read this size is one yamux frame (`session`'s largest) and one WebSocket message.
pub const COPY_BYTES: usize = 60 * 1024;

/// Copies both ways between a tunnel stream and a socket (or another stream) until both
/// sides have ended, with [`COPY_BYTES`] buffers; the bytes each way (`a` to `b` first).
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, COPY_BYTES, COPY_BYTES).await
}
pub mod ws_io;
