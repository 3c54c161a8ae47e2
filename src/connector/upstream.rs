//! The byte stream a connector yields, and its two halves for the handlers' pumps.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf},
    net::{TcpStream, UnixStream, tcp, unix},
};

/// A byte stream that is neither a TCP nor a Unix socket (a stream inside an agent's tunnel).
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ByteStream for T {}

/// Read size for streams without readiness (tunnel streams): they need a buffer to wait with,
/// so it is small; their own window bounds what waits behind it.
const TUNNEL_READ_BYTES: usize = 8 * 1024;

/// A connected upstream byte stream.
#[derive(Debug)]
pub enum Upstream {
    /// A TCP connection (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// Any other byte stream, e.g. a stream in an agent's tunnel.
    Stream(Box<dyn ByteStream>),
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
            Upstream::Stream(stream) => {
                let (read, write) = tokio::io::split(stream);
                (UpstreamReader::Stream(read), UpstreamWriter::Stream(write))
            }
        }
    }
}

/// The reading half. It reads without a buffer of its own: [`read_chunk`](Self::read_chunk)
/// waits for a socket to be readable and only then brings a buffer, so an idle connection
/// holds none.
#[derive(Debug)]
pub enum UpstreamReader<'a> {
    /// TCP read half.
    Tcp(tcp::ReadHalf<'a>),
    /// Unix read half.
    Unix(unix::ReadHalf<'a>),
    /// Read half of another byte stream.
    Stream(ReadHalf<&'a mut Box<dyn ByteStream>>),
}

impl UpstreamReader<'_> {
    /// Waits for bytes and returns up to `max` of them; empty at the end of the stream. On a
    /// socket the buffer is allocated only once bytes are waiting, so an idle connection holds
    /// none. Cancel safe: nothing is lost if another branch of a `select!` wins.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<BytesMut> {
        loop {
            let result = match self {
                UpstreamReader::Tcp(half) => {
                    half.readable().await?;
                    let mut buf = BytesMut::with_capacity(max);
                    half.try_read_buf(&mut buf).map(|_| buf)
                }
                UpstreamReader::Unix(half) => {
                    half.readable().await?;
                    let mut buf = BytesMut::with_capacity(max);
                    half.try_read_buf(&mut buf).map(|_| buf)
                }
                UpstreamReader::Stream(half) => {
                    let mut buf = BytesMut::with_capacity(max.min(TUNNEL_READ_BYTES));
                    half.read_buf(&mut buf).await.map(|_| buf)
                }
            };
            match result {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
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
    /// Write half of another byte stream.
    Stream(WriteHalf<&'a mut Box<dyn ByteStream>>),
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
            UpstreamWriter::Stream(half) => Pin::new(half).poll_write(cx, buf),
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
            UpstreamWriter::Stream(half) => Pin::new(half).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamWriter::Tcp(_) | UpstreamWriter::Unix(_) => true,
            UpstreamWriter::Stream(half) => half.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWriter::Tcp(half) => Pin::new(half).poll_flush(cx),
            UpstreamWriter::Unix(half) => Pin::new(half).poll_flush(cx),
            UpstreamWriter::Stream(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamWriter::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            UpstreamWriter::Unix(half) => Pin::new(half).poll_shutdown(cx),
            UpstreamWriter::Stream(half) => Pin::new(half).poll_shutdown(cx),
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
            Upstream::Stream(stream) => Pin::new(stream).poll_read(cx, buf),
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
            Upstream::Stream(stream) => Pin::new(stream).poll_write(cx, buf),
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
            Upstream::Stream(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Tcp(_) | Upstream::Unix(_) => true,
            Upstream::Stream(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Upstream::Unix(stream) => Pin::new(stream).poll_flush(cx),
            Upstream::Stream(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Upstream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
            Upstream::Stream(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
