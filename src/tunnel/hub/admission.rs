//! An agent's admission: its token, its handshake, and room for one more session under its
//! token's cap and the tunnel's memory budget; once admitted, the upgrade runs its session.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::AgentHub;
use crate::{
    body::{Body, refused, refused_because},
    budget::{Budget, descriptors::Slot},
    handshake,
    refusal::Refusal,
    session::{StreamBudget, StreamCharge, WINDOW_HEADROOM_BYTES},
};

/// The tunnel's share of the gateway's `[limits]`.
#[derive(Debug)]
pub(super) struct TunnelBudgets {
    /// Every session's streams, together.
    pub(super) process: Arc<Budget>,
    /// Each token's sessions' streams (same index as the tokens).
    pub(super) per_token: Vec<Arc<Budget>>,
    /// Sessions open now per token (same index).
    pub(super) sessions: Vec<Arc<AtomicUsize>>,
    /// The most sessions a token may hold.
    pub(super) sessions_per_token: usize,
    /// A session whose peer grants no credit this long, while writes wait, is ended.
    pub(super) credit_timeout: std::time::Duration,
}

/// One session's hold on its token's session count; given back on drop.
struct SessionCount(Arc<AtomicUsize>);

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AgentHub {
    /// Answers an agent's handshake: 401 for an unknown token, else the 101, and the session
    /// runs on the tracker until the agent leaves.
    pub fn handle(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
        slot: Arc<Slot>,
    ) -> Response<Body> {
        let Some(token) = self.token_index(&req) else {
            let mut response = refused(Refusal::AgentTokenUnknown);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        };
        let handshake = match handshake::check(&req) {
            Ok(handshake) => handshake,
            Err(error) => return error.response(),
        };
        let budget = StreamBudget::new(vec![
            self.budgets.per_token[token].clone(),
            self.budgets.process.clone(),
        ])
        .with_credit_timeout(self.budgets.credit_timeout);
        let admitted = match self.admit(token, &budget) {
            Ok(admitted) => admitted,
            Err(refusal) => return *refusal,
        };
        let reached_by = reached_by(&req);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let hub = self.clone();
        let shutdown = shutdown.clone();
        // In the connection's span: the session's logs name the client address it came from.
        let session = async move {
            let _held = (admitted, slot);
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    hub.run_agent(io, token, budget, reached_by, shutdown).await;
                }
                Err(error) => tracing::debug!(%error, "agent upgrade failed"),
            }
        };
        tracker.spawn(session.in_current_span());
        handshake.switching_protocols(None)
    }

    /// Counts a new session against its token's cap and charges its window headroom; the
    /// refusal (429 or 503) when either is full.
    fn admit(
        &self,
        token: usize,
        budget: &StreamBudget,
    ) -> Result<(SessionCount, StreamCharge), Box<Response<Body>>> {
        let sessions = &self.budgets.sessions[token];
        let cap = self.budgets.sessions_per_token;
        if sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_err()
        {
            tracing::info!(
                token,
                cap,
                "agent refused: its token holds the most sessions"
            );
            let reason = format!("this token already holds {cap} agent sessions");
            return Err(Box::new(refused_because(
                Refusal::AgentSessionsFull,
                reason,
            )));
        }
        let Some(headroom) = budget.charge(WINDOW_HEADROOM_BYTES) else {
            sessions.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(token, "agent refused: the tunnel memory budget is full");
            return Err(Box::new(refused(Refusal::TunnelBudgetFull)));
        };
        Ok((SessionCount(sessions.clone()), headroom))
    }

    /// The index of the configured token the request presents (`Authorization: Bearer`),
    /// compared exactly: no space before or after the token is taken off. (Trailing spaces
    /// and tabs never reach here: the HTTP parser drops them, as RFC 9110 §5.5 says.)
    fn token_index<B>(&self, req: &Request<B>) -> Option<usize> {
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        self.settings
            .tokens
            .iter()
            .position(|token| token.matches(offered))
    }
}

/// The host an agent's upgrade named, canonical: a name the gateway is reached by, which no
/// agent may claim. (The request was made canonical before routing: an absolute URI's
/// authority is in `Host` by now.)
fn reached_by<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(crate::matching::claim_rules::reached_host)
}
