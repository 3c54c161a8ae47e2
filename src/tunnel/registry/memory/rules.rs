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
            ConfiguredPath, NO_HOST_CLAIMS, Nesting, canonical_host, check_path, covers,
            host_nesting, path_nesting,
        },
        normalize_prefix,
    },
    tunnel::registry::{ClaimError, ClaimRequest, Holder},
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
        limits
            .unwrap_or_default()
            .allow(service)
            .map_err(ClaimError::Token)
    }

    /// A host name (never an IP literal or localhost) under `[agents] hosts`, and not the name
    /// the agent reached the gateway by nor one of the gateway's own.
    fn allow_host(&self, host: &str, reached_by: Option<&str>) -> Result<(), ClaimError> {
        let claim = canonical_host(host)?;
        let refuse = |why: String| Err(ClaimError::Gateway(why));
        if self.hosts.is_empty() {
            return refuse(NO_HOST_CLAIMS.into());
        }
        if !self.hosts.iter().any(|pattern| covers(pattern, &claim)) {
            let allowed: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
            return refuse(format!(
                "host {claim} is not under this gateway's [agents] hosts ({})",
                allowed.join(", ")
            ));
        }
        if let Some(reached) = reached_by.filter(|name| claim.matches(name)) {
            return refuse(format!(
                "host {claim} would take {reached}, the name this agent reached the gateway by"
            ));
        }
        let own_names = [
            (
                &self.certificate_names,
                "a name on the gateway's TLS certificate",
            ),
            (
                &self.gateway_names,
                "the gateway's own name ([agents] gateway_names)",
            ),
        ];
        for (names, what) in own_names {
            if let Some(name) = names.iter().find(|name| claim.matches(name)) {
                return refuse(own_name(&claim, name, what));
            }
        }
        Ok(())
    }

    /// Within `[agents] paths` when set, and off every configured route not carved into a
    /// zone (`matching::claim_rules::check_path`).
    fn allow_path(&self, path: &str) -> Result<(), ClaimError> {
        let claim = normalize_prefix(path).map_err(ClaimError::Gateway)?;
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
            .map_err(|refusal| ClaimError::Gateway(refusal.to_string()))
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
            Some(route) => Err(ClaimError::Held(format!(
                "{} would take requests from the configured route {:?}",
                claim.describe(),
                route.name
            ))),
            None => Ok(()),
        }
    }
}

/// What a route claim matches: a path prefix, or a host (every path on it).
pub(super) fn route_match(service: &Service) -> Result<HeldRoute, ClaimError> {
    let (host, path) = match &service.expose {
        Expose::Path(path) => (None, normalize_prefix(path).map_err(ClaimError::Gateway)?),
        Expose::Host(host) => (Some(canonical_host(host)?), "/".to_string()),
        Expose::Port(port) => {
            let why = format!("port {port} is a listener, not a route");
            return Err(ClaimError::Gateway(why));
        }
        Expose::Private(_) => {
            let why = "a private service is not a route".to_string();
            return Err(ClaimError::Gateway(why));
        }
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
        .map_err(ClaimError::Local)
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
            let (ours, theirs, holder) = (claim.describe(), theirs.describe(), &other.agent);
            return Err(ClaimError::Held(match nesting {
                Nesting::Same => format!("{ours} is held by agent {holder:?}"),
                Nesting::Inside => {
                    format!("{ours} nests inside {theirs}, held by agent {holder:?}")
                }
                Nesting::Around => {
                    format!("{ours} nests around {theirs}, held by agent {holder:?}")
                }
            }));
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

/// Why a host claim equal to, or a wildcard covering, one of the gateway's own names is
/// refused; `what` says where the name comes from.
fn own_name(claim: &HostPattern, name: &str, what: &str) -> String {
    match claim {
        HostPattern::Exact(_) => format!("host {claim} is {what}"),
        HostPattern::Wildcard(_) => format!("host {claim} covers {name}, {what}"),
    }
}

impl HeldRoute {
    /// What the claim is shown as: its host, its path, or both.
    pub(super) fn describe(&self) -> String {
        match &self.host {
            Some(host) if self.path == "/" => host.to_string(),
            Some(host) => format!("{host}{}", self.path),
            None => self.path.clone(),
        }
    }
}
