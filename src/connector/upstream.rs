//! The byte stream a connector yields, and its two halves for the handlers' pumps.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use tokio::{
    io::AsyncWrite,
    net::{TcpStream, UnixStream, tcp, unix},
};

/// A connected upstream byte stream.
#[derive(Debug)]
pub enum Upstream {
    /// A TCP connection (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
}

impl Upstream {
    /// Borrows the stream as a reading half and a writing half that can be driven concurrently.
    pub fn split(&mut self) -> (UpstreamReader<'_>, UpstreamWriter<'_>) {
        match self {
            Upstream::Tcp(stream) => {
                let (read, write) = stream.split();
                (UpstreamReader::Tcp(read), UpstreamWriter::Tcp(write))
            }
            Upstream::Unix(stream) => {
                let (read, write) = stream.split();
                (UpstreamReader::Unix(read), UpstreamWriter::Unix(write))
            }
        }
    }
}

/// The reading half. It reads without a buffer of its own: callers wait for
/// [`readable`](Self::readable) and only then bring a buffer, so an idle connection holds none.
#[derive(Debug)]
pub enum UpstreamReader<'a> {
    /// TCP read half.
    Tcp(tcp::ReadHalf<'a>),
    /// Unix read half.
    Unix(unix::ReadHalf<'a>),
}

impl UpstreamReader<'_> {
    /// Waits until a read would not block. Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            UpstreamReader::Tcp(half) => half.readable().await,
            UpstreamReader::Unix(half) => half.readable().await,
        }
    }

    /// Reads what is there into `buf`; `WouldBlock` when nothing is, `Ok(0)` at end of stream.
    pub fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            UpstreamReader::Tcp(half) => half.try_read_buf(buf),
            UpstreamReader::Unix(half) => half.try_read_buf(buf),
        }
    }
}

/// The writing half; `shutdown` sends FIN (half-close).
#[derive(Debug)]
pub enum UpstreamWriter<'a> {
    /// TCP write half.
    Tcp(tcp::WriteHalf<'a>),
    /// Unix write half.
    Unix(unix::WriteHalf<'a>),
}

impl AsyncWrite for UpstreamWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamWriter::Tcp(half) => Pin::new(half).poll_write(cx, buf),
            UpstreamWriter::Unix(half) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamWriter::Tcp(half) => Pin::new(half).poll_write_vectored(cx, bufs),
            UpstreamWriter::Unix(half) => Pin::new(half).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWriter::Tcp(half) => Pin::new(half).poll_flush(cx),
            UpstreamWriter::Unix(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWriter::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            UpstreamWriter::Unix(half) => Pin::new(half).poll_shutdown(cx),
        }
    }
}

/// The whole stream as one reader and writer, for handlers that hand it to a protocol
/// implementation (the proxy's HTTP client) rather than pumping the halves themselves.
impl tokio::io::AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Upstream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Upstream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Upstream::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Upstream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Upstream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
