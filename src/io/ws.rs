//! A WebSocket as a byte stream, for the multiplexer: what is written goes out as binary
//! messages (one per flush, at most [`MAX_MESSAGE_BYTES`]), what arrives is read back in order.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{
    Sink, Stream,
    io::{AsyncRead, AsyncWrite},
};
use tokio_websockets::{Message, WebSocketStream};

/// The largest message the tunnel sends; the peer's message limit must allow it. Room for one
/// yamux frame (`session`'s 60 KiB and a header), and, with the WebSocket's own header, still
/// below 64 KiB: one TCP segment on loopback, where a write just over it costs a second, tiny
/// segment (a fifth of the throughput, measured).
pub const MAX_MESSAGE_BYTES: usize = 63 * 1024;

/// A WebSocket read and written as bytes (futures-io traits, as yamux wants them).
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// Unread rest of the last message received.
    read: Bytes,
    read_eof: bool,
    /// Written but not yet handed to the WebSocket. yamux writes a frame's header and body
    /// separately and flushes after each frame, so bytes are gathered until a flush to make one
    /// message of them. One block per session (not per stream), reused.
    write: BytesMut,
}

impl<S> WsIo<S> {
    /// Wraps an open WebSocket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsIo {
            ws,
            read: Bytes::new(),
            read_eof: false,
            write: BytesMut::new(),
        }
    }
}

fn to_io(error: tokio_websockets::Error) -> io::Error {
    match error {
        tokio_websockets::Error::Io(error) => error,
        other => io::Error::other(other),
    }
}

impl<S> WsIo<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Hands the gathered bytes to the WebSocket as one binary message (without flushing).
    fn poll_push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(to_io)?;
        let message = Message::binary(self.write.split().freeze());
        Pin::new(&mut self.ws).start_send(message).map_err(to_io)?;
        Poll::Ready(Ok(()))
    }
}

impl<S> AsyncRead for WsIo<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if !this.read.is_empty() {
                let n = buf.len().min(this.read.len());
                buf[..n].copy_from_slice(&this.read[..n]);
                this.read.advance(n);
                return Poll::Ready(Ok(n));
            }
            if this.read_eof || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(message)) if message.is_binary() => {
                    this.read = message.into_payload().into();
                }
                Some(Ok(message)) if message.is_text() => {
                    let error =
                        io::Error::new(io::ErrorKind::InvalidData, "text message in tunnel");
                    return Poll::Ready(Err(error));
                }
                Some(Ok(message)) if message.is_close() => this.read_eof = true,
                Some(Ok(_ping_or_pong)) => {} // answered inside tokio-websockets
                Some(Err(error)) => return Poll::Ready(Err(to_io(error))),
                None => this.read_eof = true,
            }
        }
    }
}

impl<S> AsyncWrite for WsIo<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write.len() >= MAX_MESSAGE_BYTES {
            ready!(this.poll_push(cx))?;
        }
        let n = buf.len().min(MAX_MESSAGE_BYTES - this.write.len());
        // Reuses the session's block once the messages cut from it are sent, instead of a
        // fresh allocation (and its page faults) per message.
        this.write.reserve(n);
        this.write.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_push(cx))?;
        Pin::new(&mut self.ws).poll_flush(cx).map_err(to_io)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_push(cx))?;
        Pin::new(&mut self.ws).poll_close(cx).map_err(to_io)
    }
}
