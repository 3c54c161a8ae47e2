//! What an agent's registration claims: routes (by path or host), gateway ports and private
//! services, each refused when someone else holds it (or, for routes, nests with it), when it
//! would take what a configured route answers or a name the gateway is reached by, or when it
//! breaks the host or path rules of `claim_rules`; and the route each service becomes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{AGENT_BRIDGE_MAX_MESSAGE, AGENT_CONNECT_TIMEOUT, Agent, AgentHub, Private};
use crate::{
    connector::{
        AgentConnector, Connector,
        tls::{TlsDial, Verify},
    },
    handler::{
        BridgeRoute, Handler, ProxyRoute,
        bridge::BridgeTarget,
        proxy::{HeaderPolicy, Mode as ProxyMode, Policy, UpstreamServer, UpstreamUrl, Upstreams},
    },
    log_escape::Escaped,
    router::{HostPattern, Route, normalize_prefix},
    tunnel::{
        claim_rules::{
            ConfiguredPath, NO_HOST_CLAIMS, Nesting, canonical_host, check_path, covers,
            host_nesting, path_nesting,
        },
        session::SessionHandle,
        wire::{Control, Expose, Service},
    },
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
        who: &Claimant<'_>,
        services: Vec<Service>,
        egress: Option<crate::config::Secret>,
    ) -> Vec<Control> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents
            .entry(who.id)
            .or_insert_with(|| Agent {
                name: who.agent.to_string(),
                token: who.token,
                session: who.session.clone(),
                routes: Vec::new(),
                private: Vec::new(),
                egress: None,
            })
            .egress = egress;
        let answers = services
            .iter()
            .map(|service| {
                let claimed = self.claim_service(&mut agents, who, service);
                answer(who.agent, service, claimed)
            })
            .collect();
        let all = agents
            .values()
            .flat_map(|a| a.routes.iter().cloned())
            .collect();
        self.router.set_added(all);
        answers
    }

    /// Claims one service: within the gateway's host rules, the token's limits and the
    /// per-agent cap, as a private service, a gateway port or a route. The URL visitors use,
    /// or why not.
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
        match &service.expose {
            Expose::Host(host) => self.allow_host(host, who)?,
            Expose::Path(path) => self.allow_path(path)?,
            Expose::Port(_) | Expose::Private(_) => {}
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
            Expose::Port(port) => self.claim_port(*port, who, service),
            Expose::Path(_) | Expose::Host(_) => {
                let route = build_route(who.agent, who.session, service)?;
                self.claim(agents, who, route)
            }
        }
    }

    /// The gateway's rules for a host, before any token's: a host name (never an IP literal or
    /// localhost) under `[agents] hosts`, and not the name the agent reached the gateway by.
    fn allow_host(&self, host: &str, who: &Claimant<'_>) -> Result<(), String> {
        let claim = canonical_host(host).map_err(|refusal| refusal.to_string())?;
        let zone = &self.settings.hosts;
        if zone.is_empty() {
            return Err(NO_HOST_CLAIMS.into());
        }
        if !zone.iter().any(|pattern| covers(pattern, &claim)) {
            let allowed: Vec<String> = zone.iter().map(ToString::to_string).collect();
            return Err(format!(
                "host {claim} is not under this gateway's [agents] hosts ({})",
                allowed.join(", ")
            ));
        }
        if let Some(reached) = who.reached_by.filter(|name| claim.matches(name)) {
            return Err(format!(
                "host {claim} would take {reached}, the name this agent reached the gateway by"
            ));
        }
        let own_names = [
            (
                &self.certificate_names,
                "a name on the gateway's TLS certificate",
            ),
            (
                &self.settings.gateway_names,
                "the gateway's own name ([agents] gateway_names)",
            ),
        ];
        for (names, what) in own_names {
            if let Some(name) = names.iter().find(|name| claim.matches(name)) {
                return Err(own_name(&claim, name, what));
            }
        }
        Ok(())
    }

    /// The gateway's rules for a path, before any token's (`claim_rules::check_path`): within
    /// `[agents] paths` when set, and off every configured route not carved into a zone.
    fn allow_path(&self, path: &str) -> Result<(), String> {
        let claim = normalize_prefix(path)?;
        let configured: Vec<ConfiguredPath<'_>> = self
            .router
            .configured()
            .iter()
            .filter(|route| route.host.is_none())
            .map(|route| ConfiguredPath {
                name: &route.name,
                prefix: &route.path,
            })
            .collect();
        check_path(&claim, self.settings.paths.as_deref(), &configured)
            .map_err(|refusal| refusal.to_string())
    }

    /// Opens a gateway port for a `tcp://` service.
    fn claim_port(
        &self,
        port: u16,
        who: &Claimant<'_>,
        service: &Service,
    ) -> Result<String, String> {
        if !service.local.starts_with("tcp://") {
            return Err("only tcp:// services can have a remote port".into());
        }
        let connector = AgentConnector {
            agent: who.agent.to_string(),
            service: service.name.clone(),
            session: who.session.clone(),
            connect_timeout: AGENT_CONNECT_TIMEOUT,
        };
        self.ports
            .claim(port, who.id, who.agent, who.token, connector)
    }

    /// Adds `route` to agent `who.id` unless a configured route answers its requests or it
    /// matches, or nests inside or around, another agent's route; the same agent (name and
    /// token) reconnecting takes over its own stale registration.
    fn claim(
        &self,
        agents: &mut HashMap<u64, Agent>,
        who: &Claimant<'_>,
        route: Route,
    ) -> Result<String, String> {
        if let Some(configured) = self.router.configured().iter().find(|r| shadows(&route, r)) {
            return Err(format!(
                "{} would take requests from the configured route {:?}",
                describe_match(&route),
                configured.name
            ));
        }
        for other in stale_sessions(agents, who, &route)? {
            // Our own stale session: take its routes over and end it.
            if let Some(stale) = agents.remove(&other) {
                let agent = Escaped(who.agent);
                tracing::info!(%agent, "agent reconnected: its previous session is replaced");
                let session = stale.session.clone();
                tokio::spawn(async move { session.close().await });
            }
        }
        let url = describe_match(&route);
        let entry = agents.get_mut(&who.id).expect("registered above");
        entry.routes.retain(|r| !r.same_match(&route));
        entry.routes.push(Arc::new(route));
        Ok(url)
    }
}

/// The other sessions holding a route that `route` matches or nests with: why not, naming the
/// holder, when one is another agent's; else the same agent's stale sessions, to replace.
/// Claims of one session may nest: they are one agent's own space.
fn stale_sessions(
    agents: &HashMap<u64, Agent>,
    who: &Claimant<'_>,
    route: &Route,
) -> Result<Vec<u64>, String> {
    let mut stale = Vec::new();
    for (other, held) in agents.iter().filter(|(other, _)| **other != who.id) {
        let found = held
            .routes
            .iter()
            .find_map(|theirs| route_nesting(route, theirs).map(|nesting| (theirs, nesting)));
        let Some((theirs, nesting)) = found else {
            continue;
        };
        if held.name != who.agent || held.token != who.token {
            return Err(conflict(route, theirs, nesting, &held.name));
        }
        stale.push(*other);
    }
    Ok(stale)
}

/// How an agent's claim lies against another agent's route: hosts against hosts (a host route
/// owns every path on its host), paths against paths.
fn route_nesting(claim: &Route, held: &Route) -> Option<Nesting> {
    match (&claim.host, &held.host) {
        (Some(ours), Some(theirs)) => host_nesting(ours, theirs),
        (None, None) => path_nesting(&claim.path, &held.path),
        _ => None,
    }
}

/// Why a claim that matches or nests with another agent's route is refused.
fn conflict(route: &Route, theirs: &Route, nesting: Nesting, holder: &str) -> String {
    let (ours, theirs) = (describe_match(route), describe_match(theirs));
    match nesting {
        Nesting::Same => format!("{ours} is held by agent {holder:?}"),
        Nesting::Inside => format!("{ours} nests inside {theirs}, held by agent {holder:?}"),
        Nesting::Around => format!("{ours} nests around {theirs}, held by agent {holder:?}"),
    }
}

/// Whether an agent's host `route` would take requests that the configured route
/// `configured` answers: a host overlapping one it names (a host route outranks any host-less
/// one). Path claims are held to the path rules before this (`AgentHub::allow_path`).
fn shadows(route: &Route, configured: &Route) -> bool {
    match (&route.host, &configured.host) {
        (Some(claimed), Some(named)) => host_nesting(claimed, named).is_some(),
        _ => false,
    }
}

/// Why a host claim equal to, or a wildcard covering, one of the gateway's own names is
/// refused; `what` says where the name comes from.
fn own_name(claim: &HostPattern, name: &str, what: &str) -> String {
    match claim {
        HostPattern::Exact(_) => format!("host {claim} is {what}"),
        HostPattern::Wildcard(_) => format!("host {claim} covers {name}, {what}"),
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
        Expose::Host(host) => (
            Some(canonical_host(host).map_err(|refusal| refusal.to_string())?),
            "/".to_string(),
        ),
        Expose::Port(port) => return Err(format!("port {port} is a listener, not a route")),
        Expose::Private(_) => return Err("a private service is not a route".into()),
    };
    let handler = if service.local.starts_with("tcp://") {
        let target = BridgeTarget::Fixed(Connector::Agent(connector));
        Handler::Bridge(BridgeRoute::new(target, AGENT_BRIDGE_MAX_MESSAGE))
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
        let server = UpstreamServer::new(url, Connector::Agent(connector).with_tls(tls));
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
