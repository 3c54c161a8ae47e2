//! `[agents]`: the agent endpoint's path, the agents' tokens and what each may claim, the
//! zones of hosts and paths agents claim in, and the gateway ports they may hold.

use std::{net::IpAddr, time::Duration};

use crate::{
    config::{
        AgentSettings, ConfigError, TokenFile,
        ctx::Ctx,
        file::{AgentsFile, LimitedTokenFile, Sp},
        route::RouteSpec,
        token_limits::TokenLimits,
        zones,
    },
    matching::{HostPattern, normalize_prefix},
    secret::Secret,
};

/// Default for `[agents] heartbeat_timeout`: three missed 10 s heartbeats.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// `[agents]`: the endpoint, the tokens (with their limits), the zones agents may claim in,
/// remote ports. `routes` are the configured routes, which path zones must carve out.
pub(super) fn agents(
    ctx: &Ctx<'_>,
    value: &Sp<AgentsFile>,
    listen_ip: IpAddr,
    routes: &[RouteSpec],
) -> Result<AgentSettings, ConfigError> {
    let file = value.get_ref();
    let path = match &file.path {
        Some(path) => normalize_prefix(path.get_ref()).map_err(|e| ctx.error(path.span(), e))?,
        None => "/_wsgate/agent".to_string(),
    };
    let mut tokens = listed_tokens(file);
    let token_file = file
        .token_file
        .as_ref()
        .map(|written| token_file(ctx, written, value, tokens.len()))
        .transpose()?;
    let hosts = zones::host_patterns(ctx, file.hosts.as_deref().unwrap_or_default())?;
    let paths = file
        .paths
        .as_ref()
        .map(|list| zones::path_zones(ctx, list, routes))
        .transpose()?;
    let mut limits = vec![TokenLimits::default(); tokens.len()];
    for limited in &file.limited {
        let entry = limited.get_ref();
        tokens.push(Secret::new(entry.token.get_ref().clone()));
        limits.push(token_limits(ctx, entry, &hosts, paths.as_deref())?);
    }
    if tokens.is_empty() && token_file.is_none() {
        return Err(ctx.error(value.span(), crate::config::NO_AGENT_TOKENS));
    }
    let remote_ports = file
        .remote_ports
        .as_ref()
        .map(|range| remote_ports(ctx, range))
        .transpose()?;
    let remote_bind = match &file.remote_bind {
        Some(ip) => ctx.parse::<IpAddr>(ip)?,
        None => listen_ip,
    };
    Ok(AgentSettings {
        path,
        tokens,
        limits,
        token_file,
        hosts,
        paths,
        gateway_names: zones::gateway_names(
            ctx,
            file.gateway_names.as_deref().unwrap_or_default(),
        )?,
        heartbeat_timeout: ctx
            .duration(&file.heartbeat_timeout)?
            .unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT),
        remote_ports,
        remote_bind,
        egress: None,
    })
}

/// One `[[agents.token]]`'s limits; its host patterns and paths must each fall under the
/// gateway's `[agents] hosts` (`gateway_hosts`) and `paths` (`gateway_paths`, when set), which
/// they narrow.
fn token_limits(
    ctx: &Ctx<'_>,
    entry: &LimitedTokenFile,
    gateway_hosts: &[HostPattern],
    gateway_paths: Option<&[String]>,
) -> Result<TokenLimits, ConfigError> {
    let paths = entry
        .paths
        .as_ref()
        .map(|list| zones::token_paths(ctx, list, gateway_paths))
        .transpose()?;
    let hosts = match &entry.hosts {
        Some(list) => {
            let patterns = zones::host_patterns(ctx, list)?;
            for (pattern, written) in patterns.iter().zip(list) {
                zones::check_token_host(ctx, pattern, written, gateway_hosts)?;
            }
            Some(patterns)
        }
        None => None,
    };
    Ok(TokenLimits {
        names: entry.names.clone(),
        paths,
        hosts,
        egress: entry.egress.unwrap_or(false),
    })
}

/// `"A-B"` or `"A"`: ports A to B, none of them 0.
fn port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    let (start, end) = (
        start.trim().parse::<u16>().ok()?,
        end.trim().parse::<u16>().ok()?,
    );
    (start > 0 && start <= end).then_some(start..=end)
}

/// The unlimited tokens written in the config: `tokens`.
fn listed_tokens(file: &AgentsFile) -> Vec<Secret> {
    file.tokens
        .iter()
        .flat_map(|list| list.get_ref())
        .map(|t| Secret::new(t.get_ref().clone()))
        .collect()
}

/// `token_file`: it must exist (and is warned about when others may read it), but loading
/// does not read it: the gateway does, when it assembles. Its tokens go at `index`.
fn token_file(
    ctx: &Ctx<'_>,
    written: &Sp<String>,
    section: &Sp<AgentsFile>,
    index: usize,
) -> Result<TokenFile, ConfigError> {
    let path = ctx.existing_path(written, "token file")?;
    crate::secret::file::warn_if_exposed("token file", &path);
    Ok(TokenFile {
        path,
        at: ctx.location(written.span()),
        section: ctx.location(section.span()),
        index,
    })
}

/// `remote_ports`: a range of gateway ports agents may hold.
fn remote_ports(
    ctx: &Ctx<'_>,
    range: &Sp<String>,
) -> Result<std::ops::RangeInclusive<u16>, ConfigError> {
    port_range(range.get_ref()).ok_or_else(|| {
        let found = range.get_ref();
        ctx.error(
            range.span(),
            format!("expected a port range such as \"20000-20100\", found {found:?}"),
        )
    })
}
