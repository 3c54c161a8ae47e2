//! The downstream half of the bridge's pump: target → client. Reads what the target has,
//! sends it as one message, and watches the idle timeout and the heartbeat with one resettable
//! timer; ends with the close frame that goes with how the connection ended.

use std::{io, pin::pin, sync::atomic::Ordering};

use bytes::BytesMut;
use futures_util::SinkExt;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, sleep_until},
};
use tokio_util::sync::CancellationToken;
use tokio_websockets::Message;

use super::{
    CLOSE_LINGER, End, PumpSettings, Shared, Sink,
    encoding::Encoding,
    watchdog::{Verdict, Watchdog},
};
use crate::io::{ReadChunk, close_message};

/// Bytes read from the target per message. 64 KiB: large enough that a bulk transfer costs few
/// frames and syscalls, and it is allocated only when data is waiting, never while idle.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Target → client: read what is there, send it as one message; close when the target ends.
pub(super) async fn target_to_client<S, R>(
    sink: &mut Sink<S>,
    reader: &mut R,
    settings: &PumpSettings,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: ReadChunk,
{
    let watchdog = Watchdog::new(settings.idle_timeout, settings.heartbeat);
    let timer = Box::pin(sleep_until(watchdog.deadline(&shared.activity)));
    let mut down = Downstream {
        sink,
        watchdog,
        timer,
        shared,
        shutdown,
    };
    loop {
        let outcome = tokio::select! {
            biased;
            () = shutdown.cancelled() => Err(End::Shutdown),
            () = down.timer.as_mut(), if down.watchdog.enabled() => down.on_timer().await,
            chunk = reader.read_chunk(READ_CHUNK_BYTES) => match chunk {
                Ok(chunk) => down.forward(chunk, settings.encoding).await,
                Err(error) if error.kind() == io::ErrorKind::ConnectionAborted => {
                    Err(End::TargetGone)
                }
                Err(_) => Err(End::TargetError),
            },
        };
        if let Err(end) = outcome {
            return down.finish(end).await;
        }
    }
}

/// The sending side toward the client, with its watchdog and timer.
struct Downstream<'a, S> {
    sink: &'a mut Sink<S>,
    watchdog: Watchdog,
    /// One resettable timer for every deadline, not a timer per read.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    shared: &'a Shared,
    shutdown: &'a CancellationToken,
}

impl<S> Downstream<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Sends what the target sent; an empty chunk is its end. `Err` when the connection should
    /// end.
    async fn forward(&mut self, chunk: BytesMut, encoding: Encoding) -> Result<(), End> {
        if chunk.is_empty() {
            return Err(End::TargetEof);
        }
        let n = chunk.len();
        self.send(encoding.encode(chunk.freeze())).await?;
        self.shared.activity.data();
        self.shared
            .bytes_down
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The watchdog's timer fired.
    async fn on_timer(&mut self) -> Result<(), End> {
        match self
            .watchdog
            .check(Instant::now(), &self.shared.activity, false)
        {
            Verdict::Wait => {}
            Verdict::Ping => {
                self.watchdog.ping_sent(self.shared.activity.now());
                self.send(Message::ping(&b"wsgate"[..])).await?;
            }
            Verdict::Idle => return Err(End::Idle),
            Verdict::Dead => return Err(End::HeartbeatLost),
        }
        self.rearm();
        Ok(())
    }

    fn rearm(&mut self) {
        let deadline = self.watchdog.deadline(&self.shared.activity);
        self.timer.as_mut().reset(deadline);
    }

    /// Sends one message while still watching the heartbeat and shutdown, so a client that
    /// stops reading cannot pin this direction forever. After the client closed, data is
    /// dropped: the target is only being drained.
    async fn send(&mut self, message: Message) -> Result<(), End> {
        if self.shared.client_closed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut sending = pin!(self.sink.send(message));
        loop {
            tokio::select! {
                biased;
                result = &mut sending => return result.map_err(|_| End::ClientGone),
                () = self.shutdown.cancelled() => return Err(End::Shutdown),
                () = self.timer.as_mut(), if self.watchdog.enabled() => {
                    if self.watchdog.check(Instant::now(), &self.shared.activity, true) == Verdict::Dead {
                        return Err(End::HeartbeatLost);
                    }
                    let deadline = self.watchdog.deadline(&self.shared.activity);
                    self.timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Ends this direction: the close frame that goes with `end`, if the client can still get
    /// one (a client that closed or went silent cannot).
    async fn finish(self, end: End) -> End {
        let message = match end {
            End::TargetEof => Message::close(Some(tokio_websockets::CloseCode::NORMAL_CLOSURE), ""),
            End::Idle | End::Shutdown | End::TargetError | End::TargetGone => {
                match end.refusal().and_then(close_message) {
                    Some(message) => message,
                    None => return end,
                }
            }
            End::ClientClosed
            | End::OverBudget
            | End::ClientGone
            | End::ClientProtocol(_)
            | End::HeartbeatLost => {
                return end;
            }
        };
        if !self.shared.client_closed.load(Ordering::Relaxed) {
            if let Some((code, _)) = message.as_close() {
                self.shared.record_close(code.into());
            }
            let close = self.sink.send(message);
            let _ = tokio::time::timeout(CLOSE_LINGER, close).await;
        }
        end
    }
}
