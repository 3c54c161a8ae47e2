//! The fast path for a proxied WebSocket: after both handshakes the bytes are copied as they
//! are, without parsing frames, half-close propagated each way.

use std::{
    io,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpStream, tcp},
};

use super::idle::LastActivity;
use crate::{
    connector,
    io::closing::{Closed, Closing},
    refusal::Refusal,
};

/// Read size while bytes are flowing over plain TCP. 64 KiB: a bulk transfer moves in few
/// system calls; the buffer exists only while data is waiting, so an idle WebSocket holds none.
const BURST_BYTES: usize = 64 * 1024;

/// Copy buffer per direction when either side is TLS (whose own buffers dominate anyway).
const BUFFER_BYTES: usize = 8 * 1024;

/// How a spliced WebSocket went.
#[derive(Debug)]
pub(crate) struct Spliced {
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    /// Why it ended, for the access log.
    pub end: &'static str,
    /// The refusal it ended with, if it did not end cleanly.
    pub refusal: Option<Refusal>,
}

/// Any stream the generic copy can splice.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One side after its upgrade: a plain TCP socket (the cheap path), or anything else.
enum Side {
    /// The socket and the bytes hyper had already read past the handshake.
    Tcp(TcpStream, Bytes),
    Other(Box<dyn Stream>),
}

impl Side {
    /// The client's side, and the guard that logs its connection's end (kept by the caller
    /// until the copy is over, so it is logged after the socket is closed).
    fn client(upgraded: Upgraded) -> (Side, Option<Closed>) {
        match upgraded.downcast::<TokioIo<Closing<TcpStream>>>() {
            Ok(parts) => {
                let (tcp, closed) = parts.io.into_inner().into_parts();
                (Side::Tcp(tcp, parts.read_buf), Some(closed))
            }
            Err(upgraded) => (Side::Other(Box::new(TokioIo::new(upgraded))), None),
        }
    }

    fn upstream(upgraded: Upgraded) -> Side {
        match upgraded.downcast::<TokioIo<connector::Stream>>() {
            Ok(parts) => match parts.io.into_inner().into_tcp() {
                Ok(tcp) => Side::Tcp(tcp, parts.read_buf),
                Err(other) => Side::Other(Box::new(Prefixed::new(other, parts.read_buf))),
            },
            Err(upgraded) => Side::Other(Box::new(TokioIo::new(upgraded))),
        }
    }

    fn into_stream(self) -> Box<dyn Stream> {
        match self {
            Side::Tcp(tcp, early) => Box::new(Prefixed::new(tcp, early)),
            Side::Other(stream) => stream,
        }
    }
}

/// Copies both ways until both sides have closed, an error or the idle timeout. Shutdown does
/// not cut a spliced WebSocket: no close frame can be sent between frames we do not see, so it
/// keeps going until it ends or the gateway's drain time is over.
pub async fn run(client: Upgraded, upstream: Upgraded, idle: Option<Duration>) -> Spliced {
    let meter = Meter::new();
    let (client, _closed) = Side::client(client);
    let copied = async {
        match (client, Side::upstream(upstream)) {
            (Side::Tcp(client, client_early), Side::Tcp(upstream, upstream_early)) => {
                splice_tcp(client, client_early, upstream, upstream_early, &meter).await
            }
            (client, upstream) => {
                splice_streams(client.into_stream(), upstream.into_stream(), &meter).await
            }
        }
    };
    let refusal = tokio::select! {
        result = copied => result.err().map(|_| Refusal::ConnectionBroken),
        () = meter.activity.expired(idle) => Some(Refusal::IdleTimeout),
    };
    Spliced {
        bytes_up: meter.up.load(Ordering::Relaxed),
        bytes_down: meter.down.load(Ordering::Relaxed),
        end: refusal.map_or("closed", Refusal::reason),
        refusal,
    }
}

/// Byte counts both ways and the time of the last read, shared by the copy and the idle timer.
struct Meter {
    up: AtomicU64,
    down: AtomicU64,
    activity: LastActivity,
}

impl Meter {
    fn new() -> Self {
        Meter {
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            activity: LastActivity::new(),
        }
    }

    fn count(&self, counter: &AtomicU64, bytes: usize) {
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
        self.activity.touch();
    }
}

/// Plain TCP both sides: each direction waits for readability without a buffer, then reads
/// into one only while bytes keep coming. EOF becomes a FIN on the other side.
async fn splice_tcp(
    mut client: TcpStream,
    client_early: Bytes,
    mut upstream: TcpStream,
    upstream_early: Bytes,
    meter: &Meter,
) -> io::Result<()> {
    let (client_read, mut client_write) = client.split();
    let (upstream_read, mut upstream_write) = upstream.split();
    let up = direction(
        client_read,
        client_early,
        &mut upstream_write,
        meter,
        &meter.up,
    );
    let down = direction(
        upstream_read,
        upstream_early,
        &mut client_write,
        meter,
        &meter.down,
    );
    tokio::try_join!(up, down).map(|_| ())
}

async fn direction(
    from: tcp::ReadHalf<'_>,
    early: Bytes,
    to: &mut tcp::WriteHalf<'_>,
    meter: &Meter,
    counter: &AtomicU64,
) -> io::Result<()> {
    if !early.is_empty() {
        to.write_all(&early).await?;
        meter.count(counter, early.len());
    }
    loop {
        from.readable().await?;
        let mut buf = BytesMut::with_capacity(BURST_BYTES);
        loop {
            match from.try_read_buf(&mut buf) {
                Ok(0) => return to.shutdown().await,
                Ok(read) => {
                    to.write_all(&buf).await?;
                    buf.clear();
                    meter.count(counter, read);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
    }
}

/// Any other pair (TLS on a side): tokio's bidirectional copy with fixed buffers.
async fn splice_streams(
    client: Box<dyn Stream>,
    upstream: Box<dyn Stream>,
    meter: &Meter,
) -> io::Result<()> {
    let mut client = Metered {
        inner: client,
        meter,
        counter: &meter.up,
    };
    let mut upstream = Metered {
        inner: upstream,
        meter,
        counter: &meter.down,
    };
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER_BYTES, BUFFER_BYTES)
        .await
        .map(|_| ())
}

/// A stream that counts what is read from it into the meter.
struct Metered<'m> {
    inner: Box<dyn Stream>,
    meter: &'m Meter,
    counter: &'m AtomicU64,
}

impl AsyncRead for Metered<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.meter.count(this.counter, read);
        }
        polled
    }
}

impl AsyncWrite for Metered<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A stream whose first bytes were already read by hyper: they are served before the rest.
struct Prefixed<T> {
    early: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    fn new(inner: T, early: Bytes) -> Self {
        Prefixed { early, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.early.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.early.len().min(buf.remaining());
        buf.put_slice(&this.early[..n]);
        this.early.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
