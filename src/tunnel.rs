//! The tunnel: agents behind NAT dial the gateway over one WebSocket and expose services through
//! it (docs/tunnel.md). This module holds what both sides share.

pub(crate) mod events;
pub(crate) mod hub;
pub(crate) mod registry;
