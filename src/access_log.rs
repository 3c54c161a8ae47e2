//! The access log: exactly one line per finished connection or request, under the
//! `wsgate::access` target so it can be filtered on its own. The path (the client's), the
//! route and upstream (an agent's, for its services) are written escaped.
//!
//! Every line carries `outcome`: `ok`, or the name of the [`Refusal`] the gateway answered or
//! ended the connection with. This is the one place a connection's outcome is known, where a
//! metrics layer counts it.

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::time::Instant;

use crate::{body::Body, log_escape::Escaped, refusal::Refusal};

/// Set on a response's extensions by a handler that forwarded the request, so the access-log
/// line names the upstream that answered.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamName(pub String);

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
    pub(crate) fn with_route(mut self, route: &str) -> Self {
        route.clone_into(&mut self.route);
        self
    }

    /// The same record, for the given upstream.
    pub(crate) fn with_upstream(mut self, upstream: impl ToString) -> Self {
        self.upstream = upstream.to_string();
        self
    }

    /// Logs a finished WebSocket session.
    pub(crate) fn finish_session(self, upgraded: Instant, done: &SessionEnd<'_>) {
        let SessionEnd {
            bytes_up,
            bytes_down,
            close_code,
            end,
            refusal,
        } = *done;
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
            outcome = %outcome(refusal),
            "websocket closed"
        );
    }

    /// Logs a finished plain HTTP request: `complete` says whether the whole body was sent.
    fn finish_http(&self, answer: Answer, bytes_down: u64, complete: bool) {
        let Answer {
            status, refusal, ..
        } = answer;
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
            outcome = %outcome(refusal),
            "request"
        );
    }

    /// Wraps a response's body so that the request is logged when the body ends or is dropped
    /// (the client went away), with the bytes actually handed to the connection. The outcome
    /// is the [`Refusal`] in the response's extensions, if the gateway refused.
    pub(crate) fn log_response(self, response: Response<Body>) -> Response<Body> {
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        let answer = Answer {
            status: response.status().as_u16(),
            refusal: response.extensions().get::<Refusal>().copied(),
            length,
        };
        response.map(|inner| {
            Body::new(LoggedBody {
                inner,
                record: Some((self, answer)),
                bytes: 0,
            })
        })
    }
}

/// How a WebSocket session ended, for its access-log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionEnd<'a> {
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    /// The first close code; `None` when the gateway did not see the frames (splice).
    pub close_code: Option<u16>,
    /// Why it ended, in words.
    pub end: &'a str,
    /// The refusal the gateway ended it with, if it did.
    pub refusal: Option<Refusal>,
}

/// The access log's `outcome`: the refusal's name, or `ok`.
fn outcome(refusal: Option<Refusal>) -> &'static str {
    refusal.map_or("ok", Refusal::name)
}

/// What the response said, as far as the log line needs it.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    refusal: Option<Refusal>,
    /// `Content-Length`, when the response declared one.
    length: Option<u64>,
}

/// A response body that writes the access-log line once it is finished or dropped.
struct LoggedBody {
    inner: Body,
    /// Taken when the line is written.
    record: Option<(AccessRecord, Answer)>,
    bytes: u64,
}

impl LoggedBody {
    fn finish(&mut self, complete: bool) {
        if let Some((record, answer)) = self.record.take() {
            record.finish_http(answer, self.bytes, complete);
        }
    }

    /// Whether every byte of the body was handed on. hyper stops polling a body once it has
    /// written `Content-Length` bytes and drops it without asking for its end, so a body that
    /// cannot tell its own end (a file stream) is complete when the declared length went out.
    fn sent_all(&self) -> bool {
        self.inner.is_end_stream()
            || self
                .record
                .as_ref()
                .and_then(|(_, answer)| answer.length)
                .is_some_and(|length| length == self.bytes)
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
        // An empty body may be dropped unpolled once hyper sees `is_end_stream`, a sized one
        // once its length went out.
        let complete = self.sent_all();
        self.finish(complete);
    }
}
