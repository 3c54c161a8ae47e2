//! Following WebSocket frame boundaries in the bytes read, without copying payload: where
//! each header starts, what each data frame declares, and what the message being gathered and
//! the decoder's read buffer hold against the budget.

use std::{io, sync::Arc, task::Poll};

use super::{MAX_UNANSWERED_PING_BYTES, Sender};
use crate::budget::{Budget, Charge};

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
pub(super) const MAX_HEADER: usize = 14;

/// What one queued pong costs beyond its payload: the queue entry and the frame header.
pub(super) const PING_COST: usize = 64;

/// What scanning newly read bytes found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scan {
    /// Everything may go to the decoder.
    Pass,
    /// A header starts at this offset and is not whole yet.
    HoldFrom(usize),
    /// The frame whose header starts here does not fit the budget.
    RefuseFrom(usize),
}

/// Follows frame boundaries in the bytes read and keeps the charges for messages.
#[derive(Debug)]
pub(super) struct FrameTracker {
    pub(super) sender: Sender,
    max_message_bytes: usize,
    /// What the message being assembled (and the frame being read) holds against the budget.
    pub(super) assembling: Charge,
    /// Payload bytes of the message being assembled.
    message_bytes: u64,
    /// What complete messages hold until the reader comes back for more bytes.
    pub(super) delivered: Charge,
    /// The decoder's read buffer: the largest frame admitted, held while the connection lives.
    pub(super) read_buffer: Charge,
    /// Payload bytes of the current frame still to come; 0 between frames.
    payload_left: u64,
    /// Whether the current frame ends a data message (data opcode or continuation, FIN set).
    ends_message: bool,
    /// Ping bytes read since one of our writes last went through.
    unanswered_ping_bytes: usize,
}

impl FrameTracker {
    pub(super) fn new(sender: Sender, budget: &Arc<Budget>, max_message_bytes: usize) -> Self {
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
    #[inline]
    pub(super) fn scan(&mut self, bytes: &[u8]) -> Scan {
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
    #[inline]
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

    #[inline]
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
    #[inline]
    pub(super) fn note_write(&mut self, written: &Poll<io::Result<usize>>) {
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
    #[inline]
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
