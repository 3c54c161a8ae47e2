//! The front: where connections arrive. The listeners and the one accept loop every listener
//! uses (the gateway's, remote ports, the agent's proxies and forwards), TLS, and the HTTP/1.1
//! service that checks each request, puts it in canonical form and routes it.

pub mod listener;
pub mod request;
pub mod service;
