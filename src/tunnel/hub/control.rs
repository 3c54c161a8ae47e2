//! One agent's session from its upgrade to its end: the hello, then the control conversation
//! (registrations, heartbeats), each heartbeat renewing the session's claims in the registry.
//! A session whose claims are no longer its own is ended; its routes leave one heartbeat
//! timeout after it.

use std::{sync::Arc, time::Duration};

use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_websockets::{Limits, ServerBuilder};
use yamux::Mode;

use super::{AgentHub, HELLO_TIMEOUT, claims::Claimant};
use crate::{
    io::ws::{MAX_MESSAGE_BYTES, WsIo},
    log_escape::Escaped,
    session::{self, SessionHandle, StreamBudget, TunnelStream, messages},
    tunnel::registry::ClaimError,
    wire::{Control, VERSION, names},
};

/// Why an agent was turned away at its hello, and the name it gave, for the log.
struct Refused {
    reason: String,
    agent: Option<String>,
}

impl From<String> for Refused {
    fn from(reason: String) -> Self {
        Refused {
            reason,
            agent: None,
        }
    }
}

/// What the session does after a control frame.
enum Next {
    /// Sends these replies; `renew` when the frame was a heartbeat.
    Reply { replies: Vec<Control>, renew: bool },
    /// Ends (the reason is logged).
    End,
}

impl AgentHub {
    /// One agent's session from its upgrade to its end; its routes leave with it.
    /// `reached_by` is the host its upgrade named: a name the gateway is reached by.
    pub(super) async fn run_agent<S>(
        self: Arc<Self>,
        io: S,
        token: usize,
        budget: StreamBudget,
        reached_by: Option<String>,
        shutdown: CancellationToken,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = Limits::default().max_payload_len(Some(2 * MAX_MESSAGE_BYTES));
        let ws = ServerBuilder::new().limits(limits).serve(io);
        let (first, control) = tokio::sync::oneshot::channel();
        let mut first = Some(first);
        let hub = self.clone();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (session, task) = session::spawn(WsIo::new(ws), Mode::Server, budget, move |stream| {
            // The first stream is the control stream; later ones say what they are for.
            match first.take() {
                Some(first) => drop(first.send(stream.into_control())),
                None => drop(tokio::spawn(hub.clone().serve_request(stream, id, token))),
            }
        });
        match timeout(HELLO_TIMEOUT, control).await {
            Ok(Ok(control)) => tokio::select! {
                () = self.converse(id, token, reached_by, control, session.clone()) => {}
                // A peer that takes streams and never grants credit pins their buffers (and
                // the other side's): past the timeout its session ends and frees them.
                () = session.credit().starved() => tracing::info!(
                    timeout = ?self.budgets.credit_timeout,
                    "agent granted no window credit and sent nothing while writes waited: session ended"
                ),
                // Gateway shutdown ends agent sessions at once: agents reconnect elsewhere
                // (or here, once the gateway is back) instead of holding the drain.
                () = shutdown.cancelled() => tracing::info!("agent session closed for shutdown"),
            },
            _ => tracing::info!("agent opened no control stream in time"),
        }
        close(session, task).await;
        // The routes stay for one heartbeat timeout: visitors meanwhile get 502 (the agent is
        // away, not unknown), and the agent reconnecting takes them straight back. Untracked:
        // shutdown does not wait for it.
        let delay = self.settings.heartbeat_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            self.remove(id).await;
        });
    }

    /// The control conversation: hello, registrations, heartbeats. Returns when the agent
    /// leaves, falls silent, or its claims are no longer its own.
    async fn converse(
        &self,
        id: u64,
        token: usize,
        reached_by: Option<String>,
        mut control: TunnelStream,
        session: SessionHandle,
    ) {
        let Some(name) = self.greet(&mut control).await else {
            return;
        };
        let claimant = Claimant {
            id,
            token,
            agent: &name,
            session: &session,
            reached_by: reached_by.as_deref(),
        };
        // Until a claim is granted there is nothing to keep alive: an agent that only
        // forwards or connects out renews nothing.
        let mut holds_claims = false;
        loop {
            let Next::Reply { replies, renew } = self.next(&claimant, &mut control).await else {
                return;
            };
            holds_claims |= replies
                .iter()
                .any(|reply| matches!(reply, Control::Registered { .. }));
            if !self.send(&name, &mut control, replies).await {
                return;
            }
            if renew && holds_claims && !self.renew(id, &name).await {
                return;
            }
        }
    }

    /// Reads the hello and answers it; the agent's name, or `None` once it is refused (told
    /// and logged).
    async fn greet(&self, control: &mut TunnelStream) -> Option<String> {
        match self.hello(control).await {
            Ok(name) => {
                tracing::info!(agent = %Escaped(name.as_str()), "agent connected");
                Some(name)
            }
            Err(Refused { reason, agent }) => {
                let agent = agent
                    .as_deref()
                    .map(|a| tracing::field::display(Escaped(a)));
                tracing::info!(agent, reason = %Escaped(&reason), "agent refused");
                let _ = messages::write_frame(control, &Control::Rejected { reason }).await;
                None
            }
        }
    }

    /// Reads the next control frame (within the heartbeat timeout) and decides what follows.
    async fn next(&self, who: &Claimant<'_>, control: &mut TunnelStream) -> Next {
        let shown = Escaped(who.agent);
        let frame = timeout(
            self.settings.heartbeat_timeout,
            messages::read_frame(control),
        );
        let replies = match frame.await {
            Err(_) => {
                tracing::info!(agent = %shown, "agent silent past the heartbeat timeout: dropped");
                return Next::End;
            }
            Ok(Ok(None)) | Ok(Err(_)) => {
                tracing::info!(agent = %shown, "agent left");
                return Next::End;
            }
            Ok(Ok(Some(Control::Ping(n)))) => {
                let replies = vec![Control::Pong(n)];
                return Next::Reply {
                    replies,
                    renew: true,
                };
            }
            Ok(Ok(Some(Control::Register { services, egress }))) => {
                self.register(who, services, egress).await
            }
            Ok(Ok(Some(other))) => {
                // What a hostile agent sent, up to a 64 KiB frame: escaped and cut short.
                let control = Escaped(format_args!("{other:?}"));
                tracing::info!(agent = %shown, %control, "unexpected control message");
                return Next::End;
            }
        };
        let renew = false;
        Next::Reply { replies, renew }
    }

    /// Sends `replies`; false when the agent stopped reading its control stream.
    async fn send(&self, agent: &str, control: &mut TunnelStream, replies: Vec<Control>) -> bool {
        for message in replies {
            // The control stream is outside the credit watch: an agent that stops reading it
            // is dropped after a heartbeat timeout, as one that stops writing is.
            let write = messages::write_frame(control, &message);
            if !matches!(
                timeout(self.settings.heartbeat_timeout, write).await,
                Ok(Ok(()))
            ) {
                tracing::info!(agent = %Escaped(agent), "agent stopped reading its control stream");
                return false;
            }
        }
        true
    }

    /// Renews session `id`'s claims, within one heartbeat period; false when they are no
    /// longer its own (the session ends and the agent reconnects). An unreachable store (or
    /// one too slow to answer) is logged and the session kept: a later heartbeat may renew.
    async fn renew(&self, id: u64, agent: &str) -> bool {
        let agent = Escaped(agent);
        match timeout(self.heartbeat_period(), self.registry.renew(id)).await {
            Ok(Ok(())) => true,
            Ok(Err(error @ ClaimError::NotHeld(_))) => {
                tracing::info!(%agent, %error, "agent's claims are no longer its own: session ended");
                false
            }
            Ok(Err(error)) => {
                tracing::warn!(%agent, %error, "agent's claims not renewed: the session stays");
                true
            }
            Err(_) => {
                let waited = self.heartbeat_period();
                tracing::warn!(%agent, ?waited, "agent's claims not renewed in time: the session stays");
                true
            }
        }
    }

    /// How often agents are told to send a heartbeat: a third of the heartbeat timeout.
    fn heartbeat_period(&self) -> Duration {
        Duration::from_secs((self.settings.heartbeat_timeout.as_secs() / 3).max(1))
    }

    /// Reads the hello; the agent's name, or why it is refused. The name is checked before
    /// the welcome: an agent told no must hear it as its first answer.
    async fn hello(&self, control: &mut TunnelStream) -> Result<String, Refused> {
        match timeout(HELLO_TIMEOUT, messages::read_frame(control)).await {
            Ok(Ok(Some(Control::Hello { version, agent }))) if version == VERSION => {
                if let Err(reason) = names::check("agent", &agent) {
                    return Err(Refused {
                        reason,
                        agent: Some(agent),
                    });
                }
                let welcome = Control::Welcome {
                    version: VERSION,
                    heartbeat_secs: self.heartbeat_period().as_secs(),
                };
                messages::write_frame(control, &welcome)
                    .await
                    .map_err(|e| Refused::from(e.to_string()))?;
                Ok(agent)
            }
            Ok(Ok(Some(Control::Hello { version, agent }))) => Err(Refused {
                reason: format!(
                    "protocol version {version} is not supported: this gateway speaks version {VERSION}"
                ),
                agent: Some(agent),
            }),
            _ => Err(Refused::from("expected a hello".to_string())),
        }
    }
}

/// Closes `session`; a peer that stops reading would keep the close pending forever, so past
/// a bound the session's task is stopped, which drops the connection and ends every stream.
async fn close<T>(session: SessionHandle, task: tokio::task::JoinHandle<T>) {
    session.close().await;
    let abort = task.abort_handle();
    if timeout(Duration::from_secs(5), task).await.is_err() {
        abort.abort();
    }
}
