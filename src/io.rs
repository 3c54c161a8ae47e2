//! Byte-pump primitives shared by layers that must not know each other: a connector's stream
//! implements them, a pump (the bridge's) is generic over them.

use std::{future::Future, io};

use bytes::BytesMut;

/// A reader that waits for bytes before it brings a buffer, so an idle connection holds none.
pub trait ReadChunk {
    /// Waits for bytes and returns up to `max` of them; empty at the end of the stream. Cancel
    /// safe: nothing is lost if another branch of a `select!` wins.
    fn read_chunk(&mut self, max: usize) -> impl Future<Output = io::Result<BytesMut>> + Send;
}
