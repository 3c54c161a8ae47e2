//! Graceful shutdown in two parts: a signal goes out, then a bounded wait for work to drain.

use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The signal and the tracker, written once and shared by every listener and connection.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled when the gateway should stop: accept loops end, HTTP stops keep-alive,
    /// WebSockets close with 1001.
    pub token: CancellationToken,
    /// Every connection and upgraded session, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, not yet cancelled shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the signal.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Waits for tracked work to finish, at most `grace`. True if everything drained.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
