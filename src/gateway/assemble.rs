//! The one assembler: route specs (from the config, or from a service an agent claimed) become
//! live routes with their handlers, connectors and TLS client setups. A reload calls it again.
//!
//! Everything that can fail here (a CA file that does not load, an upstream name TLS cannot
//! carry) is named at the place the route is written, as config errors are.

use std::sync::Arc;

use crate::{
    config::{
        AgentSettings, ConfigError, Location, NO_AGENT_TOKENS,
        route::{BridgeSpec, BridgeTarget, ProxySpec, RouteKind, RouteSpec, UpstreamSpec},
        token_limits::TokenLimits,
    },
    connector::{AgentConnector, Connector, DialOptions, tls::TlsDial},
    handler::{
        BridgeRoute, FilesRoute, Handler, ProxyRoute,
        bridge::BridgeTarget as LiveTarget,
        bridge::tokens::TokenSource,
        proxy::{UpstreamServer, Upstreams},
    },
    router::Route,
    secret::Secret,
};

/// The configured routes, live, in the order written.
pub fn routes(specs: &[RouteSpec]) -> Result<Vec<Route>, ConfigError> {
    specs.iter().map(|spec| route(spec, None)).collect()
}

/// One route; `agent` is how an agent's service is reached, for a spec that says its target
/// is an agent (`BridgeTarget::Agent`, `ProxySpec::via_agent`).
pub fn route(spec: &RouteSpec, agent: Option<&AgentConnector>) -> Result<Route, ConfigError> {
    let handler = match &spec.kind {
        RouteKind::Bridge(bridge) => {
            Handler::Bridge(bridge_route(bridge, agent, spec.at.as_ref())?)
        }
        RouteKind::Proxy(proxy) => Handler::Proxy(proxy_route(proxy, agent)?),
        RouteKind::Static(files) => Handler::Files(FilesRoute::new(files.root.clone())),
    };
    Ok(Route {
        name: spec.name.clone(),
        host: spec.host.clone(),
        path: spec.path.clone(),
        handler,
    })
}

/// The agents' settings with `token_file`'s tokens read in after the listed ones, each
/// without limits: loading only checked that the file exists. A file that cannot be read, or
/// no token at all, is named at its place in the config.
pub fn agent_tokens(mut settings: AgentSettings) -> Result<AgentSettings, ConfigError> {
    let Some(file) = settings.token_file.take() else {
        return Ok(settings);
    };
    let text = std::fs::read_to_string(&file.path).map_err(|e| ConfigError {
        location: Some(file.at.clone()),
        message: format!("cannot read {}: {e}", file.path.display()),
    })?;
    let read: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(Secret::new)
        .collect();
    if read.is_empty() && settings.tokens.is_empty() {
        return Err(ConfigError {
            location: Some(file.section),
            message: NO_AGENT_TOKENS.into(),
        });
    }
    let index = file.index.min(settings.tokens.len());
    let unlimited = vec![TokenLimits::default(); read.len()];
    settings.tokens.splice(index..index, read);
    settings.limits.splice(index..index, unlimited);
    Ok(settings)
}

fn dial_options(connect_timeout: std::time::Duration) -> DialOptions {
    DialOptions {
        connect_timeout,
        ..DialOptions::default()
    }
}

fn bridge_route(
    spec: &BridgeSpec,
    agent: Option<&AgentConnector>,
    at: Option<&Location>,
) -> Result<BridgeRoute, ConfigError> {
    let target = match &spec.target {
        BridgeTarget::Direct { target, tokens } => {
            let dial = DialOptions {
                proxy_protocol: spec.proxy_protocol,
                ..dial_options(spec.connect_timeout)
            };
            let tokens = tokens
                .as_ref()
                .map(|files| TokenSource::new(files.path.clone(), files.reload));
            LiveTarget::direct(target.clone(), tokens, dial)
        }
        BridgeTarget::Agent => agent
            .cloned()
            .map(|a| LiveTarget::Fixed(Connector::Agent(a))),
    };
    let target = target.ok_or_else(|| ConfigError {
        location: at.cloned(),
        message: "a bridge needs a target, a token source or an agent's service".into(),
    })?;
    let mut route = BridgeRoute::new(target, spec.max_message_bytes);
    route.idle_timeout = spec.idle_timeout;
    route.heartbeat = spec.heartbeat;
    Ok(route)
}

fn proxy_route(
    spec: &ProxySpec,
    agent: Option<&AgentConnector>,
) -> Result<ProxyRoute, ConfigError> {
    let servers = spec
        .upstreams
        .iter()
        .map(|upstream| upstream_server(spec, upstream, agent).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProxyRoute {
        upstreams: Upstreams::new(servers, spec.balance, spec.fail_timeout),
        mode: spec.mode,
        headers: spec.headers.clone(),
        response_timeout: spec.response_timeout,
        idle_timeout: spec.idle_timeout,
        max_message_bytes: spec.max_message_bytes,
    })
}

/// One upstream: dialled directly, or through the agent; TLS set up (the CA file loaded) when
/// its URL asks for TLS.
fn upstream_server(
    spec: &ProxySpec,
    upstream: &UpstreamSpec,
    agent: Option<&AgentConnector>,
) -> Result<UpstreamServer, ConfigError> {
    let url = &upstream.url;
    let tls = url
        .tls
        .then(|| TlsDial::new(&url.host, &spec.verify))
        .transpose()
        .map_err(|e| located(upstream, e.to_string()))?;
    let connector = match agent.filter(|_| spec.via_agent) {
        Some(agent) => Connector::Agent(agent.clone()),
        None => Connector::direct(url.target(), dial_options(spec.connect_timeout)),
    };
    Ok(UpstreamServer::new(url.clone(), connector.with_tls(tls)))
}

fn located(upstream: &UpstreamSpec, message: String) -> ConfigError {
    ConfigError {
        location: upstream.at.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{route::RouteKind, validate};

    /// Loading reads no file a route names: a CA file that is no certificate at all still
    /// loads as a spec, and only assembling it fails, at the upstream's place in the file.
    #[test]
    fn loading_builds_nothing_and_assembly_names_the_place() {
        let dir = std::env::temp_dir().join(format!("wsgate-assemble-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), "not a certificate\n").unwrap();
        let text = "[[route]]\nproxy = \"wss://upstream.test:443\"\ntls_ca = \"ca.pem\"\n";
        let config = validate::gateway("gw.toml", text, &dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(config.routes[0].kind, RouteKind::Proxy(_)));
        let error = super::routes(&config.routes).expect_err("the CA file is gone by now");
        let at = error.location.as_ref().expect("located");
        assert_eq!((at.file.as_str(), at.line, at.column), ("gw.toml", 2, 9));
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }

    /// Loading checks that the agents' token file exists but does not read it: its tokens
    /// arrive when the gateway assembles, between the listed and the limited ones, and a file
    /// gone by then is named at its place in the config.
    #[test]
    fn the_agents_token_file_is_read_at_assembly_not_at_load() {
        let dir = std::env::temp_dir().join(format!("wsgate-agent-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "f1\n# a comment\n\n f2 \n").unwrap();
        let text = "[agents]\ntoken_file = \"tokens\"\ntokens = [\"a\"]\n\
                    [[agents.token]]\ntoken = \"l\"\nnames = [\"api\"]\n";
        let config = validate::gateway("gw.toml", text, &dir).unwrap_or_else(|e| panic!("{e}"));
        let loaded = config.agents.expect("[agents]");
        let shown = |tokens: &[crate::secret::Secret]| -> Vec<String> {
            tokens.iter().map(|t| t.expose().to_string()).collect()
        };
        assert_eq!(
            shown(&loaded.tokens),
            ["a", "l"],
            "the file is not read yet"
        );
        let assembled = super::agent_tokens(loaded.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&assembled.tokens), ["a", "f1", "f2", "l"]);
        assert!(assembled.token_file.is_none());
        let names: Vec<bool> = assembled.limits.iter().map(|l| l.names.is_some()).collect();
        assert_eq!(
            names,
            [false, false, false, true],
            "limits keep their token's index"
        );

        std::fs::remove_file(&file).unwrap();
        let error = super::agent_tokens(loaded).expect_err("the file is gone by now");
        std::fs::remove_dir_all(&dir).unwrap();
        let at = error.location.as_ref().expect("located");
        assert_eq!((at.file.as_str(), at.line, at.column), ("gw.toml", 2, 14));
        assert!(error.message.starts_with("cannot read "), "{error}");
    }
}
