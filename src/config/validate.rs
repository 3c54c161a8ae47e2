//! File structs → runtime [`Config`]; every error carries file:line:col.

use crate::config::ctx::Ctx;
use std::{net::SocketAddr, ops::Range, path::Path, time::Duration};

use crate::{
    budget::Limits,
    config::{
        AgentSettings, Config, ConfigError, Location, TlsSettings,
        file::{GatewayFile, RouteFile, Sp},
        zones,
    },
    secret::Secret,
    units::ByteSize,
};
use crate::{
    config::token_limits::TokenLimits,
    matching::{HostPattern, normalize_prefix},
};
use crate::{
    config::{
        route::{
            BridgeSpec, BridgeTarget, DEFAULT_MAX_MESSAGE_BYTES, RouteKind, RouteSpec, StaticSpec,
            TokenFiles,
        },
        target::{ProxyProtocol, Target},
    },
    io::pump::watchdog::Heartbeat,
};

/// The largest message agents' routes take: the default for routes, which agents' routes keep.
pub const AGENT_MAX_MESSAGE: usize = DEFAULT_MAX_MESSAGE_BYTES as usize;

/// What the message budget must hold for one message of `max` bytes: the read buffer (the
/// largest frame) and a gathering buffer of twice the message (`handler::message_budget`).
pub fn charge_for(max: usize) -> usize {
    max.saturating_mul(3)
}

/// Default drain time on shutdown.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    let listen = match &parsed.listen {
        None => vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
        Some(list) if list.get_ref().is_empty() => {
            return Err(ctx.error(list.span(), "expected at least one address to listen on"));
        }
        Some(list) => list
            .get_ref()
            .iter()
            .map(|a| listen_addr(&ctx, a))
            .collect::<Result<_, _>>()?,
    };
    let tls = parsed.tls.as_ref().map(|t| tls(&ctx, t)).transpose()?;
    let routes = routes(&ctx, &parsed.routes)?;
    let mut agents = parsed
        .agents
        .as_ref()
        .map(|a| agents(&ctx, a, listen[0].ip(), &routes))
        .transpose()?;
    if let Some(egress) = &parsed.egress {
        let Some(agents) = agents.as_mut() else {
            let message = "[egress] serves agents: it needs an [agents] section";
            return Err(ctx.error(egress.span(), message));
        };
        if let Some(secret) = &egress.get_ref().secret {
            let message = "`secret` belongs in an agent's [egress] (an exit for other agents)";
            return Err(ctx.error(secret.span(), message));
        }
        agents.egress = Some(super::egress::settings(&ctx, egress)?);
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

/// Default for `[agents] heartbeat_timeout`: three missed 10 s heartbeats.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

fn agents(
    ctx: &Ctx<'_>,
    value: &Sp<super::file::AgentsFile>,
    listen_ip: std::net::IpAddr,
    routes: &[RouteSpec],
) -> Result<AgentSettings, ConfigError> {
    let file = value.get_ref();
    let path = match &file.path {
        Some(path) => normalize_prefix(path.get_ref()).map_err(|e| ctx.error(path.span(), e))?,
        None => "/_wsgate/agent".to_string(),
    };
    let mut tokens: Vec<Secret> = file
        .tokens
        .iter()
        .flat_map(|list| list.get_ref())
        .map(|t| Secret::new(t.get_ref().clone()))
        .collect();
    if let Some(token_file) = &file.token_file {
        let path = ctx.existing_path(token_file, "token file")?;
        crate::secret::file::warn_if_exposed("token file", &path);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ctx.error(
                token_file.span(),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(Secret::new),
        );
    }
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
    if tokens.is_empty() {
        return Err(ctx.error(
            value.span(),
            "expected agent tokens: `tokens = [\"…\"]` or `token_file = \"FILE\"` with at least one",
        ));
    }
    let remote_ports = match &file.remote_ports {
        Some(range) => Some(port_range(range.get_ref()).ok_or_else(|| {
            let found = range.get_ref();
            ctx.error(
                range.span(),
                format!("expected a port range such as \"20000-20100\", found {found:?}"),
            )
        })?),
        None => None,
    };
    let remote_bind = match &file.remote_bind {
        Some(ip) => ctx.parse::<std::net::IpAddr>(ip)?,
        None => listen_ip,
    };
    Ok(AgentSettings {
        path,
        tokens,
        limits,
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
    entry: &super::file::LimitedTokenFile,
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

fn routes(ctx: &Ctx<'_>, files: &[Sp<RouteFile>]) -> Result<Vec<RouteSpec>, ConfigError> {
    let mut routes: Vec<RouteSpec> = Vec::with_capacity(files.len());
    for file in files {
        let route = route(ctx, file)?;
        if let Some(earlier) = routes
            .iter()
            .find(|r| r.host == route.host && r.path == route.path && r.kind.overlaps(&route.kind))
        {
            return Err(ctx.error(
                file.span(),
                format!(
                    "this route can never match: route {:?} has the same host and path",
                    earlier.name
                ),
            ));
        }
        routes.push(route);
    }
    Ok(routes)
}

fn route(ctx: &Ctx<'_>, value: &Sp<RouteFile>) -> Result<RouteSpec, ConfigError> {
    let file = value.get_ref();
    let path = match &file.path {
        Some(path) => normalize_prefix(path.get_ref()).map_err(|e| ctx.error(path.span(), e))?,
        None => "/".to_string(),
    };
    let host = file
        .host
        .as_ref()
        .map(|h| HostPattern::parse(h.get_ref()).map_err(|e| ctx.error(h.span(), e)))
        .transpose()?;
    let kind = handler(ctx, value)?;
    let name = match (&file.name, &host) {
        (Some(name), _) => name.get_ref().clone(),
        (None, Some(host)) => format!("{host}{path}"),
        (None, None) => path.clone(),
    };
    Ok(RouteSpec {
        name,
        host,
        path,
        kind,
        at: Some(ctx.location(value.span())),
    })
}

/// The handlers a route can name, by the key that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bridge,
    Static,
    Proxy,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Bridge => "bridge",
            Kind::Static => "static",
            Kind::Proxy => "proxy",
        }
    }
}

/// Route keys that belong to particular handlers, and which.
const HANDLER_KEYS: &[(&str, &[Kind])] = &[
    ("connect_timeout", &[Kind::Bridge, Kind::Proxy]),
    ("idle_timeout", &[Kind::Bridge, Kind::Proxy]),
    ("max_message_size", &[Kind::Bridge, Kind::Proxy]),
    ("heartbeat", &[Kind::Bridge]),
    ("pong_timeout", &[Kind::Bridge]),
    ("proxy_protocol", &[Kind::Bridge]),
    ("mode", &[Kind::Proxy]),
    ("balance", &[Kind::Proxy]),
    ("fail_timeout", &[Kind::Proxy]),
    ("response_timeout", &[Kind::Proxy]),
    ("set_headers", &[Kind::Proxy]),
    ("remove_headers", &[Kind::Proxy]),
    ("preserve_host", &[Kind::Proxy]),
    ("tls_ca", &[Kind::Proxy]),
    ("tls_verify", &[Kind::Proxy]),
];

/// Where each handler-specific key is written, if it is.
fn handler_key_spans(file: &RouteFile) -> Vec<(&'static str, Option<Range<usize>>)> {
    let span = |v: &Option<Sp<String>>| v.as_ref().map(Sp::span);
    vec![
        ("connect_timeout", span(&file.connect_timeout)),
        ("idle_timeout", span(&file.idle_timeout)),
        ("max_message_size", span(&file.max_message_size)),
        ("heartbeat", span(&file.heartbeat)),
        ("pong_timeout", span(&file.pong_timeout)),
        ("proxy_protocol", span(&file.proxy_protocol)),
        ("mode", span(&file.mode)),
        ("balance", span(&file.balance)),
        ("fail_timeout", span(&file.fail_timeout)),
        ("response_timeout", span(&file.response_timeout)),
        ("set_headers", file.set_headers.as_ref().map(Sp::span)),
        ("remove_headers", file.remove_headers.as_ref().map(Sp::span)),
        ("preserve_host", file.preserve_host.as_ref().map(Sp::span)),
        ("tls_ca", span(&file.tls_ca)),
        ("tls_verify", file.tls_verify.as_ref().map(Sp::span)),
    ]
}

/// Refuses keys that mean nothing for this route's handler.
fn reject_foreign_keys(ctx: &Ctx<'_>, file: &RouteFile, kind: Kind) -> Result<(), ConfigError> {
    for (key, span) in handler_key_spans(file) {
        let Some(span) = span else { continue };
        let owners = HANDLER_KEYS
            .iter()
            .find(|(name, _)| *name == key)
            .map_or(&[][..], |(_, kinds)| *kinds);
        if !owners.contains(&kind) {
            let names: Vec<&str> = owners.iter().map(|k| k.key()).collect();
            return Err(ctx.error(
                span,
                format!("`{key}` applies to {} routes only", names.join(" and ")),
            ));
        }
    }
    Ok(())
}

fn handler(ctx: &Ctx<'_>, value: &Sp<RouteFile>) -> Result<RouteKind, ConfigError> {
    let file = value.get_ref();
    let bridge = file
        .bridge
        .as_ref()
        .or(file.bridge_tokens.as_ref())
        .map(Sp::span);
    let mut named: Vec<(Kind, Range<usize>)> = [
        (Kind::Bridge, bridge),
        (Kind::Static, file.static_dir.as_ref().map(Sp::span)),
        (Kind::Proxy, file.proxy.as_ref().map(Sp::span)),
    ]
    .into_iter()
    .filter_map(|(kind, span)| Some((kind, span?)))
    .collect();
    named.sort_by_key(|(_, span)| span.start);
    let kind = match named.as_slice() {
        [] => return Err(ctx.error(value.span(), "expected a handler in this route: `bridge = \"tcp://host:port\"`, `bridge_tokens = \"FILE\"`, `proxy = \"ws://host:port\"` or `static = \"DIR\"`")),
        [(kind, _)] => *kind,
        [(first, _), (second, span), ..] => {
            return Err(ctx.error(span.clone(), format!("a route has one handler: `{}` cannot be combined with `{}`", second.key(), first.key())));
        }
    };
    reject_foreign_keys(ctx, file, kind)?;
    match kind {
        Kind::Bridge => bridge_route(ctx, file).map(RouteKind::Bridge),
        Kind::Proxy => super::proxy::proxy_route(ctx, file).map(RouteKind::Proxy),
        Kind::Static => {
            let dir = file.static_dir.as_ref().expect("named above");
            let root = ctx.existing_path(dir, "static directory")?;
            if !root.is_dir() {
                return Err(ctx.error(
                    dir.span(),
                    format!("static directory {} is not a directory", root.display()),
                ));
            }
            Ok(RouteKind::Static(StaticSpec { root }))
        }
    }
}

/// A bridge route's settings. Its token source is checked to exist, not read: it is read per
/// connection (or once, at assembly).
fn bridge_route(ctx: &Ctx<'_>, file: &RouteFile) -> Result<BridgeSpec, ConfigError> {
    let target = file
        .bridge
        .as_ref()
        .map(|t| ctx.parse::<Target>(t))
        .transpose()?;
    let tokens = file
        .bridge_tokens
        .as_ref()
        .map(|t| {
            ctx.existing_path(t, "token source")
                .map(|path| TokenFiles { path, reload: true })
        })
        .transpose()?;
    let heartbeat = ctx.duration(&file.heartbeat)?;
    let pong_timeout = ctx.duration(&file.pong_timeout)?;
    if let (None, Some(pong)) = (heartbeat, &file.pong_timeout) {
        return Err(ctx.error(pong.span(), "`pong_timeout` needs `heartbeat`"));
    }
    let max_message = match &file.max_message_size {
        Some(size) => ctx.parse::<ByteSize>(size)?.0,
        None => DEFAULT_MAX_MESSAGE_BYTES,
    };
    let mut spec = BridgeSpec::new(BridgeTarget::Direct { target, tokens });
    if let Some(timeout) = ctx.duration(&file.connect_timeout)? {
        spec.connect_timeout = timeout;
    }
    spec.proxy_protocol = file
        .proxy_protocol
        .as_ref()
        .map(|p| ctx.parse::<ProxyProtocol>(p))
        .transpose()?;
    spec.idle_timeout = ctx.duration(&file.idle_timeout)?.filter(|d| !d.is_zero());
    spec.heartbeat = heartbeat
        .filter(|d| !d.is_zero())
        .map(|interval| Heartbeat {
            interval,
            pong_timeout: pong_timeout.unwrap_or(interval),
        });
    spec.max_message_bytes = usize::try_from(max_message).unwrap_or(usize::MAX);
    Ok(spec)
}
