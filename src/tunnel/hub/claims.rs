//! What an agent's registration claims: routes (by path or host), gateway ports and private
//! services, each refused when someone else holds it, and the route each service becomes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{AGENT_BRIDGE_MAX_MESSAGE, AGENT_CONNECT_TIMEOUT, Agent, AgentHub, Private};
use crate::{
    connector::{
        AgentConnector, Connector, DialOptions,
        tls::{TlsDial, Verify},
    },
    handler::{
        BridgeRoute, Handler, ProxyRoute,
        proxy::{HeaderPolicy, Mode as ProxyMode, Policy, UpstreamServer, UpstreamUrl, Upstreams},
    },
    log_escape::Escaped,
    router::{HostPattern, Route, normalize_prefix, strip_prefix},
    tunnel::{
        session::SessionHandle,
        wire::{Control, Expose, Service},
    },
};

/// Who is claiming: the agent's session id, token, name and session.
struct Claimant<'a> {
    id: u64,
    token: usize,
    agent: &'a str,
    session: &'a SessionHandle,
}

/// The control message that answers a claim, logged.
fn answer(agent: &str, service: &Service, claimed: Result<String, String>) -> Control {
    let name = service.name.clone();
    match claimed {
        Ok(url) => {
            let (agent, local) = (Escaped(agent), Escaped(&service.local));
            let (service, shown) = (Escaped(&name), Escaped(&url));
            tracing::info!(%agent, %service, url = %shown, %local, "agent service registered");
            Control::Registered { name, url }
        }
        Err(why) => {
            let (agent, service) = (Escaped(agent), Escaped(&name));
            tracing::info!(%agent, %service, why = %Escaped(&why), "agent service refused");
            Control::Refused { name, why }
        }
    }
}

/// Services one agent session may hold: each is a route in the shared table (rebuilt and sorted
/// on every registration), so one agent must not grow it without bound.
const MAX_SERVICES_PER_AGENT: usize = 64;

impl AgentHub {
    /// Registers services; one answer per service.
    pub(super) fn register(
        &self,
        id: u64,
        token: usize,
        agent: &str,
        session: &SessionHandle,
        services: Vec<Service>,
        egress: Option<crate::config::Secret>,
    ) -> Vec<Control> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents
            .entry(id)
            .or_insert_with(|| Agent {
                name: agent.to_string(),
                token,
                session: session.clone(),
                routes: Vec::new(),
                private: Vec::new(),
                egress: None,
            })
            .egress = egress;
        let claimant = Claimant {
            id,
            token,
            agent,
            session,
        };
        let answers = services
            .iter()
            .map(|service| {
                let claimed = self.claim_service(&mut agents, &claimant, service);
                answer(agent, service, claimed)
            })
            .collect();
        let all = agents
            .values()
            .flat_map(|a| a.routes.iter().cloned())
            .collect();
        self.router.set_added(all);
        answers
    }

    /// Claims one service: within the token's limits and the per-agent cap, as a private
    /// service, a gateway port or a route. The URL visitors use, or why not.
    fn claim_service(
        &self,
        agents: &mut HashMap<u64, Agent>,
        who: &Claimant<'_>,
        service: &Service,
    ) -> Result<String, String> {
        crate::tunnel::names::check("service", &service.name)?;
        let held = agents
            .get(&who.id)
            .map_or(0, |a| a.routes.len() + a.private.len());
        if held >= MAX_SERVICES_PER_AGENT {
            return Err(format!(
                "an agent registers at most {MAX_SERVICES_PER_AGENT} services"
            ));
        }
        let limits = self
            .settings
            .limits
            .get(who.token)
            .cloned()
            .unwrap_or_default();
        limits.allow(service)?;
        match &service.expose {
            Expose::Private(secret) => {
                claim_private(agents, who, service, secret).map(|()| "private".to_string())
            }
            Expose::Port(port) => {
                self.claim_port(*port, who.id, who.agent, who.token, who.session, service)
            }
            Expose::Path(_) | Expose::Host(_) => {
                let route = build_route(who.agent, who.session, service)?;
                self.claim(agents, who.id, who.agent, who.token, route)
            }
        }
    }

    /// Opens a gateway port for a `tcp://` service.
    fn claim_port(
        &self,
        port: u16,
        id: u64,
        agent: &str,
        token: usize,
        session: &SessionHandle,
        service: &Service,
    ) -> Result<String, String> {
        if !service.local.starts_with("tcp://") {
            return Err("only tcp:// services can have a remote port".into());
        }
        let connector = AgentConnector {
            agent: agent.to_string(),
            service: service.name.clone(),
            session: session.clone(),
            connect_timeout: AGENT_CONNECT_TIMEOUT,
        };
        self.ports.claim(port, id, agent, token, connector)
    }

    /// Adds `route` to agent `id` unless a configured route or another agent holds its match;
    /// the same agent (name and token) reconnecting takes over its own stale registration.
    fn claim(
        &self,
        agents: &mut HashMap<u64, Agent>,
        id: u64,
        agent: &str,
        token: usize,
        route: Route,
    ) -> Result<String, String> {
        if let Some(configured) = self.router.configured().iter().find(|r| shadows(&route, r)) {
            return Err(format!(
                "{} would take requests from the configured route {:?}",
                describe_match(&route),
                configured.name
            ));
        }
        let holder = agents.iter().find_map(|(other, held)| {
            let conflict = held.routes.iter().any(|r| r.same_match(&route));
            (conflict && *other != id).then(|| (*other, held.name.clone(), held.token))
        });
        if let Some((other, holder, holder_token)) = holder {
            if holder != agent || holder_token != token {
                return Err(format!(
                    "{} is held by agent {holder:?}",
                    describe_match(&route)
                ));
            }
            // Our own stale session: take its routes over and end it.
            if let Some(stale) = agents.remove(&other) {
                let agent = Escaped(agent);
                tracing::info!(%agent, "agent reconnected: its previous session is replaced");
                let session = stale.session.clone();
                tokio::spawn(async move { session.close().await });
            }
        }
        let url = describe_match(&route);
        let entry = agents.get_mut(&id).expect("registered above");
        entry.routes.retain(|r| !r.same_match(&route));
        entry.routes.push(Arc::new(route));
        Ok(url)
    }
}

/// Whether an agent's `route` would take requests that the configured route `configured`
/// answers: the same match; a host the configured route names (a host route outranks any
/// host-less one); or a path at or under a configured prefix other than the `/` catch-all.
fn shadows(route: &Route, configured: &Route) -> bool {
    if route.same_match(configured) {
        return route.handler.overlaps(&configured.handler);
    }
    match (&route.host, &configured.host) {
        (Some(claimed), Some(named)) => {
            let probe = claimed.to_string().replace('*', "x");
            named.matches(&probe) || claimed.matches(&named.to_string().replace('*', "x"))
        }
        (None, None) => {
            configured.path != "/" && strip_prefix(&configured.path, &route.path).is_some()
        }
        _ => false,
    }
}

fn describe_match(route: &Route) -> String {
    match &route.host {
        Some(host) if route.path == "/" => host.to_string(),
        Some(host) => format!("{host}{}", route.path),
        None => route.path.clone(),
    }
}

/// Records a private service for agent `id`; its name is unique among private services, except
/// that the same agent (name and token) reconnecting takes its own over.
fn claim_private(
    agents: &mut HashMap<u64, Agent>,
    who: &Claimant<'_>,
    service: &Service,
    secret: &crate::config::Secret,
) -> Result<(), String> {
    let (id, agent, token, session) = (who.id, who.agent, who.token, who.session);
    for (other, held) in agents.iter_mut().filter(|(other, _)| **other != id) {
        if held.private.iter().any(|p| p.name == service.name) {
            if held.name != agent || held.token != token {
                return Err(format!(
                    "private service {:?} is held by agent {:?} (agent {other})",
                    service.name, held.name
                ));
            }
            held.private.retain(|p| p.name != service.name);
        }
    }
    let connector = AgentConnector {
        agent: agent.to_string(),
        service: service.name.clone(),
        session: session.clone(),
        connect_timeout: AGENT_CONNECT_TIMEOUT,
    };
    let entry = agents.get_mut(&id).expect("registered by the caller");
    entry.private.retain(|p| p.name != service.name);
    entry.private.push(Private {
        name: service.name.clone(),
        secret: secret.clone(),
        connector,
    });
    Ok(())
}

/// The route a service becomes: a proxy route for `http://`, a bridge route for `tcp://`, both
/// reaching the service through the agent's session.
fn build_route(agent: &str, session: &SessionHandle, service: &Service) -> Result<Route, String> {
    let connector = AgentConnector {
        agent: agent.to_string(),
        service: service.name.clone(),
        session: session.clone(),
        connect_timeout: AGENT_CONNECT_TIMEOUT,
    };
    let (host, path) = match &service.expose {
        Expose::Path(path) => (None, normalize_prefix(path)?),
        Expose::Host(host) => (Some(HostPattern::parse(host)?), "/".to_string()),
        Expose::Port(port) => return Err(format!("port {port} is a listener, not a route")),
        Expose::Private(_) => return Err("a private service is not a route".into()),
    };
    let handler = if service.local.starts_with("tcp://") {
        Handler::Bridge(BridgeRoute {
            target: None,
            tokens: None,
            dial: DialOptions::default(),
            idle_timeout: None,
            heartbeat: None,
            max_message_bytes: AGENT_BRIDGE_MAX_MESSAGE,
            agent: Some(connector),
        })
    } else {
        let url: UpstreamUrl = service.local.parse()?;
        // An https:// local is spoken to over TLS from here, through the tunnel. Local
        // services mostly carry self-signed certificates and the agent's token already vouches
        // for the far end, so the certificate is not checked.
        let tls = url
            .tls
            .then(|| TlsDial::new(&url.host, &Verify::Insecure))
            .transpose()
            .map_err(|e| e.to_string())?;
        let server = UpstreamServer::new(url, Connector::Agent(connector), tls);
        Handler::Proxy(ProxyRoute {
            upstreams: Upstreams::new(vec![Arc::new(server)], Policy::RoundRobin, Duration::ZERO),
            mode: ProxyMode::Splice,
            headers: HeaderPolicy {
                preserve_host: true,
                ..HeaderPolicy::default()
            },
            response_timeout: Duration::from_secs(60),
            idle_timeout: None,
            max_message_bytes: AGENT_BRIDGE_MAX_MESSAGE,
        })
    };
    Ok(Route {
        name: format!("agent:{agent}/{}", service.name),
        host,
        path,
        handler,
    })
}
