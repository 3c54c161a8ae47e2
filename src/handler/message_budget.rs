//! Charges the memory of WebSocket messages being assembled to the gateway-wide message budget.
//!
//! tokio-websockets reserves a frame's whole declared payload as soon as it reads the header,
//! and gathers the fragments of a message until the final one: a client that sends 15
//! fragments of 1 MiB and never the last pins 15 MiB, and a header declaring 16 MiB pins 16
//! MiB before one payload byte. A per-connection cap does not bound that across connections,
//! so [`Metered`] sits between the socket and tokio-websockets, follows the frame headers
//! going past (it never copies payload), and charges each data frame's declared length to the
//! shared [`Budget`] before the decoder sees the header: the decoder's read buffer, which it
//! reserves for the largest frame and never shrinks, stays charged for that frame while the
//! connection lives; a fragmented message is also charged what its gathering buffer may occupy
//! (it grows by doubling: less than twice the bytes gathered). A complete message stays
//! charged until the reader comes back for more bytes, which the handlers do only once they
//! have passed it on (the bridge gathers at most 256 KiB of small messages before it writes);
//! the connection's end gives everything back.
//!
//! A frame the budget has no room for never reaches the decoder: in its place the decoder
//! reads a close frame with code 1013 (Try Again Later) from the peer, which it answers with
//! the same code, and everything after is dropped. A close frame is allowed between fragments,
//! and the injected one starts at a frame boundary, so the decoder sees a valid stream. The
//! refused connection is then drained for a moment before it closes, so that the close reaches
//! the client rather than a reset.
//!
//! Pings are answered by the decoder with pongs it queues without bound, so a client that
//! pings and never reads would grow that queue: more than [`MAX_UNANSWERED_PING_BYTES`] of
//! pings while no write goes through is refused the same way.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod frames;

use frames::{FrameTracker, MAX_HEADER, Scan};

use crate::{
    budget::{Budget, descriptors::Slot},
    refusal::Refusal,
};

/// The close code a connection gets when the budget has no room: 1013, Try Again Later — the
/// message is not too big (that is 1009), the gateway is too full right now.
pub(crate) const BUDGET_CLOSE_CODE: u16 = match Refusal::MessageBudgetFull.close_code() {
    Some(code) => code,
    None => panic!("the message budget's refusal closes with a code"),
};

/// The close reason that goes with [`BUDGET_CLOSE_CODE`].
pub(crate) const BUDGET_CLOSE_REASON: &str = Refusal::MessageBudgetFull.reason();

/// Ping bytes a peer may send beyond what our writes carry (the pongs it is owed wait in the
/// decoder's queue): about five hundred pings, far more than any keep-alive sends.
pub(crate) const MAX_UNANSWERED_PING_BYTES: usize = 64 << 10;

/// Who sends the frames this side reads: a client masks them, a server does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Frames from a WebSocket client (masked).
    Client,
    /// Frames from a WebSocket server (unmasked).
    Server,
}

/// How long, and how many bytes, a refused connection is drained before it is closed, so the
/// client reads the 1013 close instead of a reset (a socket closed with unread data sends
/// RST, and the peer's kernel may drop what it had not read yet; nginx's `lingering_close`).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 32 << 20;

/// A byte stream whose incoming WebSocket frames are charged to a budget.
#[derive(Debug)]
pub(crate) struct Metered<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    /// The stream; taken only when a refused connection is dropped, to drain it.
    io: Option<T>,
    frames: FrameTracker,
    /// Scanned bytes not handed out yet (a held header, completed), or the injected close.
    pending: Vec<u8>,
    /// The first bytes of a header cut by a read, not scanned yet: completed in here, so the
    /// decoder never sees half a header that might have to be replaced.
    partial: [u8; MAX_HEADER],
    partial_len: usize,
    /// Once `pending` is handed out, the stream ends.
    ended: bool,
    /// A frame was refused: the connection is drained before it closes.
    refused: bool,
    /// The connection's descriptor slot, held while a refused connection is drained.
    slot: Option<Arc<Slot>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Metered<T> {
    /// Wraps `io`, whose incoming frames come from `sender`, charging `budget`. Frames longer
    /// than `max_message_bytes` are refused by the decoder at their header, before it reserves
    /// anything, so they are not charged.
    pub fn new(io: T, sender: Sender, budget: &Arc<Budget>, max_message_bytes: usize) -> Self {
        Metered {
            io: Some(io),
            frames: FrameTracker::new(sender, budget, max_message_bytes),
            pending: Vec::new(),
            partial: [0; MAX_HEADER],
            partial_len: 0,
            ended: false,
            refused: false,
            slot: None,
        }
    }

    /// Holds the connection's descriptor slot until the socket is really closed (a refused
    /// connection outlives its session while it is drained).
    pub fn holding(mut self, slot: Arc<Slot>) -> Self {
        self.slot = Some(slot);
        self
    }

    fn io(&mut self) -> Pin<&mut T> {
        Pin::new(self.io.as_mut().expect("taken only on drop"))
    }

    /// What the scan of `bytes` (already read, not handed out) leaves to hand out: the part
    /// before a cut header (kept in `partial`) or before a refused frame (then the close).
    fn settle(&mut self, bytes: &[u8], scan: Scan) -> usize {
        match scan {
            Scan::Pass => bytes.len(),
            Scan::HoldFrom(at) => {
                let rest = &bytes[at..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len();
                at
            }
            Scan::RefuseFrom(at) => {
                self.pending
                    .extend_from_slice(&close_frame(self.frames.sender));
                (self.ended, self.refused) = (true, true);
                at
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Metered<T> {
    /// A connection refused for the budget is drained in the background before it closes.
    fn drop(&mut self) {
        if !self.refused {
            return;
        }
        if let (Some(io), Ok(runtime)) = (self.io.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(linger(io, self.slot.take()));
        }
    }
}

/// Sends our FIN, then reads and discards until the peer's end, within [`LINGER`] and
/// [`LINGER_BYTES`]; the descriptor slot is given back with the socket.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, slot: Option<Arc<Slot>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let drain = async {
        let _ = io.shutdown().await;
        let mut scratch = vec![0u8; 16 << 10];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    drop((io, slot));
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // The reader is back for more: the messages it was handed have moved on.
        this.frames.delivered.release();
        loop {
            if !this.pending.is_empty() || this.ended {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.partial_len > 0 {
                // Complete a cut header in our own buffer, then scan it whole.
                let mut into = ReadBuf::new(&mut this.partial[this.partial_len..]);
                let io = this.io.as_mut().expect("taken only on drop");
                ready!(Pin::new(io).poll_read(cx, &mut into))?;
                let read = into.filled().len();
                let held = this.partial;
                let len = this.partial_len + read;
                this.partial_len = 0;
                if read == 0 {
                    // The end: the cut header goes out as it is (the decoder reports it).
                    this.pending.extend_from_slice(&held[..len]);
                    this.ended = true;
                    continue;
                }
                let scan = this.frames.scan(&held[..len]);
                let take = this.settle(&held[..len], scan);
                this.pending.splice(0..0, held[..take].iter().copied());
                continue;
            }
            // The usual way: straight into the reader's buffer, scanned there.
            let start = buf.filled().len();
            ready!(this.io().poll_read(cx, buf))?;
            if buf.filled().len() == start {
                return Poll::Ready(Ok(())); // the end (the buffer had room)
            }
            let scan = this.frames.scan(&buf.filled()[start..]);
            if scan == Scan::Pass {
                return Poll::Ready(Ok(()));
            }
            let take = this.settle(&buf.filled()[start..], scan);
            buf.set_filled(start + take);
            if take > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = self.io().poll_write(cx, buf);
        self.frames.note_write(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = self.io().poll_write_vectored(cx, bufs);
        self.frames.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(T::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

/// A close frame with [`BUDGET_CLOSE_CODE`] as `sender` would send it (a client's is masked,
/// here with the all-zero key, which leaves the payload as it is).
fn close_frame(sender: Sender) -> Vec<u8> {
    let mut payload = BUDGET_CLOSE_CODE.to_be_bytes().to_vec();
    payload.extend_from_slice(BUDGET_CLOSE_REASON.as_bytes());
    let len = u8::try_from(payload.len()).expect("a close payload is under 126 bytes");
    let mut frame = vec![0x88];
    match sender {
        Sender::Client => frame.extend_from_slice(&[0x80 | len, 0, 0, 0, 0]),
        Sender::Server => frame.push(len),
    }
    frame.extend_from_slice(&payload);
    frame
}

#[cfg(test)]
mod tests;
