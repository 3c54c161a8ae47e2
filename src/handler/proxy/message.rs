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
use tokio_websockets::{CloseCode, Error as WsError, Message, WebSocketStream};

use super::idle::LastActivity;

/// How long the second side may take to finish once the first has closed.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How a relayed WebSocket went.
#[derive(Debug, Default)]
pub struct Relayed {
    /// Payload bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Payload bytes from the upstream to the client.
    pub bytes_down: u64,
    /// The first close code either side sent, or the one we sent for it.
    pub close_code: Option<u16>,
    /// Why it ended, for the access log.
    pub end: &'static str,
}

/// Which peer a direction reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    /// The close the other side gets when this side's connection ends without a close frame:
    /// a clean end of the upstream is 1000 (as the bridge does), a broken one 1011; a client
    /// that went away is 1001 to the upstream.
    fn lost(self, broken: bool) -> (CloseCode, &'static str) {
        match (self, broken) {
            (Side::Client, _) => (CloseCode::GOING_AWAY, "client went away"),
            (Side::Upstream, false) => (CloseCode::NORMAL_CLOSURE, ""),
            (Side::Upstream, true) => (
                CloseCode::INTERNAL_SERVER_ERROR,
                "upstream connection failed",
            ),
        }
    }
}

/// How one direction ended.
#[derive(Debug, Clone, Copy)]
enum DirectionEnd {
    /// The sending side closed with this code (forwarded).
    Closed(Option<u16>),
    /// The sending side's connection ended without a close frame; the other side got this code.
    Lost(u16),
    /// The sending side broke the protocol; it was closed with this code.
    Refused(u16),
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
            () = shutdown.cancelled() => First::Interrupted(CloseCode::GOING_AWAY, "gateway shutting down"),
            () = activity.expired(idle) => First::Interrupted(CloseCode::NORMAL_CLOSURE, "idle timeout"),
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
    let (close_code, end) = match first {
        First::Direction(end, from) => describe(end, from),
        First::Interrupted(code, reason) => {
            let close = || Message::close(Some(code), reason);
            let _ = tokio::time::timeout(CLOSE_LINGER, client_tx.send(close())).await;
            let _ = tokio::time::timeout(CLOSE_LINGER, upstream_tx.send(close())).await;
            let end = if code == CloseCode::GOING_AWAY {
                "shutdown"
            } else {
                "idle timeout"
            };
            (Some(code.into()), end)
        }
    };
    Relayed {
        bytes_up: up_bytes,
        bytes_down: down_bytes,
        close_code,
        end,
    }
}

/// What ended a relayed WebSocket first.
#[derive(Debug, Clone, Copy)]
enum First {
    /// One direction, reading from this side.
    Direction(DirectionEnd, Side),
    /// The gateway: shutdown or the idle timeout, with the close both sides get.
    Interrupted(CloseCode, &'static str),
}

/// The access log's close code and reason for how the first direction ended.
fn describe(end: DirectionEnd, from: Side) -> (Option<u16>, &'static str) {
    let client = from == Side::Client;
    match end {
        DirectionEnd::Closed(code) if client => (code, "client closed"),
        DirectionEnd::Closed(code) => (code, "upstream closed"),
        DirectionEnd::Lost(code) if client => (Some(code), "client gone"),
        DirectionEnd::Lost(code) => (Some(code), "upstream gone"),
        DirectionEnd::Refused(code) if client => (Some(code), "client protocol error"),
        DirectionEnd::Refused(code) => (Some(code), "upstream protocol error"),
        DirectionEnd::PeerFailed => (None, "write failed"),
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
        if message.is_text() || message.is_binary() {
            *bytes += message.as_payload().len() as u64;
        }
        if to.send(message).await.is_err() && close.is_none() {
            return DirectionEnd::PeerFailed;
        }
        if let Some(code) = close {
            // Poll once more so the close answer tokio-websockets queued is flushed.
            let _ = tokio::time::timeout(CLOSE_LINGER, from.next()).await;
            return DirectionEnd::Closed(code);
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
    let (code, reason) = side.lost(broken);
    let _ = to.send(Message::close(Some(code), reason)).await;
    DirectionEnd::Lost(code.into())
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
    let code = match &error {
        WsError::Io(_) => return lost(side, true, to).await,
        WsError::AlreadyClosed => return lost(side, false, to).await,
        WsError::PayloadTooLong { .. } => CloseCode::MESSAGE_TOO_BIG,
        WsError::Protocol(tokio_websockets::proto::ProtocolError::InvalidUtf8) => {
            CloseCode::INVALID_FRAME_PAYLOAD_DATA
        }
        _ => CloseCode::PROTOCOL_ERROR,
    };
    tracing::debug!(%error, "websocket protocol error");
    let _ = to
        .send(Message::close(Some(code), "peer protocol error"))
        .await;
    DirectionEnd::Refused(code.into())
}
