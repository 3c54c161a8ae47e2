//! `[egress]`, in the gateway's config and in an agent's: which destinations connections that
//! leave through this process may reach (docs/egress.md).

use std::{sync::Arc, time::Duration};

use crate::{
    config::{
        ConfigError,
        ctx::Ctx,
        file::{EgressFile, Sp},
        // How long dialling a destination may take, by default: a dial's, as for routes.
        route::DEFAULT_CONNECT_TIMEOUT,
    },
    egress::policy::{Fallback, Policy, PortRange, Rule},
};

/// How long a UDP association may sit without a datagram either way, by default.
pub(crate) const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A validated `[egress]`.
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// Which destinations are allowed.
    pub policy: Arc<Policy>,
    /// How long dialling a destination may take.
    pub connect_timeout: Duration,
    /// How long a UDP association may sit idle.
    pub udp_idle_timeout: Duration,
}

impl Default for EgressSettings {
    fn default() -> Self {
        EgressSettings {
            policy: Arc::new(Policy::default()),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            udp_idle_timeout: DEFAULT_UDP_IDLE_TIMEOUT,
        }
    }
}

/// Validates `[egress]` (but `secret`, which only an agent's has).
pub(super) fn settings(
    ctx: &Ctx<'_>,
    value: &Sp<EgressFile>,
) -> Result<EgressSettings, ConfigError> {
    let file = value.get_ref();
    let rules = |list: &[Sp<String>]| {
        list.iter()
            .map(|entry| ctx.parse::<Rule>(entry))
            .collect::<Result<Vec<_>, _>>()
    };
    let ports = |list: &[Sp<String>]| {
        list.iter()
            .map(|entry| ctx.parse::<PortRange>(entry))
            .collect::<Result<Vec<_>, _>>()
    };
    let fallback = match &file.default {
        None => Fallback::Public,
        Some(text) => match text.get_ref().as_str() {
            "public" => Fallback::Public,
            "deny" => Fallback::Deny,
            other => {
                let message = format!("expected \"public\" or \"deny\", found {other:?}");
                return Err(ctx.error(text.span(), message));
            }
        },
    };
    let own = file
        .own_addresses
        .iter()
        .map(|entry| ctx.parse::<std::net::IpAddr>(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = Policy::new(
        rules(&file.allow)?,
        rules(&file.deny)?,
        file.ports.as_deref().map(ports).transpose()?,
        ports(&file.deny_ports)?,
        fallback,
    )
    .with_more_own_addresses(&own);
    Ok(EgressSettings {
        policy: Arc::new(policy),
        connect_timeout: ctx
            .duration(&file.connect_timeout)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        udp_idle_timeout: ctx
            .duration(&file.udp_idle_timeout)?
            .unwrap_or(DEFAULT_UDP_IDLE_TIMEOUT),
    })
}
