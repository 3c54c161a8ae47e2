//! The agent's config file (`wsgate agent -c agent.toml`), the shape DESIGN.md gives: the
//! gateway(s), the token, `[[expose]]` services and `[[forward]]`s. Errors name file:line:col.

pub mod plan;

use std::path::Path;

use serde::Deserialize;

use crate::config::file::EgressFile;
use crate::{
    config::agent::plan::{
        AgentPlan, Credentials, ExitPlan, ForwardPlan, LocalService, ProxyPlan, local_dial,
    },
    wire::{Expose, Service, Via, names},
};
use crate::{
    config::{ConfigError, Location, ctx::Ctx, file::Sp},
    secret::Secret,
};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    /// One gateway URL or a list of them.
    server: Sp<toml::Value>,
    /// The token the gateways accept.
    token: Sp<String>,
    /// This agent's name.
    name: Option<Sp<String>>,
    #[serde(default)]
    expose: Vec<Sp<ExposeFile>>,
    #[serde(default)]
    forward: Vec<Sp<ForwardFile>>,
    /// A local SOCKS5 proxy whose egress is the gateway (or `via`).
    socks5: Option<Sp<ProxyFile>>,
    /// A local HTTP proxy whose egress is the gateway (or `via`).
    http_proxy: Option<Sp<ProxyFile>>,
    /// This agent as an exit for other agents' `via`.
    egress: Option<Sp<EgressFile>>,
    /// How long open streams may take to finish when the agent is stopped.
    shutdown_grace: Option<Sp<String>>,
}

/// `[socks5]` or `[http_proxy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    listen: Sp<String>,
    username: Option<Sp<String>>,
    password: Option<Sp<String>>,
    /// Exit through this agent, which holds `secret`.
    via: Option<Sp<String>>,
    secret: Option<Sp<String>>,
    /// SOCKS5 only.
    udp_idle_timeout: Option<Sp<String>>,
}

/// `[[expose]]`: a local service and how it is exposed (exactly one of path, host,
/// remote_port, secret).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExposeFile {
    name: Sp<String>,
    local: Sp<String>,
    path: Option<Sp<String>>,
    host: Option<Sp<String>>,
    remote_port: Option<Sp<u16>>,
    secret: Option<Sp<String>>,
}

/// `[[forward]]`: a local port reaching another agent's private service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardFile {
    listen: Sp<String>,
    service: Sp<String>,
    secret: Sp<String>,
}

/// Loads an agent config file.
pub fn load(path: &Path) -> Result<AgentPlan, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::usage(format!("{}: cannot read config: {error}", path.display()))
    })?;
    // The file holds the token (and any secrets): it is a secret file.
    crate::secret::file::warn_if_exposed("agent config", path);
    let file = path.display().to_string();
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&file, &source, base)
}

/// Parses and validates an agent config.
pub fn parse(file: &str, source: &str, base: &Path) -> Result<AgentPlan, ConfigError> {
    let ctx = Ctx { file, source, base };
    let parsed: AgentFile = toml::from_str(source).map_err(|e| ConfigError {
        location: Some(Location::of(file, source, e.span().map_or(0, |s| s.start))),
        message: e.message().trim().to_string(),
    })?;
    let servers = servers(&ctx, &parsed.server)?;
    let name = match &parsed.name {
        Some(name) => checked_name(&ctx, "agent", name)?,
        None => default_name(),
    };
    let token = token(&ctx, &parsed.token)?;
    let services = parsed
        .expose
        .iter()
        .map(|e| expose(&ctx, e))
        .collect::<Result<Vec<_>, _>>()?;
    let forwards = parsed
        .forward
        .iter()
        .map(|f| forward(&ctx, f))
        .collect::<Result<Vec<_>, _>>()?;
    let (socks5, http_proxy) = proxies(&ctx, &parsed)?;
    let exit = parsed.egress.as_ref().map(|e| exit(&ctx, e)).transpose()?;
    let proxies = socks5.is_some() || http_proxy.is_some() || exit.is_some();
    if services.is_empty() && forwards.is_empty() && !proxies {
        return Err(ctx.error(
            0..0,
            "expected at least one [[expose]], [[forward]], [socks5], [http_proxy] or [egress]",
        ));
    }
    Ok(AgentPlan {
        servers,
        token,
        name,
        services,
        forwards,
        socks5,
        http_proxy,
        exit,
        shutdown_grace: ctx
            .duration(&parsed.shutdown_grace)?
            .unwrap_or(plan::DEFAULT_SHUTDOWN_GRACE),
    })
}

/// The file's `[socks5]` and `[http_proxy]`.
type Proxies = (Option<ProxyPlan>, Option<ProxyPlan>);

/// The file's `[socks5]` and `[http_proxy]`, checked.
fn proxies(ctx: &Ctx<'_>, parsed: &AgentFile) -> Result<Proxies, ConfigError> {
    let socks5 = parsed.socks5.as_ref().map(|p| proxy(ctx, p, true));
    let http_proxy = parsed.http_proxy.as_ref().map(|p| proxy(ctx, p, false));
    Ok((socks5.transpose()?, http_proxy.transpose()?))
}

/// The host name made into a name (`wire::names::sanitize`), else `agent`: a host name
/// outside the rule must not stop the agent.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    names::sanitize(host.trim(), "agent")
}

/// A name given in the file, if it keeps the rule gateways hold it to.
fn checked_name(ctx: &Ctx<'_>, what: &str, name: &Sp<String>) -> Result<String, ConfigError> {
    names::check(what, name.get_ref()).map_err(|reason| ctx.error(name.span(), reason))?;
    Ok(name.get_ref().clone())
}

/// The token, unless it has spaces around it: HTTP drops those on the way to the gateway.
fn token(ctx: &Ctx<'_>, token: &Sp<String>) -> Result<Secret, ConfigError> {
    check_token(token.get_ref()).map_err(|reason| ctx.error(token.span(), reason))?;
    Ok(Secret::new(token.get_ref().clone()))
}

/// Why a token cannot be sent as it is: a space or tab at either end, which the HTTP parser
/// takes off, so the gateway would compare another token.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.trim() == token {
        Ok(())
    } else {
        Err("the token has a space at its start or end: remove it".into())
    }
}

fn servers(ctx: &Ctx<'_>, value: &Sp<toml::Value>) -> Result<Vec<http::Uri>, ConfigError> {
    let expected = "expected a ws:// or wss:// gateway URL, or a list of them";
    let texts: Vec<&str> = match value.get_ref() {
        toml::Value::String(url) => vec![url.as_str()],
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().ok_or_else(|| ctx.error(value.span(), expected)))
            .collect::<Result<_, _>>()?,
        _ => return Err(ctx.error(value.span(), expected)),
    };
    texts
        .into_iter()
        .map(|text| match text.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("ws" | "wss")) => Ok(uri),
            _ => Err(ctx.error(value.span(), format!("{expected}, found {text:?}"))),
        })
        .collect()
}

fn expose(ctx: &Ctx<'_>, value: &Sp<ExposeFile>) -> Result<LocalService, ConfigError> {
    let file = value.get_ref();
    let dial = local_dial(file.local.get_ref()).map_err(|e| ctx.error(file.local.span(), e))?;
    let ways = [
        file.path
            .as_ref()
            .map(|p| (p.span(), Expose::Path(p.get_ref().clone()))),
        file.host
            .as_ref()
            .map(|h| (h.span(), Expose::Host(h.get_ref().clone()))),
        file.remote_port
            .as_ref()
            .map(|p| (p.span(), Expose::Port(*p.get_ref()))),
        file.secret
            .as_ref()
            .map(|s| (s.span(), Expose::Private(Secret::new(s.get_ref().clone())))),
    ];
    let mut given = ways.into_iter().flatten();
    let Some((_, expose)) = given.next() else {
        return Err(ctx.error(
            value.span(),
            "expected one of `path`, `host`, `remote_port` or `secret` in this [[expose]]",
        ));
    };
    if let Some((span, _)) = given.next() {
        return Err(ctx.error(
            span,
            "an [[expose]] has one of `path`, `host`, `remote_port` or `secret`",
        ));
    }
    Ok(LocalService {
        service: Service {
            name: checked_name(ctx, "service", &file.name)?,
            local: file.local.get_ref().clone(),
            expose,
        },
        dial,
    })
}

fn forward(ctx: &Ctx<'_>, value: &Sp<ForwardFile>) -> Result<ForwardPlan, ConfigError> {
    let file = value.get_ref();
    Ok(ForwardPlan {
        listen: ctx.parse(&file.listen)?,
        service: file.service.get_ref().clone(),
        secret: Secret::new(file.secret.get_ref().clone()),
    })
}

fn proxy(ctx: &Ctx<'_>, value: &Sp<ProxyFile>, socks: bool) -> Result<ProxyPlan, ConfigError> {
    let file = value.get_ref();
    let mut plan = ProxyPlan::on(ctx.parse(&file.listen)?);
    plan.credentials = match (&file.username, &file.password) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.get_ref().clone(),
            password: Secret::new(password.get_ref().clone()),
        }),
        (None, None) => None,
        (Some(given), None) | (None, Some(given)) => {
            let message = "expected both `username` and `password`, or neither";
            return Err(ctx.error(given.span(), message));
        }
    };
    plan.via = match (&file.via, &file.secret) {
        (Some(agent), Some(secret)) => Some(Via {
            agent: agent.get_ref().clone(),
            secret: Secret::new(secret.get_ref().clone()),
        }),
        (None, None) => None,
        (Some(given), None) | (None, Some(given)) => {
            let message = "expected both `via` (the exit agent) and `secret` (its egress secret)";
            return Err(ctx.error(given.span(), message));
        }
    };
    if let Some(idle) = &file.udp_idle_timeout {
        if !socks {
            let message = "`udp_idle_timeout` is for [socks5] (UDP ASSOCIATE)";
            return Err(ctx.error(idle.span(), message));
        }
        plan.udp_idle_timeout = ctx.duration(&file.udp_idle_timeout)?.unwrap_or_default();
    }
    Ok(plan)
}

fn exit(ctx: &Ctx<'_>, value: &Sp<EgressFile>) -> Result<ExitPlan, ConfigError> {
    let Some(secret) = &value.get_ref().secret else {
        let message = "expected `secret`: the secret other agents give with `via` to exit here";
        return Err(ctx.error(value.span(), message));
    };
    if secret.get_ref().is_empty() {
        return Err(ctx.error(secret.span(), "expected a secret that is not empty"));
    }
    Ok(ExitPlan {
        secret: Secret::new(secret.get_ref().clone()),
        settings: super::egress::settings(ctx, value)?,
    })
}

#[cfg(test)]
mod tests;
