//! Keep-alive HTTP/1.1 connections to one upstream, reused between requests, and the response
//! body that gives its connection back when it has been read to the end.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::{
    body::{Body as _, Frame, Incoming, SizeHint},
    client::conn::http1::SendRequest,
};
use tokio::time::Instant;

use super::balance::{ActiveGuard, UpstreamServer};
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
    fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }
}

/// An upstream's response body on its way to the client. At its end the connection goes back
/// to the pool; dropped early, the connection is closed with it. Either way the upstream's
/// open count drops.
pub struct PooledBody {
    inner: Incoming,
    /// The connection and where it returns; taken at the end.
    home: Option<(SendRequest<Body>, Arc<UpstreamServer>)>,
    _active: ActiveGuard,
}

impl PooledBody {
    /// Wraps `inner`, read from `sender`'s connection to `server`.
    pub fn new(
        inner: Incoming,
        sender: SendRequest<Body>,
        server: Arc<UpstreamServer>,
        active: ActiveGuard,
    ) -> Self {
        let mut body = PooledBody {
            inner,
            home: Some((sender, server)),
            _active: active,
        };
        if body.inner.is_end_stream() {
            body.go_home();
        }
        body
    }

    fn go_home(&mut self) {
        if let Some((sender, server)) = self.home.take() {
            server.pool.put(sender);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(None) => {
                self.go_home();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                self.home = None;
                Poll::Ready(Some(Err(std::io::Error::other(error))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if self.inner.is_end_stream() {
                    self.go_home();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
