//! Message mode (`mode = "message"`): WebSocket is terminated on both sides and whole messages
//! are relayed, so later features can see each one. Text stays text, binary stays binary,
//! message boundaries survive any re-fragmentation, pings are passed on (each hop answers them
//! itself, so pongs are not relayed: that would answer every ping twice), and a close code and
//! reason travel to the other side.

use std::{pin::pin, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_websockets::{CloseCode, Error as WsError, Message, WebSocketStream};

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

/// How one direction ended.
#[derive(Debug, Clone, Copy)]
enum DirectionEnd {
    /// The sending side closed with this code (forwarded).
    Closed(Option<u16>),
    /// The sending side's connection ended without a close frame.
    Gone,
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
    let mut relayed = Relayed::default();
    let (mut up_bytes, mut down_bytes) = (0, 0);
    let first = {
        let mut up = pin!(direction(
            &mut client_rx,
            &mut upstream_tx,
            &mut up_bytes,
            idle
        ));
        let mut down = pin!(direction(
            &mut upstream_rx,
            &mut client_tx,
            &mut down_bytes,
            idle
        ));
        let first = tokio::select! {
            end = &mut up => (end, true),
            end = &mut down => (end, false),
            () = shutdown.cancelled() => (DirectionEnd::Closed(Some(1001)), true),
        };
        // The other direction now carries the close answer (or ends on the error): wait for it,
        // unless the gateway is shutting down.
        if !shutdown.is_cancelled() {
            if first.1 {
                let _ = tokio::time::timeout(CLOSE_LINGER, &mut down).await;
            } else {
                let _ = tokio::time::timeout(CLOSE_LINGER, &mut up).await;
            }
        }
        first
    };
    (relayed.close_code, relayed.end) = match first.0 {
        DirectionEnd::Closed(code) if shutdown.is_cancelled() => (code, "shutdown"),
        DirectionEnd::Closed(code) if first.1 => (code, "client closed"),
        DirectionEnd::Closed(code) => (code, "upstream closed"),
        DirectionEnd::Gone if first.1 => (None, "client gone"),
        DirectionEnd::Gone => (None, "upstream gone"),
        DirectionEnd::Refused(code) if first.1 => (Some(code), "client protocol error"),
        DirectionEnd::Refused(code) => (Some(code), "upstream protocol error"),
        DirectionEnd::PeerFailed => (None, "write failed"),
    };
    relayed.bytes_up = up_bytes;
    relayed.bytes_down = down_bytes;
    if shutdown.is_cancelled() {
        let close = || Message::close(Some(CloseCode::GOING_AWAY), "gateway shutting down");
        let _ = tokio::time::timeout(CLOSE_LINGER, client_tx.send(close())).await;
        let _ = tokio::time::timeout(CLOSE_LINGER, upstream_tx.send(close())).await;
    }
    relayed
}

/// One direction: every message from `from` is sent on `to`, the close included.
async fn direction<A, B>(
    from: &mut futures_util::stream::SplitStream<WebSocketStream<A>>,
    to: &mut futures_util::stream::SplitSink<WebSocketStream<B>, Message>,
    bytes: &mut u64,
    idle: Option<Duration>,
) -> DirectionEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = match idle {
            Some(idle) => match tokio::time::timeout(idle, from.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let close = Message::close(Some(CloseCode::NORMAL_CLOSURE), "idle timeout");
                    let _ = to.send(close).await;
                    return DirectionEnd::Closed(Some(1000));
                }
            },
            None => from.next().await,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                let end = refused(error, to).await;
                // Poll once more so the close tokio-websockets queued for the sender is flushed.
                let _ = tokio::time::timeout(CLOSE_LINGER, from.next()).await;
                return end;
            }
            None => {
                let close = Message::close(Some(CloseCode::GOING_AWAY), "peer connection lost");
                let _ = to.send(close).await;
                return DirectionEnd::Gone;
            }
        };
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

/// The sender broke the protocol: tokio-websockets has queued the right close for it (1002,
/// 1007, 1009); the other side is told the same code.
async fn refused<B>(
    error: WsError,
    to: &mut futures_util::stream::SplitSink<WebSocketStream<B>, Message>,
) -> DirectionEnd
where
    B: AsyncRead + AsyncWrite + Unpin,
{
    let code = match &error {
        WsError::Io(_) | WsError::AlreadyClosed => return DirectionEnd::Gone,
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
