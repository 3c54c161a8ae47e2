//! The claims of one gateway, in memory: each claim held to the gateway's host and path rules
//! (`matching::claim_rules`), its token's limits and the per-agent cap; refused when someone
//! else holds it (or, for routes, nests with it) naming the holder, or when it would take what a
//! configured route answers or a name the gateway is reached by. The same agent (name and
//! token) reconnecting takes its own stale claims over.

mod rules;

use std::{collections::HashMap, net::SocketAddr, sync::Mutex};

use tokio::sync::broadcast;

use super::{
    Change, Claim, ClaimError, ClaimRequest, Claimed, GatewayRule, Granted, Holder, Pending,
    PrivateClaim, Registry,
};
use crate::{
    config::AgentSettings,
    matching::{HostPattern, claim_rules::Nesting},
    wire::{Expose, Service},
};
use rules::Rules;

/// Services one agent session may hold: each is a route in the shared table (rebuilt and sorted
/// on every registration), so one agent must not grow it without bound.
const MAX_SERVICES_PER_AGENT: usize = 64;

/// Changes a slow watcher may lag behind before it misses some.
const CHANGE_BACKLOG: usize = 1024;

/// A configured route as claims see it: what it matches, and its name for refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredRoute {
    /// Its name.
    pub name: String,
    /// Its host, if any.
    pub host: Option<HostPattern>,
    /// Its path prefix.
    pub path: String,
}

/// The in-memory registry.
#[derive(Debug)]
pub struct Memory {
    rules: Rules,
    state: Mutex<State>,
    changes: broadcast::Sender<Change>,
}

/// Who holds what.
#[derive(Debug, Default)]
struct State {
    /// Each session's routes and private services; a session is here from its first grant
    /// (a port's too) until it is released or taken over, which is what `renew` asks.
    sessions: HashMap<u64, Held>,
    /// Gateway ports, by number: their holder and service.
    ports: HashMap<u16, (Holder, String)>,
}

/// One session's routes and private services.
#[derive(Debug)]
struct Held {
    holder: Holder,
    routes: Vec<HeldRoute>,
    private: Vec<PrivateClaim>,
}

/// A route held: which service, and what it matches.
#[derive(Debug, Clone)]
struct HeldRoute {
    service: String,
    host: Option<HostPattern>,
    path: String,
}

impl Memory {
    /// Claims under `settings`' zones, limits and ports, kept off `configured` routes and off
    /// `certificate_names` (the gateway's TLS certificate's).
    pub fn new(
        settings: &AgentSettings,
        certificate_names: Vec<String>,
        configured: Vec<ConfiguredRoute>,
    ) -> Self {
        Memory {
            rules: Rules {
                hosts: settings.hosts.clone(),
                paths: settings.paths.clone(),
                gateway_names: settings.gateway_names.clone(),
                certificate_names,
                limits: settings.limits.clone(),
                remote_ports: settings.remote_ports.clone(),
                remote_bind: settings.remote_bind,
                configured,
            },
            state: Mutex::default(),
            changes: broadcast::channel(CHANGE_BACKLOG).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce(&self, change: Change) {
        // No watcher is fine: the claim stands either way.
        let _ = self.changes.send(change);
    }

    /// Decides one claim and records it.
    fn decide(&self, request: &ClaimRequest) -> Result<Granted, ClaimError> {
        let (who, service) = (&request.holder, &request.service);
        crate::wire::names::check("service", &service.name).map_err(|reason| {
            let name = service.name.clone();
            ClaimError::Name { name, reason }
        })?;
        let mut state = self.state();
        let held = state
            .sessions
            .get(&who.session)
            .map_or(0, |h| h.routes.len() + h.private.len());
        if held >= MAX_SERVICES_PER_AGENT {
            return Err(ClaimError::TooMany(MAX_SERVICES_PER_AGENT));
        }
        self.rules.allow(request)?;
        let granted = match &service.expose {
            Expose::Private(secret) => {
                claim_private(&mut state, who, service, secret.clone())?;
                Granted {
                    claimed: Claimed::Private,
                    url: "private".into(),
                    replaced: Vec::new(),
                }
            }
            Expose::Port(port) => self.claim_port(&mut state, *port, who, service)?,
            Expose::Path(_) | Expose::Host(_) => self.claim_route(&mut state, who, service)?,
        };
        drop(state);
        for &session in &granted.replaced {
            let by = who.session;
            self.announce(Change::Replaced { session, by });
        }
        self.announce(Change::Claimed {
            holder: who.clone(),
            service: service.name.clone(),
            claimed: granted.claimed.clone(),
        });
        Ok(granted)
    }

    /// A gateway port for a `tcp://` service: within `[agents] remote_ports`, not another
    /// agent's, handed over when the same agent held it in an earlier session.
    fn claim_port(
        &self,
        state: &mut State,
        port: u16,
        who: &Holder,
        service: &Service,
    ) -> Result<Granted, ClaimError> {
        let refuse = |rule: GatewayRule| Err(ClaimError::Gateway(rule));
        if !service.local.starts_with("tcp://") {
            return refuse(GatewayRule::PortNeedsTcp(port));
        }
        let Some(allowed) = &self.rules.remote_ports else {
            return refuse(GatewayRule::NoPorts(port));
        };
        if !allowed.contains(&port) {
            let allowed = allowed.clone();
            return refuse(GatewayRule::PortOutside { port, allowed });
        }
        let mut previous = None;
        if let Some((current, held)) = state.ports.get(&port) {
            previous = Some(current.session).filter(|&s| s != who.session);
            if current.agent != who.agent || current.token != who.token {
                return Err(ClaimError::Held {
                    what: Claim::Port(port),
                    holder: current.clone(),
                    held: Box::new(Claim::Port(port)),
                    relation: Nesting::Same,
                });
            }
            if current.session == who.session && *held != service.name {
                let service = held.clone();
                return Err(ClaimError::PortInUse { port, service });
            }
        }
        state
            .ports
            .insert(port, (who.clone(), service.name.clone()));
        held_by(state, who);
        if let Some(stale) = previous {
            forget_if_empty(state, stale);
        }
        let addr = SocketAddr::new(self.rules.remote_bind, port);
        Ok(Granted {
            claimed: Claimed::Port(port),
            url: format!("tcp://{addr}"),
            replaced: Vec::new(),
        })
    }

    /// A route, unless a configured route answers its requests or it matches, or nests inside
    /// or around, another agent's route; the same agent's stale sessions holding one are
    /// replaced (their routes and private services go with them).
    fn claim_route(
        &self,
        state: &mut State,
        who: &Holder,
        service: &Service,
    ) -> Result<Granted, ClaimError> {
        let claim = rules::route_match(service)?;
        rules::check_local(service)?;
        self.rules.check_configured(&claim)?;
        let held = state.sessions.values();
        let replaced =
            rules::stale_sessions(held.map(|h| (&h.holder, &h.routes[..])), who, &claim)?;
        for stale in &replaced {
            state.sessions.remove(stale);
        }
        let url = claim.describe();
        let claimed = Claimed::Route {
            host: claim.host.clone(),
            path: claim.path.clone(),
        };
        let held = held_by(state, who);
        held.routes
            .retain(|r| !(r.host == claim.host && r.path == claim.path));
        held.routes.push(claim);
        Ok(Granted {
            claimed,
            url,
            replaced,
        })
    }
}

/// The record of `who`'s session, made on its first claim.
fn held_by<'s>(state: &'s mut State, who: &Holder) -> &'s mut Held {
    state.sessions.entry(who.session).or_insert_with(|| Held {
        holder: who.clone(),
        routes: Vec::new(),
        private: Vec::new(),
    })
}

/// Forgets `session` when a takeover left it holding nothing: it renews no more.
fn forget_if_empty(state: &mut State, session: u64) {
    let holds_port = state.ports.values().any(|(h, _)| h.session == session);
    let empty = state
        .sessions
        .get(&session)
        .is_some_and(|h| h.routes.is_empty() && h.private.is_empty());
    if empty && !holds_port {
        state.sessions.remove(&session);
    }
}

/// A private service for `who`; its name is unique among private services, except that the
/// same agent (name and token) reconnecting takes its own over.
fn claim_private(
    state: &mut State,
    who: &Holder,
    service: &Service,
    secret: crate::secret::Secret,
) -> Result<(), ClaimError> {
    let mut taken = Vec::new();
    let others = state
        .sessions
        .iter_mut()
        .filter(|(other, _)| **other != who.session);
    for (other, held) in others {
        if held.private.iter().any(|p| p.name == service.name) {
            if held.holder.agent != who.agent || held.holder.token != who.token {
                let what = Claim::Private(service.name.clone());
                return Err(ClaimError::Held {
                    held: Box::new(what.clone()),
                    what,
                    holder: held.holder.clone(),
                    relation: Nesting::Same,
                });
            }
            held.private.retain(|p| p.name != service.name);
            taken.push(*other);
        }
    }
    for other in taken {
        forget_if_empty(state, other);
    }
    let held = held_by(state, who);
    held.private.retain(|p| p.name != service.name);
    held.private.push(PrivateClaim {
        name: service.name.clone(),
        secret,
    });
    Ok(())
}

impl Registry for Memory {
    fn claim<'a>(&'a self, request: &'a ClaimRequest) -> Pending<'a, Granted> {
        Box::pin(std::future::ready(self.decide(request)))
    }

    fn release<'a>(&'a self, session: u64, service: Option<&'a str>) -> Pending<'a, ()> {
        let mut state = self.state();
        let mine = |name: &str| service.is_none_or(|s| s == name);
        state
            .ports
            .retain(|_, (holder, name)| holder.session != session || !mine(name));
        if let Some(held) = state.sessions.get_mut(&session) {
            held.routes.retain(|r| !mine(&r.service));
            held.private.retain(|p| !mine(&p.name));
            if service.is_none() {
                state.sessions.remove(&session);
            }
        }
        drop(state);
        let service = service.map(str::to_string);
        self.announce(Change::Released { session, service });
        Box::pin(std::future::ready(Ok(())))
    }

    fn renew(&self, session: u64) -> Pending<'_, ()> {
        let held = self.state().sessions.contains_key(&session);
        let renewed = if held {
            Ok(())
        } else {
            Err(ClaimError::NotHeld(session))
        };
        Box::pin(std::future::ready(renewed))
    }

    fn lookup_private<'a>(&'a self, name: &'a str, secret: &'a str) -> Pending<'a, Option<Holder>> {
        let state = self.state();
        let found = state
            .sessions
            .values()
            .find(|held| {
                held.private
                    .iter()
                    .any(|p| p.name == name && p.secret.matches(secret))
            })
            .map(|held| held.holder.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests;
