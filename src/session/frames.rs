//! Copying between a tunnel stream and a socket that takes the stream's data frames whole:
//! yamux hands over each frame's body as it received it (its `Stream` of packets), so the way
//! out of the tunnel costs no copy in user space, where reading into a buffer costs one.
//! (`perf` put that copy first among user-space costs with 50 streams.)

use std::{
    collections::VecDeque,
    future::poll_fn,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll, ready},
};

use futures_util::{Stream, io::AsyncWrite as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{io::COPY_BYTES, session::Probe};

/// Copies both ways between `stream` and `socket` until both directions have ended; the
/// bytes each way (socket to stream first). When the stream ends, `aborted` tells whether the
/// session died (the peer vanished) rather than the stream being closed: then the copy ends
/// with `ConnectionAborted` instead of passing a clean end on to the socket.
pub async fn splice<S>(
    stream: &mut yamux::Stream,
    socket: &mut S,
    probe: &mut Probe,
    aborted: impl Fn() -> bool,
) -> io::Result<(u64, u64)>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut inward = Inward::new();
    let mut outward = Outward::default();
    poll_fn(|cx| {
        let inward_done = inward.poll(cx, socket, stream, probe)?;
        let outward_done = outward.poll(cx, stream, socket, probe, &aborted)?;
        match (inward_done, outward_done) {
            (Poll::Ready(()), Poll::Ready(())) => Poll::Ready(Ok((inward.bytes, outward.bytes))),
            _ => Poll::Pending,
        }
    })
    .await
}

/// Socket to stream: read into a buffer, write it as frames; at the socket's end, close the
/// stream's sending side (yamux's half-close).
struct Inward {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    done: bool,
    bytes: u64,
}

impl Inward {
    fn new() -> Inward {
        Inward {
            buf: vec![0; COPY_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            done: false,
            bytes: 0,
        }
    }

    fn poll<S>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut S,
        stream: &mut yamux::Stream,
        probe: &mut Probe,
    ) -> Poll<io::Result<()>>
    where
        S: AsyncRead + Unpin + ?Sized,
    {
        while !self.done {
            if self.start < self.end {
                let written =
                    Pin::new(&mut *stream).poll_write(cx, &self.buf[self.start..self.end]);
                let n = ready!(probe.observe(cx, written))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.bytes += n as u64;
            } else if self.eof {
                ready!(Pin::new(&mut *stream).poll_close(cx))?;
                self.done = true;
            } else {
                let mut read = ReadBuf::new(&mut self.buf);
                ready!(Pin::new(&mut *socket).poll_read(cx, &mut read))?;
                let n = read.filled().len();
                (self.start, self.end, self.eof) = (0, n, n == 0);
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Stream to socket: frames' bodies written as they came, those already waiting gathered into
/// one vectored write (as a copy buffer would have gathered them into one write); at the
/// stream's end, shut the socket's sending side (or fail, if the session died).
#[derive(Default)]
struct Outward {
    /// Frames taken and not yet written; the first from `at`.
    packets: VecDeque<yamux::Packet>,
    at: usize,
    queued: usize,
    eof: bool,
    done: bool,
    bytes: u64,
}

/// Frames gathered into one write at most.
const MAX_SLICES: usize = 16;

impl Outward {
    fn poll<S>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut yamux::Stream,
        socket: &mut S,
        probe: &Probe,
        aborted: &impl Fn() -> bool,
    ) -> Poll<io::Result<()>>
    where
        S: AsyncWrite + Unpin + ?Sized,
    {
        while !self.done {
            let taken = self.take(cx, stream, probe, aborted)?;
            if !self.packets.is_empty() {
                ready!(self.write(cx, socket))?;
            } else if self.eof {
                ready!(Pin::new(&mut *socket).poll_shutdown(cx))?;
                self.done = true;
            } else if taken.is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes the frames waiting, up to a copy buffer's worth; ready once the stream has no
    /// more for now or the queue is full.
    fn take(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut yamux::Stream,
        probe: &Probe,
        aborted: &impl Fn() -> bool,
    ) -> Poll<io::Result<()>> {
        while !self.eof && self.queued < COPY_BYTES && self.packets.len() < MAX_SLICES {
            match ready!(Pin::new(&mut *stream).poll_next(cx)) {
                Some(packet) => {
                    let packet = packet?;
                    if !packet.as_ref().is_empty() {
                        probe.observe_read();
                        self.queued += packet.as_ref().len();
                        self.packets.push_back(packet);
                    }
                }
                None if aborted() => return Poll::Ready(Err(crate::session::session_ended())),
                None => self.eof = true,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is queued, in one vectored write.
    fn write<S>(&mut self, cx: &mut Context<'_>, socket: &mut S) -> Poll<io::Result<()>>
    where
        S: AsyncWrite + Unpin + ?Sized,
    {
        // On the stack: this runs for every write out of the tunnel.
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        for (i, (slice, packet)) in slices.iter_mut().zip(&self.packets).enumerate() {
            let skip = if i == 0 { self.at } else { 0 };
            *slice = IoSlice::new(&packet.as_ref()[skip..]);
        }
        let count = self.packets.len();
        let mut n = ready!(Pin::new(&mut *socket).poll_write_vectored(cx, &slices[..count]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.bytes += n as u64;
        self.queued -= n;
        while n > 0 {
            let left = self.packets[0].as_ref().len() - self.at;
            if n < left {
                self.at += n;
                break;
            }
            n -= left;
            self.packets.pop_front();
            self.at = 0;
        }
        Poll::Ready(Ok(()))
    }
}
