//! One multiplexed session over one WebSocket (yamux): a task drives the connection, hands
//! inbound streams to a callback, and opens outbound streams on request from any task.

use std::{
    collections::VecDeque,
    future::poll_fn,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};
use yamux::{Config, Connection, ConnectionError, Mode};

pub mod frames;
pub mod messages;
mod stream_budget;

pub use stream_budget::{CreditWatch, Probe, STREAM_WINDOW_BYTES, StreamBudget, StreamCharge};

/// A stream the peer opened, as tokio sees it; its buffers stay charged to the session's
/// budgets while it lives, and its writes tell the session whether the peer grants credit.
#[derive(Debug)]
pub struct TunnelStream {
    stream: Compat<yamux::Stream>,
    probe: Probe,
    _charge: StreamCharge,
}

impl TunnelStream {
    /// Takes this stream out of the session's credit watch: the control stream, whose
    /// heartbeats say the agent is there, not that it takes data.
    pub(crate) fn into_control(mut self) -> Self {
        self.probe.detach();
        self
    }

    /// Copies both ways between this stream and `socket` taking frames whole
    /// ([`crate::session::frames::splice`]).
    pub async fn splice<S>(&mut self, socket: &mut S) -> std::io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        self.splice_until(socket, || false).await
    }

    /// As [`Self::splice`]; when the stream ends, `aborted` tells whether its session died.
    async fn splice_until<S>(
        &mut self,
        socket: &mut S,
        aborted: impl Fn() -> bool,
    ) -> std::io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        crate::session::frames::splice(self.stream.get_mut(), socket, &mut self.probe, aborted)
            .await
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.probe.observe_read();
        }
        polled
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.probe.observe(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A stream this side opened: a [`TunnelStream`] that also holds one of the session's open
/// slots until dropped, and tells a session's death from a clean end.
#[derive(Debug)]
pub struct OpenedStream {
    stream: TunnelStream,
    _slot: OwnedSemaphorePermit,
    /// The session's command channel: closed once the session's task has ended.
    session: mpsc::Sender<Command>,
}

/// What reading a stream whose session died gives: not a clean end, which yamux shows it as.
pub(crate) fn session_ended() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the tunnel session ended",
    )
}

impl OpenedStream {
    /// Copies both ways between this stream and `socket` taking frames whole
    /// ([`crate::session::frames::splice`]); the session dying is an error, as for reads.
    pub async fn splice<S>(&mut self, socket: &mut S) -> std::io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        let session = self.session.clone();
        self.stream
            .splice_until(socket, || session.is_closed())
            .await
    }
}

impl AsyncRead for OpenedStream {
    /// As the stream's, except that an end caused by the session dying (the peer vanished) is
    /// an error of kind `ConnectionAborted`, not a clean end: yamux shows both as end of file.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let at_end = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() == before;
        if at_end && buf.remaining() > 0 && self.session.is_closed() {
            return Poll::Ready(Err(session_ended()));
        }
        polled
    }
}

impl AsyncWrite for OpenedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Streams this side may have open at once: below [`MAX_STREAMS`], since the peer counts the
/// streams it opened too (its control stream, its forwards), and going over the limit ends
/// the whole session. A visitor beyond it waits for a slot (within its connect timeout).
pub(crate) const MAX_OPEN_STREAMS: usize = MAX_STREAMS - 32;

/// Streams one session may have open (both sides' together), enforced by both peers: yamux
/// ends a session whose peer goes over it, so each side opens through a semaphore below it.
/// Each idle stream costs about 1.5 KB; a stream's buffered bytes are bounded by its window.
pub(crate) const MAX_STREAMS: usize = 1024;

/// The largest data frame a stream sends (yamux reads frames up to 1 MiB): one WebSocket
/// message of at most [`crate::io::ws::MAX_MESSAGE_BYTES`] with its header.
const SPLIT_SEND_BYTES: usize = 60 * 1024;

/// The room every stream's window may grow into, together, beyond its first 256 KiB: enough
/// for a few fast streams over a long link. The gateway charges it to the session's budgets
/// when the session starts, so with each open stream's window it bounds what a session holds.
pub(crate) const WINDOW_HEADROOM_BYTES: usize = 8 << 20;

/// yamux's settings for the tunnel: bounded streams and a bounded receive window.
pub fn config() -> Config {
    let mut config = Config::default();
    config.set_max_num_streams(MAX_STREAMS);
    // 60 KiB frames: each frame is a flush and a WebSocket message, so bulk transfers take a
    // quarter of the messages (and system calls) of yamux's 16 KiB default.
    config.set_split_send_size(SPLIT_SEND_BYTES);
    config
        .set_max_connection_receive_window(Some(MAX_STREAMS * 256 * 1024 + WINDOW_HEADROOM_BYTES));
    config
}

enum Command {
    Open(oneshot::Sender<Result<yamux::Stream, ConnectionError>>),
    Close,
}

/// Opens streams on a running session; cheap to clone. When every handle is dropped, the
/// session closes.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    slots: Arc<Semaphore>,
    budget: StreamBudget,
    watch: Arc<CreditWatch>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Open(_) => "Open",
            Command::Close => "Close",
        })
    }
}

impl SessionHandle {
    /// Opens a stream. yamux tells the peer only with the stream's first bytes, so the opener
    /// writes a header at once.
    pub async fn open(&self) -> Result<OpenedStream, OpenError> {
        let charge = self
            .budget
            .charge(STREAM_WINDOW_BYTES)
            .ok_or(OpenError::Budget)?;
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ConnectionError::Closed)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Open(reply))
            .await
            .map_err(|_| ConnectionError::Closed)?;
        let stream = answer.await.map_err(|_| ConnectionError::Closed)??;
        Ok(OpenedStream {
            stream: TunnelStream {
                stream: stream.compat(),
                probe: Probe::new(&self.watch),
                _charge: charge,
            },
            _slot: slot,
            session: self.commands.clone(),
        })
    }

    /// Whether the peer grants window credit: how long writes have waited for it.
    pub fn credit(&self) -> &CreditWatch {
        &self.watch
    }

    /// Asks the session to close (GoAway, then the WebSocket's close). Never waits: a session
    /// already closing (and no longer reading its requests) is left to its own end.
    pub async fn close(&self) {
        let _ = self.commands.try_send(Command::Close);
    }

    /// Whether the session has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The session is gone or refused the stream.
    #[error(transparent)]
    Session(#[from] ConnectionError),
    /// The tunnel memory budget has no room for another stream's window.
    #[error("the gateway's tunnel memory budget is full")]
    Budget,
}

/// Starts driving `io` as a yamux session. `on_inbound` gets each stream the peer opens; it
/// must not block (spawn the stream's work). Every stream, both ways, is charged a window to
/// `budget`; a stream the peer opens past it is reset at once. The task ends with the session.
pub fn spawn<T, F>(
    io: T,
    mode: Mode,
    budget: StreamBudget,
    on_inbound: F,
) -> (SessionHandle, JoinHandle<Result<(), ConnectionError>>)
where
    T: futures_util::io::AsyncRead + futures_util::io::AsyncWrite + Unpin + Send + 'static,
    F: FnMut(TunnelStream) + Send + 'static,
{
    let (commands, requests) = mpsc::channel(64);
    let connection = Connection::new(io, config(), mode);
    let watch = CreditWatch::new(budget.credit_timeout);
    let inbound = Inbound {
        budget: budget.clone(),
        watch: watch.clone(),
        on_inbound,
    };
    let task = tokio::spawn(drive(connection, requests, inbound));
    let slots = Arc::new(Semaphore::new(MAX_OPEN_STREAMS));
    let handle = SessionHandle {
        commands,
        slots,
        budget,
        watch,
    };
    (handle, task)
}

/// Takes the streams the peer opens: charged, then handed to the callback.
struct Inbound<F> {
    budget: StreamBudget,
    watch: Arc<CreditWatch>,
    on_inbound: F,
}

impl<F: FnMut(TunnelStream)> Inbound<F> {
    fn take(&mut self, stream: yamux::Stream) {
        let Some(charge) = self.budget.charge(STREAM_WINDOW_BYTES) else {
            // Dropping it resets it: the peer's opener sees the stream refused.
            tracing::debug!("stream refused: the tunnel memory budget is full");
            return;
        };
        (self.on_inbound)(TunnelStream {
            stream: stream.compat(),
            probe: Probe::new(&self.watch),
            _charge: charge,
        });
    }
}

/// The session's one task: serves open requests, and polls for inbound streams, which is also
/// what moves every stream's bytes; it must never wait on anything else.
async fn drive<T, F>(
    mut connection: Connection<T>,
    mut requests: mpsc::Receiver<Command>,
    mut inbound: Inbound<F>,
) -> Result<(), ConnectionError>
where
    T: futures_util::io::AsyncRead + futures_util::io::AsyncWrite + Unpin,
    F: FnMut(TunnelStream),
{
    let mut waiting = VecDeque::<oneshot::Sender<Result<yamux::Stream, ConnectionError>>>::new();
    let mut closing = false;
    let result = poll_fn(|cx| {
        while !closing {
            match requests.poll_recv(cx) {
                Poll::Ready(Some(Command::Open(reply))) => waiting.push_back(reply),
                Poll::Ready(Some(Command::Close) | None) => closing = true,
                Poll::Pending => break,
            }
        }
        while let Some(reply) = waiting.front().filter(|_| !closing) {
            if reply.is_closed() {
                waiting.pop_front(); // the requester gave up
                continue;
            }
            match connection.poll_new_outbound(cx) {
                Poll::Ready(opened) => {
                    let _ = waiting.pop_front().expect("front exists").send(opened);
                }
                Poll::Pending => break,
            }
        }
        if closing {
            return connection.poll_close(cx);
        }
        loop {
            match connection.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => inbound.take(stream),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    for reply in waiting {
        let _ = reply.send(Err(ConnectionError::Closed));
    }
    result
}
