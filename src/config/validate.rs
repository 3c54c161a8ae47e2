//! File structs → runtime [`Config`]; every error carries file:line:col.

mod agents;
mod routes;

use agents::agents;
use routes::routes;

use std::{net::SocketAddr, path::Path, time::Duration};

use crate::{
    budget::Limits,
    config::{
        AgentSettings, Config, ConfigError, Location, TlsSettings,
        ctx::Ctx,
        file::{EgressFile, GatewayFile, RouteFile, Sp},
        route::{DEFAULT_MAX_MESSAGE_BYTES, RouteSpec},
    },
    units::ByteSize,
};

/// The largest message agents' routes take: the default for routes, which agents' routes keep.
pub(crate) const AGENT_MAX_MESSAGE: usize = DEFAULT_MAX_MESSAGE_BYTES as usize;

/// What the message budget must hold for one message of `max` bytes: the read buffer (the
/// largest frame) and a gathering buffer of twice the message (`handler::message_budget`).
pub(crate) fn charge_for(max: usize) -> usize {
    max.saturating_mul(3)
}

/// Default drain time on shutdown.
pub(super) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Parses and validates a gateway config; `base` resolves relative paths.
pub fn gateway(file: &str, source: &str, base: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx { file, source, base };
    let parsed: GatewayFile = toml::from_str(source).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        ConfigError {
            location: Some(Location::of(file, source, at)),
            message: e.message().trim().to_string(),
        }
    })?;
    let listen = listen_addrs(&ctx, &parsed)?;
    let tls = parsed.tls.as_ref().map(|t| tls(&ctx, t)).transpose()?;
    let routes = routes(&ctx, &parsed.routes)?;
    let mut agents = parsed
        .agents
        .as_ref()
        .map(|a| agents(&ctx, a, listen[0].ip(), &routes))
        .transpose()?;
    if let Some(egress) = &parsed.egress {
        egress_for_agents(&ctx, egress, agents.as_mut())?;
    }
    let limits = parsed
        .limits
        .as_ref()
        .map_or_else(|| Ok(Limits::default()), |l| limits(&ctx, l))?;
    let limits_at = parsed.limits.as_ref().map_or(0..0, |l| {
        l.get_ref()
            .message_memory
            .as_ref()
            .map_or(l.span(), |m| m.span())
    });
    let has_agents = agents.is_some();
    check_message_budget(
        &ctx,
        &parsed.routes,
        &routes,
        &limits,
        has_agents,
        limits_at,
    )?;
    Ok(Config {
        source: file.to_string(),
        listen,
        tls,
        shutdown_grace: ctx
            .duration(&parsed.shutdown_grace)?
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        exit_when_idle: ctx.duration(&parsed.exit_when_idle)?,
        exit_after: ctx.duration(&parsed.exit_after)?,
        routes,
        agents,
        limits,
    })
}

/// `listen`: the addresses as written (at least one), else 127.0.0.1:8080.
fn listen_addrs(ctx: &Ctx<'_>, parsed: &GatewayFile) -> Result<Vec<SocketAddr>, ConfigError> {
    match &parsed.listen {
        None => Ok(vec![SocketAddr::from(([127, 0, 0, 1], 8080))]),
        Some(list) if list.get_ref().is_empty() => {
            Err(ctx.error(list.span(), "expected at least one address to listen on"))
        }
        Some(list) => list.get_ref().iter().map(|a| listen_addr(ctx, a)).collect(),
    }
}

/// The gateway's `[egress]`, which serves agents: it needs `[agents]`, and takes no `secret`
/// (that belongs to an exit agent's `[egress]`).
fn egress_for_agents(
    ctx: &Ctx<'_>,
    egress: &Sp<EgressFile>,
    agents: Option<&mut AgentSettings>,
) -> Result<(), ConfigError> {
    let Some(agents) = agents else {
        let message = "[egress] serves agents: it needs an [agents] section";
        return Err(ctx.error(egress.span(), message));
    };
    if let Some(secret) = &egress.get_ref().secret {
        let message = "`secret` belongs in an agent's [egress] (an exit for other agents)";
        return Err(ctx.error(secret.span(), message));
    }
    agents.egress = Some(super::egress::settings(ctx, egress)?);
    Ok(())
}

/// A route whose largest message could never fit the message budget is an error: every large
/// message would be refused with 1013 as if the gateway were full. One message is charged its
/// read buffer and a gathering buffer of twice its size ([`charge_for`]); agents' routes take
/// messages up to 16 MiB.
fn check_message_budget(
    ctx: &Ctx<'_>,
    files: &[Sp<RouteFile>],
    routes: &[RouteSpec],
    limits: &Limits,
    agents: bool,
    at: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let expected = |what: &str| {
        format!(
            "expected {what} at most a third of `[limits] message_memory` ({} bytes): a \
             message is charged its read buffer and twice its size while it is gathered",
            limits.message_memory
        )
    };
    if agents && charge_for(AGENT_MAX_MESSAGE) > limits.message_memory {
        return Err(ctx.error(at, expected("agents' 16 MiB messages")));
    }
    for (file, route) in files.iter().zip(routes) {
        let Some(max) = route.kind.max_message_bytes() else {
            continue;
        };
        if charge_for(max) > limits.message_memory {
            let span = file
                .get_ref()
                .max_message_size
                .as_ref()
                .map_or(at.clone(), |m| m.span());
            return Err(ctx.error(span, expected("`max_message_size`")));
        }
    }
    Ok(())
}

/// `[limits]`: each budget as written, else its default.
fn limits(ctx: &Ctx<'_>, value: &Sp<super::file::LimitsFile>) -> Result<Limits, ConfigError> {
    let file = value.get_ref();
    let defaults = Limits::default();
    let bytes = |value: &Option<Sp<String>>, default: usize| -> Result<usize, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let size: ByteSize = ctx.parse(value)?;
        match usize::try_from(size.0) {
            Ok(size) if size > 0 => Ok(size),
            _ => Err(ctx.error(value.span(), "expected a size above zero")),
        }
    };
    let count = |value: &Option<Sp<u32>>, default: usize| -> Result<usize, ConfigError> {
        match value {
            None => Ok(default),
            Some(n) if *n.get_ref() == 0 => {
                Err(ctx.error(n.span(), "expected a number above zero"))
            }
            Some(n) => Ok(*n.get_ref() as usize),
        }
    };
    let limits = Limits {
        message_memory: bytes(&file.message_memory, defaults.message_memory)?,
        tunnel_memory: bytes(&file.tunnel_memory, defaults.tunnel_memory)?,
        tunnel_memory_per_token: bytes(
            &file.tunnel_memory_per_token,
            defaults.tunnel_memory_per_token,
        )?,
        sessions_per_token: count(&file.sessions_per_token, defaults.sessions_per_token)?,
        credit_timeout: ctx
            .duration(&file.credit_timeout)?
            .unwrap_or(defaults.credit_timeout),
        descriptor_reserve: file
            .descriptor_reserve
            .as_ref()
            .map(|n| *n.get_ref() as usize),
    };
    if limits.tunnel_memory_per_token > limits.tunnel_memory {
        let at = file
            .tunnel_memory_per_token
            .as_ref()
            .map_or(value.span(), |v| v.span());
        return Err(ctx.error(
            at,
            "expected `tunnel_memory_per_token` at most `tunnel_memory`",
        ));
    }
    Ok(limits)
}

fn listen_addr(ctx: &Ctx<'_>, value: &Sp<String>) -> Result<SocketAddr, ConfigError> {
    value.get_ref().parse().map_err(|_| {
        ctx.error(
            value.span(),
            format!(
                "expected an address such as \"127.0.0.1:8080\" or \"[::1]:8080\", found {:?}",
                value.get_ref()
            ),
        )
    })
}

fn tls(ctx: &Ctx<'_>, value: &Sp<super::file::TlsFile>) -> Result<TlsSettings, ConfigError> {
    let tls = value.get_ref();
    let cert = ctx.existing_path(&tls.cert, "certificate file")?;
    let key = match &tls.key {
        Some(key) => ctx.existing_path(key, "key file")?,
        None => cert.clone(),
    };
    Ok(TlsSettings {
        cert,
        key,
        allow_plain: tls.allow_plain.unwrap_or(false),
    })
}
