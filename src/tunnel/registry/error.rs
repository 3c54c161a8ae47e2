//! Why a claim is refused, as data: what was claimed, who holds it and how the claims lie,
//! which gateway rule or token limit refused it. A remote registry or an admin API reads the
//! fields; the agent is told the `Display` text.

use std::{fmt, ops::RangeInclusive};

use super::Holder;
use crate::{
    config::token_limits::TokenRefusal,
    matching::{
        HostPattern,
        claim_rules::{HostRefusal, NO_HOST_CLAIMS, Nesting, PathRefusal},
    },
};

/// Why a claim is refused; the text is what the agent is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The service's name breaks the naming rule.
    #[error("{reason}")]
    Name {
        /// The name as the agent gave it.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The session holds the most services one may.
    #[error("an agent registers at most {0} services")]
    TooMany(usize),
    /// The host is no host name an agent may claim.
    #[error(transparent)]
    Host(#[from] HostRefusal),
    /// The gateway's rules for hosts, paths or ports refuse it, or it would take what a
    /// configured route answers.
    #[error(transparent)]
    Gateway(#[from] GatewayRule),
    /// The token's limits refuse it.
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    /// The service's local address is not one the gateway can reach it by.
    #[error("{reason}")]
    Local {
        /// The local address as the agent gave it.
        local: String,
        /// Why it is unusable.
        reason: String,
    },
    /// Another agent holds `what`, or a claim (`held`) it nests with.
    #[error("{}", held_text(what, holder, held, *relation))]
    Held {
        /// What was claimed.
        what: Claim,
        /// Who holds it.
        holder: Holder,
        /// What the holder holds: `what` itself, or a route it nests with (boxed: a refusal
        /// stays small on the way out).
        held: Box<Claim>,
        /// How `what` lies against `held`.
        relation: Nesting,
    },
    /// The session already holds `port` for another of its services.
    #[error("port {port} is already this agent's service {service:?}")]
    PortInUse {
        /// The port.
        port: u16,
        /// The service that holds it.
        service: String,
    },
    /// The session no longer holds its claims: they were released, or another session took
    /// them over.
    #[error("agent session {0} no longer holds its claims")]
    NotHeld(u64),
    /// The registry's store could not be reached: nothing was decided.
    #[error("the claims registry is unreachable: {0}")]
    Unreachable(String),
}

/// What a claim is for, or what a holder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A route: a host (every path on it), or a path prefix.
    Route {
        /// The host, canonical.
        host: Option<HostPattern>,
        /// The path prefix, canonical (`/` with a host).
        path: String,
    },
    /// A gateway port.
    Port(u16),
    /// A private service, by name.
    Private(String),
}

/// Which of the gateway's rules refuses a claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayRule {
    /// A port is asked for a service that is not `tcp://`.
    #[error("only tcp:// services can have a remote port")]
    PortNeedsTcp(u16),
    /// The gateway sets no `[agents] remote_ports`.
    #[error("this gateway opens no ports for agents ([agents] remote_ports)")]
    NoPorts(u16),
    /// The port lies outside `[agents] remote_ports`.
    #[error("port {port} is outside the allowed range {}-{}", allowed.start(), allowed.end())]
    PortOutside {
        /// The port asked for.
        port: u16,
        /// `[agents] remote_ports`.
        allowed: RangeInclusive<u16>,
    },
    /// The gateway sets no `[agents] hosts`.
    #[error("{NO_HOST_CLAIMS}")]
    NoHostZone(HostPattern),
    /// The host is under none of `[agents] hosts`.
    #[error(
        "host {host} is not under this gateway's [agents] hosts ({})",
        joined(zones)
    )]
    HostOutside {
        /// The host claimed.
        host: HostPattern,
        /// `[agents] hosts`.
        zones: Vec<HostPattern>,
    },
    /// The host would take the name the agent reached the gateway by.
    #[error("host {host} would take {name}, the name this agent reached the gateway by")]
    ReachedBy {
        /// The host claimed.
        host: HostPattern,
        /// The name the agent's upgrade carried.
        name: String,
    },
    /// The host is, or covers, one of the gateway's own names.
    #[error("{}", own_name_text(host, name, *of))]
    OwnName {
        /// The host claimed.
        host: HostPattern,
        /// The gateway's name it takes.
        name: String,
        /// Where that name comes from.
        of: OwnName,
    },
    /// The path is not a path prefix.
    #[error("{reason}")]
    BadPath {
        /// The path as the agent gave it.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The gateway's path rules (`matching::claim_rules::check_path`) refuse it.
    #[error(transparent)]
    Path(#[from] PathRefusal),
    /// A host claim would take requests a configured route (`route`, by name) answers.
    #[error("{what} would take requests from the configured route {route:?}")]
    Configured {
        /// What was claimed.
        what: Claim,
        /// The configured route's name.
        route: String,
    },
    /// A port service put where a route was expected.
    #[error("port {0} is a listener, not a route")]
    NotARoute(u16),
    /// A private service put where a route was expected.
    #[error("a private service is not a route")]
    PrivateNotARoute,
}

/// Where a name the gateway keeps for itself comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnName {
    /// The gateway's TLS certificate.
    Certificate,
    /// `[agents] gateway_names`.
    GatewayNames,
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Route {
                host: Some(host),
                path,
            } if path == "/" => write!(f, "{host}"),
            Claim::Route {
                host: Some(host),
                path,
            } => write!(f, "{host}{path}"),
            Claim::Route { host: None, path } => f.write_str(path),
            Claim::Port(port) => write!(f, "port {port}"),
            Claim::Private(name) => write!(f, "private service {name:?}"),
        }
    }
}

impl fmt::Display for OwnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OwnName::Certificate => "a name on the gateway's TLS certificate",
            OwnName::GatewayNames => "the gateway's own name ([agents] gateway_names)",
        })
    }
}

/// The text of [`ClaimError::Held`]: the claim, the holder's agent name, and the held route it
/// nests with; a private service names the holder's session too.
fn held_text(what: &Claim, holder: &Holder, held: &Claim, relation: Nesting) -> String {
    let agent = &holder.agent;
    match (what, relation) {
        (Claim::Private(_), _) => {
            format!(
                "{what} is held by agent {agent:?} (agent {})",
                holder.session
            )
        }
        (_, Nesting::Same) => format!("{what} is held by agent {agent:?}"),
        (_, Nesting::Inside) => format!("{what} nests inside {held}, held by agent {agent:?}"),
        (_, Nesting::Around) => format!("{what} nests around {held}, held by agent {agent:?}"),
    }
}

/// The text of [`GatewayRule::OwnName`]: an exact host is the name, a wildcard covers it.
fn own_name_text(host: &HostPattern, name: &str, of: OwnName) -> String {
    match host {
        HostPattern::Exact(_) => format!("host {host} is {of}"),
        HostPattern::Wildcard(_) => format!("host {host} covers {name}, {of}"),
    }
}

/// Host patterns as the refusal lists them.
fn joined(patterns: &[HostPattern]) -> String {
    let shown: Vec<String> = patterns.iter().map(ToString::to_string).collect();
    shown.join(", ")
}
