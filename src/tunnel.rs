//! The tunnel: agents behind NAT dial the gateway over one WebSocket and expose services through
//! it (docs/tunnel.md). This module holds what both sides share.

pub mod claim_rules;
pub mod events;
pub mod hub;
pub mod limits;
pub mod names;
pub mod registry;
