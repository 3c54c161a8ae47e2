//! The fast path for a proxied WebSocket: after both handshakes the bytes are copied as they
//! are, without parsing frames, half-close propagated each way.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, sleep_until},
};
use tokio_util::sync::CancellationToken;

/// Copy buffer per direction. 16 KiB: bulk transfers move in few system calls, and it is
/// allocated once per WebSocket.
const BUFFER_BYTES: usize = 16 * 1024;

/// How a spliced WebSocket went.
#[derive(Debug)]
pub struct Spliced {
    /// Bytes from the client to the upstream.
    pub bytes_up: u64,
    /// Bytes from the upstream to the client.
    pub bytes_down: u64,
    /// Why it ended, for the access log.
    pub end: &'static str,
}

/// Copies both ways until both sides have closed, an error, the idle timeout or shutdown.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    idle: Option<Duration>,
    shutdown: &CancellationToken,
) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last_read = Arc::new(AtomicU64::new(0));
    let mut client = Metered::new(client, started, last_read.clone());
    let mut upstream = Metered::new(upstream, started, last_read.clone());
    let end = {
        let copy = tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut upstream,
            BUFFER_BYTES,
            BUFFER_BYTES,
        );
        tokio::select! {
            result = copy => if result.is_ok() { "closed" } else { "connection error" },
            () = shutdown.cancelled() => "shutdown",
            () = idle_expired(idle, started, &last_read) => "idle timeout",
        }
    };
    Spliced {
        bytes_up: client.bytes_read,
        bytes_down: upstream.bytes_read,
        end,
    }
}

/// Resolves once nothing has been read either way for `idle`; never without a timeout.
async fn idle_expired(idle: Option<Duration>, started: Instant, last_read: &AtomicU64) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        let last = started + Duration::from_millis(last_read.load(Ordering::Relaxed));
        if last.elapsed() >= idle {
            return;
        }
        sleep_until(last + idle).await;
    }
}

/// A stream that counts what is read from it and stamps the time of the last read.
struct Metered<T> {
    inner: T,
    bytes_read: u64,
    started: Instant,
    /// Milliseconds after `started` of the last read on either side.
    last_read: Arc<AtomicU64>,
}

impl<T> Metered<T> {
    fn new(inner: T, started: Instant, last_read: Arc<AtomicU64>) -> Self {
        Metered {
            inner,
            bytes_read: 0,
            started,
            last_read,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            this.bytes_read += read;
            let millis = this.started.elapsed().as_millis() as u64;
            this.last_read.store(millis, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
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
