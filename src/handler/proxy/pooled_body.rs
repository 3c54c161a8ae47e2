//! The response body that gives its upstream connection back to the pool when it has been
//! read to the end.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::{
    body::{Body as _, Frame, Incoming, SizeHint},
    client::conn::http1::SendRequest,
};

use crate::{
    body::Body,
    handler::proxy::balance::{ActiveGuard, UpstreamServer},
};

/// An upstream's response body on its way to the client. At its end the connection goes back
/// to the pool; dropped early, the connection is closed with it. Either way the upstream's
/// open count drops.
pub(crate) struct PooledBody {
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
