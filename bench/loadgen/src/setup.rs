//! Connection setup: time to first byte of new connections, one after another. Through a
//! forward proxy this is the cost a client pays before its first byte gets anywhere.

use std::time::Duration;

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    time::Instant,
};

use crate::{conn, latency};

/// Connections before measuring (listener and proxy warm-up, allocator, branch predictors).
const WARMUP: usize = 50;

/// Longest wait for one echo, after the connection is up: as in `latency`, only a stuck
/// system under test reaches it.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `count` connections to `url` (`tcp://…`), through the SOCKS5 proxy `socks5` when
/// given, one at a time; times each from the start of the connect to the arrival of the
/// echo of its first byte; prints `result p50_us=… p99_us=… mean_us=… count=…`.
pub async fn run(url: &str, socks5: Option<&str>, count: usize) -> anyhow::Result<()> {
    anyhow::ensure!(count > 0, "count must be positive");
    let mut samples = Vec::with_capacity(count);
    for round in 0..WARMUP + count {
        let started = Instant::now();
        let mut stream = conn::connect_tcp(url, socks5)
            .await
            .with_context(|| format!("connection {round}"))?;
        let first_byte = async {
            stream.write_all(b"!").await?;
            stream.read_u8().await
        };
        tokio::time::timeout(ECHO_TIMEOUT, first_byte)
            .await
            .with_context(|| format!("connection {round}: no echo"))?
            .with_context(|| format!("connection {round}: echo"))?;
        let elapsed = started.elapsed();
        drop(stream);
        if round >= WARMUP {
            samples.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    latency::print_summary(&mut samples);
    Ok(())
}
