//! The agent's config file (`wsgate agent -c agent.toml`), the shape DESIGN.md gives: the
//! gateway(s), the token, `[[expose]]` services and `[[forward]]`s. Errors name file:line:col.

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, Location, Secret, file::Sp, validate::Ctx};
use crate::{
    agent::{AgentPlan, ForwardPlan, LocalService, local_dial},
    tunnel::wire::{Expose, Service},
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
    name: Option<String>,
    #[serde(default)]
    expose: Vec<Sp<ExposeFile>>,
    #[serde(default)]
    forward: Vec<Sp<ForwardFile>>,
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
    if services.is_empty() && forwards.is_empty() {
        return Err(ctx.error(0..0, "expected at least one [[expose]] or [[forward]]"));
    }
    Ok(AgentPlan {
        servers,
        token: Secret::new(parsed.token.get_ref().clone()),
        name: parsed.name.unwrap_or_else(default_name),
        services,
        forwards,
    })
}

/// The host name, else `agent`.
pub fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".into())
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
            name: file.name.get_ref().clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse("agent.toml", text, Path::new("."))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_full_file_becomes_a_plan() {
        let plan = parse(
            "agent.toml",
            r#"
server = ["ws://gw1:8080/_wsgate/agent", "wss://gw2/_wsgate/agent"]
token = "t"
name = "office"
[[expose]]
name = "api"
local = "http://127.0.0.1:8080"
path = "/api"
[[expose]]
name = "ssh"
local = "tcp://192.168.5.16:22"
secret = "s"
[[forward]]
listen = "127.0.0.1:9909"
service = "db"
secret = "s2"
"#,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(plan.servers.len(), 2);
        assert_eq!(plan.name, "office");
        assert_eq!(plan.services[0].dial, "127.0.0.1:8080");
        assert_eq!(plan.services[0].service.expose, Expose::Path("/api".into()));
        assert!(matches!(
            plan.services[1].service.expose,
            Expose::Private(_)
        ));
        assert_eq!(plan.forwards[0].listen.port(), 9909);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let head = "server = \"ws://gw/_wsgate/agent\"\ntoken = \"t\"\n";
        let cases = [
            (
                format!("{head}[[expose]]\nname = \"a\"\nlocal = \"http://127.0.0.1:1\"\n"),
                "agent.toml:3:1: expected one of `path`, `host`, `remote_port` or `secret`",
            ),
            (
                format!("{head}[[expose]]\nname = \"a\"\nlocal = \"ftp://x:1\"\npath = \"/a\"\n"),
                "agent.toml:5:9: expected an http://, https:// or tcp:// service",
            ),
            (
                format!(
                    "{head}[[expose]]\nname = \"a\"\nlocal = \"tcp://x:1\"\npath = \"/a\"\nhost = \"h\"\n"
                ),
                "agent.toml:7:8: an [[expose]] has one of",
            ),
            (
                "server = \"http://gw\"\ntoken = \"t\"\n".to_string(),
                "agent.toml:1:10: expected a ws:// or wss:// gateway URL",
            ),
            (
                format!(
                    "{head}[[forward]]\nlisten = \"nowhere\"\nservice = \"s\"\nsecret = \"x\"\n"
                ),
                "agent.toml:4:10:",
            ),
            (
                format!("{head}colour = \"red\"\n"),
                "agent.toml:3:1: unknown field `colour`",
            ),
        ];
        for (text, expected) in cases {
            let got = error(&text);
            assert!(
                got.starts_with(expected),
                "for:\n{text}\ngot:\n{got}\nexpected:\n{expected}"
            );
        }
    }
}
