//! What a session's streams hold and whether the peer lets them write: the budgets each
//! stream's buffers are charged to, and the watch on window credit that resets a stream whose
//! write waits too long and tells the session when the peer takes nothing at all.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    sync::Notify,
    time::{Instant, Sleep},
};

use crate::budget::{Budget, Charge};

/// The bytes one stream's receive buffer may hold before its window grows: yamux's initial
/// window (the spec's 256 KiB), which every stream is granted the moment it opens.
pub const STREAM_WINDOW_BYTES: usize = 256 * 1024;

/// The budgets a session's streams are charged to: on the gateway, the token's and the
/// process's tunnel memory; none on an agent, which buffers only for its own services.
#[derive(Debug, Clone, Default)]
pub struct StreamBudget {
    budgets: Vec<Arc<Budget>>,
    /// A stream whose write waits this long for window credit is reset (none on an agent).
    pub(super) credit_timeout: Option<Duration>,
}

impl StreamBudget {
    /// Charges every budget in `budgets` together.
    pub fn new(budgets: Vec<Arc<Budget>>) -> Self {
        StreamBudget {
            budgets,
            credit_timeout: None,
        }
    }

    /// Resets a stream whose write waits `timeout` for window credit; when nothing moved on
    /// any stream of the session meanwhile, the session is starved ([`CreditWatch::starved`]).
    pub(crate) fn with_credit_timeout(mut self, timeout: Duration) -> Self {
        self.credit_timeout = Some(timeout);
        self
    }

    /// Charges `bytes` to every budget, or to none (and `None`) if one has no room.
    pub fn charge(&self, bytes: usize) -> Option<StreamCharge> {
        let mut held = Vec::with_capacity(self.budgets.len());
        for budget in &self.budgets {
            held.push(budget.try_charge(bytes)?);
        }
        Some(StreamCharge(held))
    }
}

/// What a stream (or a session's window headroom) holds against its budgets; given back on
/// drop.
#[derive(Debug, Default)]
pub struct StreamCharge(#[allow(dead_code)] Vec<Charge>);

/// Whether the peer is granting window credit: how many of the session's streams are waiting
/// to write, and when data last moved on any of them (a write went through, or the peer sent
/// something). The control stream is not watched: heartbeats say the agent is there, not that
/// it takes data.
#[derive(Debug)]
pub struct CreditWatch {
    blocked: AtomicUsize,
    /// When data last moved on any stream while a write waited, as time since `epoch`.
    last_progress_ms: AtomicU64,
    epoch: Instant,
    /// How long a write may wait for credit.
    timeout: Option<Duration>,
    /// Told when a stream's wait ran out with nothing moving on the whole session.
    starved: Notify,
}

impl CreditWatch {
    pub(super) fn new(timeout: Option<Duration>) -> Arc<Self> {
        Arc::new(CreditWatch {
            blocked: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            timeout,
            starved: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progress(&self) {
        let now = self.now_ms();
        self.last_progress_ms.store(now, Ordering::Release);
    }

    /// How long writes have waited with no data moving either way; zero when none waits.
    pub(crate) fn starved_for(&self) -> Duration {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return Duration::ZERO;
        }
        let since = self.last_progress_ms.load(Ordering::Acquire);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }

    /// Resolves once a stream's write has waited the credit timeout while no data moved on
    /// any stream of the session: the peer takes nothing at all. Cancel-safe.
    pub(crate) async fn starved(&self) {
        self.starved.notified().await;
    }
}

/// One stream's part in its session's [`CreditWatch`]: counted as blocked while a write waits,
/// and failing that write with `TimedOut` once it has waited the credit timeout.
#[derive(Debug)]
pub struct Probe {
    /// `None` for the control stream.
    watch: Option<Arc<CreditWatch>>,
    blocked: bool,
    /// Armed while a write waits; allocated at the first wait and reset for later ones.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Probe {
    pub(super) fn new(watch: &Arc<CreditWatch>) -> Self {
        Probe {
            watch: Some(watch.clone()),
            blocked: false,
            deadline: None,
        }
    }

    /// Stops watching this stream (the control stream).
    pub(super) fn detach(&mut self) {
        self.unblock();
        self.watch = None;
    }

    fn unblock(&mut self) {
        if let Some(watch) = self.watch.as_ref().filter(|_| self.blocked) {
            watch.blocked.fetch_sub(1, Ordering::AcqRel);
        }
        self.blocked = false;
    }

    /// Notes how a write into the stream went, and passes its result on; a write that has
    /// waited the credit timeout fails with `TimedOut` (and tells the session if nothing moved
    /// on it meanwhile).
    pub(crate) fn observe<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        // Borrowed, not cloned: this runs on every write into a tunnel stream.
        let Some(watch) = self.watch.as_deref() else {
            return polled;
        };
        if polled.is_ready() {
            if self.blocked || watch.blocked.load(Ordering::Relaxed) > 0 {
                watch.progress();
            }
            self.unblock();
            return polled;
        }
        if !self.blocked {
            if watch.blocked.fetch_add(1, Ordering::AcqRel) == 0 {
                watch.progress(); // the first writer to wait: the starving clock starts now
            }
            self.blocked = true;
            if let Some(timeout) = watch.timeout {
                let at = Instant::now() + timeout;
                match &mut self.deadline {
                    Some(deadline) => deadline.as_mut().reset(at),
                    None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
                }
            }
        }
        let (Some(timeout), Some(deadline)) = (watch.timeout, self.deadline.as_mut()) else {
            return Poll::Pending;
        };
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if watch.starved_for() >= timeout {
            watch.starved.notify_one();
        }
        self.unblock();
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the peer granted no window credit",
        )))
    }

    /// Notes that data came in from the peer: a peer that sends is alive and serving, even
    /// while one of its services does not read (only a peer that neither grants credit nor
    /// sends is starved).
    pub(crate) fn observe_read(&self) {
        if let Some(watch) = self.watch.as_ref()
            && watch.blocked.load(Ordering::Relaxed) > 0
        {
            watch.progress();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.unblock();
    }
}

#[cfg(test)]
mod tests;
