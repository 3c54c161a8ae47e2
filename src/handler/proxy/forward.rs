//! Plain HTTP through the proxy: bodies stream both ways, connections are kept alive and
//! reused, a refused upstream hands the request to the next.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::{body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::timeout;

use super::{ProxyError, ProxyRoute, balance::UpstreamServer, client_headers, pool::PooledBody};
use crate::http::{Body, RequestContext};

/// How long a pooled connection may take to become ready before a new one is dialled.
const POOLED_READY: Duration = Duration::from_secs(1);

/// Proxies one plain HTTP request.
pub async fn forward(
    route: &ProxyRoute,
    req: Request<Incoming>,
    rest: &str,
    ctx: &RequestContext,
) -> Result<Response<Body>, ProxyError> {
    let (client_parts, body) = req.into_parts();
    let body: Body = body.map_err(std::io::Error::other).boxed();
    let mut last_error = None;
    for server in route.upstreams.order() {
        let active = server.track();
        let (mut sender, reused) = match connection(&server, ctx).await {
            Ok(found) => found,
            Err(error) if error.before_request() => {
                tracing::warn!(upstream = %server.url, %error, "upstream failed");
                server.mark_down(route.upstreams.fail_timeout);
                last_error = Some(error);
                continue;
            }
            Err(error) => return Err(error),
        };
        let parts = route.upstream_parts(&client_parts, &server, rest, ctx, false);
        let mut request = Request::from_parts(parts, body);
        if reused {
            // A kept-alive connection the upstream closed meanwhile gives the request back
            // unsent; it then goes over a fresh connection.
            match send(&mut sender, request, route.response_timeout).await {
                Sent::Response(response) => return Ok(relay(response, sender, server, active)),
                Sent::Failed(error) => return Err(error),
                Sent::Unsent(unsent) => request = unsent,
            }
            (sender, _) = connection_fresh(&server, ctx).await?;
        }
        return match send(&mut sender, request, route.response_timeout).await {
            Sent::Response(response) => Ok(relay(response, sender, server, active)),
            Sent::Failed(error) => Err(error),
            Sent::Unsent(_) => Err(ProxyError::Closed),
        };
    }
    Err(last_error.expect("a route has at least one upstream"))
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
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
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

async fn send(sender: &mut SendRequest<Body>, request: Request<Body>, limit: Duration) -> Sent {
    match timeout(limit, sender.try_send_request(request)).await {
        Err(_) => Sent::Failed(ProxyError::ResponseTimeout(limit)),
        Ok(Ok(response)) => Sent::Response(response),
        Ok(Err(mut error)) => match error.take_message() {
            Some(request) => Sent::Unsent(request),
            None => Sent::Failed(ProxyError::Http(error.into_error())),
        },
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
