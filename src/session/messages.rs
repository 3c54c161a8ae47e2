//! The tunnel's messages on a stream: [`wire`]'s frames written and read, and the first-frame
//! exchange that opens a stream.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::{
    io::read_prefixed,
    wire::{self, Failure, Opened},
};

/// Writes one frame.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    writer.write_all(&wire::encode(message)?).await?;
    writer.flush().await
}

/// Sends `message` as a stream's first frame and reads the answer: `Ok` once it is
/// [`Opened::Ok`]; otherwise the failure's kind and reason (`General` when the stream breaks
/// or ends first).
pub async fn ask<S, T>(stream: &mut S, message: &T) -> Result<(), (Failure, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize,
{
    let general = |reason: String| (Failure::General, reason);
    write_frame(stream, message)
        .await
        .map_err(|e| general(e.to_string()))?;
    match read_frame::<_, Opened>(stream).await {
        Ok(Some(Opened::Ok)) => Ok(()),
        Ok(Some(Opened::Failed { failure, reason })) => Err((failure, reason)),
        Ok(None) => Err(general("the stream ended before the answer".into())),
        Err(error) => Err(general(error.to_string())),
    }
}

/// Reads one frame; `Ok(None)` at a clean end of the stream before a frame starts.
pub async fn read_frame<R, T>(reader: &mut R) -> io::Result<Option<T>>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let Some(json) = read_prefixed(reader, wire::MAX_FRAME_BYTES).await? else {
        return Ok(None);
    };
    wire::decode(&json).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Control, Expose, Service, VERSION};

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let messages = [
            Control::Hello {
                version: VERSION,
                agent: "office".into(),
            },
            Control::Register {
                services: vec![Service {
                    name: "api".into(),
                    local: "http://127.0.0.1:8080".into(),
                    expose: Expose::Path("/api".into()),
                }],
                egress: None,
            },
            Control::Ping(7),
        ];
        let mut bytes = Vec::new();
        for message in &messages {
            write_frame(&mut bytes, message).await.unwrap();
        }
        let mut reader = bytes.as_slice();
        for message in &messages {
            let read: Control = read_frame(&mut reader).await.unwrap().unwrap();
            assert_eq!(&read, message);
        }
        assert!(
            read_frame::<_, Control>(&mut reader)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn oversized_and_malformed_frames_are_errors() {
        let mut reader: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let error = read_frame::<_, Control>(&mut reader).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let mut frame = 5u32.to_be_bytes().to_vec();
        frame.extend_from_slice(b"{nope");
        let error = read_frame::<_, Control>(&mut frame.as_slice())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
