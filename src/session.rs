//! One multiplexed session over one WebSocket (yamux): a task drives the connection, hands
//! inbound streams to a callback, and opens outbound streams on request from any task.

use std::{
    collections::VecDeque,
    future::poll_fn,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    task::JoinHandle,
    time::{Instant, Sleep},
};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};
use yamux::{Config, Connection, ConnectionError, Mode};

pub mod frames;
pub mod messages;

use crate::budget::{Budget, Charge};

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
    pub fn into_control(mut self) -> Self {
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
pub fn session_ended() -> std::io::Error {
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

/// The bytes one stream's receive buffer may hold before its window grows: yamux's initial
/// window (the spec's 256 KiB), which every stream is granted the moment it opens.
pub const STREAM_WINDOW_BYTES: usize = 256 * 1024;

/// The budgets a session's streams are charged to: on the gateway, the token's and the
/// process's tunnel memory; none on an agent, which buffers only for its own services.
#[derive(Debug, Clone, Default)]
pub struct StreamBudget {
    budgets: Vec<Arc<Budget>>,
    /// A stream whose write waits this long for window credit is reset (none on an agent).
    credit_timeout: Option<Duration>,
}

impl StreamBudget {
    /// Charges every budget in `budgets` together.
    pub fn new(budgets: Vec<Arc<Budget>>) -> Self {
        StreamBudget {
            budgets,
            credit_timeout: None,
        }
    }

    /// Resets a stream whose write waits `timeout` for window credit; when nothing moved on
    /// any stream of the session meanwhile, the session is starved ([`CreditWatch::starved`]).
    pub fn with_credit_timeout(mut self, timeout: Duration) -> Self {
        self.credit_timeout = Some(timeout);
        self
    }

    /// Charges `bytes` to every budget, or to none (and `None`) if one has no room.
    pub fn charge(&self, bytes: usize) -> Option<StreamCharge> {
        let mut held = Vec::with_capacity(self.budgets.len());
        for budget in &self.budgets {
            held.push(budget.try_charge(bytes)?);
        }
        Some(StreamCharge(held))
    }
}

/// What a stream (or a session's window headroom) holds against its budgets; given back on
/// drop.
#[derive(Debug, Default)]
pub struct StreamCharge(#[allow(dead_code)] Vec<Charge>);

/// Whether the peer is granting window credit: how many of the session's streams are waiting
/// to write, and when data last moved on any of them (a write went through, or the peer sent
/// something). The control stream is not watched: heartbeats say the agent is there, not that
/// it takes data.
#[derive(Debug)]
pub struct CreditWatch {
    blocked: AtomicUsize,
    /// When data last moved on any stream while a write waited, as time since `epoch`.
    last_progress_ms: AtomicU64,
    epoch: Instant,
    /// How long a write may wait for credit.
    timeout: Option<Duration>,
    /// Told when a stream's wait ran out with nothing moving on the whole session.
    starved: Notify,
}

impl CreditWatch {
    fn new(timeout: Option<Duration>) -> Arc<Self> {
        Arc::new(CreditWatch {
            blocked: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            timeout,
            starved: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progress(&self) {
        let now = self.now_ms();
        self.last_progress_ms.store(now, Ordering::Release);
    }

    /// How long writes have waited with no data moving either way; zero when none waits.
    pub fn starved_for(&self) -> Duration {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return Duration::ZERO;
        }
        let since = self.last_progress_ms.load(Ordering::Acquire);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }

    /// Resolves once a stream's write has waited the credit timeout while no data moved on
    /// any stream of the session: the peer takes nothing at all. Cancel-safe.
    pub async fn starved(&self) {
        self.starved.notified().await;
    }
}

/// One stream's part in its session's [`CreditWatch`]: counted as blocked while a write waits,
/// and failing that write with `TimedOut` once it has waited the credit timeout.
#[derive(Debug)]
pub struct Probe {
    /// `None` for the control stream.
    watch: Option<Arc<CreditWatch>>,
    blocked: bool,
    /// Armed while a write waits; allocated at the first wait and reset for later ones.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Probe {
    fn new(watch: &Arc<CreditWatch>) -> Self {
        Probe {
            watch: Some(watch.clone()),
            blocked: false,
            deadline: None,
        }
    }

    /// Stops watching this stream (the control stream).
    fn detach(&mut self) {
        self.unblock();
        self.watch = None;
    }

    fn unblock(&mut self) {
        if let Some(watch) = self.watch.as_ref().filter(|_| self.blocked) {
            watch.blocked.fetch_sub(1, Ordering::AcqRel);
        }
        self.blocked = false;
    }

    /// Notes how a write into the stream went, and passes its result on; a write that has
    /// waited the credit timeout fails with `TimedOut` (and tells the session if nothing moved
    /// on it meanwhile).
    pub fn observe<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        // Borrowed, not cloned: this runs on every write into a tunnel stream.
        let Some(watch) = self.watch.as_deref() else {
            return polled;
        };
        if polled.is_ready() {
            if self.blocked || watch.blocked.load(Ordering::Relaxed) > 0 {
                watch.progress();
            }
            self.unblock();
            return polled;
        }
        if !self.blocked {
            if watch.blocked.fetch_add(1, Ordering::AcqRel) == 0 {
                watch.progress(); // the first writer to wait: the starving clock starts now
            }
            self.blocked = true;
            if let Some(timeout) = watch.timeout {
                let at = Instant::now() + timeout;
                match &mut self.deadline {
                    Some(deadline) => deadline.as_mut().reset(at),
                    None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
                }
            }
        }
        let (Some(timeout), Some(deadline)) = (watch.timeout, self.deadline.as_mut()) else {
            return Poll::Pending;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if watch.starved_for() >= timeout {
            watch.starved.notify_one();
        }
        self.unblock();
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer granted no window credit",
        )))
    }

    /// Notes that data came in from the peer: a peer that sends is alive and serving, even
    /// while one of its services does not read (only a peer that neither grants credit nor
    /// sends is starved).
    pub fn observe_read(&self) {
        if let Some(watch) = self.watch.as_ref()
            && watch.blocked.load(Ordering::Relaxed) > 0
        {
            watch.progress();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.unblock();
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
/// message of at most [`crate::io::ws::MAX_MESSAGE_BYTES`] with its header.
const SPLIT_SEND_BYTES: usize = 60 * 1024;

/// The room every stream's window may grow into, together, beyond its first 256 KiB: enough
/// for a few fast streams over a long link. The gateway charges it to the session's budgets
/// when the session starts, so with each open stream's window it bounds what a session holds.
pub const WINDOW_HEADROOM_BYTES: usize = 8 << 20;

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
    pub fn is_closed(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `probe` with a write that stays pending; what it makes of it.
    fn wait(probe: &mut Probe) -> Poll<std::io::Result<()>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        probe.observe(&mut cx, Poll::Pending)
    }

    fn write_through(probe: &mut Probe) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(probe.observe(&mut cx, Poll::Ready(Ok(()))).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_waiting_past_the_credit_timeout_fails_and_starves_an_idle_session() {
        let watch = CreditWatch::new(Some(Duration::from_secs(10)));
        let (mut stuck, mut other) = (Probe::new(&watch), Probe::new(&watch));
        assert!(wait(&mut stuck).is_pending());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(watch.starved_for(), Duration::from_secs(5));
        // The peer sends on another stream: alive, the session's clock starts again.
        other.observe_read();
        tokio::time::advance(Duration::from_secs(5)).await;
        match wait(&mut stuck) {
            Poll::Ready(Err(error)) => assert_eq!(error.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("the stuck write must fail at the timeout: {other:?}"),
        }
        let starved = watch.starved();
        tokio::pin!(starved);
        assert!(
            futures_util::poll!(starved.as_mut()).is_pending(),
            "data moved 5 s ago: only the stream is reset"
        );
        assert_eq!(watch.blocked.load(Ordering::Relaxed), 0);
        // Now nothing moves at all for the timeout: the session is starved.
        assert!(wait(&mut other).is_pending());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(wait(&mut other).is_ready());
        assert!(futures_util::poll!(starved.as_mut()).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn writes_going_through_and_the_control_stream_keep_their_own_account() {
        let watch = CreditWatch::new(Some(Duration::from_secs(10)));
        let (mut stuck, mut flowing) = (Probe::new(&watch), Probe::new(&watch));
        let mut control = Probe::new(&watch);
        control.detach();
        assert!(wait(&mut stuck).is_pending());
        tokio::time::advance(Duration::from_secs(4)).await;
        write_through(&mut control); // heartbeats prove nothing about data
        assert_eq!(watch.starved_for(), Duration::from_secs(4));
        write_through(&mut flowing);
        assert_eq!(watch.starved_for(), Duration::ZERO);
        drop(stuck);
        assert_eq!(
            watch.blocked.load(Ordering::Relaxed),
            0,
            "a dropped stream waits no more"
        );
        assert!(wait(&mut control).is_pending());
        assert_eq!(
            watch.blocked.load(Ordering::Relaxed),
            0,
            "the control stream is not counted"
        );
    }

    #[test]
    fn a_stream_is_charged_to_every_budget_or_to_none() {
        let token = Budget::new("token", STREAM_WINDOW_BYTES);
        let process = Budget::new("process", 10 * STREAM_WINDOW_BYTES);
        let budget = StreamBudget::new(vec![token.clone(), process.clone()]);
        let first = budget.charge(STREAM_WINDOW_BYTES).expect("room in both");
        assert!(
            budget.charge(STREAM_WINDOW_BYTES).is_none(),
            "the token is full"
        );
        assert_eq!(
            process.used(),
            STREAM_WINDOW_BYTES,
            "nothing left charged elsewhere"
        );
        drop(first);
        assert_eq!((token.used(), process.used()), (0, 0));
    }
}
