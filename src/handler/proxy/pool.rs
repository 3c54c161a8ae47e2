//! Keep-alive HTTP/1.1 connections to one upstream, reused between requests.

use std::{sync::Mutex, time::Duration};

use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use crate::body::Body;

/// Idle connections kept per upstream: enough for a burst of parallel requests to find warm
/// connections, few enough that an idle gateway holds little.
const MAX_IDLE: usize = 256;

/// An idle connection older than this is closed rather than reused: upstreams commonly close
/// keep-alive connections after 60–75 s, and reusing one they are closing fails the request.
const IDLE_FOR: Duration = Duration::from_secs(50);

/// The idle connections to one upstream.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<Vec<(SendRequest<Body>, Instant)>>,
}

impl Pool {
    /// An idle connection that is still open, most recently used first.
    pub fn take(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_FOR {
                return Some(sender);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end.
    pub(super) fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }
}
