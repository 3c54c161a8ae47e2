//! File descriptors as a budget: visitors may fill the process's descriptor limit only up to a
//! reserve, so that a gateway full of idle WebSockets still takes agents, serves the
//! connections it has open, and can dial their upstreams.
//!
//! Without this, 122 idle WebSockets (each a client socket and an upstream socket) filled a
//! gateway whose limit was 256: `accept` failed with EMFILE and every other client, agents
//! included, waited in the kernel's queue for minutes. Now the soft limit is raised to the
//! hard one at start, each visitor connection counts two descriptors (its socket and the
//! upstream it may dial), and past `limit - reserve` a new connection is served from the
//! reserve only as long as it takes to see whether it is an agent; anything else gets 503.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

/// Descriptors one visitor connection may use: its own socket and its upstream's.
const PER_VISITOR: usize = 2;

/// The smallest reserve: room for a few agents, the listeners, the runtime's own descriptors
/// (epoll, eventfd, stdio) and the pooled upstream connections being closed meanwhile.
const MIN_RESERVE: usize = 64;

/// How often a full gateway says so in its log, at most.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Raises the soft descriptor limit to the hard one; the soft limit now in force.
pub(crate) fn raise_limit() -> usize {
    let raised = rlimit::increase_nofile_limit(u64::MAX).or_else(|error| {
        tracing::warn!(%error, "cannot raise the descriptor limit");
        rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft)
    });
    // 1,024: the usual default soft limit, if even reading it failed.
    raised.map_or(1024, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// The descriptor budget of one gateway process.
#[derive(Debug)]
pub struct Descriptors {
    /// The soft limit.
    limit: usize,
    /// Kept back from visitors.
    reserve: usize,
    /// Visitor connections open now.
    visitors: AtomicUsize,
    /// Connections admitted into the reserve and still open (agents, mostly).
    reserved: AtomicUsize,
    /// Connections past the visitors' share since the last warning (served from the reserve
    /// if they are agents, else refused).
    past_share: AtomicU64,
    /// When the last warning was logged.
    last_warning: Mutex<Option<Instant>>,
}

/// A connection's place in the budget, held by whatever outlives the connection's HTTP
/// exchange (an upgraded WebSocket, an agent's session); given back on drop.
#[derive(Debug)]
pub struct Slot {
    budget: Arc<Descriptors>,
    /// Admitted into the reserve: only the agent endpoint is served; other requests get 503.
    reserve: bool,
}

impl Slot {
    /// Whether the connection runs on the reserve.
    pub(crate) fn in_reserve(&self) -> bool {
        self.reserve
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let counter = if self.reserve {
            &self.budget.reserved
        } else {
            &self.budget.visitors
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Descriptors {
    /// A budget for a process whose descriptor limit is `limit`, keeping `reserve` (default an
    /// eighth of the limit, at least `MIN_RESERVE`) from visitors.
    pub fn new(limit: usize, reserve: Option<usize>) -> Arc<Descriptors> {
        let reserve = reserve
            .unwrap_or((limit / 8).max(MIN_RESERVE))
            .min(limit / 2);
        Arc::new(Descriptors {
            limit,
            reserve,
            visitors: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            past_share: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    /// The most visitor connections open at once.
    pub(crate) fn max_visitors(&self) -> usize {
        (self.limit - self.reserve) / PER_VISITOR
    }

    /// The most connections served from the reserve at once: half of it, as each may be an
    /// agent that later opens nothing, or a visitor on its way to a 503.
    fn max_reserved(&self) -> usize {
        self.reserve / 2
    }

    /// Admits a new connection: as a visitor while there is room, else into the reserve, else
    /// not at all (`None`: close it at once). Every connection past the visitors' share is
    /// counted for the next warning.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let slot = |reserve| Slot {
            budget: self.clone(),
            reserve,
        };
        if take(&self.visitors, self.max_visitors()) {
            return Some(slot(false));
        }
        self.note_full();
        take(&self.reserved, self.max_reserved()).then(|| slot(true))
    }

    /// Counts a connection past the visitors' share, and logs once per [`WARN_INTERVAL`].
    fn note_full(&self) {
        self.past_share.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WARN_INTERVAL) {
            return;
        }
        *last = Some(now);
        let past_share = self.past_share.swap(0, Ordering::Relaxed);
        tracing::warn!(
            past_share,
            visitors = self.max_visitors(),
            limit = self.limit,
            reserve = self.reserve,
            "connection limit reached: new visitors get 503 while agents still connect"
        );
    }
}

/// Adds one to `counter` if it stays at or below `max`.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn visitors_fill_their_share_then_the_reserve_then_nothing() {
        let budget = Descriptors::new(256, None);
        assert_eq!(budget.max_visitors(), (256 - 64) / 2);
        let visitors: Vec<Slot> = (0..budget.max_visitors())
            .map(|_| budget.admit().expect("room"))
            .collect();
        assert!(visitors.iter().all(|slot| !slot.in_reserve()));
        let reserved: Vec<Slot> = (0..32).map(|_| budget.admit().expect("reserve")).collect();
        assert!(reserved.iter().all(Slot::in_reserve));
        assert!(budget.admit().is_none());
        drop(visitors);
        assert!(!budget.admit().expect("room again").in_reserve());
    }
}
