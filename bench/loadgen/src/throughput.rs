//! Throughput: every connection sends while it reads the echo, with at most `WINDOW` bytes in
//! flight so that neither side can deadlock on full buffers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{sync::Notify, time::Instant};

use crate::conn;

/// Bytes a connection may have sent and not yet seen echoed: 1 MiB keeps the pipe full on
/// loopback without letting buffers grow without bound.
const WINDOW: u64 = 1 << 20;

/// Warm-up before counting.
const WARMUP: Duration = Duration::from_millis(500);

struct Flow {
    sent: AtomicU64,
    received: AtomicU64,
    progress: Notify,
}

/// Runs the measurement and prints `result mbps=…`; connection i goes to `urls[i % urls.len()]`.
pub async fn run(
    urls: &[String],
    socks5: Option<&str>,
    conns: usize,
    seconds: f64,
    msg_bytes: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        conns > 0 && seconds > 0.0 && msg_bytes > 0 && !urls.is_empty(),
        "conns, seconds and msg-bytes must be positive, and a URL given"
    );
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let payload = Bytes::from(vec![0xa5u8; msg_bytes]);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (sender, receiver) = conn::connect(&urls[i % urls.len()], socks5).await?;
        tasks.push(tokio::spawn(drive(
            sender,
            receiver,
            payload.clone(),
            total.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(WARMUP).await;
    let start_bytes = total.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let bytes = total.load(Ordering::Relaxed) - start_bytes;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    println!(
        "result mbps={:.1} conns={conns} bytes={bytes} seconds={elapsed:.2}",
        bytes as f64 / 1e6 / elapsed
    );
    Ok(())
}

async fn drive(
    mut sender: conn::Sender,
    mut receiver: conn::Receiver,
    payload: Bytes,
    total: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let flow = Arc::new(Flow {
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        progress: Notify::new(),
    });
    let writer_flow = flow.clone();
    let writer = async move {
        while !stop.load(Ordering::Relaxed) {
            while writer_flow
                .sent
                .load(Ordering::Relaxed)
                .saturating_sub(writer_flow.received.load(Ordering::Relaxed))
                > WINDOW
            {
                writer_flow.progress.notified().await;
            }
            if sender.send(payload.clone()).await.is_err() {
                return;
            }
            writer_flow
                .sent
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
        }
    };
    let reader = async move {
        while let Ok(n) = receiver.recv().await {
            if n == 0 {
                return;
            }
            flow.received.fetch_add(n as u64, Ordering::Relaxed);
            total.fetch_add(n as u64, Ordering::Relaxed);
            flow.progress.notify_one();
        }
    };
    tokio::join!(writer, reader);
}
