//! Configuration: plain data (specs with where they were written), loaded from TOML, from
//! websockify's argv or from an agent's URL forms, and validated.
//!
//! Loading never binds a port, dials, loads a certificate or builds a handler: errors surface
//! before anything listens (STYLE rule 2), and the gateway assembles the live things.

pub mod agent;
mod ctx;
pub mod egress;
pub mod file;
mod proxy;
pub mod route;
pub mod target;
pub(crate) mod token_limits;
pub(crate) mod upstream_url;
pub mod validate;
pub mod websockify;
mod zones;

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use route::RouteSpec;

use crate::budget::Limits;
use crate::secret::Secret;

/// The config `wsgate serve` runs on when no file is given: loopback only, a web terminal and
/// a VNC bridge to the usual local ports, so a fresh install has something to try.
pub(crate) const EMBEDDED_DEFAULT: &str = include_str!("config/default.toml");

/// A validated gateway configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the config came from, for the banner.
    pub source: String,
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// TLS on every listener.
    pub tls: Option<TlsSettings>,
    /// How long shutdown waits for open connections.
    pub shutdown_grace: Duration,
    /// Exit after this long with no open connection (websockify `--idle-timeout`).
    pub exit_when_idle: Option<Duration>,
    /// Exit once this long has passed since start and no connection is open (websockify
    /// `--timeout`).
    pub exit_after: Option<Duration>,
    /// The routes, as written (the gateway assembles them).
    pub routes: Vec<RouteSpec>,
    /// The agent endpoint, when agents may connect.
    pub agents: Option<AgentSettings>,
    /// The gateway-wide resource budgets.
    pub limits: Limits,
}

/// The agent endpoint's settings.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The endpoint's path.
    pub path: String,
    /// Tokens agents may present: as loaded, those the config lists; once the gateway has
    /// read `token_file` (`gateway::assemble::agent_tokens`), its tokens too.
    pub tokens: Vec<Secret>,
    /// What each token (same index) may claim.
    pub limits: Vec<crate::config::token_limits::TokenLimits>,
    /// `[agents] token_file`, not read yet: loading only checks that it exists.
    pub token_file: Option<TokenFile>,
    /// Host patterns agents may claim hosts under (`[agents] hosts`, like frp's
    /// `subdomain_host`): a zone for agents, so a host claim cannot land on a name the gateway
    /// or its configured routes answer. Empty: agents claim no hosts.
    pub hosts: Vec<crate::matching::HostPattern>,
    /// Path prefixes agents may claim paths under (`[agents] paths`): a zone carved out of the
    /// configured routes (the `/` catch-all's, typically). `None`: paths anywhere no configured
    /// route answers, and none at all beside a configured `/` route.
    pub paths: Option<Vec<String>>,
    /// Host names the gateway is reached by (`[agents] gateway_names`), which no host claim
    /// may take; the TLS certificate's names are added when the gateway binds.
    pub gateway_names: Vec<String>,
    /// An agent silent this long is dropped.
    pub heartbeat_timeout: Duration,
    /// Gateway ports agents may open (`remote_port`), if any.
    pub remote_ports: Option<std::ops::RangeInclusive<u16>>,
    /// The address those ports listen on.
    pub remote_bind: std::net::IpAddr,
    /// `[egress]`: agents whose token allows it connect out from the gateway.
    pub egress: Option<egress::EgressSettings>,
}

/// The refusal of an `[agents]` section that gives no token at all.
pub(crate) const NO_AGENT_TOKENS: &str =
    "expected agent tokens: `tokens = [\"…\"]` or `token_file = \"FILE\"` with at least one";

/// `[agents] token_file`: where its tokens are, and where they go among the others.
#[derive(Debug, Clone)]
pub struct TokenFile {
    /// The file: one token a line, blank lines and `#` comments skipped.
    pub path: PathBuf,
    /// Where `token_file` is written, for an error reading it.
    pub at: Location,
    /// Where `[agents]` is written, for "no tokens at all" when the file holds none and the
    /// config lists none.
    pub section: Location,
    /// The index in `tokens` its tokens go to: after `tokens = [...]`'s, before the
    /// `[[agents.token]]` ones (a token's index names its limits).
    pub index: usize,
}

/// TLS certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (may be the same file).
    pub key: PathBuf,
    /// Accept plain HTTP on the same port too.
    pub allow_plain: bool,
}

/// A config error, located in its file when it comes from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `file:line:col` and the offending line, when known.
    pub location: Option<Location>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Where in a file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The text of that line, to show under the message.
    pub text: String,
}

impl Location {
    /// The location of byte offset `at` in `source`.
    pub fn of(file: &str, source: &str, at: usize) -> Self {
        let at = at.min(source.len());
        let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[at..].find('\n').map_or(source.len(), |i| at + i);
        Location {
            file: file.to_string(),
            line: source[..at].matches('\n').count() + 1,
            column: source[line_start..at].chars().count() + 1,
            text: source[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
        }
    }
}

impl ConfigError {
    /// An error with no place in a file (command-line arguments).
    pub fn usage(message: impl Into<String>) -> Self {
        ConfigError {
            location: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            None => f.write_str(&self.message),
            Some(at) => {
                writeln!(f, "{}:{}:{}: {}", at.file, at.line, at.column, self.message)?;
                writeln!(f, "  | {}", at.text)?;
                write!(f, "  | {}^", " ".repeat(at.column.saturating_sub(1)))
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Loads and validates a gateway config file.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::usage(format!("{}: cannot read config: {error}", path.display()))
    })?;
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    validate::gateway(&path.display().to_string(), &source, &base)
}

/// The embedded default config.
/// The embedded default config, with the agent endpoint on and a token generated for this run
/// (the banner prints the `wsgate agent` command that uses it).
pub fn embedded_default() -> Config {
    let mut config = validate::gateway(
        "<embedded default>",
        EMBEDDED_DEFAULT,
        std::path::Path::new("."),
    )
    .expect("the embedded default config is valid: a unit test checks it");
    config.agents = Some(AgentSettings {
        path: "/_wsgate/agent".into(),
        tokens: vec![Secret::generate()],
        limits: vec![Default::default()],
        token_file: None,
        // No host zone: the generated token claims paths only, never a host (which would
        // outrank `/vnc` and `/ssh` for every request carrying it).
        hosts: Vec::new(),
        // No `/` route in the default, so no path zone is needed: the token claims any path
        // beside `/vnc` and `/ssh`.
        paths: None,
        gateway_names: Vec::new(),
        heartbeat_timeout: Duration::from_secs(30),
        remote_ports: None,
        remote_bind: std::net::Ipv4Addr::LOCALHOST.into(),
        egress: None,
    });
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let config = embedded_default();
        assert_eq!(config.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert!(!config.routes.is_empty());
        let agents = config.agents.expect("the default lets agents connect");
        assert!(
            agents.hosts.is_empty(),
            "the default lets agents claim no host"
        );
        let token = agents.tokens[0].expose();
        assert_eq!(token.len(), 32);
        assert_ne!(token, embedded_default().agents.unwrap().tokens[0].expose());
    }

    #[test]
    fn location_counts_lines_and_columns() {
        let at = Location::of("f.toml", "a = 1\nbb = \"x\"\n", 11);
        assert_eq!((at.line, at.column, at.text.as_str()), (2, 6, "bb = \"x\""));
    }
}
