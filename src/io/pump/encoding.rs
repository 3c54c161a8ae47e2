//! How bytes ride in WebSocket messages: the `binary` and `base64` subprotocols.

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use tokio_websockets::Message;

use crate::handshake::HandshakeError;

/// The encoding agreed in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Bytes in binary messages (noVNC asks for `binary`; no subprotocol means this too).
    Binary,
    /// Bytes base64-encoded in text messages (old websockify clients).
    Base64,
}

/// Neither subprotocol decoded: a base64 message that was not base64.
#[derive(Debug, thiserror::Error)]
#[error("message is not valid base64")]
pub(crate) struct DecodeError;

impl Encoding {
    /// Picks the encoding from the offered subprotocols, preferring `binary` as websockify does.
    /// Returns the protocol name to echo in the 101, if the client offered any.
    pub(crate) fn negotiate(
        offered: &[String],
    ) -> Result<(Encoding, Option<&'static str>), HandshakeError> {
        let has = |name: &str| offered.iter().any(|p| p.eq_ignore_ascii_case(name));
        if offered.is_empty() {
            Ok((Encoding::Binary, None))
        } else if has("binary") {
            Ok((Encoding::Binary, Some("binary")))
        } else if has("base64") {
            Ok((Encoding::Base64, Some("base64")))
        } else {
            Err(HandshakeError::NoProtocol("\"binary\" or \"base64\""))
        }
    }

    /// Wraps bytes from the target into a message for the client.
    pub fn encode(self, bytes: Bytes) -> Message {
        match self {
            Encoding::Binary => Message::binary(bytes),
            Encoding::Base64 => Message::text(STANDARD.encode(&bytes)),
        }
    }

    /// The bytes a data message carries toward the target. In binary mode a text message is
    /// forwarded as its UTF-8 bytes; in base64 mode every data message is decoded.
    pub fn decode(self, message: Message) -> Result<Bytes, DecodeError> {
        let payload: Bytes = message.into_payload().into();
        match self {
            Encoding::Binary => Ok(payload),
            Encoding::Base64 => STANDARD
                .decode(&payload)
                .map(Bytes::from)
                .map_err(|_| DecodeError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negotiation_prefers_binary() {
        assert_eq!(
            Encoding::negotiate(&offer(&[])).unwrap(),
            (Encoding::Binary, None)
        );
        assert_eq!(
            Encoding::negotiate(&offer(&["base64", "binary"])).unwrap(),
            (Encoding::Binary, Some("binary"))
        );
        assert_eq!(
            Encoding::negotiate(&offer(&["base64"])).unwrap(),
            (Encoding::Base64, Some("base64"))
        );
        assert!(Encoding::negotiate(&offer(&["chat"])).is_err());
    }

    #[test]
    fn base64_round_trip() {
        let message = Encoding::Base64.encode(Bytes::from_static(b"\x00\xffhello"));
        assert!(message.is_text());
        assert_eq!(
            Encoding::Base64.decode(message).unwrap(),
            Bytes::from_static(b"\x00\xffhello")
        );
        assert!(
            Encoding::Base64
                .decode(Message::text("not base64!"))
                .is_err()
        );
    }
}
