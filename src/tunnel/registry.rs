//! The claims registry: who holds which route, gateway port and private service. The hub asks
//! it before a service goes live; the in-memory implementation ([`memory::Memory`]) keeps the
//! claims of this gateway, and a shared store (several gateways) is a second implementation of
//! the same trait, asynchronous and remote, which is why every method returns a future and
//! every error may be "the store is unreachable".

mod error;
pub mod memory;

pub use error::{Claim, ClaimError, GatewayRule, OwnName};

use std::{future::Future, pin::Pin};

use tokio::sync::broadcast;

use crate::{matching::HostPattern, secret::Secret, wire::Service};

/// A registry's answer, later: boxed, so that the trait stays object-safe (`Arc<dyn Registry>`)
/// and an implementation may wait on a remote store.
pub(crate) type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClaimError>> + Send + 'a>>;

/// The claims registry.
pub trait Registry: Send + Sync + std::fmt::Debug {
    /// Claims `service` for `holder`: granted with the place visitors use, or refused.
    fn claim<'a>(&'a self, request: &'a ClaimRequest) -> Pending<'a, Granted>;
    /// Gives up `session`'s claim on `service`, or on everything when `service` is `None`.
    fn release<'a>(&'a self, session: u64, service: Option<&'a str>) -> Pending<'a, ()>;
    /// Says `session` is still there, keeping its claims alive (a remote store's leases; in
    /// memory, claims last as long as the session). [`ClaimError::NotHeld`] when the session's
    /// claims are gone (released, or taken over by another session): the hub then ends it.
    fn renew(&self, session: u64) -> Pending<'_, ()>;
    /// The holder of private service `name`, when `secret` is its secret.
    fn lookup_private<'a>(&'a self, name: &'a str, secret: &'a str) -> Pending<'a, Option<Holder>>;
    /// Every change from now on, as it happens.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}

/// Who claims: one agent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The session's id in the hub.
    pub session: u64,
    /// The agent's name.
    pub agent: String,
    /// Which configured token it presented: the same name and token reconnecting takes its
    /// own stale claims over.
    pub token: usize,
}

/// One claim to decide.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Who claims.
    pub holder: Holder,
    /// What, as the agent registered it.
    pub service: Service,
    /// The host of the agent's upgrade, canonical: a name the gateway is reached by, which a
    /// host claim must not take.
    pub reached_by: Option<String>,
}

/// What a granted claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A route: requests for this host (every path on it) or this path prefix.
    Route {
        /// The host, canonical.
        host: Option<HostPattern>,
        /// The path prefix, canonical (`/` with a host).
        path: String,
    },
    /// A gateway port whose connections go to the service.
    Port(u16),
    /// A private service, reached only by agents with its secret.
    Private,
}

/// A granted claim.
#[derive(Debug, Clone)]
pub struct Granted {
    /// What is held.
    pub claimed: Claimed,
    /// What the agent is told visitors use: a path, a host, `tcp://addr` or `private`.
    pub url: String,
    /// The same agent's stale sessions whose routes and private services this claim took over:
    /// the hub ends them.
    pub replaced: Vec<u64>,
}

/// A change in the registry, for those watching it (other gateways, an admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `holder` now holds `service` as `claimed`.
    Claimed {
        /// The holder.
        holder: Holder,
        /// The service's name.
        service: String,
        /// What it holds.
        claimed: Claimed,
    },
    /// `session` gave up `service` (everything, when `None`).
    Released {
        /// The session.
        session: u64,
        /// The service, or all of them.
        service: Option<String>,
    },
    /// `session`'s routes and private services were taken over by the same agent's `by`.
    Replaced {
        /// The stale session.
        session: u64,
        /// The session that took over.
        by: u64,
    },
}

impl ClaimRequest {
    /// A claim of `service` by `holder`, reached by no particular name.
    pub fn new(holder: Holder, service: Service) -> Self {
        ClaimRequest {
            holder,
            service,
            reached_by: None,
        }
    }
}

/// A private service's record.
#[derive(Debug, Clone)]
pub(crate) struct PrivateClaim {
    /// The service's name.
    pub(crate) name: String,
    /// What other agents must give to reach it.
    pub(crate) secret: Secret,
}
