//! Byte-pump primitives shared by layers that must not know each other: a connector's stream
//! implements them, a pump (the bridge's) is generic over them; and how a WebSocket read error
//! or a refusal turns into a close frame, for every pump that terminates WebSocket.

pub(crate) mod closing;
pub(crate) mod pump;
pub mod ws;

use std::{future::Future, io};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_websockets::{CloseCode, Error as WsError, Message, proto::ProtocolError};

use crate::refusal::Refusal;

/// A reader that waits for bytes before it brings a buffer, so an idle connection holds none.
pub(crate) trait ReadChunk {
    /// Waits for bytes and returns up to `max` of them; empty at the end of the stream. Cancel
    /// safe: nothing is lost if another branch of a `select!` wins.
    fn read_chunk(&mut self, max: usize) -> impl Future<Output = io::Result<BytesMut>> + Send;
}

/// What a WebSocket read error means, in one place for every pump: `None` when the peer's
/// connection merely ended (an I/O error, or already closed), else the refusal whose close
/// frame tokio-websockets has queued for the peer (1002, 1007, 1009).
pub(crate) fn websocket_refusal(error: &WsError) -> Option<Refusal> {
    match error {
        WsError::Io(_) | WsError::AlreadyClosed => None,
        WsError::PayloadTooLong { .. } => Some(Refusal::MessageTooBig),
        WsError::Protocol(ProtocolError::InvalidUtf8) => Some(Refusal::InvalidUtf8),
        _ => Some(Refusal::ProtocolError),
    }
}

/// The close frame for `refusal`, with the table's code and reason (none for kinds that end a
/// connection without one).
pub(crate) fn close_message(refusal: Refusal) -> Option<Message> {
    close_message_because(refusal, refusal.reason())
}

/// The close frame for `refusal` with another reason: for the side of a relay that did
/// nothing wrong, told with the same code that its peer broke the protocol.
pub(crate) fn close_message_because(refusal: Refusal, reason: &str) -> Option<Message> {
    let code = CloseCode::try_from(refusal.close_code()?).ok()?;
    Some(Message::close(Some(code), reason))
}

/// Whether a close frame is the one the message budget puts in place of a frame it had no room
/// for (`handler::message_budget`): the decoder reads it as the peer's, and the access log must
/// count it as the budget's refusal, not as the peer's close.
pub(crate) fn is_budget_close(code: u16, reason: &str) -> bool {
    let full = Refusal::MessageBudgetFull;
    full.close_code() == Some(code) && reason == full.reason()
}

/// Copy buffer per direction where a tunnel stream meets a socket: a multiplexed stream costs
/// a frame and a WebSocket message per write, so large writes matter (tokio's default is 8 KiB).
/// A read this size is one yamux frame (`session`'s largest) and one WebSocket message.
pub(crate) const COPY_BYTES: usize = 60 * 1024;

/// Copies both ways between a tunnel stream and a socket (or another stream) until both
/// sides have ended, with `COPY_BYTES` buffers; the bytes each way (`a` to `b` first).
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, COPY_BYTES, COPY_BYTES).await
}

/// Reads a 4-byte big-endian length and that many bytes (at most `max`); `Ok(None)` at a
/// clean end of the stream before the length starts.
pub(crate) async fn read_prefixed<R>(reader: &mut R, max: usize) -> io::Result<Option<Vec<u8>>>
where
    R: AsyncRead + Unpin,
{
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes is over the {max}-byte limit"),
        ));
    }
    let mut bytes = vec![0u8; length];
    reader.read_exact(&mut bytes).await?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_errors_map_to_the_close_codes_tokio_websockets_sends() {
        let too_long = WsError::PayloadTooLong { len: 2, max_len: 1 };
        let utf8 = WsError::Protocol(ProtocolError::InvalidUtf8);
        let other = WsError::Protocol(ProtocolError::InvalidOpcode);
        let gone = WsError::Io(io::ErrorKind::BrokenPipe.into());
        let codes = [too_long, utf8, other, gone, WsError::AlreadyClosed]
            .iter()
            .map(|e| websocket_refusal(e).and_then(Refusal::close_code))
            .collect::<Vec<_>>();
        assert_eq!(codes, [Some(1009), Some(1007), Some(1002), None, None]);
    }

    #[test]
    fn close_frames_carry_the_tables_code_and_reason() {
        let close = close_message(Refusal::AgentGone).unwrap();
        let (code, reason) = close.as_close().unwrap();
        assert_eq!((u16::from(code), reason), (1001, "the agent left"));
        assert!(close_message(Refusal::HeartbeatLost).is_none());
    }
}
