//! Handlers say *how* bytes are spoken to the client: the closed set a route can have.

pub mod bridge;
pub mod files;
pub(crate) mod message_budget;
pub mod proxy;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::handshake;
use crate::{
    access_log::AccessRecord,
    body::{Body, refused, refused_because},
    budget::{Budgets, descriptors::Slot},
    connector::{ClientAddrs, ConnectError},
    log_escape::Escaped,
    refusal::Refusal,
};

pub use bridge::BridgeRoute;
pub use files::FilesRoute;
pub(crate) use proxy::ProxyRoute;

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
    /// The gateway-wide budgets.
    pub budgets: Budgets,
    /// The connection's descriptor slot: whatever outlives the request (an upgraded
    /// WebSocket) holds it.
    pub slot: Arc<Slot>,
}

/// What a route does with a matching request.
#[derive(Debug)]
pub enum Handler {
    /// WebSocket ↔ raw byte stream.
    Bridge(BridgeRoute),
    /// Files from a directory.
    Files(FilesRoute),
    /// HTTP and WebSocket to upstream servers.
    Proxy(ProxyRoute),
}

impl Handler {
    /// Whether this handler takes WebSocket upgrades (used to pick between routes that share
    /// a match, e.g. a bridge and a static directory both on `/`).
    pub(crate) fn serves_websocket(&self) -> bool {
        matches!(self, Handler::Bridge(_) | Handler::Proxy(_))
    }

    /// Whether this handler takes plain HTTP requests.
    pub(crate) fn serves_http(&self) -> bool {
        matches!(self, Handler::Files(_) | Handler::Proxy(_))
    }

    /// Whether this handler takes this kind of request.
    pub fn serves(&self, websocket: bool) -> bool {
        if websocket {
            self.serves_websocket()
        } else {
            self.serves_http()
        }
    }

    /// A short description for the banner and `wsgate check`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Handler::Bridge(bridge) => format!("bridge {}", bridge.describe()),
            Handler::Files(files) => format!("static {}", files.root().display()),
            Handler::Proxy(proxy) => format!("proxy {}", proxy.describe()),
        }
    }

    /// Answers one request; `rest` is the path after the route's prefix.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        rest: &str,
        ctx: RequestContext,
    ) -> Response<Body> {
        let result = match self {
            Handler::Bridge(bridge) => bridge.handle(req, ctx).await,
            Handler::Files(files) => Ok(files.serve(&req, rest).await),
            Handler::Proxy(proxy) => proxy.handle(req, rest, ctx).await,
        };
        result.unwrap_or_else(|error| error.response())
    }
}

/// Why a handler refused a request before it was upgraded; each maps to one status.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The request is not a valid WebSocket handshake.
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    /// The token in the request is missing or unknown.
    #[error(transparent)]
    Token(#[from] bridge::tokens::TokenError),
    /// The upstream could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The proxy's upstream failed.
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

impl HandlerError {
    /// The refusal the client gets.
    pub fn refusal(&self) -> Refusal {
        match self {
            HandlerError::Handshake(error) => error.refusal(),
            HandlerError::Token(error) => error.refusal(),
            HandlerError::Connect(error) => error.refusal(),
            HandlerError::Proxy(error) => error.refusal(),
            HandlerError::ShuttingDown => Refusal::ShuttingDown,
        }
    }

    /// A short plain-text response: the table's reason, or the handshake's or token's own
    /// message; upstream details stay in the log.
    pub fn response(&self) -> Response<Body> {
        // Errors may carry what an agent or an upstream said: escaped.
        match self {
            HandlerError::Connect(error) => {
                tracing::warn!(error = %Escaped(error), "upstream failed");
            }
            HandlerError::Proxy(error) => tracing::debug!(error = %Escaped(error), "proxy failed"),
            other => tracing::debug!(error = %Escaped(other), "request refused"),
        }
        match self {
            HandlerError::Handshake(error) => error.response(),
            HandlerError::Token(error) => refused_because(error.refusal(), error),
            other => refused(other.refusal()),
        }
    }
}
