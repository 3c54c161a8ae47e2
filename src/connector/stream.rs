//! The one byte stream every connector yields, whatever it dialled (TCP, a Unix socket, a
//! stream in an agent's tunnel, TLS over any of them), and its two halves for the pumps.

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
use tokio_rustls::client::TlsStream;

use crate::io::ReadChunk;

/// A byte stream that is neither a TCP nor a Unix socket (a stream inside an agent's tunnel).
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> ByteStream for T {}

/// Read size for streams without readiness (tunnel streams): they need a buffer to wait with,
/// so it is small; their own window bounds what waits behind it.
const TUNNEL_READ_BYTES: usize = 8 * 1024;

/// A connected byte stream. Handlers treat it as opaque: they read, write, split it, and at
/// most ask for the plain TCP socket underneath (the proxy's splice fast path).
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection (`TCP_NODELAY` and keepalive set).
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// A stream in an agent's tunnel (or any other byte stream).
    Tunnel(Box<dyn ByteStream>),
    /// TLS over one of the others (`wss://`, `https://`).
    Tls(Box<TlsStream<Stream>>),
}

impl Stream {
    /// Borrows the stream as a reading half and a writing half that can be driven concurrently.
    pub fn split(&mut self) -> (Reader<'_>, Writer<'_>) {
        match self {
            Stream::Tcp(stream) => {
                let (read, write) = stream.split();
                (Reader::Tcp(read), Writer::Tcp(write))
            }
            Stream::Unix(stream) => {
                let (read, write) = stream.split();
                (Reader::Unix(read), Writer::Unix(write))
            }
            other => {
                let (read, write) = tokio::io::split(other);
                (Reader::Other(read), Writer::Other(write))
            }
        }
    }

    /// The plain TCP socket, if that is all this stream is: the splice path copies between
    /// sockets without a buffer while idle. Any other stream comes back unchanged.
    pub(crate) fn into_tcp(self) -> Result<TcpStream, Stream> {
        match self {
            Stream::Tcp(tcp) => Ok(tcp),
            other => Err(other),
        }
    }
}

/// The reading half. It reads without a buffer of its own: `read_chunk`
/// waits for a socket to be readable and only then brings a buffer, so an idle connection
/// holds none.
#[derive(Debug)]
pub enum Reader<'a> {
    /// TCP read half.
    Tcp(tcp::ReadHalf<'a>),
    /// Unix read half.
    Unix(unix::ReadHalf<'a>),
    /// Read half of a tunnel or TLS stream.
    Other(ReadHalf<&'a mut Stream>),
}

impl ReadChunk for Reader<'_> {
    /// On a socket the buffer is allocated only once bytes are waiting, so an idle connection
    /// holds none.
    async fn read_chunk(&mut self, max: usize) -> io::Result<BytesMut> {
        loop {
            let result = match self {
                Reader::Tcp(half) => {
                    half.readable().await?;
                    let mut buf = BytesMut::with_capacity(max);
                    half.try_read_buf(&mut buf).map(|_| buf)
                }
                Reader::Unix(half) => {
                    half.readable().await?;
                    let mut buf = BytesMut::with_capacity(max);
                    half.try_read_buf(&mut buf).map(|_| buf)
                }
                Reader::Other(half) => {
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
pub enum Writer<'a> {
    /// TCP write half.
    Tcp(tcp::WriteHalf<'a>),
    /// Unix write half.
    Unix(unix::WriteHalf<'a>),
    /// Write half of a tunnel or TLS stream.
    Other(WriteHalf<&'a mut Stream>),
}

impl AsyncWrite for Writer<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_write(cx, buf),
            Writer::Unix(half) => Pin::new(half).poll_write(cx, buf),
            Writer::Other(half) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_write_vectored(cx, bufs),
            Writer::Unix(half) => Pin::new(half).poll_write_vectored(cx, bufs),
            Writer::Other(half) => Pin::new(half).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Writer::Tcp(_) | Writer::Unix(_) => true,
            Writer::Other(half) => half.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_flush(cx),
            Writer::Unix(half) => Pin::new(half).poll_flush(cx),
            Writer::Other(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            Writer::Unix(half) => Pin::new(half).poll_shutdown(cx),
            Writer::Other(half) => Pin::new(half).poll_shutdown(cx),
        }
    }
}

/// The whole stream as one reader and writer, for handlers that hand it to a protocol
/// implementation (the proxy's HTTP client) rather than pumping the halves themselves.
impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tunnel(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tunnel(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Unix(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tunnel(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => true,
            Stream::Tunnel(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tunnel(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tunnel(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
