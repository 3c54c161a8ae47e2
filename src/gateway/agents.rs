//! Agents' services made live: the hub's events become routes in the router (through the same
//! assembler as configured routes) and gateway ports, and leave again with their session.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{assemble, ports::Ports};
use crate::{
    config::{
        route::{BridgeSpec, BridgeTarget, ProxySpec, RouteKind, RouteSpec, UpstreamSpec},
        target::Verify,
    },
    connector::AgentConnector,
    matching::HostPattern,
    router::{Route, Router},
    tunnel::{
        events::{AGENT_CONNECT_TIMEOUT, Gone, LiveService, ServiceSink, SinkError},
        registry::Claimed,
    },
};

/// The routes and ports of agents' services.
#[derive(Debug)]
pub(crate) struct AgentRoutes {
    router: Arc<Router>,
    ports: Ports,
    /// Each session's routes, in the order claimed.
    routes: Mutex<HashMap<u64, Vec<Arc<Route>>>>,
}

impl AgentRoutes {
    /// Routes added to `router`, ports opened by `ports`.
    pub fn new(router: Arc<Router>, ports: Ports) -> Self {
        AgentRoutes {
            router,
            ports,
            routes: Mutex::default(),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Arc<Route>>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps every agent's routes into the router.
    fn publish(&self, routes: &HashMap<u64, Vec<Arc<Route>>>) {
        let all = routes.values().flat_map(|r| r.iter().cloned()).collect();
        self.router.set_added(all);
    }
}

impl ServiceSink for AgentRoutes {
    fn live(&self, live: &LiveService) -> Result<(), SinkError> {
        let connector = AgentConnector {
            agent: live.agent.clone(),
            service: live.service.name.clone(),
            session: live.handle.clone(),
            connect_timeout: AGENT_CONNECT_TIMEOUT,
        };
        let (host, path) = match &live.claimed {
            Claimed::Route { host, path } => (host.clone(), path.clone()),
            Claimed::Port(port) => return self.ports.open(*port, live.session, connector),
            Claimed::Private => return Ok(()),
        };
        let spec = agent_route(live, host, path)?;
        let route = assemble::route(&spec, Some(&connector))
            .map_err(|error| SinkError::Route(error.message))?;
        let mut routes = self.routes();
        let held = routes.entry(live.session).or_default();
        held.retain(|r| !r.same_match(&route));
        held.push(Arc::new(route));
        self.publish(&routes);
        Ok(())
    }

    fn gone(&self, session: u64, gone: Gone) {
        let mut routes = self.routes();
        if routes.remove(&session).is_some() {
            self.publish(&routes);
        }
        drop(routes);
        if gone == Gone::Ended {
            self.ports.release(session);
        }
    }
}

/// The route a service becomes: a bridge for `tcp://`, a proxy for `http://` and `https://`,
/// both reaching it through the agent's session, every other setting at the routes' defaults.
fn agent_route(
    live: &LiveService,
    host: Option<HostPattern>,
    path: String,
) -> Result<RouteSpec, SinkError> {
    let local = &live.service.local;
    let kind = if local.starts_with("tcp://") {
        RouteKind::Bridge(BridgeSpec::new(BridgeTarget::Agent))
    } else {
        let url = local.parse().map_err(SinkError::Route)?;
        let mut proxy = ProxySpec::new(vec![UpstreamSpec { url, at: None }]);
        proxy.via_agent = true;
        // An https:// local is spoken to over TLS from here, through the tunnel. Local
        // services mostly carry self-signed certificates and the agent's token already vouches
        // for the far end, so the certificate is not checked.
        proxy.verify = Verify::Insecure;
        // One upstream: nothing to try first instead of it.
        proxy.fail_timeout = Duration::ZERO;
        RouteKind::Proxy(proxy)
    };
    Ok(RouteSpec {
        name: format!("agent:{}/{}", live.agent, live.service.name),
        host,
        path,
        kind,
        at: None,
    })
}
