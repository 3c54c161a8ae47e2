//! The WebSocket echo upstream every proxy under test forwards to (and the direct row talks to).

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{Config, Limits, ServerBuilder};

/// Largest message accepted and echoed: far above anything the bench sends, so no proxy's
/// figure is ever limited by the upstream.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Messages already received that are echoed with one flush: enough to batch a burst into few
/// writes, and a bound so a fast sender cannot starve the flush.
const MAX_BATCH: usize = 64;

/// Echoes every connection's text and binary messages until it closes. One task per
/// connection on the single-threaded runtime, and no per-connection state beyond the
/// WebSocket stream's own, so thousands of idle connections cost little.
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        // A failed handshake or a reset only ends that connection.
        tokio::spawn(async move { _ = echo(stream).await });
    }
}

/// Accepts the upgrade, then sends each message back as it came: same type, same payload, one
/// frame (the frame size is the message limit). Ping, pong and close are answered by the
/// library.
async fn echo(stream: TcpStream) -> Result<(), tokio_websockets::Error> {
    let (_request, mut ws) = ServerBuilder::new()
        .config(Config::default().frame_size(MAX_MESSAGE_BYTES))
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE_BYTES)))
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let mut message = message?;
        // Queue what has already arrived, then write it in one flush.
        for _ in 0..MAX_BATCH {
            if message.is_text() || message.is_binary() {
                ws.feed(message).await?;
            }
            match ws.next().now_or_never() {
                Some(Some(next)) => message = next?,
                Some(None) | None => break,
            }
        }
        ws.flush().await?;
    }
    Ok(())
}
