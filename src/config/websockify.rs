//! websockify's command line → a gateway [`Config`]: one bridge route on every path, plus the
//! `--web` directory for plain requests.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    config::{
        Config, ConfigError, TlsSettings,
        route::{BridgeSpec, BridgeTarget, RouteKind, RouteSpec, StaticSpec, TokenFiles},
        target::Target,
    },
    io::pump::watchdog::Heartbeat,
};

/// websockify's options as the command line gave them (the binary maps its parser's arguments
/// into this): same names and meaning as websockify's.
#[derive(Debug, Clone, Default)]
pub struct WebsockifyOptions {
    /// `--web DIR`: files for plain HTTP requests.
    pub web: Option<PathBuf>,
    /// `--cert FILE`, used when it exists (default `self.pem`).
    pub cert: Option<PathBuf>,
    /// `--key FILE`, if separate from the certificate.
    pub key: Option<PathBuf>,
    /// `--ssl-only`: refuse plain connections.
    pub ssl_only: bool,
    /// `--token-plugin CLASS`.
    pub token_plugin: Option<String>,
    /// `--token-source ARG`.
    pub token_source: Option<String>,
    /// `--target-config FILE`.
    pub target_config: Option<PathBuf>,
    /// `--idle-timeout SECONDS`.
    pub idle_timeout: Option<u64>,
    /// `--timeout SECONDS`.
    pub timeout: Option<u64>,
    /// `--heartbeat INTERVAL`.
    pub heartbeat: Option<u64>,
    /// `--unix-target FILE`.
    pub unix_target: Option<PathBuf>,
    /// `[source_addr:]source_port`.
    pub listen: String,
    /// `target_addr:target_port`.
    pub target: Option<String>,
}

/// websockify options wsgate does not implement, with what to do instead. They are refused,
/// never silently ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "--traffic",
        "per-frame traffic logging is not available; use RUST_LOG=trace",
    ),
    ("--record", "session recording is not available"),
    (
        "--daemon",
        "run wsgate under systemd or another supervisor instead",
    ),
    (
        "-D",
        "run wsgate under systemd or another supervisor instead",
    ),
    ("--run-once", "not available"),
    ("--key-password", "use an unencrypted PEM key"),
    (
        "--ssl-target",
        "TLS toward the target is not available in bridge mode",
    ),
    ("--verify-client", "client certificates are not available"),
    ("--cafile", "client certificates are not available"),
    ("--ssl-version", "wsgate always uses TLS 1.2 and 1.3"),
    (
        "--ssl-ciphers",
        "wsgate uses rustls' safe default cipher suites",
    ),
    ("--unix-listen", "listen on TCP instead"),
    ("--unix-listen-mode", "listen on TCP instead"),
    ("--inetd", "not available"),
    ("--web-auth", "authentication plugins are not available"),
    ("--auth-plugin", "authentication plugins are not available"),
    ("--auth-source", "authentication plugins are not available"),
    ("--wrap-mode", "wrapping a command is not available"),
    (
        "--prefer-ipv6",
        "give an IPv6 source address such as [::]:6080",
    ),
    ("-6", "give an IPv6 source address such as [::]:6080"),
    ("--libserver", "not applicable"),
    ("--host-token", "tokens are read from ?token= or the path"),
    ("--log-file", "wsgate logs to stderr; redirect it"),
    (
        "--syslog",
        "wsgate logs to stderr; let the supervisor forward it",
    ),
    (
        "--legacy-syslog",
        "wsgate logs to stderr; let the supervisor forward it",
    ),
];

/// Refuses websockify options wsgate does not support, naming each, before argument parsing
/// would call them merely "unexpected".
pub fn reject_unsupported(args: &[String]) -> Result<(), ConfigError> {
    for arg in args {
        if arg == "--" {
            return Err(ConfigError::usage(
                "websockify: wrapping a command (`-- COMMAND`) is not supported by wsgate",
            ));
        }
        let name = arg.split('=').next().unwrap_or(arg);
        if let Some((option, hint)) = UNSUPPORTED.iter().find(|(option, _)| *option == name) {
            return Err(ConfigError::usage(format!(
                "websockify option {option} is not supported by wsgate: {hint}"
            )));
        }
    }
    Ok(())
}

/// `[addr:]port` → socket address; no address means every IPv4 interface, as websockify does.
fn listen_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    let error = || {
        ConfigError::usage(format!(
            "websockify: cannot parse listen address {text:?}: expected [source_addr:]source_port"
        ))
    };
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => ("", text),
    };
    let port: u16 = port.parse().map_err(|_| error())?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        host => host.parse().map_err(|_| error())?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// The token source from `--token-plugin`/`--token-source`/`--target-config`.
fn token_source(args: &WebsockifyOptions) -> Result<Option<TokenFiles>, ConfigError> {
    if let Some(file) = &args.target_config {
        return Ok(Some(TokenFiles {
            path: file.clone(),
            reload: true,
        }));
    }
    let Some(plugin) = &args.token_plugin else {
        return match args.token_source {
            Some(_) => Err(ConfigError::usage(
                "websockify: you must use --token-plugin to use --token-source",
            )),
            None => Ok(None),
        };
    };
    let reload = match plugin.trim_start_matches("websockify.token_plugins.") {
        "TokenFile" => true,
        "ReadOnlyTokenFile" => false,
        other => {
            return Err(ConfigError::usage(format!(
                "websockify token plugin {other} is not supported by wsgate: use TokenFile or ReadOnlyTokenFile"
            )));
        }
    };
    let source = args.token_source.as_ref().ok_or_else(|| {
        ConfigError::usage(format!(
            "websockify: --token-plugin {plugin} needs --token-source FILE|DIR"
        ))
    })?;
    if !Path::new(source).exists() {
        return Err(ConfigError::usage(format!(
            "websockify: token source {source} does not exist"
        )));
    }
    Ok(Some(TokenFiles {
        path: PathBuf::from(source),
        reload,
    }))
}

/// TLS when the certificate exists; required with `--ssl-only`.
fn tls(args: &WebsockifyOptions) -> Result<Option<TlsSettings>, ConfigError> {
    let cert = args
        .cert
        .clone()
        .unwrap_or_else(|| PathBuf::from("self.pem"));
    if !cert.exists() {
        return match (args.ssl_only, &args.cert) {
            (true, _) => Err(ConfigError::usage(format!(
                "websockify: SSL only and {} not found",
                cert.display()
            ))),
            (false, Some(_)) => Err(ConfigError::usage(format!(
                "websockify: certificate {} not found",
                cert.display()
            ))),
            (false, None) => Ok(None),
        };
    }
    let key = args.key.clone().unwrap_or_else(|| cert.clone());
    Ok(Some(TlsSettings {
        cert,
        key,
        allow_plain: !args.ssl_only,
    }))
}

/// Builds the gateway config websockify's arguments describe.
pub fn config(args: &WebsockifyOptions) -> Result<Config, ConfigError> {
    let tokens = token_source(args)?;
    let target = match (&args.unix_target, &args.target) {
        (Some(path), _) => Some(Target::Unix(path.clone())),
        (None, Some(text)) => Some(
            Target::parse_host_port(text)
                .map_err(|e| ConfigError::usage(format!("websockify: target: {e}")))?,
        ),
        (None, None) if tokens.is_some() => None,
        (None, None) => {
            return Err(ConfigError::usage(
                "websockify: too few arguments: give target_addr:target_port, --unix-target or --token-plugin",
            ));
        }
    };
    // Capped like config durations: a deadline beyond a year would only overflow the clock.
    let seconds = |s: Option<u64>| {
        s.filter(|&s| s > 0)
            .map(|s| Duration::from_secs(s).min(crate::units::MAX_DURATION))
    };
    let mut bridge = BridgeSpec::new(BridgeTarget::Direct { target, tokens });
    bridge.heartbeat = seconds(args.heartbeat).map(|interval| Heartbeat {
        interval,
        pong_timeout: interval,
    });
    let mut routes = vec![route("websockify", RouteKind::Bridge(bridge))];
    if let Some(web) = &args.web {
        if !web.is_dir() {
            return Err(ConfigError::usage(format!(
                "websockify: --web {} is not a directory",
                web.display()
            )));
        }
        let root = web.clone();
        routes.push(route("web", RouteKind::Static(StaticSpec { root })));
    }
    Ok(Config {
        source: "websockify command line".into(),
        listen: vec![listen_addr(&args.listen)?],
        tls: tls(args)?,
        shutdown_grace: super::validate::DEFAULT_SHUTDOWN_GRACE,
        exit_when_idle: seconds(args.idle_timeout),
        exit_after: seconds(args.timeout),
        routes,
        agents: None,
        limits: crate::budget::Limits::default(),
    })
}

fn route(name: &str, kind: RouteKind) -> RouteSpec {
    RouteSpec {
        name: name.into(),
        host: None,
        path: "/".into(),
        kind,
        at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            listen_addr("6080").unwrap(),
            "0.0.0.0:6080".parse().unwrap()
        );
        assert_eq!(
            listen_addr("127.0.0.1:6080").unwrap(),
            "127.0.0.1:6080".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[::1]:6080").unwrap(),
            "[::1]:6080".parse().unwrap()
        );
        assert!(listen_addr("x:y").is_err());
    }

    #[test]
    fn unsupported_options_are_named() {
        let args = ["--traffic".to_string()];
        let error = reject_unsupported(&args).unwrap_err();
        assert!(
            error.message.contains("--traffic is not supported"),
            "{error}"
        );
        assert!(reject_unsupported(&["--ssl-version=tlsv1_2".to_string()]).is_err());
        assert!(reject_unsupported(&["--web".to_string(), "x".to_string()]).is_ok());
    }
}
