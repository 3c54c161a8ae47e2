//! The access log: exactly one line per finished connection or request, under the
//! `wsgate::access` target so it can be filtered on its own.

use std::net::SocketAddr;

use tokio::time::Instant;

use crate::handler::bridge::pump::Outcome;

/// What is known about a connection before it ends.
#[derive(Debug)]
pub struct AccessRecord {
    /// Route name.
    route: String,
    /// Client address.
    client: SocketAddr,
    /// Upstream address, or `-`.
    upstream: String,
}

impl AccessRecord {
    /// Starts a record.
    pub fn new(route: String, client: SocketAddr, upstream: String) -> Self {
        AccessRecord {
            route,
            client,
            upstream,
        }
    }

    /// Logs a finished WebSocket connection.
    pub fn finish_websocket(self, started: Instant, outcome: &Outcome) {
        tracing::info!(
            target: "wsgate::access",
            route = %self.route,
            client.addr = %self.client,
            upstream.addr = %self.upstream,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_up = outcome.bytes_up,
            bytes_down = outcome.bytes_down,
            close_code = outcome.close_code.map_or(1006, u32::from),
            end = outcome.end.label(),
            "websocket closed"
        );
    }

    /// Logs a finished plain HTTP request.
    pub fn finish_http(self, started: Instant, status: u16, bytes_down: Option<u64>) {
        tracing::info!(
            target: "wsgate::access",
            route = %self.route,
            client.addr = %self.client,
            upstream.addr = %self.upstream,
            duration_ms = started.elapsed().as_millis() as u64,
            status,
            bytes_down = bytes_down.unwrap_or(0),
            "request"
        );
    }
}
