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

/// A tunnel stream as tokio sees it.
pub type TunnelStream = Compat<yamux::Stream>;

/// A stream this side opened: it holds one of the session's open slots until dropped.
#[derive(Debug)]
pub struct OpenedStream {
    stream: TunnelStream,
    _slot: OwnedSemaphorePermit,
    /// The session's command channel: closed once the session's task has ended.
    session: mpsc::Sender<Command>,
}

/// What reading a stream whose session died gives: not a clean end, which yamux shows it as.
pub fn session_ended() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the tunnel session ended",
    )
}

impl OpenedStream {
    /// Copies both ways between this stream and `socket` taking frames whole
    /// ([`super::frames::splice`]); the session dying is an error, as for reads.
    pub async fn splice<S>(&mut self, socket: &mut S) -> std::io::Result<(u64, u64)>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        let session = self.session.clone();
        super::frames::splice(self.stream.get_mut(), socket, || session.is_closed()).await
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
pub const MAX_OPEN_STREAMS: usize = MAX_STREAMS - 32;

/// Streams one session may have open (both sides' together), enforced by both peers: yamux
/// ends a session whose peer goes over it, so each side opens through a semaphore below it.
/// Each idle stream costs about 1.5 KB; a stream's buffered bytes are bounded by its window.
pub const MAX_STREAMS: usize = 1024;

/// The largest data frame a stream sends (yamux reads frames up to 1 MiB): one WebSocket
/// message of at most [`super::ws_io::MAX_MESSAGE_BYTES`] with its header.
const SPLIT_SEND_BYTES: usize = 60 * 1024;

/// The room every stream's window may grow into, together, beyond its first 256 KiB: enough
/// for a few fast streams over a long link; every byte of it is bounded per session.
const WINDOW_HEADROOM_BYTES: usize = 32 << 20;

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
    pub async fn open(&self) -> Result<OpenedStream, ConnectionError> {
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
            stream: stream.compat(),
            _slot: slot,
            session: self.commands.clone(),
        })
    }

    /// Asks the session to close (GoAway, then the WebSocket's close). Never waits: a session
    /// already closing (and no longer reading its requests) is left to its own end.
    pub async fn close(&self) {
        let _ = self.commands.try_send(Command::Close);
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}

/// Starts driving `io` as a yamux session. `on_inbound` gets each stream the peer opens; it
/// must not block (spawn the stream's work). The task ends with the session.
pub fn spawn<T, F>(
    io: T,
    mode: Mode,
    on_inbound: F,
) -> (SessionHandle, JoinHandle<Result<(), ConnectionError>>)
where
    T: futures_util::io::AsyncRead + futures_util::io::AsyncWrite + Unpin + Send + 'static,
    F: FnMut(TunnelStream) + Send + 'static,
{
    let (commands, requests) = mpsc::channel(64);
    let connection = Connection::new(io, config(), mode);
    let task = tokio::spawn(drive(connection, requests, on_inbound));
    let slots = Arc::new(Semaphore::new(MAX_OPEN_STREAMS));
    (SessionHandle { commands, slots }, task)
}

/// The session's one task: serves open requests, and polls for inbound streams, which is also
/// what moves every stream's bytes; it must never wait on anything else.
async fn drive<T, F>(
    mut connection: Connection<T>,
    mut requests: mpsc::Receiver<Command>,
    mut on_inbound: F,
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
                Poll::Ready(Some(Ok(stream))) => on_inbound(stream.compat()),
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
