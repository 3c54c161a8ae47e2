//! Idle connections: open them, prove each with one echo, then hold them while the bench
//! script reads the gateway's memory.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use tokio::io::AsyncReadExt;

use crate::conn;

/// Connections opened at once: enough to be quick, few enough not to overflow listen backlogs
/// (websockify's is 100) or to make a forking server spawn hundreds of processes at once.
const OPENING_CONCURRENCY: usize = 64;

/// Opens `conns` connections, prints `result ready conns=N`, then holds them until stdin
/// closes or `hold` has passed, whichever comes first.
pub async fn run(url: &str, conns: usize, hold: Duration) -> anyhow::Result<()> {
    let opened: Vec<anyhow::Result<(conn::Sender, conn::Receiver)>> = stream::iter(0..conns)
        .map(|_| open_proven(url))
        .buffer_unordered(OPENING_CONCURRENCY)
        .collect()
        .await;
    let held: Vec<_> = opened.into_iter().collect::<anyhow::Result<_>>()?;
    println!("result ready conns={}", held.len());
    let mut sink = Vec::new();
    // Either ending is fine: the caller closed stdin, or the hold ran out.
    let _ = tokio::time::timeout(hold, tokio::io::stdin().read_to_end(&mut sink)).await;
    drop(held);
    Ok(())
}

/// One connection that has echoed one byte, so it is bridged end to end.
async fn open_proven(url: &str) -> anyhow::Result<(conn::Sender, conn::Receiver)> {
    let (mut sender, mut receiver) = conn::connect(url, None).await?;
    sender.send(Bytes::from_static(b"!")).await?;
    receiver.recv_exact(1).await?;
    Ok((sender, receiver))
}
