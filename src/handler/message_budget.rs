//! Charges the memory of WebSocket messages being assembled to the gateway-wide message budget.
//!
//! tokio-websockets reserves a frame's whole declared payload as soon as it reads the header,
//! and gathers the fragments of a message until the final one: a client that sends 15
//! fragments of 1 MiB and never the last pins 15 MiB, and a header declaring 16 MiB pins 16
//! MiB before one payload byte. A per-connection cap does not bound that across connections,
//! so [`Metered`] sits between the socket and tokio-websockets, follows the frame headers
//! going past (it never copies payload), and charges each data frame's declared length to the
//! shared [`Budget`] before the decoder sees the header. The charge is given back when the
//! message is complete (the decoder hands it on) or the connection ends.
//!
//! A frame the budget has no room for never reaches the decoder: in its place the decoder
//! reads a close frame with code 1013 (Try Again Later) from the peer, which it answers with
//! the same close, so the peer is told why, and everything after is dropped. A close frame is
//! allowed between fragments, and the injected one starts at a frame boundary, so the decoder
//! sees a valid stream.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::budget::{Budget, Charge};

/// The close code a connection gets when the budget has no room: 1013, Try Again Later — the
/// message is not too big (that is 1009), the gateway is too full right now.
pub const BUDGET_CLOSE_CODE: u16 = 1013;

/// The close reason that goes with [`BUDGET_CLOSE_CODE`].
pub const BUDGET_CLOSE_REASON: &str = "gateway message memory is full";

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

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
    /// Bytes to hand out before anything else: a held-back header, or the injected close.
    pending: Vec<u8>,
    /// After the injected close: nothing more is read.
    finished: bool,
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
            finished: false,
        }
    }

    /// Bytes charged now for this connection.
    pub fn charged(&self) -> usize {
        self.frames.charge.bytes()
    }

    fn io(&mut self) -> Pin<&mut T> {
        Pin::new(self.io.as_mut().expect("taken only on drop"))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Metered<T> {
    /// A connection refused for the budget is drained in the background before it closes.
    fn drop(&mut self) {
        if !self.finished {
            return;
        }
        if let (Some(io), Ok(runtime)) = (self.io.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(linger(io));
        }
    }
}

/// Sends our FIN, then reads and discards until the peer's end, within [`LINGER`] and
/// [`LINGER_BYTES`].
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T) {
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
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.finished {
            // The injected close, then the end: nothing after it is read.
            let n = this.pending.len().min(buf.remaining());
            buf.put_slice(&this.pending[..n]);
            this.pending.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        if buf.remaining() <= this.pending.len() {
            // tokio-util's framed reader always offers kilobytes; a header is 14 bytes at most.
            return Poll::Ready(Err(io::Error::other(
                "read buffer smaller than a frame header",
            )));
        }
        loop {
            // A header held back from the last read goes first and is scanned again whole.
            buf.put_slice(&this.pending);
            let held = std::mem::take(&mut this.pending);
            match this.io().poll_read(cx, buf) {
                Poll::Pending => {
                    buf.set_filled(start);
                    this.pending = held;
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => {
                    buf.set_filled(start);
                    return Poll::Ready(Err(error));
                }
                // The end: what was held goes out as it is (the decoder reports the cut frame).
                Poll::Ready(Ok(())) if buf.filled().len() == start + held.len() => {
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {}
            }
            match this.frames.scan(&buf.filled()[start..]) {
                Scan::Pass => return Poll::Ready(Ok(())),
                Scan::HoldFrom(at) => {
                    // A header cut by the read: keep it until it is whole, so the decoder
                    // never sees half a header that might have to be replaced.
                    this.pending = buf.filled()[start + at..].to_vec();
                    buf.set_filled(start + at);
                    if at > 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Scan::RefuseFrom(at) => {
                    buf.set_filled(start + at);
                    this.pending = close_frame(this.frames.sender);
                    this.finished = true;
                    let n = this.pending.len().min(buf.remaining());
                    buf.put_slice(&this.pending[..n]);
                    this.pending.drain(..n);
                    return Poll::Ready(Ok(()));
                }
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
        self.io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write_vectored(cx, bufs)
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

/// Follows frame boundaries in the bytes read and keeps the charge for the message under way.
#[derive(Debug)]
struct FrameTracker {
    sender: Sender,
    max_message_bytes: usize,
    /// What the message being assembled (and the frame being read) holds against the budget.
    charge: Charge,
    /// Payload bytes of the current frame still to come; 0 between frames.
    payload_left: u64,
    /// Whether the current frame ends a data message (data opcode or continuation, FIN set).
    ends_message: bool,
}

impl FrameTracker {
    fn new(sender: Sender, budget: &Arc<Budget>, max_message_bytes: usize) -> Self {
        FrameTracker {
            sender,
            max_message_bytes,
            charge: Charge::empty(budget),
            payload_left: 0,
            ends_message: false,
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

    /// Charges a data frame's payload; false when the budget has no room.
    fn admit(&mut self, header: &Header) -> bool {
        self.ends_message = false;
        if header.opcode >= 0x8 {
            return true; // control frames: at most 125 bytes, never gathered
        }
        if header.opcode != 0x0 {
            self.charge.release(); // a new message: nothing is gathered any more
        }
        self.ends_message = header.fin;
        if header.payload > self.max_message_bytes as u64 {
            return true; // the decoder refuses it (1009) before reserving anything
        }
        self.charge.try_grow(header.payload as usize)
    }

    fn frame_done(&mut self) {
        if self.ends_message {
            // The decoder hands the whole message on now: its bytes are the reader's.
            self.charge.release();
            self.ends_message = false;
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
    fn fragments_are_charged_until_the_final_one() {
        let budget = Budget::new("test", 1 << 20);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1 << 20);
        assert_eq!(tracker.scan(&frame(false, 0x2, 1000)), Scan::Pass);
        assert_eq!(budget.used(), 1000);
        assert_eq!(
            tracker.scan(&frame(true, 0x9, 5)),
            Scan::Pass,
            "a ping between"
        );
        assert_eq!(tracker.scan(&frame(false, 0x0, 3000)), Scan::Pass);
        assert_eq!(budget.used(), 4000);
        assert_eq!(tracker.scan(&frame(true, 0x0, 10)), Scan::Pass);
        assert_eq!(budget.used(), 0, "the whole message went to the reader");
        assert_eq!(tracker.scan(&frame(true, 0x1, 100)), Scan::Pass);
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
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn frames_over_the_message_cap_are_left_to_the_decoder() {
        let budget = Budget::new("test", 100);
        let mut tracker = FrameTracker::new(Sender::Client, &budget, 1000);
        assert_eq!(tracker.scan(&header(true, 0x2, 5000)), Scan::Pass);
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
