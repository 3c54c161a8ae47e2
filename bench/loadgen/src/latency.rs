//! Ping-pong latency: one small message at a time, timed until its echo is complete.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::time::Instant;

use crate::conn;

/// Round trips before measuring (connection warm-up, allocator, branch predictors).
const WARMUP: usize = 200;

/// Longest wait for one echo: loopback round trips take microseconds, so only a stuck system
/// under test reaches it, and the run then fails instead of hanging.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the measurement and prints `result p50_us=… p99_us=… mean_us=…`.
pub async fn run(
    url: &str,
    socks5: Option<&str>,
    count: usize,
    msg_bytes: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        count > 0 && msg_bytes > 0,
        "count and msg-bytes must be positive"
    );
    let (mut sender, mut receiver) = conn::connect(url, socks5).await?;
    let payload = Bytes::from(vec![0x42u8; msg_bytes]);
    let mut samples = Vec::with_capacity(count);
    for round in 0..WARMUP + count {
        let started = Instant::now();
        let round_trip = async {
            sender.send(payload.clone()).await?;
            receiver.recv_exact(msg_bytes).await
        };
        tokio::time::timeout(ROUND_TRIP_TIMEOUT, round_trip)
            .await
            .with_context(|| format!("round trip {round}: no echo"))??;
        if round >= WARMUP {
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    print_summary(&mut samples);
    Ok(())
}

/// Prints percentiles (nearest rank, rounded down) and the mean of the samples in µs.
pub fn print_summary(samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "result p50_us={:.1} p99_us={:.1} mean_us={mean:.1} count={}",
        at(0.50),
        at(0.99),
        samples.len()
    );
}
