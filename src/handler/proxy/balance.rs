//! A proxy route's upstreams: which one a request tries first (round-robin or
//! least-connections), and passive health: an upstream that failed to connect is tried last
//! until its `fail_timeout` has passed.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::{ProxyError, pool::Pool, upstream_url::UpstreamUrl};
use crate::connector::{ClientAddrs, Connector, Stream};

pub(crate) use crate::config::route::Policy;

/// One upstream server with its live state.
#[derive(Debug)]
pub struct UpstreamServer {
    /// As configured.
    pub url: UpstreamUrl,
    /// Dials it (connect timeout, TLS for `wss://` and `https://` included): directly, or
    /// through an agent's tunnel.
    pub connector: Connector,
    /// Idle keep-alive HTTP connections to it.
    pub pool: Pool,
    /// Requests and WebSockets open to it now.
    active: AtomicUsize,
    /// Tried last until then, after a failed connect.
    down_until: Mutex<Option<Instant>>,
}

impl UpstreamServer {
    /// A server with no connections yet.
    pub fn new(url: UpstreamUrl, connector: Connector) -> Self {
        UpstreamServer {
            url,
            connector,
            pool: Pool::default(),
            active: AtomicUsize::new(0),
            down_until: Mutex::new(None),
        }
    }

    /// Opens a new connection to it, through its connector.
    pub async fn dial(&self, client: ClientAddrs) -> Result<Stream, ProxyError> {
        Ok(self.connector.connect(client).await?)
    }

    /// Counts a request or WebSocket as open until the guard is dropped.
    pub(crate) fn track(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    /// Marks the server as failing for `fail_timeout`.
    pub(crate) fn mark_down(&self, fail_timeout: Duration) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + fail_timeout);
    }

    fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| now < until)
    }
}

/// Keeps an upstream's open count up while it lives.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<UpstreamServer>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A route's upstreams and its balancing policy.
#[derive(Debug)]
pub struct Upstreams {
    /// In configuration order; never empty.
    pub servers: Vec<Arc<UpstreamServer>>,
    /// Which server goes first.
    pub policy: Policy,
    /// How long a server that failed to connect is tried last.
    pub fail_timeout: Duration,
    /// Round-robin position.
    next: AtomicUsize,
}

impl Upstreams {
    /// A set of upstreams (at least one).
    pub fn new(servers: Vec<Arc<UpstreamServer>>, policy: Policy, fail_timeout: Duration) -> Self {
        assert!(
            !servers.is_empty(),
            "a proxy route has at least one upstream"
        );
        Upstreams {
            servers,
            policy,
            fail_timeout,
            next: AtomicUsize::new(0),
        }
    }

    /// Every server, in the order this request should try them: healthy ones first (by the
    /// policy), then those that failed recently, as a last resort.
    pub fn order(&self) -> Vec<Arc<UpstreamServer>> {
        let now = Instant::now();
        let (mut healthy, down): (Vec<_>, Vec<_>) = self
            .servers
            .iter()
            .cloned()
            .partition(|server| !server.is_down(now));
        // The rotation runs over the healthy servers only: rotating over all of them would hand
        // a down server's turns to its neighbour.
        if !healthy.is_empty() {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % healthy.len();
            healthy.rotate_left(start);
        }
        if self.policy == Policy::LeastConnections {
            healthy.sort_by_key(|server| server.active.load(Ordering::Relaxed));
        }
        healthy.extend(down);
        healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::DialOptions;

    fn upstreams(count: usize, policy: Policy) -> Upstreams {
        let servers = (0..count)
            .map(|i| {
                let url: UpstreamUrl = format!("http://127.0.0.1:{}", 1000 + i).parse().unwrap();
                let connector = Connector::direct(url.target(), DialOptions::default());
                Arc::new(UpstreamServer::new(url, connector))
            })
            .collect();
        Upstreams::new(servers, policy, Duration::from_secs(10))
    }

    fn first_port(upstreams: &Upstreams) -> u16 {
        upstreams.order()[0].url.port
    }

    #[test]
    fn round_robin_rotates_and_skips_failed_servers() {
        let set = upstreams(3, Policy::RoundRobin);
        let firsts: Vec<u16> = (0..6).map(|_| first_port(&set)).collect();
        assert_eq!(firsts, [1000, 1001, 1002, 1000, 1001, 1002]);
        set.servers[1].mark_down(Duration::from_secs(10));
        let firsts: Vec<u16> = (0..4).map(|_| first_port(&set)).collect();
        assert_eq!(
            firsts,
            [1000, 1002, 1000, 1002],
            "the healthy ones share the turns"
        );
        let order: Vec<u16> = set.order().iter().map(|s| s.url.port).collect();
        assert_eq!(
            order.last(),
            Some(&1001),
            "a failed server stays the last resort"
        );
    }

    #[test]
    fn least_connections_prefers_the_idle_server() {
        let set = upstreams(2, Policy::LeastConnections);
        let _busy = set.servers[0].track();
        assert_eq!(first_port(&set), 1001);
        assert_eq!(first_port(&set), 1001);
    }
}
