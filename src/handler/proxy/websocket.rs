//! A WebSocket through the proxy: the client's handshake is forwarded, the upstream's answer
//! relayed (its 101, or its refusal with status and body), and only then are the two
//! connections joined, by splicing bytes or relaying messages.

use std::sync::Arc;

use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::{body::Incoming, upgrade::OnUpgrade};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_websockets::{ClientBuilder, Limits, ServerBuilder};

use super::{
    Mode, ProxyError, ProxyRoute,
    balance::{ActiveGuard, UpstreamServer},
    client_headers, message, splice,
};
use crate::{
    access_log::{AccessRecord, SessionEnd},
    body::Body,
    budget::{Budget, descriptors::Slot},
    handler::{
        HandlerError, RequestContext,
        message_budget::{Metered, Sender},
    },
    handshake,
    log_escape::Escaped,
};

/// Forwards a WebSocket handshake and, on the upstream's 101, joins the two connections.
pub async fn forward(
    route: &ProxyRoute,
    mut req: Request<Incoming>,
    rest: &str,
    ctx: RequestContext,
) -> Result<Response<Body>, HandlerError> {
    let handshake = handshake::check(&req)?;
    let (client_parts, body) = req.into_parts();
    let mut last_error = None;
    for server in route.upstreams.order() {
        let parts = route.upstream_parts(&client_parts, &server, rest, &ctx, true);
        let response = match handshake_upstream(route, &server, parts, &ctx).await {
            Ok(response) => response,
            Err(error) if error.before_request() => {
                let (upstream, shown) = (Escaped(&server.url), Escaped(&error));
                tracing::warn!(%upstream, error = %shown, "upstream failed");
                server.mark_down(route.upstreams.fail_timeout);
                last_error = Some(error);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let mut refused = refusal(response);
            let name = crate::access_log::UpstreamName(server.url.to_string());
            refused.extensions_mut().insert(name);
            return Ok(refused);
        }
        check_answer(&response, &handshake.expected_accept())?;
        req = Request::from_parts(client_parts, body);
        let client_upgrade = hyper::upgrade::on(&mut req);
        return Ok(accept(route, &server, response, client_upgrade, ctx));
    }
    Err(last_error
        .expect("a route has at least one upstream")
        .into())
}

/// Dials `server` on a connection of its own (never a pooled one) and sends the handshake.
async fn handshake_upstream(
    route: &ProxyRoute,
    server: &UpstreamServer,
    parts: http::request::Parts,
    ctx: &RequestContext,
) -> Result<Response<Incoming>, ProxyError> {
    let io = server.dial(ctx.client).await?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(super::forward::MAX_RESPONSE_HEADERS)
        .handshake(TokioIo::new(io))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = conn.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended");
        }
    });
    let request = Request::from_parts(parts, Body::default());
    match timeout(route.response_timeout, sender.send_request(request)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ProxyError::ResponseTimeout(route.response_timeout)),
    }
}

/// The upstream said no: the client gets the same status, headers and body.
fn refusal(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers = client_headers(&parts.headers);
    Response::from_parts(parts, body.map_err(std::io::Error::other).boxed())
}

/// A 101 must upgrade to WebSocket with the accept key the client's key calls for.
fn check_answer(response: &Response<Incoming>, expected_accept: &str) -> Result<(), ProxyError> {
    let headers = response.headers();
    let upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !upgrade {
        return Err(ProxyError::BadUpgrade("no Upgrade: websocket"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(|v| v.as_bytes())
        != Some(expected_accept.as_bytes())
    {
        return Err(ProxyError::BadUpgrade("wrong Sec-WebSocket-Accept"));
    }
    Ok(())
}

/// Answers the client with the upstream's 101 and spawns the session that joins them.
fn accept(
    route: &ProxyRoute,
    server: &Arc<UpstreamServer>,
    mut response: Response<Incoming>,
    client_upgrade: OnUpgrade,
    ctx: RequestContext,
) -> Response<Body> {
    let session = Session {
        mode: route.mode,
        idle: route.idle_timeout,
        max_message_bytes: route.max_message_bytes,
        messages: ctx.budgets.messages.clone(),
        slot: ctx.slot.clone(),
        record: ctx.record.clone().with_upstream(&server.url),
        _active: server.track(),
    };
    let upstream = tracing::field::display(Escaped(&server.url));
    tracing::Span::current().record("upstream.addr", upstream);
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let shutdown = ctx.shutdown.clone();
    // Not in the request's span: spans held for the life of every idle WebSocket cost about
    // 0.8 KiB each, and the access-log line carries the same fields when the session ends.
    ctx.tracker
        .spawn(session.run(client_upgrade, upstream_upgrade, shutdown));
    let mut headers = client_headers(response.headers());
    headers.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    headers.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    let mut reply = Response::new(Body::default());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *reply.headers_mut() = headers;
    reply
}

/// One proxied WebSocket after both handshakes.
struct Session {
    mode: Mode,
    idle: Option<std::time::Duration>,
    max_message_bytes: usize,
    /// The gateway-wide budget for messages being assembled (message mode, both sides).
    messages: Arc<Budget>,
    /// The client connection's descriptor slot, held while the WebSocket lives.
    slot: Arc<Slot>,
    record: AccessRecord,
    _active: ActiveGuard,
}

impl Session {
    async fn run(self, client: OnUpgrade, upstream: OnUpgrade, shutdown: CancellationToken) {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => return tracing::debug!(%error, "upgrade failed"),
        };
        let started = Instant::now();
        match self.mode {
            Mode::Splice => {
                let done = splice::run(client, upstream, self.idle).await;
                let end = SessionEnd {
                    bytes_up: done.bytes_up,
                    bytes_down: done.bytes_down,
                    close_code: None,
                    end: done.end,
                    refusal: done.refusal,
                };
                self.record.finish_session(started, &end);
            }
            Mode::Message => {
                let limits = Limits::default().max_payload_len(Some(self.max_message_bytes));
                let max = self.max_message_bytes;
                let client =
                    Metered::new(TokioIo::new(client), Sender::Client, &self.messages, max)
                        .holding(self.slot.clone());
                let upstream =
                    Metered::new(TokioIo::new(upstream), Sender::Server, &self.messages, max);
                let client = ServerBuilder::new().limits(limits).serve(client);
                let upstream = ClientBuilder::new().limits(limits).take_over(upstream);
                let done = message::relay(client, upstream, self.idle, &shutdown).await;
                let end = SessionEnd {
                    bytes_up: done.bytes_up,
                    bytes_down: done.bytes_down,
                    close_code: done.close_code,
                    end: done.end,
                    refusal: done.refusal,
                };
                self.record.finish_session(started, &end);
            }
        }
    }
}
