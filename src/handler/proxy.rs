//! The reverse proxy (`proxy = "ws://…" | "wss://…" | "http://…" | "https://…"`): plain HTTP
//! requests and WebSocket upgrades to one or more upstreams, with nginx-style path mapping.
//!
//! The life of a request: the route orders its upstreams (balancing, passive health), dials
//! the first that answers (a refused or timed-out one is marked down and the next is tried),
//! rewrites the headers, and relays the answer. A WebSocket's 101 is only sent to the client
//! after the upstream sent its own; then the bytes are spliced (`mode = "splice"`, the default)
//! or messages relayed (`mode = "message"`).

pub mod balance;
mod forward;
pub mod headers;
mod idle;
mod message;
pub mod pool;
mod pooled_body;
mod splice;
pub(crate) use crate::config::upstream_url;
mod websocket;

use std::time::Duration;

use http::{HeaderMap, Request, Response, header, request::Parts};
use hyper::body::Incoming;

pub(crate) use balance::{Policy, UpstreamServer, Upstreams};
pub(crate) use headers::HeaderPolicy;
pub use upstream_url::UpstreamUrl;

use crate::{
    body::Body,
    connector::ConnectError,
    handler::{HandlerError, RequestContext},
    handshake,
    refusal::Refusal,
};
use headers::Forwarding;

pub use crate::config::route::Mode;

/// A proxy route.
#[derive(Debug)]
pub struct ProxyRoute {
    /// Where requests go.
    pub upstreams: Upstreams,
    /// Splice or relay messages.
    pub mode: Mode,
    /// Header changes toward the upstream.
    pub headers: HeaderPolicy,
    /// How long the upstream may take to send its response headers (504 after).
    pub response_timeout: Duration,
    /// Close a WebSocket after this long without traffic; off by default, since idle
    /// WebSockets are normal (TCP keepalive finds dead peers instead).
    pub idle_timeout: Option<Duration>,
    /// Largest message in message mode (close 1009 beyond it).
    pub max_message_bytes: usize,
}

/// Why a proxied request failed, by who caused it: the client's body, or the upstream
/// (everything else).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Dialling failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The HTTP exchange with the upstream failed.
    #[error("upstream HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The client's request body could not be read (a malformed chunk, the client gone), so
    /// the exchange was abandoned: the client's fault.
    #[error("client request body: {0}")]
    ClientBody(#[source] hyper::Error),
    /// No response headers within the response timeout.
    #[error("upstream sent no response within {0:?}")]
    ResponseTimeout(Duration),
    /// The upstream closed a fresh connection before the request could be sent.
    #[error("upstream closed the connection before the request was sent")]
    Closed,
    /// The upstream's 101 is not a valid WebSocket answer.
    #[error("upstream answered the upgrade wrongly: {0}")]
    BadUpgrade(&'static str),
}

impl ProxyError {
    /// The client's body, a timeout, or something else the upstream did.
    pub fn refusal(&self) -> Refusal {
        match self {
            ProxyError::ClientBody(_) => Refusal::ClientBody,
            ProxyError::Connect(error) => error.refusal(),
            ProxyError::ResponseTimeout(_) => Refusal::UpstreamResponseTimeout,
            ProxyError::Http(_) | ProxyError::Closed => Refusal::UpstreamFailed,
            ProxyError::BadUpgrade(_) => Refusal::UpstreamBadUpgrade,
        }
    }

    /// Whether the request never reached the upstream, so another upstream may take it.
    fn before_request(&self) -> bool {
        matches!(self, ProxyError::Connect(_) | ProxyError::Closed)
    }
}

impl ProxyRoute {
    /// For the banner: upstreams, policy and mode.
    pub(crate) fn describe(&self) -> String {
        let urls: Vec<String> = self
            .upstreams
            .servers
            .iter()
            .map(|s| s.url.to_string())
            .collect();
        let mut out = urls.join(", ");
        if urls.len() > 1 {
            let policy = match self.upstreams.policy {
                Policy::RoundRobin => "round robin",
                Policy::LeastConnections => "least connections",
            };
            out.push_str(&format!(" ({policy})"));
        }
        if self.mode == Mode::Message {
            out.push_str(" [message mode]");
        }
        out
    }

    /// Handles one request: a WebSocket upgrade or plain HTTP.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        rest: &str,
        ctx: RequestContext,
    ) -> Result<Response<Body>, HandlerError> {
        if req.method() == http::Method::CONNECT {
            // A tunnel to anywhere is the forward proxy's job, not a route's.
            return Ok(crate::body::refused_because(
                Refusal::ConnectNotSupported,
                "CONNECT is not proxied on this route",
            ));
        }
        if handshake::is_upgrade(&req) {
            websocket::forward(self, req, rest, ctx).await
        } else {
            Ok(forward::forward(self, req, rest, &ctx).await?)
        }
    }

    /// The request line and headers for `server`, from the client's.
    fn upstream_parts(
        &self,
        client: &Parts,
        server: &UpstreamServer,
        rest: &str,
        ctx: &RequestContext,
        websocket: bool,
    ) -> Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = client.method.clone();
        let path = server
            .url
            .map_path(client.uri.path(), rest, client.uri.query());
        parts.uri = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
        parts.headers = client.headers.clone();
        let host = client
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let forwarding = Forwarding {
            client: ctx.client.peer,
            tls: ctx.client.tls,
            host,
        };
        self.headers.to_upstream(
            &mut parts.headers,
            &forwarding,
            &server.url.authority(),
            websocket,
        );
        if websocket && self.mode == Mode::Message {
            // Frames are parsed here and tokio-websockets speaks no extension.
            parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
        }
        parts
    }
}

/// The upstream's response headers as the client should see them.
fn client_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = upstream.clone();
    crate::hop::strip_hop_by_hop(&mut headers);
    headers
}
