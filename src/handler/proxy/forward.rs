//! Plain HTTP through the proxy: bodies stream both ways, connections are kept alive and
//! reused, a refused upstream hands the request to the next.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, request::Parts};
use http_body_util::BodyExt;
use hyper::{
    body::{Body as _, Frame, Incoming, SizeHint},
    client::conn::http1::SendRequest,
};
use hyper_util::rt::TokioIo;
use tokio::{sync::oneshot, time::timeout};

use super::{
    ProxyError, ProxyRoute, balance::UpstreamServer, client_headers, pooled_body::PooledBody,
};
use crate::{body::Body, handler::RequestContext, log_escape::Escaped};

/// How long a pooled connection may take to become ready before a new one is dialled.
const POOLED_READY: Duration = Duration::from_secs(1);

/// Upstream response heads with more header lines than this are refused (hyper's default of
/// 100 is too few for some applications' cookie-heavy answers).
pub(super) const MAX_RESPONSE_HEADERS: usize = 256;

/// Proxies one plain HTTP request.
pub async fn forward(
    route: &ProxyRoute,
    req: Request<Incoming>,
    rest: &str,
    ctx: &RequestContext,
) -> Result<Response<Body>, ProxyError> {
    let (client_parts, body) = req.into_parts();
    // A request without a body can be sent again when a kept-alive connection turns out to
    // have been closed by the upstream just as it was reused.
    let replayable = body.is_end_stream();
    let mut body = Some(
        body.map_err(|error| std::io::Error::other(ClientBodyError(error)))
            .boxed(),
    );
    let mut last_error = None;
    for server in route.upstreams.order() {
        let active = server.track();
        let parts = || route.upstream_parts(&client_parts, &server, rest, ctx, false);
        match exchange(route, &server, parts, &mut body, replayable, ctx).await {
            Ok((response, sender)) => return Ok(relay(response, sender, server, active)),
            Err(error) if error.before_request() && body.is_some() => {
                let (upstream, shown) = (Escaped(&server.url), Escaped(&error));
                tracing::warn!(%upstream, error = %shown, "upstream failed");
                server.mark_down(route.upstreams.fail_timeout);
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.expect("a route has at least one upstream"))
}

/// Sends the request to `server` and waits for its response head. A kept-alive connection the
/// upstream closed meanwhile is replaced by a fresh one; a connection that closes before the
/// request left gives the body back in `body` (for the next upstream).
async fn exchange(
    route: &ProxyRoute,
    server: &UpstreamServer,
    parts: impl Fn() -> Parts,
    body: &mut Option<Body>,
    replayable: bool,
    ctx: &RequestContext,
) -> Result<(Response<Incoming>, SendRequest<Body>), ProxyError> {
    let (mut sender, mut reused) = connection(server, ctx).await?;
    loop {
        let request = Request::from_parts(parts(), body.take().unwrap_or_default());
        match send(&mut sender, request, route.response_timeout).await {
            Sent::Response(response) => return Ok((response, sender)),
            Sent::Unsent(request) => *body = Some(request.into_body()),
            Sent::Failed(ProxyError::Http(error))
                if reused && replayable && error.is_incomplete_message() =>
            {
                *body = Some(Body::default());
            }
            Sent::Failed(error) => return Err(error),
        }
        if !reused {
            return Err(ProxyError::Closed);
        }
        (sender, reused) = connection_fresh(server, ctx).await?;
    }
}

/// An idle pooled connection (`true`) or a new one (`false`).
async fn connection(
    server: &UpstreamServer,
    ctx: &RequestContext,
) -> Result<(SendRequest<Body>, bool), ProxyError> {
    while let Some(mut sender) = server.pool.take() {
        if let Ok(Ok(())) = timeout(POOLED_READY, sender.ready()).await {
            return Ok((sender, true));
        }
    }
    connection_fresh(server, ctx).await
}

/// A new HTTP/1.1 connection; its driver runs in its own task until the connection closes.
async fn connection_fresh(
    server: &UpstreamServer,
    ctx: &RequestContext,
) -> Result<(SendRequest<Body>, bool), ProxyError> {
    let io = server.dial(ctx.client).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_RESPONSE_HEADERS)
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "upstream connection ended");
        }
    });
    Ok((sender, false))
}

/// What became of one attempt to send.
enum Sent {
    Response(Response<Incoming>),
    Failed(ProxyError),
    /// The connection was closed before the request left; here it is back.
    Unsent(Request<Body>),
}

/// Sends a request; the response timeout runs from the end of the request body, so a slow
/// upload is not cut short by it.
async fn send(sender: &mut SendRequest<Body>, request: Request<Body>, limit: Duration) -> Sent {
    let (parts, body) = request.into_parts();
    let (body, uploaded) = SignalEnd::wrap(body);
    let response = sender.try_send_request(Request::from_parts(parts, body));
    let deadline = async {
        // A dropped sender means the body was dropped unsent: the request failed anyway.
        let _ = uploaded.await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        result = response => match result {
            Ok(response) => Sent::Response(response),
            Err(mut error) => match error.take_message() {
                Some(request) => Sent::Unsent(request),
                None => Sent::Failed(by_side(error.into_error())),
            },
        },
        () = deadline => Sent::Failed(ProxyError::ResponseTimeout(limit)),
    }
}

/// The client's request body failed (a malformed chunk, the client gone mid-body). Carried
/// through hyper's client as the body's error, so that the failed exchange is blamed on the
/// client (400), not on the upstream (502).
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
struct ClientBodyError(#[source] hyper::Error);

/// An exchange's error by who caused it: the client's body, or the upstream.
fn by_side(error: hyper::Error) -> ProxyError {
    if caused_by_client_body(&error) {
        ProxyError::ClientBody(error)
    } else {
        ProxyError::Http(error)
    }
}

/// Whether `error`'s chain holds a [`ClientBodyError`]. (`io::Error::source` skips the error
/// it wraps, so a wrapping `io::Error` is looked into with `get_ref`.)
fn caused_by_client_body(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if error.is::<ClientBodyError>()
            || wrapped.is_some_and(|inner| inner.is::<ClientBodyError>())
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// A request body that says when it has been sent to its end.
struct SignalEnd {
    inner: Body,
    done: Option<oneshot::Sender<()>>,
}

impl SignalEnd {
    fn wrap(inner: Body) -> (Body, oneshot::Receiver<()>) {
        let (done, uploaded) = oneshot::channel();
        let mut body = SignalEnd {
            inner,
            done: Some(done),
        };
        if body.inner.is_end_stream() {
            body.signal();
        }
        (Body::new(body), uploaded)
    }

    fn signal(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

impl hyper::body::Body for SignalEnd {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.signal();
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

/// The upstream's response for the client; its body returns the connection to the pool.
fn relay(
    response: Response<Incoming>,
    sender: SendRequest<Body>,
    server: std::sync::Arc<UpstreamServer>,
    active: super::balance::ActiveGuard,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers = client_headers(&parts.headers);
    parts
        .extensions
        .insert(crate::access_log::UpstreamName(server.url.to_string()));
    let body = Body::new(PooledBody::new(body, sender, server, active));
    Response::from_parts(parts, body)
}
