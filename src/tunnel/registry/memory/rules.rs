//! The gateway's rules for one claim, before anyone else's claims are looked at: hosts under
//! `[agents] hosts` and off the gateway's own names, paths within `[agents] paths` and off the
//! configured routes, the token's limits; and how a route claim lies against the routes held.

use std::{net::IpAddr, ops::RangeInclusive};

use super::{ConfiguredRoute, HeldRoute};
use crate::{
    config::{token_limits::TokenLimits, upstream_url::UpstreamUrl},
    matching::{
        HostPattern,
        claim_rules::{
            ConfiguredPath, Nesting, canonical_host, check_path, covers, host_nesting, path_nesting,
        },
        normalize_prefix,
    },
    tunnel::registry::{Claim, ClaimError, ClaimRequest, GatewayRule, Holder, OwnName},
    wire::{Expose, Service},
};

/// What the gateway's config says about claims.
#[derive(Debug)]
pub(super) struct Rules {
    /// `[agents] hosts`: the zone host claims must fall under.
    pub(super) hosts: Vec<HostPattern>,
    /// `[agents] paths`: the zones path claims must fall under, when set.
    pub(super) paths: Option<Vec<String>>,
    /// `[agents] gateway_names`: no host claim may take them.
    pub(super) gateway_names: Vec<String>,
    /// The names on the gateway's TLS certificate, likewise.
    pub(super) certificate_names: Vec<String>,
    /// Each token's limits (same index as the tokens).
    pub(super) limits: Vec<TokenLimits>,
    /// `[agents] remote_ports`.
    pub(super) remote_ports: Option<RangeInclusive<u16>>,
    /// The address those ports listen on.
    pub(super) remote_bind: IpAddr,
    /// The configured routes, which claims keep off.
    pub(super) configured: Vec<ConfiguredRoute>,
}

impl Rules {
    /// The gateway's host or path rules, then the token's limits.
    pub(super) fn allow(&self, request: &ClaimRequest) -> Result<(), ClaimError> {
        let service = &request.service;
        match &service.expose {
            Expose::Host(host) => self.allow_host(host, request.reached_by.as_deref())?,
            Expose::Path(path) => self.allow_path(path)?,
            Expose::Port(_) | Expose::Private(_) => {}
        }
        let limits = self.limits.get(request.holder.token).cloned();
        Ok(limits.unwrap_or_default().allow(service)?)
    }

    /// A host name (never an IP literal or localhost) under `[agents] hosts`, and not the name
    /// the agent reached the gateway by nor one of the gateway's own.
    fn allow_host(&self, host: &str, reached_by: Option<&str>) -> Result<(), ClaimError> {
        let host = canonical_host(host)?;
        let refuse = |rule: GatewayRule| Err(ClaimError::Gateway(rule));
        if self.hosts.is_empty() {
            return refuse(GatewayRule::NoHostZone(host));
        }
        if !self.hosts.iter().any(|pattern| covers(pattern, &host)) {
            let zones = self.hosts.clone();
            return refuse(GatewayRule::HostOutside { host, zones });
        }
        if let Some(reached) = reached_by.filter(|name| host.matches(name)) {
            let name = reached.to_string();
            return refuse(GatewayRule::ReachedBy { host, name });
        }
        let own_names = [
            (&self.certificate_names, OwnName::Certificate),
            (&self.gateway_names, OwnName::GatewayNames),
        ];
        for (names, of) in own_names {
            if let Some(name) = names.iter().find(|name| host.matches(name)) {
                let name = name.clone();
                return refuse(GatewayRule::OwnName { host, name, of });
            }
        }
        Ok(())
    }

    /// Within `[agents] paths` when set, and off every configured route not carved into a
    /// zone (`matching::claim_rules::check_path`).
    fn allow_path(&self, path: &str) -> Result<(), ClaimError> {
        let claim = normalize_prefix(path).map_err(|reason| bad_path(path, reason))?;
        let configured: Vec<ConfiguredPath<'_>> = self
            .configured
            .iter()
            .filter(|route| route.host.is_none())
            .map(|route| ConfiguredPath {
                name: &route.name,
                prefix: &route.path,
            })
            .collect();
        check_path(&claim, self.paths.as_deref(), &configured)
            .map_err(|refusal| ClaimError::Gateway(refusal.into()))
    }

    /// A host claim overlapping a host a configured route names would take its requests (a
    /// host route outranks any host-less one). Path claims were held to the path rules.
    pub(super) fn check_configured(&self, claim: &HeldRoute) -> Result<(), ClaimError> {
        let Some(claimed) = &claim.host else {
            return Ok(());
        };
        let shadowed = self.configured.iter().find(|route| {
            route
                .host
                .as_ref()
                .is_some_and(|named| host_nesting(claimed, named).is_some())
        });
        match shadowed {
            Some(route) => Err(ClaimError::Gateway(GatewayRule::Configured {
                what: claim.claim(),
                route: route.name.clone(),
            })),
            None => Ok(()),
        }
    }
}

/// What a route claim matches: a path prefix, or a host (every path on it).
pub(super) fn route_match(service: &Service) -> Result<HeldRoute, ClaimError> {
    let (host, path) = match &service.expose {
        Expose::Path(path) => {
            let prefix = normalize_prefix(path).map_err(|reason| bad_path(path, reason))?;
            (None, prefix)
        }
        Expose::Host(host) => (Some(canonical_host(host)?), "/".to_string()),
        Expose::Port(port) => return Err(GatewayRule::NotARoute(*port).into()),
        Expose::Private(_) => return Err(GatewayRule::PrivateNotARoute.into()),
    };
    Ok(HeldRoute {
        service: service.name.clone(),
        host,
        path,
    })
}

/// A route's local address: `tcp://` (a bridge), else an upstream URL (a proxy).
pub(super) fn check_local(service: &Service) -> Result<(), ClaimError> {
    if service.local.starts_with("tcp://") {
        return Ok(());
    }
    service
        .local
        .parse::<UpstreamUrl>()
        .map(drop)
        .map_err(|reason| ClaimError::Local {
            local: service.local.clone(),
            reason,
        })
}

/// The other sessions holding a route that `claim` matches or nests with: why not, naming the
/// holder, when one is another agent's; else the same agent's stale sessions, to replace.
/// Claims of one session may nest: they are one agent's own space.
pub(super) fn stale_sessions<'h>(
    held: impl Iterator<Item = (&'h Holder, &'h [HeldRoute])>,
    who: &Holder,
    claim: &HeldRoute,
) -> Result<Vec<u64>, ClaimError> {
    let mut stale = Vec::new();
    for (other, routes) in held.filter(|(other, _)| other.session != who.session) {
        let found = routes
            .iter()
            .find_map(|theirs| nesting(claim, theirs).map(|n| (theirs, n)));
        let Some((theirs, nesting)) = found else {
            continue;
        };
        if other.agent != who.agent || other.token != who.token {
            return Err(ClaimError::Held {
                what: claim.claim(),
                holder: other.clone(),
                held: Box::new(theirs.claim()),
                relation: nesting,
            });
        }
        stale.push(other.session);
    }
    Ok(stale)
}

/// How a claim lies against a held route: hosts against hosts (a host route owns every path on
/// its host), paths against paths.
fn nesting(claim: &HeldRoute, held: &HeldRoute) -> Option<Nesting> {
    match (&claim.host, &held.host) {
        (Some(ours), Some(theirs)) => host_nesting(ours, theirs),
        (None, None) => path_nesting(&claim.path, &held.path),
        _ => None,
    }
}

/// A path claim that is no path prefix.
fn bad_path(path: &str, reason: String) -> ClaimError {
    let path = path.to_string();
    ClaimError::Gateway(GatewayRule::BadPath { path, reason })
}

impl HeldRoute {
    /// What the route claims, as refusals name it.
    pub(super) fn claim(&self) -> Claim {
        Claim::Route {
            host: self.host.clone(),
            path: self.path.clone(),
        }
    }

    /// What the claim is shown as: its host, its path, or both.
    pub(super) fn describe(&self) -> String {
        self.claim().to_string()
    }
}
