//! A registration's claims: each service is put to the registry (`tunnel::registry`), which
//! grants or refuses it; a grant that takes over the same agent's stale session ends that
//! session, and each granted service goes to the gateway as an event, before the agent hears
//! its answer.

use super::{Agent, AgentHub};
use crate::{
    log_escape::Escaped,
    session::SessionHandle,
    tunnel::{
        events::{Gone, LiveService},
        registry::{ClaimError, ClaimRequest, Holder},
    },
    wire::{Control, Service},
};

/// Who is claiming: the agent's session id, token, name and session, and the host it reached
/// the gateway by.
pub(super) struct Claimant<'a> {
    pub(super) id: u64,
    pub(super) token: usize,
    pub(super) agent: &'a str,
    pub(super) session: &'a SessionHandle,
    /// The `Host` of the agent's upgrade, canonical: a name the gateway is reached by, which a
    /// host claim must not take.
    pub(super) reached_by: Option<&'a str>,
}

/// Why a service did not go live: the registry refused it, or the gateway could not make it
/// reachable.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Sink(#[from] crate::tunnel::events::SinkError),
}

/// The control message that answers a claim, logged.
fn answer(agent: &str, service: &Service, claimed: Result<String, Refusal>) -> Control {
    let name = service.name.clone();
    match claimed {
        Ok(url) => {
            let (agent, local) = (Escaped(agent), Escaped(&service.local));
            let (service, shown) = (Escaped(&name), Escaped(&url));
            tracing::info!(%agent, %service, url = %shown, %local, "agent service registered");
            Control::Registered { name, url }
        }
        Err(why) => {
            let why = why.to_string();
            let (agent, service) = (Escaped(agent), Escaped(&name));
            tracing::info!(%agent, %service, why = %Escaped(&why), "agent service refused");
            Control::Refused { name, why }
        }
    }
}

impl AgentHub {
    /// Registers services; one answer per service.
    pub(super) async fn register(
        &self,
        who: &Claimant<'_>,
        services: Vec<Service>,
        egress: Option<crate::secret::Secret>,
    ) -> Vec<Control> {
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(who.id)
            .or_insert_with(|| Agent {
                name: who.agent.to_string(),
                session: who.session.clone(),
                egress: None,
            })
            .egress = egress;
        let mut answers = Vec::with_capacity(services.len());
        for service in services {
            let claimed = self.claim_service(who, &service).await;
            answers.push(answer(who.agent, &service, claimed));
        }
        answers
    }

    /// Claims one service and makes it live; the URL visitors use, or why not.
    async fn claim_service(
        &self,
        who: &Claimant<'_>,
        service: &Service,
    ) -> Result<String, Refusal> {
        let holder = Holder {
            session: who.id,
            agent: who.agent.to_string(),
            token: who.token,
        };
        let request = ClaimRequest {
            holder,
            service: service.clone(),
            reached_by: who.reached_by.map(str::to_string),
        };
        let granted = self.registry.claim(&request).await?;
        for &stale in &granted.replaced {
            self.end_replaced(stale, who.agent);
        }
        let live = LiveService {
            session: who.id,
            agent: who.agent.to_string(),
            service: service.clone(),
            claimed: granted.claimed,
            handle: who.session.clone(),
        };
        if let Err(error) = self.sink.live(&live) {
            let _ = self.registry.release(who.id, Some(&service.name)).await;
            return Err(error.into());
        }
        Ok(granted.url)
    }

    /// Ends the same agent's stale session `stale`, whose routes a claim took over.
    fn end_replaced(&self, stale: u64, agent: &str) {
        let removed = self
            .agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&stale);
        if let Some(stale) = removed {
            let agent = Escaped(agent);
            tracing::info!(%agent, "agent reconnected: its previous session is replaced");
            let session = stale.session.clone();
            tokio::spawn(async move { session.close().await });
        }
        self.sink.gone(stale, Gone::Replaced);
    }
}
