//! What an agent is told to do: its gateways, token and name, the services it exposes and
//! the forwards it opens, from the command line's registration URLs (`parse_service`,
//! `parse_forward`) or from `agent.toml` (`config::agent`).

use http::Uri;

use crate::{
    secret::Secret,
    wire::{Expose, Service, names},
};

/// How long a stopping agent's open streams may take to finish, unless `agent.toml`'s
/// `shutdown_grace` or `--shutdown-grace` says otherwise: a visitor's download or a forwarded
/// session usually ends within it, and a service manager's own stop timeout is longer.
pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What an agent runs.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    /// Gateway agent endpoints (`ws://` or `wss://`), one session each.
    pub servers: Vec<Uri>,
    /// The token the gateways accept.
    pub token: Secret,
    /// This agent's name.
    pub name: String,
    /// The services to expose.
    pub services: Vec<LocalService>,
    /// Local ports that reach other agents' private services.
    pub forwards: Vec<ForwardPlan>,
    /// A local SOCKS5 proxy whose connections leave through the gateway (or `via`).
    pub socks5: Option<ProxyPlan>,
    /// A local HTTP proxy (CONNECT and absolute URIs), likewise.
    pub http_proxy: Option<ProxyPlan>,
    /// Other agents may connect out from this agent's network (`via`).
    pub exit: Option<ExitPlan>,
    /// On SIGTERM or Ctrl-C, how long open streams may take to finish before the agent exits.
    pub shutdown_grace: std::time::Duration,
}

/// A local forward proxy (SOCKS5 or HTTP) whose connections leave through the gateway's
/// egress, or through the exit agent named in `via`.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// Where it listens.
    pub listen: std::net::SocketAddr,
    /// Username and password clients must give; none: no authentication.
    pub credentials: Option<Credentials>,
    /// Exit through this agent instead of the gateway.
    pub via: Option<crate::wire::Via>,
    /// SOCKS5: how long a UDP association may sit without a datagram.
    pub udp_idle_timeout: std::time::Duration,
}

impl ProxyPlan {
    /// A proxy on `listen` with no authentication, exiting at the gateway.
    pub fn on(listen: std::net::SocketAddr) -> Self {
        ProxyPlan {
            listen,
            credentials: None,
            via: None,
            udp_idle_timeout: crate::config::egress::DEFAULT_UDP_IDLE_TIMEOUT,
        }
    }
}

/// A username and password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl Credentials {
    /// Whether `username` and `password` are these; the time taken does not depend on where
    /// they differ.
    pub fn matches(&self, username: &str, password: &str) -> bool {
        let name = Secret::new(self.username.clone()).matches(username);
        let word = self.password.matches(password);
        name & word
    }
}

/// This agent as an exit for other agents' `via`.
#[derive(Debug, Clone)]
pub struct ExitPlan {
    /// The secret they must give.
    pub secret: Secret,
    /// Where they may connect.
    pub settings: crate::config::egress::EgressSettings,
}

/// `--forward LISTEN=SERVICE?secret=S`: connections to a local port reach another agent's
/// private service through the gateway.
#[derive(Debug, Clone)]
pub struct ForwardPlan {
    /// Where the agent listens.
    pub listen: std::net::SocketAddr,
    /// The private service's name.
    pub service: String,
    /// Its secret.
    pub secret: Secret,
}

/// `text` with any `secret=` value hidden, for error messages.
///
/// ```
/// use wsgate::config::agent::plan::parse_forward;
/// let error = parse_forward("nowhere=ssh?secret=hunter2").unwrap_err();
/// assert!(error.contains("secret=<redacted>") && !error.contains("hunter2"));
/// ```
fn redacted(text: &str) -> String {
    match text.split_once("secret=") {
        Some((before, after)) => {
            let rest = after.find('&').map_or("", |at| &after[at..]);
            format!("{before}secret=<redacted>{rest}")
        }
        None => text.to_string(),
    }
}

/// Parses `127.0.0.1:9909=ssh?secret=S`.
///
/// ```
/// use wsgate::config::agent::plan::parse_forward;
/// let f = parse_forward("127.0.0.1:9909=ssh?secret=s3").unwrap();
/// assert_eq!((f.listen.port(), f.service.as_str(), f.secret.expose()), (9909, "ssh", "s3"));
/// ```
pub fn parse_forward(text: &str) -> Result<ForwardPlan, String> {
    let expected = || {
        format!(
            "expected LISTEN=SERVICE?secret=SECRET, found {:?}",
            redacted(text)
        )
    };
    let (listen, rest) = text.split_once('=').ok_or_else(expected)?;
    let (service, secret) = rest.split_once("?secret=").ok_or_else(expected)?;
    Ok(ForwardPlan {
        listen: listen.parse().map_err(|_| expected())?,
        service: service.to_string(),
        secret: Secret::new(secret),
    })
}

/// A service and where the agent dials it.
#[derive(Debug, Clone)]
pub struct LocalService {
    /// As registered.
    pub service: Service,
    /// `host:port` the agent dials for each visitor.
    pub dial: String,
}

/// Parses a service given on the command line: `http://127.0.0.1:8080/?mode=path&value=api`,
/// `tcp://127.0.0.1:5900?mode=domain&value=vnc.example.com`, optionally `&name=NAME`.
///
/// ```
/// use wsgate::config::agent::plan::parse_service;
/// let s = parse_service("http://127.0.0.1:8080/?mode=path&value=api").unwrap();
/// assert_eq!((s.service.name.as_str(), s.dial.as_str()), ("api", "127.0.0.1:8080"));
/// assert_eq!(s.service.local, "http://127.0.0.1:8080/");
/// ```
pub fn parse_service(text: &str) -> Result<LocalService, String> {
    let shown = redacted(text);
    let (base, query) = text
        .split_once('?')
        .ok_or_else(|| format!("expected URL?mode=path|domain&value=…, found {shown:?}"))?;
    let mut mode = None;
    let mut value = None;
    let mut name = None;
    let mut secret = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("mode", v)) => mode = Some(v.to_string()),
            Some(("value", v)) => value = Some(v.to_string()),
            Some(("name", v)) => name = Some(v.to_string()),
            Some(("secret", v)) => secret = Some(Secret::new(v)),
            _ => return Err(format!("unknown parameter {pair:?} in {shown:?}")),
        }
    }
    let value = value.ok_or_else(|| format!("missing value= in {shown:?}"))?;
    let expose = match mode.as_deref() {
        Some("path") => Expose::Path(format!("/{}", value.trim_start_matches('/'))),
        Some("domain") => Expose::Host(value.clone()),
        Some("port") => Expose::Port(
            value
                .parse()
                .map_err(|_| format!("expected a port number in value= of {shown:?}"))?,
        ),
        Some("private") => Expose::Private(
            secret
                .clone()
                .ok_or_else(|| format!("mode=private needs secret= in {shown:?}"))?,
        ),
        _ => {
            return Err(format!(
                "expected mode=path, mode=domain, mode=port or mode=private in {shown:?}"
            ));
        }
    };
    let dial = local_dial(base)?;
    let name = match name {
        Some(name) => {
            names::check("service", &name).map_err(|e| format!("{e}, in {shown:?}"))?;
            name
        }
        // Derived from the path or host: made to fit rather than refused.
        None => names::sanitize(value.trim_matches('/'), "root"),
    };
    Ok(LocalService {
        service: Service {
            name,
            local: base.to_string(),
            expose,
        },
        dial,
    })
}

/// Where the agent dials a service given as `http://host:port/…`, `https://…` or
/// `tcp://host:port`.
pub(crate) fn local_dial(local: &str) -> Result<String, String> {
    let (scheme, rest) = local
        .split_once("://")
        .ok_or_else(|| format!("expected http://, https:// or tcp://, found {local:?}"))?;
    let default_port = match scheme {
        "http" | "tcp" => 80,
        "https" => 443,
        _ => {
            return Err(format!(
                "expected an http://, https:// or tcp:// service, found {local:?}"
            ));
        }
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("expected host:port in {local:?}"));
    }
    Ok(if authority.contains(':') || authority.starts_with('[') {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_checked_when_given_and_made_to_fit_when_derived() {
        let name = |text: &str| parse_service(text).map(|s| s.service.name);
        let cases = [
            ("http://127.0.0.1:1/?mode=path&value=/api/v1", "api-v1"),
            ("http://127.0.0.1:1/?mode=path&value=/", "root"),
            (
                "tcp://127.0.0.1:1?mode=domain&value=*.example.com",
                "-.example.com",
            ),
            ("tcp://127.0.0.1:1?mode=port&value=2222&name=ssh", "ssh"),
        ];
        for (text, expected) in cases {
            assert_eq!(name(text).unwrap(), expected, "{text}");
        }
        let refused = name("tcp://127.0.0.1:1?mode=port&value=2222&name=a%0ab").unwrap_err();
        assert!(
            refused.starts_with("service name must be 1-64 characters"),
            "{refused}"
        );
    }
}
