//! The HTTP/1.1 service: each request is routed and handed to its route's handler.

use std::{convert::Infallible, io, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    access_log::{AccessRecord, UpstreamName},
    connector::ClientAddrs,
    handler::upgrade,
    log_escape::Escaped,
    router::Router,
};

/// Every response body: streamed, sendable, failing only with I/O errors.
pub type Body = BoxBody<Bytes, io::Error>;

/// What a handler may need besides the request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Both ends of the client's connection.
    pub client: ClientAddrs,
    /// The access-log record so far (route known, upstream not yet).
    pub record: AccessRecord,
    /// Cancelled when the gateway shuts down.
    pub shutdown: CancellationToken,
    /// Where long-lived work (an upgraded connection) is spawned, so shutdown waits for it.
    pub tracker: TaskTracker,
}

/// Gateway-wide state shared by every connection.
#[derive(Debug)]
pub struct Service {
    /// The route table (shared with the agent hub, which adds agents' routes to it).
    pub router: Arc<Router>,
    /// The agent endpoint, when agents may connect.
    pub agents: Option<Arc<crate::tunnel::hub::AgentHub>>,
    /// Shutdown signal.
    pub shutdown: CancellationToken,
    /// Tracks connections and upgraded sessions.
    pub tracker: TaskTracker,
}

/// A short `text/plain` response.
pub fn text_response(status: StatusCode, reason: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{reason}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A body from bytes in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Decodes `%xx` escapes; malformed escapes are kept as written. (`+` stays `+`: it means a
/// space only in form bodies.)
///
/// ```
/// use wsgate::http::percent_decode;
/// assert_eq!(percent_decode("a%20b%2e%2E"), "a b..");
/// assert_eq!(percent_decode("a%2"), "a%2");
/// ```
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte as u8);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Rewrites the request's path without `.` and `..` segments (the query is kept), so routing,
/// handlers and upstreams all see the same path; `Err` when it climbs above `/`.
fn normalize_path<B>(req: &mut Request<B>) -> Result<(), ()> {
    let path = req.uri().path();
    let normal = match crate::router::remove_dot_segments(path).ok_or(())? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(normal) => normal,
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| ())?);
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| ())?;
    Ok(())
}

/// The request's host: the `Host` header, or the authority of an absolute URI.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(str::to_string)
}

impl Service {
    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        client: ClientAddrs,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %Escaped(req.uri().path()),
            route = tracing::field::Empty,
            upstream.addr = tracing::field::Empty,
        );
        Ok(self.route_request(client, req).instrument(span).await)
    }

    /// Finds the route and runs its handler; the access-log line is written when the response
    /// body ends, or by the WebSocket session after a 101.
    async fn route_request(
        &self,
        client: ClientAddrs,
        mut req: Request<Incoming>,
    ) -> Response<Body> {
        let record = AccessRecord::new(client.peer, &req);
        if normalize_path(&mut req).is_err() {
            return text_response(StatusCode::BAD_REQUEST, "the path climbs above /")
                .map(|body| record.log_body(400, body));
        }
        if let Some(hub) = self
            .agents
            .as_ref()
            .filter(|hub| req.uri().path() == hub.path())
        {
            let response = hub.handle(req, &self.tracker, &self.shutdown);
            let status = response.status().as_u16();
            return response.map(|body| record.with_route("agents").log_body(status, body));
        }
        let websocket = upgrade::is_upgrade(&req);
        let host = request_host(&req);
        let path = req.uri().path().to_string();
        let Some(matched) = self.router.find(host.as_deref(), &path, websocket) else {
            return text_response(StatusCode::NOT_FOUND, "no route for this path")
                .map(|body| record.log_body(404, body));
        };
        let route = &matched.route;
        let shown = tracing::field::display(Escaped(route.name.as_str()));
        tracing::Span::current().record("route", shown);
        let ctx = RequestContext {
            client,
            record: record.with_route(&route.name),
            shutdown: self.shutdown.clone(),
            tracker: self.tracker.clone(),
        };
        let record = ctx.record.clone();
        let response = route.handler.handle(req, matched.rest, ctx).await;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return response;
        }
        let status = response.status().as_u16();
        let record = match response.extensions().get::<UpstreamName>() {
            Some(UpstreamName(upstream)) => record.with_upstream(upstream),
            None => record,
        };
        response.map(|body| record.log_body(status, body))
    }
}
