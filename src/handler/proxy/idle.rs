//! The time of the last traffic on a proxied WebSocket, either way, and the opt-in idle
//! timeout that watches it: one clock for both directions, so a WebSocket that only ever
//! receives is not idle.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::{Instant, sleep_until};

/// When traffic last passed, in milliseconds since the session started.
#[derive(Debug)]
pub(crate) struct LastActivity {
    started: Instant,
    millis: AtomicU64,
}

impl LastActivity {
    /// A clock starting now.
    pub fn new() -> Self {
        LastActivity {
            started: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    /// Traffic just passed.
    pub(crate) fn touch(&self) {
        let millis = self.started.elapsed().as_millis() as u64;
        self.millis.store(millis, Ordering::Relaxed);
    }

    /// Resolves once nothing has passed for `idle`; never without a timeout.
    pub async fn expired(&self, idle: Option<Duration>) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let last = self.started + Duration::from_millis(self.millis.load(Ordering::Relaxed));
            if last.elapsed() >= idle {
                return;
            }
            sleep_until(last + idle).await;
        }
    }
}
