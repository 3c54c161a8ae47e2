//! Resource budgets shared by every connection: a byte count that many holders charge against
//! and that no holder can push past its limit. Per-connection caps alone do not bound a
//! gateway: a hundred connections each under its cap still add up. So every buffer a client or
//! an agent can make the gateway fill is charged here before it is filled, and the charge is
//! given back when the buffer is (on drop, so no path can forget it).

pub mod descriptors;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// The gateway's budgets, built once from `[limits]` and shared by every connection.
#[derive(Debug, Clone)]
pub struct Budgets {
    /// WebSocket messages being assembled.
    pub messages: Arc<Budget>,
    /// Buffers of agents' tunnel streams, all sessions together.
    pub tunnel: Arc<Budget>,
    /// File descriptors: visitors' share and the reserve.
    pub descriptors: Arc<descriptors::Descriptors>,
}

impl Budgets {
    /// The budgets `limits` sets, for a process whose descriptor limit is `descriptor_limit`.
    pub fn new(limits: &Limits, descriptor_limit: usize) -> Budgets {
        Budgets {
            messages: Budget::new("message memory", limits.message_memory),
            tunnel: Budget::new("tunnel memory", limits.tunnel_memory),
            descriptors: descriptors::Descriptors::new(descriptor_limit, limits.descriptor_reserve),
        }
    }
}

/// A limit on bytes held, shared by every holder.
pub struct Budget {
    /// What it bounds, for logs.
    name: &'static str,
    /// The most bytes all charges together may hold.
    limit: usize,
    /// Bytes charged now.
    used: AtomicUsize,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Budget({}: {} of {})",
            self.name,
            self.used(),
            self.limit
        )
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(name: &'static str, limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            name,
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// What it bounds.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes`, or `None` (and nothing charged) when that would pass the limit.
    #[inline]
    pub fn try_charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        self.take(bytes).then(|| Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes held against a [`Budget`]; given back when dropped.
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl fmt::Debug for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Charge({} bytes of {})", self.bytes, self.budget.name)
    }
}

impl Charge {
    /// An empty charge on `budget`, to grow later.
    pub fn empty(budget: &Arc<Budget>) -> Charge {
        Charge {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Bytes held.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `more` bytes too; false (and nothing more held) when the budget has no room.
    #[inline]
    pub fn try_grow(&mut self, more: usize) -> bool {
        let grown = self.budget.take(more);
        if grown {
            self.bytes += more;
        }
        grown
    }

    /// Moves everything `other` holds into this charge (both on the same budget).
    pub(crate) fn take_from(&mut self, other: &mut Charge) {
        debug_assert!(Arc::ptr_eq(&self.budget, &other.budget));
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Gives everything back, keeping the charge for later growth.
    #[inline]
    pub(crate) fn release(&mut self) {
        // Called on every read of a metered connection: no atomic write when nothing is held.
        if self.bytes > 0 {
            self.budget.give_back(std::mem::take(&mut self.bytes));
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release();
    }
}

/// `[limits]`: the budgets every connection shares (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of WebSocket messages being assembled, all connections together; a connection
    /// whose next frame does not fit is closed with 1013.
    pub message_memory: usize,
    /// Bytes agents' tunnel streams may hold buffered here, all sessions together (each open
    /// stream a 256 KiB window, each session its window headroom).
    pub tunnel_memory: usize,
    /// The same, for the sessions of one token.
    pub tunnel_memory_per_token: usize,
    /// Agent sessions one token may hold at once.
    pub sessions_per_token: usize,
    /// A write into an agent's stream that waits this long for window credit resets the
    /// stream; when nothing moved on the session meanwhile, the session is ended.
    pub credit_timeout: Duration,
    /// Descriptors kept back from visitors for agents and open connections; `None`: an eighth
    /// of the limit, at least 64.
    pub descriptor_reserve: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 16 messages at the bridge's 16 MiB cap, or thousands of ordinary ones.
            message_memory: 256 << 20,
            // 4,096 stream windows of 256 KiB.
            tunnel_memory: 1 << 30,
            // A quarter of the process's: four tokens' agents cannot starve a fifth.
            tunnel_memory_per_token: 256 << 20,
            // A few agents sharing a token, with room for quick reconnects; their 8 MiB window
            // headrooms take half the token's memory. A fleet on one token raises both.
            sessions_per_token: 16,
            // nginx's proxy_send_timeout: 60 s without a write going through.
            credit_timeout: Duration::from_secs(60),
            descriptor_reserve: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_come_back_on_drop() {
        let budget = Budget::new("example", 100);
        let mut first = budget.try_charge(60).expect("60 of 100 is free");
        assert!(budget.try_charge(50).is_none(), "60 + 50 is over 100");
        assert!(first.try_grow(40));
        assert_eq!(budget.used(), 100);
        drop(first);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn charges_never_pass_the_limit_and_come_back() {
        let budget = Budget::new("test", 10);
        let mut a = Charge::empty(&budget);
        assert!(a.try_grow(4));
        let b = budget.try_charge(6).expect("4 + 6 fits");
        assert!(!a.try_grow(1), "full");
        assert_eq!(a.bytes(), 4, "a failed growth holds nothing more");
        drop(b);
        assert!(a.try_grow(6));
        a.release();
        assert_eq!((a.bytes(), budget.used()), (0, 0));
        assert!(a.try_grow(10));
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn many_threads_never_pass_the_limit() {
        let budget = Budget::new("test", 1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for _ in 0..1000 {
                        if let Some(charge) = budget.try_charge(7) {
                            assert!(budget.used() <= 1000);
                            held.push(charge);
                        }
                        if held.len() > 20 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(budget.used(), 0);
    }
}
