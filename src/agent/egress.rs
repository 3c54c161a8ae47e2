//! The agent's way out: a stream on one of its gateway sessions that asks the gateway (or the
//! exit agent in `via`) to connect somewhere; and the other side, serving such streams when
//! this agent is itself an exit.

use crate::{
    agent::{SESSION_WAIT, live::Live},
    config::agent::plan::AgentPlan,
    egress::{dial::Refusal, exit},
    session::{OpenedStream, TunnelStream},
    wire::{Connect, Datagrams, Failure, Opened, Request, Via},
};

/// Opens egress streams for a local proxy.
#[derive(Debug, Clone)]
pub(super) struct Egress {
    pub(super) live: Live,
    pub(super) via: Option<Via>,
}

impl Egress {
    /// A TCP connection to `host:port`, once the exit has made it.
    pub(super) async fn connect(&self, host: String, port: u16) -> Result<OpenedStream, Refusal> {
        let via = self.via.clone();
        self.open(Request::Connect(Connect { host, port, via }))
            .await
    }

    /// A UDP association: datagrams framed on the stream (`egress::datagram`).
    pub(super) async fn datagrams(&self) -> Result<OpenedStream, Refusal> {
        let via = self.via.clone();
        self.open(Request::Datagrams(Datagrams { via })).await
    }

    async fn open(&self, request: Request) -> Result<OpenedStream, Refusal> {
        // Right after start, or during a reconnect, the session comes within a dial's time.
        let Some(session) = self.live.wait(SESSION_WAIT).await else {
            return Err(Refusal {
                failure: Failure::NetworkUnreachable,
                reason: "no gateway session".into(),
            });
        };
        let mut stream = session.open().await.map_err(|e| Refusal {
            failure: Failure::General,
            reason: format!("gateway session: {e}"),
        })?;
        crate::session::messages::ask(&mut stream, &request)
            .await
            .map_err(|(failure, reason)| Refusal { failure, reason })?;
        Ok(stream)
    }
}

/// A stream the gateway opened for agent `from`'s `via`: a TCP connection out from here, if
/// this agent is an exit.
pub(super) async fn exit_connect(
    mut stream: TunnelStream,
    plan: &AgentPlan,
    host: &str,
    port: u16,
    from: &str,
) {
    if let Some(settings) = exit_settings(&mut stream, plan).await {
        exit::connect(stream, settings, host, port, from).await;
    }
}

/// Likewise, a UDP association.
pub(super) async fn exit_datagrams(mut stream: TunnelStream, plan: &AgentPlan, from: &str) {
    if let Some(settings) = exit_settings(&mut stream, plan).await {
        exit::datagrams(stream, settings, from).await;
    }
}

/// This agent's `[egress]`; without one the stream is told no.
async fn exit_settings<'a>(
    stream: &mut TunnelStream,
    plan: &'a AgentPlan,
) -> Option<&'a crate::config::egress::EgressSettings> {
    if let Some(exit) = &plan.exit {
        return Some(&exit.settings);
    }
    let answer = Opened::Failed {
        failure: Failure::NotAllowed,
        reason: format!("agent {} is no exit (it has no [egress])", plan.name),
    };
    let _ = crate::session::messages::write_frame(stream, &answer).await;
    None
}
