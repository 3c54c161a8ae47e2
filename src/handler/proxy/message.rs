//! Message mode (`mode = "message"`): WebSocket is terminated on both sides and whole messages
//! are relayed, so later features can see each one. Text stays text, binary stays binary,
//! message boundaries survive any re-fragmentation, pings are passed on (each hop answers them
//! itself, so pongs are not relayed: that would answer every ping twice), and a close code and
//! reason travel to the other side.

use std::{pin::pin, time::Duration};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_websockets::{Error as WsError, Message, WebSocketStream};

use super::idle::LastActivity;
use crate::{
    io::{close_message, close_message_because, is_budget_close, websocket_refusal},
    refusal::Refusal,
};

/// How long the second side may take to finish once the first has closed.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How a relayed WebSocket went.
#[derive(Debug, Default)]
pub(crate) struct Relayed {
    /// Payload bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Payload bytes from the upstream to the client.
    pub bytes_down: u64,
    /// The first close code either side sent, or the one we sent for it.
    pub close_code: Option<u16>,
    /// Why it ended, for the access log.
    pub end: &'static str,
    /// The refusal it ended with, when it did not end with a close from either side.
    pub refusal: Option<Refusal>,
}

/// Which peer a direction reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    /// The refusal the other side gets when this side's connection ends without a close
    /// frame: a client that went away is 1001 to the upstream, a broken upstream 1011 to the
    /// client; a clean end of the upstream is none, a plain 1000 (as the bridge does).
    fn lost(self, broken: bool) -> Option<Refusal> {
        match (self, broken) {
            (Side::Client, _) => Some(Refusal::ClientGone),
            (Side::Upstream, false) => None,
            (Side::Upstream, true) => Some(Refusal::UpstreamFailed),
        }
    }
}

/// How one direction ended.
#[derive(Debug, Clone, Copy)]
enum DirectionEnd {
    /// The sending side closed with this code (forwarded).
    Closed(Option<u16>),
    /// The message budget had no room for the sending side's next frame: closed 1013 in its
    /// place (forwarded).
    OverBudget,
    /// The sending side's connection ended without a close frame; the other side was told
    /// this (none: a plain 1000).
    Lost(Option<Refusal>),
    /// The sending side broke the protocol; it was closed with this refusal's code.
    Refused(Refusal),
    /// The receiving side could not be written to.
    PeerFailed,
}

/// Relays messages both ways until both directions are over.
pub async fn relay<C, U>(
    client: WebSocketStream<C>,
    upstream: WebSocketStream<U>,
    idle: Option<Duration>,
    shutdown: &CancellationToken,
) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let activity = LastActivity::new();
    let (mut up_bytes, mut down_bytes) = (0, 0);
    let first = {
        let up = direction(
            &mut client_rx,
            &mut upstream_tx,
            Side::Client,
            &mut up_bytes,
            &activity,
        );
        let down = direction(
            &mut upstream_rx,
            &mut client_tx,
            Side::Upstream,
            &mut down_bytes,
            &activity,
        );
        let (mut up, mut down) = (pin!(up), pin!(down));
        let first = tokio::select! {
            end = &mut up => First::Direction(end, Side::Client),
            end = &mut down => First::Direction(end, Side::Upstream),
            () = shutdown.cancelled() => First::Interrupted(Refusal::ShuttingDown),
            () = activity.expired(idle) => First::Interrupted(Refusal::IdleTimeout),
        };
        // The other direction now carries the close answer (or ends on the error): wait for it.
        match first {
            First::Direction(_, Side::Client) => {
                drop(tokio::time::timeout(CLOSE_LINGER, down).await)
            }
            First::Direction(_, Side::Upstream) => {
                drop(tokio::time::timeout(CLOSE_LINGER, up).await)
            }
            First::Interrupted(..) => {}
        }
        first
    };
    let (close_code, end, refusal) = match first {
        First::Direction(end, from) => describe(end, from),
        First::Interrupted(refusal) => interrupt(&mut client_tx, &mut upstream_tx, refusal).await,
    };
    Relayed {
        bytes_up: up_bytes,
        bytes_down: down_bytes,
        close_code,
        end,
        refusal,
    }
}

/// The gateway ends the relay (shutdown, idle timeout): both sides get its close frame. The
/// access log's close code, reason and refusal.
async fn interrupt<C, U>(
    client_tx: &mut SplitSink<WebSocketStream<C>, Message>,
    upstream_tx: &mut SplitSink<WebSocketStream<U>, Message>,
    refusal: Refusal,
) -> (Option<u16>, &'static str, Option<Refusal>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(close) = close_message(refusal) {
        let _ = tokio::time::timeout(CLOSE_LINGER, client_tx.send(close.clone())).await;
        let _ = tokio::time::timeout(CLOSE_LINGER, upstream_tx.send(close)).await;
    }
    let end = if refusal == Refusal::ShuttingDown {
        "shutdown"
    } else {
        "idle timeout"
    };
    (refusal.close_code(), end, Some(refusal))
}

/// What ended a relayed WebSocket first.
#[derive(Debug, Clone, Copy)]
enum First {
    /// One direction, reading from this side.
    Direction(DirectionEnd, Side),
    /// The gateway: shutdown or the idle timeout, whose close both sides get.
    Interrupted(Refusal),
}

/// The access log's close code, reason and refusal for how the first direction ended.
fn describe(end: DirectionEnd, from: Side) -> (Option<u16>, &'static str, Option<Refusal>) {
    let client = from == Side::Client;
    let lost_code = |refusal: Option<Refusal>| match refusal {
        Some(refusal) => refusal.close_code(),
        None => Some(crate::refusal::close::NORMAL),
    };
    match end {
        DirectionEnd::Closed(code) if client => (code, "client closed", None),
        DirectionEnd::Closed(code) => (code, "upstream closed", None),
        DirectionEnd::OverBudget => {
            let full = Refusal::MessageBudgetFull;
            (full.close_code(), "message budget full", Some(full))
        }
        DirectionEnd::Lost(told) if client => (lost_code(told), "client gone", told),
        DirectionEnd::Lost(told) => (lost_code(told), "upstream gone", told),
        DirectionEnd::Refused(refusal) => {
            let end = if client {
                "client protocol error"
            } else {
                "upstream protocol error"
            };
            (refusal.close_code(), end, Some(refusal))
        }
        DirectionEnd::PeerFailed => (None, "write failed", None),
    }
}

/// One direction: every message from `from` is sent on `to`, the close included.
async fn direction<A, B>(
    from: &mut SplitStream<WebSocketStream<A>>,
    to: &mut SplitSink<WebSocketStream<B>, Message>,
    side: Side,
    bytes: &mut u64,
    activity: &LastActivity,
) -> DirectionEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = match from.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                let end = refused(error, side, to).await;
                // Poll once more so the close tokio-websockets queued for the sender is flushed.
                let _ = tokio::time::timeout(CLOSE_LINGER, from.next()).await;
                return end;
            }
            None => return lost(side, false, to).await,
        };
        activity.touch();
        if message.is_pong() {
            // Each hop answers a ping itself (tokio-websockets does, at once); relaying the
            // other side's answer to a relayed ping would give every ping two pongs.
            continue;
        }
        let close = message
            .as_close()
            .map(|(code, _)| (u16::from(code) != 0).then(|| u16::from(code)));
        let over_budget = message
            .as_close()
            .is_some_and(|(code, reason)| is_budget_close(code.into(), reason));
        if message.is_text() || message.is_binary() {
            *bytes += message.as_payload().len() as u64;
        }
        if to.send(message).await.is_err() && close.is_none() {
            return DirectionEnd::PeerFailed;
        }
        if let Some(code) = close {
            // Poll once more so the close answer tokio-websockets queued is flushed.
            let _ = tokio::time::timeout(CLOSE_LINGER, from.next()).await;
            return if over_budget {
                DirectionEnd::OverBudget
            } else {
                DirectionEnd::Closed(code)
            };
        }
    }
}

/// The sender's connection ended without a close frame: the other side is told how.
async fn lost<B>(
    side: Side,
    broken: bool,
    to: &mut SplitSink<WebSocketStream<B>, Message>,
) -> DirectionEnd
where
    B: AsyncRead + AsyncWrite + Unpin,
{
    let told = side.lost(broken);
    let close = match told {
        Some(refusal) => close_message(refusal),
        None => Some(Message::close(
            Some(tokio_websockets::CloseCode::NORMAL_CLOSURE),
            "",
        )),
    };
    if let Some(close) = close {
        let _ = to.send(close).await;
    }
    DirectionEnd::Lost(told)
}

/// The sender broke the protocol: tokio-websockets has queued the right close for it (1002,
/// 1007, 1009); the other side is told the same code.
async fn refused<B>(
    error: WsError,
    side: Side,
    to: &mut SplitSink<WebSocketStream<B>, Message>,
) -> DirectionEnd
where
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(refusal) = websocket_refusal(&error) else {
        let broken = matches!(error, WsError::Io(_));
        return lost(side, broken, to).await;
    };
    tracing::debug!(%error, "websocket protocol error");
    if let Some(close) = close_message_because(refusal, "peer protocol error") {
        let _ = to.send(close).await;
    }
    DirectionEnd::Refused(refusal)
}
