//! The bridge's copy loop: WebSocket messages ↔ raw bytes, both directions at once, with
//! half-close, close codes, heartbeat, idle timeout and bounded buffers.
//!
//! Both directions run in the connection's one task. Backpressure is by construction: each
//! direction awaits its write before it reads again, so at most one read chunk plus
//! tokio-websockets' 8 KiB flush threshold is in flight per direction.

mod downstream;
pub mod encoding;
pub(crate) mod watchdog;

use std::{
    io::{self, IoSlice},
    pin::pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use bytes::{Buf, Bytes};
use futures_util::{
    FutureExt, SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_websockets::{Error as WsError, Message, WebSocketStream};

use crate::io::pump::{
    downstream::target_to_client,
    encoding::Encoding,
    watchdog::{Activity, Heartbeat},
};
use crate::{
    io::{ReadChunk, close_message, is_budget_close, websocket_refusal},
    refusal::{Refusal, close},
};

/// Most bytes of waiting client messages gathered into one write to the target.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// How long one side may take to finish after the other has: the client to answer our close,
/// or the target to send its last bytes after our FIN.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Per-route settings of the pump.
#[derive(Debug, Clone)]
pub(crate) struct PumpSettings {
    /// How bytes ride in messages.
    pub encoding: Encoding,
    /// Close after this long without data either way.
    pub idle_timeout: Option<Duration>,
    /// Ping the client and drop it if it stops answering.
    pub heartbeat: Option<Heartbeat>,
}

/// How a bridged connection ended, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client sent a close frame.
    ClientClosed,
    /// The message budget had no room for the client's next frame (closed 1013).
    OverBudget,
    /// The client's connection ended without a close frame.
    ClientGone,
    /// The client broke the protocol, sent bad data or too large a message: closed with
    /// this refusal's code (1002, 1007, 1009).
    ClientProtocol(Refusal),
    /// The target closed its side (closed 1000).
    TargetEof,
    /// Reading or writing the target failed (closed 1011).
    TargetError,
    /// The target went away with the agent that reached it (closed 1001).
    TargetGone,
    /// No data for the idle timeout (closed 1000).
    Idle,
    /// Heartbeat pings went unanswered.
    HeartbeatLost,
    /// The gateway is shutting down (closed 1001).
    Shutdown,
}

impl End {
    /// A short lowercase label for logs.
    pub(crate) fn label(self) -> &'static str {
        match self {
            End::ClientClosed => "client closed",
            End::OverBudget => "message budget full",
            End::ClientGone => "client gone",
            End::ClientProtocol(_) => "client protocol error",
            End::TargetEof => "target closed",
            End::TargetError => "target error",
            End::TargetGone => "agent gone",
            End::Idle => "idle timeout",
            End::HeartbeatLost => "heartbeat lost",
            End::Shutdown => "shutdown",
        }
    }

    /// The refusal the connection ended with, if it did not end as it should (the client's
    /// close, the target's end).
    pub fn refusal(self) -> Option<Refusal> {
        match self {
            End::ClientClosed | End::TargetEof => None,
            End::ClientGone => Some(Refusal::ClientGone),
            End::OverBudget => Some(Refusal::MessageBudgetFull),
            End::ClientProtocol(refusal) => Some(refusal),
            End::TargetError => Some(Refusal::TargetFailed),
            End::TargetGone => Some(Refusal::AgentGone),
            End::Idle => Some(Refusal::IdleTimeout),
            End::HeartbeatLost => Some(Refusal::HeartbeatLost),
            End::Shutdown => Some(Refusal::ShuttingDown),
        }
    }
}

/// What the access log reports about one bridged connection.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Bytes from the client to the target.
    pub bytes_up: u64,
    /// Bytes from the target to the client.
    pub bytes_down: u64,
    /// The first close code sent or received.
    pub close_code: Option<u16>,
    /// Why it ended.
    pub end: End,
}

/// State shared by the two directions.
#[derive(Debug, Default)]
struct Shared {
    activity: Activity,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// First close code seen either way; 0 for none.
    close_code: AtomicU64,
    /// The client has closed: nothing more may be sent to it.
    client_closed: AtomicBool,
    /// The client's close was the message budget's (see [`crate::io::is_budget_close`]).
    over_budget: AtomicBool,
}

impl Shared {
    fn record_close(&self, code: u16) {
        let _ = self.close_code.compare_exchange(
            0,
            u64::from(code),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Source<S> = SplitStream<WebSocketStream<S>>;

/// Runs one bridged connection to its end, over the target's two halves.
pub async fn run<S, R, W>(
    ws: WebSocketStream<S>,
    (reader, writer): (R, W),
    settings: &PumpSettings,
    shutdown: &CancellationToken,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: ReadChunk,
    W: AsyncWrite + Unpin,
{
    let shared = Shared::default();
    let (mut sink, mut source) = ws.split();
    let end = drive(
        &mut sink,
        &mut source,
        (reader, writer),
        settings,
        &shared,
        shutdown,
    )
    .await;
    if let End::ClientProtocol(Refusal::InvalidBase64) = end {
        // A message our decoder refused: tokio-websockets did not see a protocol error, so the
        // close frame is ours to send.
        if let Some(close) = close_message(Refusal::InvalidBase64) {
            let _ = tokio::time::timeout(CLOSE_LINGER, sink.send(close)).await;
        }
    }
    let close_code = match shared.close_code.load(Ordering::Relaxed) {
        0 => None,
        code => Some(code as u16),
    };
    Outcome {
        bytes_up: shared.bytes_up.load(Ordering::Relaxed),
        bytes_down: shared.bytes_down.load(Ordering::Relaxed),
        close_code,
        end,
    }
}

/// Runs both directions until the first ends, then lets the other finish if the end was clean.
async fn drive<S, R, W>(
    sink: &mut Sink<S>,
    source: &mut Source<S>,
    (mut reader, mut writer): (R, W),
    settings: &PumpSettings,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: ReadChunk,
    W: AsyncWrite + Unpin,
{
    let mut up = pin!(client_to_target(
        source,
        &mut writer,
        settings.encoding,
        shared
    ));
    let mut down = pin!(target_to_client(
        sink,
        &mut reader,
        settings,
        shared,
        shutdown
    ));
    tokio::select! {
        end = &mut up => {
            if matches!(end, End::ClientClosed | End::OverBudget | End::ClientGone) {
                // Let the target see our FIN and flush its last bytes (discarded) before we
                // drop it, so it reads everything we sent instead of a reset.
                let _ = tokio::time::timeout(CLOSE_LINGER, &mut down).await;
            }
            end
        }
        end = &mut down => {
            if matches!(end, End::TargetEof | End::Idle | End::Shutdown) {
                // Wait for the client's close answer, still forwarding what it sends until then.
                let _ = tokio::time::timeout(CLOSE_LINGER, &mut up).await;
            }
            end
        }
    }
}

/// Client → target: decode each data message and write it; FIN on the client's close.
/// Messages that are already waiting are gathered (up to [`WRITE_BATCH_BYTES`]) into one
/// vectored write, so a fast client costs the target one wake-up per batch, not per message.
async fn client_to_target<S, W>(
    source: &mut Source<S>,
    writer: &mut W,
    encoding: Encoding,
    shared: &Shared,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    let end = loop {
        let mut next = Some(source.next().await);
        let mut end = None;
        let mut batch_bytes = 0;
        while let Some(item) = next.take() {
            match inbound(item, source, encoding, shared).await {
                Inbound::Data(bytes) if bytes.is_empty() => {}
                Inbound::Data(bytes) => {
                    batch_bytes += bytes.len();
                    batch.push(bytes);
                }
                Inbound::Control => {}
                Inbound::End(reason) => end = Some(reason),
            }
            if end.is_none() && batch_bytes < WRITE_BATCH_BYTES {
                next = source.next().now_or_never();
            }
        }
        if !batch.is_empty() {
            if write_all_vectored(writer, &mut batch).await.is_err() {
                return End::TargetError;
            }
            shared
                .bytes_up
                .fetch_add(batch_bytes as u64, Ordering::Relaxed);
            shared.activity.data();
        }
        if let Some(end) = end {
            break end;
        }
    };
    shared.client_closed.store(true, Ordering::Relaxed);
    let _ = writer.shutdown().await;
    end
}

/// What one item from the client means for the target.
enum Inbound {
    /// Bytes to write.
    Data(Bytes),
    /// A ping, pong or close frame: nothing for the target.
    Control,
    /// The client side is over.
    End(End),
}

/// Classifies one item from the client's message stream.
async fn inbound<S>(
    item: Option<Result<Message, WsError>>,
    source: &mut Source<S>,
    encoding: Encoding,
    shared: &Shared,
) -> Inbound
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let message = match item {
        None if shared.over_budget.load(Ordering::Relaxed) => {
            return Inbound::End(End::OverBudget);
        }
        None if shared.client_closed.load(Ordering::Relaxed) => {
            return Inbound::End(End::ClientClosed);
        }
        None => return Inbound::End(End::ClientGone),
        Some(Err(error)) => return Inbound::End(client_error(source, error, shared).await),
        Some(Ok(message)) => message,
    };
    shared.activity.client_frame();
    if let Some((code, reason)) = message.as_close() {
        let over_budget = is_budget_close(code.into(), reason);
        shared.over_budget.store(over_budget, Ordering::Relaxed);
        shared.record_close(code.into());
        shared.client_closed.store(true, Ordering::Relaxed);
        return Inbound::Control; // the next poll flushes the close echo and ends the stream
    }
    if message.is_ping() || message.is_pong() {
        return Inbound::Control;
    }
    match encoding.decode(message) {
        Ok(bytes) => Inbound::Data(bytes),
        Err(_) => {
            shared.record_close(close::INVALID_PAYLOAD);
            shared.client_closed.store(true, Ordering::Relaxed);
            Inbound::End(End::ClientProtocol(Refusal::InvalidBase64))
        }
    }
}

/// Writes every chunk (none empty), in order, with as few system calls as the target
/// accepts; leaves `chunks` empty.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    chunks: &mut Vec<Bytes>,
) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..].iter().map(|c| IoSlice::new(c)).collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            let taken = written.min(chunk.len());
            chunk.advance(taken);
            written -= taken;
            if chunk.is_empty() {
                first += 1;
            }
        }
    }
    chunks.clear();
    Ok(())
}

/// A read error from the client. For protocol errors tokio-websockets has queued the right
/// close frame (1002, 1007, 1009); one more poll flushes it.
async fn client_error<S>(source: &mut Source<S>, error: WsError, shared: &Shared) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(refusal) = websocket_refusal(&error) else {
        return End::ClientGone;
    };
    tracing::debug!(%error, "client protocol error");
    if let Some(code) = refusal.close_code() {
        shared.record_close(code);
    }
    let _ = tokio::time::timeout(CLOSE_LINGER, source.next()).await;
    End::ClientProtocol(refusal)
}
