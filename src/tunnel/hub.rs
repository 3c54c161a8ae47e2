//! The gateway's side of the tunnel: the agent endpoint (token check, upgrade, one multiplexed
//! session per agent: `admission`), the control conversation (`control`) and forwards between
//! agents. A registration's
//! claims are decided by the registry (`claims`); what is granted goes to the gateway as
//! events (`tunnel::events`), which makes routes and ports of it.

mod admission;
mod claims;
mod control;
mod egress;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use tokio::time::timeout;

use crate::{
    budget::Budget,
    config::AgentSettings,
    log_escape::Escaped,
    session::{self, SessionHandle, TunnelStream},
    tunnel::{
        events::{AGENT_CONNECT_TIMEOUT, Gone, ServiceSink},
        registry::Registry,
    },
    wire,
};
use admission::TunnelBudgets;

/// How long a new agent may take to open its control stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The connected agents.
#[derive(Debug)]
pub struct AgentHub {
    settings: AgentSettings,
    /// Who holds which route, port and private service.
    registry: Arc<dyn Registry>,
    /// Where granted services and ended sessions are told: the gateway.
    sink: Arc<dyn ServiceSink>,
    agents: Mutex<HashMap<u64, Agent>>,
    next_id: AtomicU64,
    /// What sessions and their streams may hold, per token and in all.
    budgets: TunnelBudgets,
}

/// One connected agent.
#[derive(Debug)]
struct Agent {
    name: String,
    session: SessionHandle,
    /// The secret that lets other agents connect out from this agent's network (`via`).
    egress: Option<crate::secret::Secret>,
}

impl AgentHub {
    /// A hub whose claims `registry` decides and whose granted services go to `sink`, its
    /// sessions within `limits` and the process's `tunnel` budget.
    pub fn new(
        settings: AgentSettings,
        registry: Arc<dyn Registry>,
        sink: Arc<dyn ServiceSink>,
        limits: &crate::budget::Limits,
        tunnel: Arc<Budget>,
    ) -> Self {
        let tokens = settings.tokens.len();
        let budgets = TunnelBudgets {
            process: tunnel,
            per_token: (0..tokens)
                .map(|_| Budget::new("token tunnel memory", limits.tunnel_memory_per_token))
                .collect(),
            sessions: (0..tokens).map(|_| Arc::default()).collect(),
            sessions_per_token: limits.sessions_per_token,
            credit_timeout: limits.credit_timeout,
        };
        AgentHub {
            settings,
            registry,
            sink,
            agents: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            budgets,
        }
    }

    /// The endpoint's path.
    pub fn path(&self) -> &str {
        &self.settings.path
    }

    /// A stream agent `id` (holding token `token`) opened: a forward to another agent's
    /// private service, or a connection out.
    async fn serve_request(self: Arc<Self>, mut stream: TunnelStream, id: u64, token: usize) {
        let request = timeout(
            HELLO_TIMEOUT,
            crate::session::messages::read_frame::<_, wire::Request>(&mut stream),
        )
        .await;
        match request {
            Ok(Ok(Some(wire::Request::Forward(forward)))) => self.forward(stream, forward).await,
            Ok(Ok(Some(wire::Request::Connect(connect)))) => {
                self.connect_out(stream, id, token, connect).await;
            }
            Ok(Ok(Some(wire::Request::Datagrams(datagrams)))) => {
                self.datagrams_out(stream, id, token, datagrams).await;
            }
            Ok(Err(error)) => {
                tracing::info!(error = %Escaped(&error), "agent stream: bad request");
            }
            Ok(Ok(None)) | Err(_) => {}
        }
    }

    /// A stream an agent opened to another agent's private service: check the secret, open a
    /// stream to the owner, and join the two.
    async fn forward(&self, mut stream: TunnelStream, forward: wire::Forward) {
        let wire::Forward { service, secret } = forward;
        let holder = self
            .registry
            .lookup_private(&service, secret.expose())
            .await;
        let session = holder.ok().flatten().and_then(|holder| {
            let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
            let agent = agents.get(&holder.session)?;
            Some((agent.name.clone(), agent.session.clone()))
        });
        let Some((agent, session)) = session else {
            let reason = format!("no private service {service:?} with that secret");
            let _ =
                crate::session::messages::write_frame(&mut stream, &wire::Opened::general(reason))
                    .await;
            return;
        };
        match open_service(&session, &agent, &service).await {
            Ok(mut target) => {
                if crate::session::messages::write_frame(&mut stream, &wire::Opened::Ok)
                    .await
                    .is_ok()
                {
                    let _ = crate::io::splice(&mut stream, &mut target).await;
                }
            }
            Err(reason) => {
                let _ = crate::session::messages::write_frame(
                    &mut stream,
                    &wire::Opened::general(reason),
                )
                .await;
            }
        }
    }

    /// Forgets agent `id`: its claims are released and its routes and ports go (new visitors
    /// then get 404, or the configured route); only its ports when it was taken over meanwhile.
    async fn remove(&self, id: u64) {
        if let Err(error) = self.registry.release(id, None).await {
            tracing::warn!(%error, "agent's claims not released");
        }
        self.sink.gone(id, Gone::Ended);
        let removed = self
            .agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(agent) = removed {
            let name = Escaped(agent.name.as_str());
            tracing::info!(agent = %name, "agent's routes removed");
        }
    }
}

/// Opens a stream to `agent`'s service `service` on its session, once the agent says it has
/// reached it; why not, as the asking agent is told.
async fn open_service(
    session: &SessionHandle,
    agent: &str,
    service: &str,
) -> Result<session::OpenedStream, String> {
    let target = format!("agent:{agent}/{service}");
    let open = async {
        let mut stream = session.open().await.map_err(|e| match e {
            session::OpenError::Budget => format!("{target}: {e}"),
            session::OpenError::Session(e) => format!("{target}: agent session: {e}"),
        })?;
        let open = wire::Open::Service(service.to_string());
        crate::session::messages::ask(&mut stream, &open)
            .await
            .map_err(|(_, reason)| format!("{target}: {reason}"))?;
        Ok(stream)
    };
    match timeout(AGENT_CONNECT_TIMEOUT, open).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "connect {target}: timed out after {AGENT_CONNECT_TIMEOUT:?}"
        )),
    }
}
