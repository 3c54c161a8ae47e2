//! The tunnel, the gateway's side: agents behind NAT dial the agent endpoint over one
//! WebSocket (docs/tunnel.md); the hub runs their sessions, puts their claims to the
//! [`registry::Registry`] and announces services live or gone (`events`). The session itself
//! is `session`, the protocol `wire`, the agent `agent`.

pub(crate) mod events;
pub(crate) mod hub;
pub mod registry;
