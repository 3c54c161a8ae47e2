//! Liveness and idleness of one bridged connection: heartbeat pings with a pong deadline, and
//! the idle timeout. Pure state over instants, driven by one resettable timer in the pump.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;

/// Heartbeat settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// How often to ping the client.
    pub interval: Duration,
    /// How long after a ping some frame must arrive before the client counts as dead.
    pub pong_timeout: Duration,
}

/// Times of the last events, shared by the two directions of one connection (same task, but
/// the future must be `Send`, hence atomics rather than `Cell`).
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the connection started; the other fields are milliseconds since then.
    start: Instant,
    /// Last frame of any kind from the client (pongs prove liveness, data too).
    client_frame_ms: AtomicU64,
    /// Last data byte either way (what the idle timeout watches).
    data_ms: AtomicU64,
}

impl Activity {
    /// Starts the clock now.
    pub fn new() -> Self {
        Activity {
            start: Instant::now(),
            client_frame_ms: AtomicU64::new(0),
            data_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A frame arrived from the client.
    pub fn client_frame(&self) {
        self.client_frame_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Data moved in either direction.
    pub fn data(&self) {
        self.data_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Now, at the millisecond precision the other times are kept in, so that "a frame came
    /// after the ping" compares like with like even within one millisecond.
    pub fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.now_ms())
    }

    fn at(&self, ms: &AtomicU64) -> Instant {
        self.start + Duration::from_millis(ms.load(Ordering::Relaxed))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// What the pump should do when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing yet; re-arm the timer.
    Wait,
    /// Send a heartbeat ping now.
    Ping,
    /// No data for the idle timeout: close.
    Idle,
    /// A ping went unanswered past its deadline: the client is gone.
    Dead,
}

/// The deadlines of one connection.
#[derive(Debug)]
pub(crate) struct Watchdog {
    idle_timeout: Option<Duration>,
    heartbeat: Option<Heartbeat>,
    /// When the unanswered ping was sent, if one is out.
    ping_sent_at: Option<Instant>,
    /// When the next ping is due.
    next_ping_at: Instant,
}

impl Watchdog {
    /// A watchdog starting now.
    pub fn new(idle_timeout: Option<Duration>, heartbeat: Option<Heartbeat>) -> Self {
        let now = Instant::now();
        Watchdog {
            idle_timeout,
            heartbeat,
            ping_sent_at: None,
            next_ping_at: now + heartbeat.map_or(Duration::ZERO, |h| h.interval),
        }
    }

    /// Whether there is anything to watch at all (no timer otherwise).
    pub(crate) fn enabled(&self) -> bool {
        self.idle_timeout.is_some() || self.heartbeat.is_some()
    }

    /// The next instant at which [`check`](Self::check) may say something other than `Wait`.
    pub fn deadline(&self, activity: &Activity) -> Instant {
        let far = Instant::now() + Duration::from_secs(86_400);
        let idle = self
            .idle_timeout
            .map_or(far, |t| activity.at(&activity.data_ms) + t);
        let heartbeat = match (self.heartbeat, self.ping_sent_at) {
            (Some(h), Some(sent)) => sent + h.pong_timeout,
            (Some(_), None) => self.next_ping_at,
            (None, _) => far,
        };
        idle.min(heartbeat)
    }

    /// Judges the connection at `now`. `sending` is true while a message to the client is stuck
    /// in its send buffer: then it is not idle (it is slow), and pings wait their turn.
    pub fn check(&mut self, now: Instant, activity: &Activity, sending: bool) -> Verdict {
        if let (Some(h), Some(sent)) = (self.heartbeat, self.ping_sent_at) {
            if activity.at(&activity.client_frame_ms) >= sent {
                self.ping_sent_at = None;
            } else if now >= sent + h.pong_timeout {
                return Verdict::Dead;
            }
        }
        let idle_deadline = self
            .idle_timeout
            .map(|idle| activity.at(&activity.data_ms) + idle);
        if !sending && idle_deadline.is_some_and(|deadline| now >= deadline) {
            return Verdict::Idle;
        }
        match self.heartbeat {
            Some(h) if self.ping_sent_at.is_none() && now >= self.next_ping_at => {
                if sending {
                    // A stuck send counts as an unanswered ping: a client that neither reads
                    // nor sends for interval + pong_timeout is dead.
                    self.ping_sent_at = Some(now);
                    self.next_ping_at = now + h.interval;
                    return Verdict::Wait;
                }
                Verdict::Ping
            }
            _ => Verdict::Wait,
        }
    }

    /// Records that a ping went out at `now`.
    pub(crate) fn ping_sent(&mut self, now: Instant) {
        self.ping_sent_at = Some(now);
        self.next_ping_at = now + self.heartbeat.map_or(Duration::ZERO, |h| h.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Heartbeat = Heartbeat {
        interval: Duration::from_secs(10),
        pong_timeout: Duration::from_secs(5),
    };

    #[tokio::test(start_paused = true)]
    async fn unanswered_ping_means_dead() {
        let activity = Activity::new();
        let mut watchdog = Watchdog::new(None, Some(HEARTBEAT));
        assert_eq!(
            watchdog.check(Instant::now(), &activity, false),
            Verdict::Wait
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            watchdog.check(Instant::now(), &activity, false),
            Verdict::Ping
        );
        watchdog.ping_sent(Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            watchdog.check(Instant::now(), &activity, false),
            Verdict::Dead
        );
    }

    #[tokio::test(start_paused = true)]
    async fn answered_ping_keeps_alive() {
        let activity = Activity::new();
        let mut watchdog = Watchdog::new(None, Some(HEARTBEAT));
        tokio::time::advance(Duration::from_secs(10)).await;
        watchdog.ping_sent(Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.client_frame();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            watchdog.check(Instant::now(), &activity, false),
            Verdict::Wait
        );
        assert_eq!(
            watchdog.deadline(&activity),
            Instant::now() + Duration::from_secs(4)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_follows_data() {
        let activity = Activity::new();
        let mut watchdog = Watchdog::new(Some(Duration::from_secs(30)), None);
        tokio::time::advance(Duration::from_secs(20)).await;
        activity.data();
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(
            watchdog.check(Instant::now(), &activity, false),
            Verdict::Wait
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            watchdog.check(Instant::now(), &activity, true),
            Verdict::Wait
        );
        assert_eq!(
            watchdog.check(Instant::now(), &activity, false),
            Verdict::Idle
        );
    }
}
