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

use crate::{
    budget::{Budget, Charge, descriptors::Slot},
    refusal::Refusal,
};

/// The close code a connection gets when the budget has no room: 1013, Try Again Later — the
/// message is not too big (that is 1009), the gateway is too full right now.
pub const BUDGET_CLOSE_CODE: u16 = match Refusal::MessageBudgetFull.close_code() {
    Some(code) => code,
    None => panic!("the message budget's refusal closes with a code"),
};

/// The close reason that goes with [`BUDGET_CLOSE_CODE`].
pub const BUDGET_CLOSE_REASON: &str = Refusal::MessageBudgetFull.reason();

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Ping bytes a peer may send beyond what our writes carry (the pongs it is owed wait in the
/// decoder's queue): about five hundred pings, far more than any keep-alive sends.
pub const MAX_UNANSWERED_PING_BYTES: usize = 64 << 10;

/// What one queued pong costs beyond its payload: the queue entry and the frame header.
const PING_COST: usize = 64;

/// What the budget must hold for one message: the config checks routes against it.
pub use crate::config::validate::charge_for;

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
pub struct Metered<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
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

    /// Bytes charged now for this connection.
    pub fn charged(&self) -> usize {
        let frames = &self.frames;
        frames.assembling.bytes() + frames.delivered.bytes() + frames.read_buffer.bytes()
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

/// What scanning newly read bytes found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// Everything may go to the decoder.
    Pass,
    /// A header starts at this offset and is not whole yet.
    HoldFrom(usize),
    /// The frame whose header starts here does not fit the budget.
    RefuseFrom(usize),
}

/// Follows frame boundaries in the bytes read and keeps the charges for messages.
#[derive(Debug)]
struct FrameTracker {
    sender: Sender,
    max_message_bytes: usize,
    /// What the message being assembled (and the frame being read) holds against the budget.
    assembling: Charge,
    /// Payload bytes of the message being assembled.
    message_bytes: u64,
    /// What complete messages hold until the reader comes back for more bytes.
    delivered: Charge,
    /// The decoder's read buffer: the largest frame admitted, held while the connection lives.
    read_buffer: Charge,
    /// Payload bytes of the current frame still to come; 0 between frames.
    payload_left: u64,
    /// Whether the current frame ends a data message (data opcode or continuation, FIN set).
    ends_message: bool,
    /// Ping bytes read since one of our writes last went through.
    unanswered_ping_bytes: usize,
}

impl FrameTracker {
    fn new(sender: Sender, budget: &Arc<Budget>, max_message_bytes: usize) -> Self {
        FrameTracker {
            sender,
            max_message_bytes,
            assembling: Charge::empty(budget),
            message_bytes: 0,
            delivered: Charge::empty(budget),
            read_buffer: Charge::empty(budget),
            payload_left: 0,
            ends_message: false,
            unanswered_ping_bytes: 0,
        }
    }

    /// Walks `bytes`: skips payload, reads each header that starts here (they never straddle
    /// two scans: a cut header is held back and scanned again whole).
    fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut at = 0;
        while at < bytes.len() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min((bytes.len() - at) as u64);
                self.payload_left -= skip;
                at += skip as usize;
                if self.payload_left == 0 {
                    self.frame_done();
                }
                continue;
            }
            let Some(header) = Header::parse(&bytes[at..]) else {
                return Scan::HoldFrom(at);
            };
            if !self.admit(&header) {
                return Scan::RefuseFrom(at);
            }
            at += header.len;
            self.payload_left = header.payload;
            if header.payload == 0 {
                self.frame_done();
            }
        }
        Scan::Pass
    }

    /// Charges a data frame's payload (a ping's to the unanswered count); false when the
    /// budget has no room.
    fn admit(&mut self, header: &Header) -> bool {
        self.ends_message = false;
        if header.opcode >= 0x8 {
            // Control frames carry at most 125 bytes and are never gathered; a ping is owed
            // a pong, which waits in the decoder's queue (an entry and its bytes) until our
            // writes go through.
            if header.opcode == 0x9 {
                self.unanswered_ping_bytes += PING_COST + header.payload.min(125) as usize;
            }
            return self.unanswered_ping_bytes <= MAX_UNANSWERED_PING_BYTES;
        }
        if header.opcode != 0x0 {
            // A new message: nothing of an earlier one is being gathered any more.
            self.assembling.release();
            self.message_bytes = 0;
        }
        self.ends_message = header.fin;
        if header.payload > self.max_message_bytes as u64 {
            return true; // the decoder refuses it (1009) before reserving anything
        }
        // The decoder reads every frame into one buffer it reserves whole and never shrinks:
        // the largest frame so far stays charged while the connection lives.
        let payload = usize::try_from(header.payload).unwrap_or(usize::MAX);
        let larger = payload.saturating_sub(self.read_buffer.bytes());
        if !self.read_buffer.try_grow(larger) {
            return false;
        }
        if header.opcode != 0x0 && header.fin {
            return true; // a message in one frame lives in the read buffer
        }
        // A gathered message is copied into a buffer that grows by doubling from the first
        // fragment's size: always less than twice the bytes gathered.
        let total = self.message_bytes + header.payload;
        self.message_bytes = total;
        let occupied = usize::try_from(total.saturating_mul(2)).unwrap_or(usize::MAX);
        let more = occupied.saturating_sub(self.assembling.bytes());
        self.assembling.try_grow(more)
    }

    fn frame_done(&mut self) {
        if self.ends_message {
            // The decoder hands the whole message on now; it stays charged until the reader
            // comes back for more.
            self.delivered.take_from(&mut self.assembling);
            self.message_bytes = 0;
            self.ends_message = false;
        }
    }

    /// Bytes written mean the peer reads: as many of the pongs it was owed are on the way.
    fn note_write(&mut self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            self.unanswered_ping_bytes = self.unanswered_ping_bytes.saturating_sub(*n);
        }
    }
}

/// The parts of a frame header the tracker needs.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    /// Declared payload length.
    payload: u64,
    /// Header length in bytes.
    len: usize,
}

impl Header {
    /// Parses a header at the start of `bytes`; `None` until all of it is there.
    fn parse(bytes: &[u8]) -> Option<Header> {
        let (&first, &second) = (bytes.first()?, bytes.get(1)?);
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        let (extended, payload) = match second & 0x7f {
            126 => (
                2,
                u64::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            ),
            127 => {
                let raw: [u8; 8] = bytes.get(2..10)?.try_into().expect("8 bytes");
                (8, u64::from_be_bytes(raw))
            }
            short => (0, u64::from(short)),
        };
        let len = 2 + extended + mask;
        debug_assert!(len <= MAX_HEADER);
        (bytes.len() >= len).then_some(Header {
            fin: first & 0x80 != 0,
            opcode: first & 0x0f,
            payload,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header (mask key zero) for `payload` bytes.
    fn header(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        match payload {
            0..=125 => out.push(0x80 | payload as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(payload as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(payload as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out
    }

    fn frame(fin: bool, opcode: u8, payload: usize) -> Vec<u8> {
        let mut out = header(fin, opcode, payload);
        out.resize(out.len() + payload, b'x');
        out
    }

    #[test]
    fn fragments_are_charged_as_their_buffers_until_the_reader_returns() {
        let budget = Budget::new("test", 1 << 20);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
        assert_eq!(tracker.scan(&frame(false, 0x2, 1000)), Scan::Pass);
        assert_eq!(
            budget.used(),
            1000 + 2000,
            "the read buffer, and twice what is gathered"
        );
        assert_eq!(
            tracker.scan(&frame(true, 0x9, 5)),
            Scan::Pass,
            "a ping between"
        );
        assert_eq!(tracker.scan(&frame(false, 0x0, 3000)), Scan::Pass);
        assert_eq!(budget.used(), 3000 + 8000);
        assert_eq!(tracker.scan(&frame(true, 0x0, 10)), Scan::Pass);
        assert_eq!(budget.used(), 3000 + 8020, "complete, not yet passed on");
        tracker.delivered.release(); // the reader came back for more
        assert_eq!(
            budget.used(),
            3000,
            "the read buffer stays as large as its largest frame"
        );
        assert_eq!(tracker.scan(&frame(true, 0x1, 100)), Scan::Pass);
        assert_eq!(
            budget.used(),
            3000,
            "a message in one frame lives in the read buffer"
        );
        drop(tracker);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_declared_frame_is_charged_before_its_payload_and_refused_past_the_budget() {
        let budget = Budget::new("test", 10_000);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
        assert_eq!(tracker.scan(&header(true, 0x2, 9000)), Scan::Pass);
        assert_eq!(budget.used(), 9000, "charged at the header");
        let mut other = FrameTracker::new(Sender::Client, &budget, 1 << 20);
        let mut bytes = frame(true, 0x1, 10);
        bytes.extend(header(false, 0x2, 2000));
        assert_eq!(other.scan(&bytes), Scan::RefuseFrom(16));
        drop(tracker);
        drop(other);
        assert_eq!(budget.used(), 0, "a connection's end gives its charge back");
    }

    #[test]
    fn headers_cut_by_reads_are_held_back() {
        let budget = Budget::new("test", 1 << 20);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
        let bytes = frame(true, 0x2, 300);
        assert_eq!(tracker.scan(&bytes[..3]), Scan::HoldFrom(0));
        assert_eq!(tracker.scan(&bytes[..100]), Scan::Pass);
        assert_eq!(budget.used(), 300);
        assert_eq!(tracker.scan(&bytes[100..]), Scan::Pass);
        tracker.delivered.release();
        assert_eq!(budget.used(), 300, "the read buffer");
    }

    #[test]
    fn frames_over_the_message_cap_are_left_to_the_decoder() {
        let budget = Budget::new("test", 100);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1000);
        assert_eq!(tracker.scan(&header(true, 0x2, 5000)), Scan::Pass);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn pings_while_no_write_goes_through_are_refused() {
        let budget = Budget::new("test", 100);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1000);
        let ping = frame(true, 0x9, 125);
        let cost = PING_COST + 125;
        let allowed = MAX_UNANSWERED_PING_BYTES / cost;
        for _ in 0..allowed {
            assert_eq!(tracker.scan(&ping), Scan::Pass);
        }
        // Only what our writes carried is taken off: a slow reader cannot reset the count.
        tracker.note_write(&Poll::Ready(Ok(cost)));
        assert_eq!(tracker.scan(&ping), Scan::Pass, "one pong's worth went out");
        tracker.note_write(&Poll::Pending);
        assert_eq!(tracker.scan(&ping), Scan::RefuseFrom(0));
    }

    #[tokio::test]
    async fn a_header_cut_at_every_byte_is_completed_and_charged() {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let budget = Budget::new("test", 1 << 20);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let metered = Metered::new(server, Sender::Client, &budget, 1 << 20);
        let mut ws = tokio_websockets::ServerBuilder::new().serve(metered);
        let mut bytes = frame(false, 0x2, 70_000);
        bytes.extend(frame(true, 0x0, 70_000));
        let writer = tokio::spawn(async move {
            // One byte a write: every header arrives cut.
            for byte in bytes {
                client.write_all(&[byte]).await.unwrap();
            }
            client
        });
        let message = ws.next().await.expect("a message").expect("not an error");
        assert_eq!(message.as_payload().len(), 140_000);
        assert_eq!(
            budget.used(),
            70_000 + 280_000,
            "the read buffer, and twice the 140,000 bytes gathered"
        );
        let _client = writer.await.unwrap();
        drop(ws);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn the_decoder_reads_a_1013_close_in_place_of_a_refused_frame() {
        use futures_util::StreamExt;
        let budget = Budget::new("test", 100);
        let (mut client, server) = tokio::io::duplex(64);
        let metered = Metered::new(server, Sender::Client, &budget, 1 << 20);
        let mut ws = tokio_websockets::ServerBuilder::new().serve(metered);
        let mut bytes = frame(false, 0x2, 50);
        bytes.extend(frame(false, 0x0, 80));
        let writer = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            // The rest of the refused frame is never read: the write ends with the stream.
            let _ = client.write_all(&bytes).await;
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            answer
        });
        let message = ws.next().await.expect("a message").expect("not an error");
        let (code, reason) = message.as_close().expect("a close");
        assert_eq!((u16::from(code), reason), (1013, BUDGET_CLOSE_REASON));
        assert!(ws.next().await.is_none());
        drop(ws);
        let answer = writer.await.unwrap();
        // The decoder answers the close with its code: 1013 = 0x03f5.
        assert_eq!((answer[0], &answer[2..4]), (0x88, &[0x03, 0xf5][..]));
        assert_eq!(budget.used(), 0);
    }
}
