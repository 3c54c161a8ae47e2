//! Byte-pump primitives shared by layers that must not know each other: a connector's stream
//! implements them, a pump (the bridge's) is generic over them; and how a WebSocket read error
//! or a refusal turns into a close frame, for every pump that terminates WebSocket.

use std::{future::Future, io};

use bytes::BytesMut;
use tokio_websockets::{CloseCode, Error as WsError, Message, proto::ProtocolError};

use crate::refusal::Refusal;

/// A reader that waits for bytes before it brings a buffer, so an idle connection holds none.
pub trait ReadChunk {
    /// Waits for bytes and returns up to `max` of them; empty at the end of the stream. Cancel
    /// safe: nothing is lost if another branch of a `select!` wins.
    fn read_chunk(&mut self, max: usize) -> impl Future<Output = io::Result<BytesMut>> + Send;
}

/// What a WebSocket read error means, in one place for every pump: `None` when the peer's
/// connection merely ended (an I/O error, or already closed), else the refusal whose close
/// frame tokio-websockets has queued for the peer (1002, 1007, 1009).
pub fn websocket_refusal(error: &WsError) -> Option<Refusal> {
    match error {
        WsError::Io(_) | WsError::AlreadyClosed => None,
        WsError::PayloadTooLong { .. } => Some(Refusal::MessageTooBig),
        WsError::Protocol(ProtocolError::InvalidUtf8) => Some(Refusal::InvalidUtf8),
        _ => Some(Refusal::ProtocolError),
    }
}

/// The close frame for `refusal`, with the table's code and reason (none for kinds that end a
/// connection without one).
pub fn close_message(refusal: Refusal) -> Option<Message> {
    let code = CloseCode::try_from(refusal.close_code()?).ok()?;
    Some(Message::close(Some(code), refusal.reason()))
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
