//! Streams an agent opens to connect out: through the gateway's `[egress]` (if its token may),
//! or through another agent that is an exit (`via`, with that agent's egress secret).

use tokio::time::timeout;

use super::{AGENT_CONNECT_TIMEOUT, AgentHub};
use crate::{
    config::egress::EgressSettings,
    egress::{dial::Refusal, exit},
    log_escape::Escaped,
    session::{OpenedStream, SessionHandle, TunnelStream},
    wire::{Connect, Datagrams, Failure, Open, Opened, Via},
};

impl AgentHub {
    /// A TCP connection out, asked for by agent `id`, which presented token `token`.
    pub(super) async fn connect_out(
        &self,
        mut stream: TunnelStream,
        id: u64,
        token: usize,
        connect: Connect,
    ) {
        let agent = self.agent_name(id);
        let Connect { host, port, via } = connect;
        if let Some(via) = via {
            let open = Open::Connect {
                host,
                port,
                agent: agent.clone(),
            };
            return self.through_exit(stream, &agent, &via, open).await;
        }
        match self.egress_for(token) {
            Ok(settings) => exit::connect(stream, settings, &host, port, &agent).await,
            Err(refusal) => refuse(&mut stream, &agent, refusal).await,
        }
    }

    /// A UDP association out, as [`Self::connect_out`].
    pub(super) async fn datagrams_out(
        &self,
        mut stream: TunnelStream,
        id: u64,
        token: usize,
        datagrams: Datagrams,
    ) {
        let agent = self.agent_name(id);
        if let Some(via) = datagrams.via {
            let open = Open::Datagrams {
                agent: agent.clone(),
            };
            return self.through_exit(stream, &agent, &via, open).await;
        }
        match self.egress_for(token) {
            Ok(settings) => exit::datagrams(stream, settings, &agent).await,
            Err(refusal) => refuse(&mut stream, &agent, refusal).await,
        }
    }

    /// The gateway's egress, if the token may use it.
    fn egress_for(&self, token: usize) -> Result<&EgressSettings, Refusal> {
        let not_allowed = |reason: &str| Refusal {
            failure: Failure::NotAllowed,
            reason: reason.into(),
        };
        let settings = self
            .settings
            .egress
            .as_ref()
            .ok_or_else(|| not_allowed("this gateway has no [egress]"))?;
        match self.settings.limits.get(token) {
            Some(limits) if limits.egress => Ok(settings),
            _ => Err(not_allowed(
                "this agent's token may not use the gateway's egress",
            )),
        }
    }

    /// Joins `stream` to a stream opened on the exit agent named by `via`, once that agent
    /// has answered `open`; its answer is passed on.
    async fn through_exit(&self, mut stream: TunnelStream, agent: &str, via: &Via, open: Open) {
        let session = match self.exit_session(via) {
            Ok(session) => session,
            Err(refusal) => return refuse(&mut stream, agent, refusal).await,
        };
        let opened = timeout(AGENT_CONNECT_TIMEOUT, open_on_exit(&session, &open)).await;
        let mut exit_stream = match opened {
            Ok(Ok(exit_stream)) => exit_stream,
            Ok(Err(refusal)) => return refuse(&mut stream, agent, refusal).await,
            Err(_) => {
                let refusal = Refusal {
                    failure: Failure::TimedOut,
                    reason: format!("agent {} did not answer in time", via.agent),
                };
                return refuse(&mut stream, agent, refusal).await;
            }
        };
        if crate::session::messages::write_frame(&mut stream, &Opened::Ok)
            .await
            .is_ok()
        {
            let _ = crate::io::splice(&mut stream, &mut exit_stream).await;
        }
    }

    /// The session of the connected agent named `via.agent`, if its egress secret is
    /// `via.secret`.
    fn exit_session(&self, via: &Via) -> Result<SessionHandle, Refusal> {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let mut named = agents
            .values()
            .filter(|a| a.name == via.agent && !a.session.is_closed())
            .peekable();
        if named.peek().is_none() {
            return Err(Refusal {
                failure: Failure::NetworkUnreachable,
                reason: format!("agent {} is not connected", via.agent),
            });
        }
        named
            .find(|a| {
                a.egress
                    .as_ref()
                    .is_some_and(|secret| secret.matches(via.secret.expose()))
            })
            .map(|a| a.session.clone())
            .ok_or_else(|| Refusal {
                failure: Failure::NotAllowed,
                reason: format!("agent {} is no exit for that secret", via.agent),
            })
    }

    /// The name agent `id` registered under, for logs.
    fn agent_name(&self, id: u64) -> String {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents
            .get(&id)
            .map_or_else(|| format!("#{id}"), |a| a.name.clone())
    }
}

/// Opens a stream on an exit agent's session and asks it for `open`.
async fn open_on_exit(session: &SessionHandle, open: &Open) -> Result<OpenedStream, Refusal> {
    let mut stream = session.open().await.map_err(|e| Refusal {
        failure: Failure::General,
        reason: format!("exit agent's session: {e}"),
    })?;
    crate::session::messages::ask(&mut stream, open)
        .await
        .map_err(|(failure, reason)| Refusal { failure, reason })?;
    Ok(stream)
}

/// Tells the asking agent why not, and logs it.
async fn refuse(stream: &mut TunnelStream, agent: &str, refusal: Refusal) {
    let (agent, reason) = (Escaped(agent), Escaped(&refusal.reason));
    tracing::warn!(%agent, %reason, "egress refused");
    let answer = Opened::Failed {
        failure: refusal.failure,
        reason: refusal.reason,
    };
    let _ = crate::session::messages::write_frame(stream, &answer).await;
}
