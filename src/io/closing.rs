//! A client's socket that says when it is gone: dropped (by its connection's task, or by the
//! task an upgrade handed it to), it logs `connection closed` at debug with the client's
//! address, after the descriptor is closed. Operators see when a connection really ends;
//! tests wait on it instead of polling the process's descriptors.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket `io` that logs its end. The fields drop in order: the socket first, then the
/// log, so that whoever reads `connection closed` finds the descriptor closed.
#[derive(Debug)]
pub struct Closing<I> {
    io: I,
    _closed: Closed,
}

/// Logs `connection closed` for `client` when dropped.
#[derive(Debug)]
pub(crate) struct Closed(SocketAddr);

impl Drop for Closed {
    fn drop(&mut self) {
        tracing::debug!(client.addr = %self.0, "connection closed");
    }
}

impl<I> Closing<I> {
    /// `io`, the connection from `client`.
    pub fn new(io: I, client: SocketAddr) -> Self {
        Closing {
            io,
            _closed: Closed(client),
        }
    }

    /// The socket itself.
    pub fn get_ref(&self) -> &I {
        &self.io
    }

    /// The socket, and what logs its end when dropped: for a task that needs the bare socket
    /// (the proxy's splice), which drops the guard after the socket.
    pub(crate) fn into_parts(self) -> (I, Closed) {
        (self.io, self._closed)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Closing<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Closing<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
