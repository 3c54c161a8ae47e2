//! Where a connection goes, as written in a config: a TCP or Unix target, the PROXY protocol
//! version, how an upstream's certificate is checked. Plain data: the connector dials them.

use std::{fmt, path::PathBuf, str::FromStr};

/// Where a byte stream goes: a TCP `host:port` or a Unix socket path.
///
/// ```
/// use wsgate::connector::Target;
/// let t: Target = "tcp://127.0.0.1:5900".parse().unwrap();
/// assert_eq!(t.to_string(), "tcp://127.0.0.1:5900");
/// let u: Target = "unix:/run/vnc.sock".parse().unwrap();
/// assert_eq!(u.to_string(), "unix:/run/vnc.sock");
/// assert!("tcp://nohost".parse::<Target>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP service; `host` is a name or an IP literal (IPv6 without brackets).
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix stream socket.
    Unix(PathBuf),
}

impl Target {
    /// Parses `host:port` (IPv6 in brackets), the form websockify and token files use.
    pub(crate) fn parse_host_port(text: &str) -> Result<Self, String> {
        let expected = || format!("expected host:port, found {text:?}");
        let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
        // Brackets and spaces in any order (`[ ::1 ]`): what is left is the host as dialled,
        // and writes back as `host:port` (or `[host]:port`) to the same target.
        let host = host.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace());
        let port = port.trim().parse::<u16>().map_err(|_| expected())?;
        if host.is_empty() || port == 0 {
            return Err(expected());
        }
        Ok(Target::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err("expected unix:/path/to/socket".into());
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let rest = text.strip_prefix("tcp://").ok_or_else(|| {
            format!("expected \"tcp://host:port\" or \"unix:/path\", found {text:?}")
        })?;
        Target::parse_host_port(rest.trim_end_matches('/'))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Which header version to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// The text form: `PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n`.
    V1,
    /// The binary form.
    V2,
}

impl FromStr for ProxyProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "v1" => Ok(ProxyProtocol::V1),
            "v2" => Ok(ProxyProtocol::V2),
            _ => Err(format!("expected \"v1\" or \"v2\", found {text:?}")),
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        })
    }
}

/// How an upstream's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Against the operating system's trusted roots.
    SystemRoots,
    /// Against the CA certificates in this PEM file only.
    Ca(std::path::PathBuf),
    /// Not at all (`tls_verify = false`): for self-signed upstreams on a trusted network.
    Insecure,
}
