//! The agent's live gateway sessions, for its forwards and proxies to open streams on; a
//! request that comes while none is up (right after start, or during a reconnect) waits for
//! one instead of failing at once.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

use crate::session::SessionHandle;

/// The sessions, and a signal each time one comes up.
#[derive(Debug, Clone, Default)]
pub(super) struct Live {
    sessions: Arc<Mutex<Vec<SessionHandle>>>,
    up: Arc<Notify>,
}

impl Live {
    /// A session is up: requests waiting for one go ahead.
    pub(super) fn add(&self, session: &SessionHandle) {
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.retain(|s| !s.is_closed());
            sessions.push(session.clone());
        }
        self.up.notify_waiters();
    }

    /// An open session now, if there is one.
    fn any(&self) -> Option<SessionHandle> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.iter().find(|s| !s.is_closed()).cloned()
    }

    /// An open session, waiting up to `limit` for one to come up.
    pub(super) async fn wait(&self, limit: Duration) -> Option<SessionHandle> {
        if let Some(session) = self.any() {
            return Some(session);
        }
        tracing::info!(wait = ?limit, "no gateway session yet: the request waits for one");
        let waiting = async {
            loop {
                // Registered before looking, so a session added in between is not missed.
                let up = self.up.notified();
                tokio::pin!(up);
                up.as_mut().enable();
                if let Some(session) = self.any() {
                    return session;
                }
                up.await;
            }
        };
        tokio::time::timeout(limit, waiting).await.ok()
    }
}
