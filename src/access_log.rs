//! The access log: exactly one line per finished connection or request, under the
//! `wsgate::access` target so it can be filtered on its own. The path (the client's), the
//! route and upstream (an agent's, for its services) are written escaped.

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::time::Instant;

use crate::{handler::bridge::pump::Outcome, http::Body, log_escape::Escaped};

/// Set on a response's extensions by a handler that forwarded the request, so the access-log
/// line names the upstream that answered.
#[derive(Debug, Clone)]
pub struct UpstreamName(pub String);

/// What is known about a request before it ends. The path is logged without its query, which
/// may carry secrets (`?token=`).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// Route name, or `-` when no route matched.
    route: String,
    /// Client address.
    client: SocketAddr,
    /// Request method.
    method: Method,
    /// Request path, without the query.
    path: String,
    /// Upstream address, or `-`.
    upstream: String,
    /// When the request arrived.
    started: Instant,
}

impl AccessRecord {
    /// Starts a record for `req`, with no route and no upstream yet.
    pub fn new<B>(client: SocketAddr, req: &Request<B>) -> Self {
        AccessRecord {
            route: "-".into(),
            client,
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            upstream: "-".into(),
            started: Instant::now(),
        }
    }

    /// The same record, for the named route.
    pub fn with_route(mut self, route: &str) -> Self {
        route.clone_into(&mut self.route);
        self
    }

    /// The same record, for the given upstream.
    pub fn with_upstream(mut self, upstream: impl ToString) -> Self {
        self.upstream = upstream.to_string();
        self
    }

    /// Logs a finished bridged WebSocket; its duration counts from `upgraded`.
    pub fn finish_websocket(self, upgraded: Instant, outcome: &Outcome) {
        let close_code = Some(outcome.close_code.unwrap_or(1006));
        let (up, down) = (outcome.bytes_up, outcome.bytes_down);
        self.finish_session(upgraded, up, down, close_code, outcome.end.label());
    }

    /// Logs a finished WebSocket session. `close_code` is `None` when the gateway did not see
    /// the frames (a spliced proxy connection).
    pub fn finish_session(
        self,
        upgraded: Instant,
        bytes_up: u64,
        bytes_down: u64,
        close_code: Option<u16>,
        end: &str,
    ) {
        tracing::info!(
            target: "wsgate::access",
            route = %Escaped(&self.route),
            client.addr = %self.client,
            method = %self.method,
            path = %Escaped(&self.path),
            upstream.addr = %Escaped(&self.upstream),
            duration_ms = upgraded.elapsed().as_millis() as u64,
            bytes_up,
            bytes_down,
            close_code = close_code.map(u32::from),
            end,
            "websocket closed"
        );
    }

    /// Logs a finished plain HTTP request: `complete` says whether the whole body was sent.
    fn finish_http(&self, status: u16, bytes_down: u64, complete: bool) {
        tracing::info!(
            target: "wsgate::access",
            route = %Escaped(&self.route),
            client.addr = %self.client,
            method = %self.method,
            path = %Escaped(&self.path),
            upstream.addr = %Escaped(&self.upstream),
            duration_ms = self.started.elapsed().as_millis() as u64,
            status,
            bytes_down,
            complete,
            "request"
        );
    }

    /// Wraps a response body so that the request is logged when the body ends or is dropped
    /// (the client went away), with the bytes actually handed to the connection.
    pub fn log_body(self, status: u16, body: Body) -> Body {
        Body::new(LoggedBody {
            inner: body,
            record: Some((self, status)),
            bytes: 0,
        })
    }
}

/// A response body that writes the access-log line once it is finished or dropped.
struct LoggedBody {
    inner: Body,
    /// Taken when the line is written.
    record: Option<(AccessRecord, u16)>,
    bytes: u64,
}

impl LoggedBody {
    fn finish(&mut self, complete: bool) {
        if let Some((record, status)) = self.record.take() {
            record.finish_http(status, self.bytes, complete);
        }
    }
}

impl hyper::body::Body for LoggedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.bytes += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Ready(None) => self.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // An empty body may be dropped unpolled once hyper sees `is_end_stream`.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
