//! The one assembler: route specs (from the config, or from a service an agent claimed) become
//! live routes with their handlers, connectors and TLS client setups. A reload calls it again.
//!
//! Everything that can fail here (a CA file that does not load, an upstream name TLS cannot
//! carry) is named at the place the route is written, as config errors are.

use std::sync::Arc;

use crate::{
    config::{
        ConfigError, Location,
        route::{BridgeSpec, BridgeTarget, ProxySpec, RouteKind, RouteSpec, UpstreamSpec},
    },
    connector::{AgentConnector, Connector, DialOptions, tls::TlsDial},
    handler::{
        BridgeRoute, FilesRoute, Handler, ProxyRoute,
        bridge::BridgeTarget as LiveTarget,
        bridge::tokens::TokenSource,
        proxy::{UpstreamServer, Upstreams},
    },
    router::Route,
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
}
