//! The bridge handler: a WebSocket client ↔ a raw byte stream (VNC, SSH, any TCP service).
//!
//! Life of one connection: check the handshake → pick the target (fixed or by token) → dial it
//! (502/504 if that fails, before anything is upgraded) → answer 101 → pump bytes → access log.

pub mod tokens;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_websockets::{Limits, ServerBuilder};

use crate::io::pump;
use crate::io::pump::encoding::Encoding;
use crate::io::pump::watchdog::Heartbeat;
use crate::{
    access_log::{AccessRecord, SessionEnd},
    body::Body,
    budget::{Budget, descriptors::Slot},
    connector::{Connector, DialOptions, Stream, Target},
    handler::{
        HandlerError, RequestContext,
        message_budget::{Metered, Sender},
    },
    handshake,
    log_escape::Escaped,
};
use pump::PumpSettings;
use tokens::{TokenError, TokenSource, token_from_request};

/// Where a bridge route's bytes go: one connector, or one per request by its token.
#[derive(Debug)]
pub enum BridgeTarget {
    /// Every request to the same place (a fixed dial, or an agent's service).
    Fixed(Connector),
    /// websockify token files: the target is looked up per request and dialled directly.
    Tokens {
        /// The token file or directory.
        source: TokenSource,
        /// Connect timeout and PROXY header for the looked-up targets.
        dial: DialOptions,
        /// For requests that carry no token.
        fallback: Option<Connector>,
    },
}

impl BridgeTarget {
    /// A configured route's target: by token when there is a token source (the fixed target,
    /// if any, for requests without one), else the fixed target. `None` with neither.
    pub fn direct(
        fixed: Option<Target>,
        tokens: Option<TokenSource>,
        dial: DialOptions,
    ) -> Option<Self> {
        let fixed = fixed.map(|target| Connector::direct(target, dial.clone()));
        match tokens {
            Some(source) => Some(BridgeTarget::Tokens {
                source,
                dial,
                fallback: fixed,
            }),
            None => fixed.map(BridgeTarget::Fixed),
        }
    }
}

/// A bridge route's settings.
#[derive(Debug)]
pub struct BridgeRoute {
    /// Where the bytes go.
    pub target: BridgeTarget,
    /// Close after this long without data either way.
    pub idle_timeout: Option<std::time::Duration>,
    /// Ping the client and drop it when pings go unanswered.
    pub heartbeat: Option<Heartbeat>,
    /// Largest message accepted from the client; beyond it the client gets close 1009.
    pub max_message_bytes: usize,
}

impl BridgeRoute {
    /// A route to `target` with no idle timeout and no heartbeat.
    pub fn new(target: BridgeTarget, max_message_bytes: usize) -> Self {
        BridgeRoute {
            target,
            idle_timeout: None,
            heartbeat: None,
            max_message_bytes,
        }
    }

    /// For the banner: the target or the token source.
    pub(crate) fn describe(&self) -> String {
        match &self.target {
            BridgeTarget::Fixed(connector) => connector.target(),
            BridgeTarget::Tokens {
                source,
                fallback: None,
                ..
            } => format!("tokens from {}", source.path().display()),
            BridgeTarget::Tokens {
                source,
                fallback: Some(fallback),
                ..
            } => format!(
                "tokens from {} (else {})",
                source.path().display(),
                fallback.target()
            ),
        }
    }

    /// Handles one request: refuses it with a status, or answers 101 and spawns the pump.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        ctx: RequestContext,
    ) -> Result<Response<Body>, HandlerError> {
        let handshake = handshake::check(&req)?;
        let (encoding, protocol) = Encoding::negotiate(&handshake.protocols)?;
        let connector = self.connector_for(&req).await?;
        if ctx.shutdown.is_cancelled() {
            return Err(HandlerError::ShuttingDown);
        }
        let upstream = connector.connect(ctx.client).await?;
        tracing::Span::current().record(
            "upstream.addr",
            tracing::field::display(Escaped(connector.target())),
        );
        let on_upgrade = hyper::upgrade::on(&mut req);
        let session = Session {
            settings: PumpSettings {
                encoding,
                idle_timeout: self.idle_timeout,
                heartbeat: self.heartbeat,
            },
            max_message_bytes: self.max_message_bytes,
            messages: ctx.budgets.messages.clone(),
            slot: ctx.slot.clone(),
            record: ctx.record.clone().with_upstream(connector.target()),
            upstream,
        };
        let shutdown = ctx.shutdown.clone();
        // Not in the request's span: spans held for the life of every idle WebSocket cost
        // about 0.8 KiB each, and the access-log line carries the same fields at the end.
        ctx.tracker.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => session.run(TokioIo::new(upgraded), &shutdown).await,
                Err(error) => tracing::debug!(%error, "upgrade failed"),
            }
        });
        Ok(handshake.switching_protocols(protocol))
    }

    /// The connector for this request: by token if a token source is set, else the fixed target.
    async fn connector_for<B>(&self, req: &Request<B>) -> Result<Connector, TokenError> {
        let (source, dial, fallback) = match &self.target {
            BridgeTarget::Fixed(connector) => return Ok(connector.clone()),
            BridgeTarget::Tokens {
                source,
                dial,
                fallback,
            } => (source, dial, fallback),
        };
        match token_from_request(req.uri().path(), req.uri().query()) {
            Some(token) => Ok(Connector::direct(
                source.lookup(&token).await?,
                dial.clone(),
            )),
            None => fallback.clone().ok_or(TokenError::Missing),
        }
    }
}

/// One upgraded connection waiting to be pumped.
struct Session {
    settings: PumpSettings,
    max_message_bytes: usize,
    /// The gateway-wide budget for messages being assembled.
    messages: Arc<Budget>,
    /// The client connection's descriptor slot, held while the WebSocket lives.
    slot: Arc<Slot>,
    record: AccessRecord,
    upstream: Stream,
}

impl Session {
    async fn run(
        mut self,
        io: TokioIo<hyper::upgrade::Upgraded>,
        shutdown: &tokio_util::sync::CancellationToken,
    ) {
        let limits = Limits::default().max_payload_len(Some(self.max_message_bytes));
        let io = Metered::new(io, Sender::Client, &self.messages, self.max_message_bytes)
            .holding(self.slot.clone());
        let ws = ServerBuilder::new().limits(limits).serve(io);
        let started = Instant::now();
        let outcome = pump::run(ws, self.upstream.split(), &self.settings, shutdown).await;
        let end = SessionEnd {
            bytes_up: outcome.bytes_up,
            bytes_down: outcome.bytes_down,
            close_code: Some(outcome.close_code.unwrap_or(1006)),
            end: outcome.end.label(),
            refusal: outcome.end.refusal(),
        };
        self.record.finish_session(started, &end);
    }
}
