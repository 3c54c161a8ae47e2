//! An upstream as written in a proxy route (`ws://host:port/path`) and the nginx-style path
//! mapping from a request to it.

use std::{fmt, str::FromStr};

use super::target::Target;

/// One upstream of a proxy route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// As written, for logs and the banner.
    text: String,
    /// `wss://` or `https://`.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// The path that replaces the route's prefix; `None` when the URL has no path, in which
    /// case the request's path is sent unchanged (as nginx's `proxy_pass` without a URI).
    pub base_path: Option<String>,
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            format!(
                "expected an upstream URL such as \"ws://127.0.0.1:3000/path\" \
                 (ws, wss, http or https), found {text:?}"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(expected)?;
        let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => (false, 80),
            "wss" | "https" => (true, 443),
            _ => return Err(expected()),
        };
        if rest.contains(['?', '#', '@']) {
            return Err(format!(
                "an upstream URL has no query, fragment or user info: {text:?}"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], Some(rest[slash..].to_string())),
            None => (rest, None),
        };
        let (host, port) = split_authority(authority, default_port).ok_or_else(expected)?;
        let host_ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if !host_ok {
            return Err(format!("{host:?} is not a host name or address: {text:?}"));
        }
        let bad_path =
            |p: &String| p.contains(' ') || p.parse::<http::uri::PathAndQuery>().is_err();
        if let Some(path) = path.as_ref().filter(|p| bad_path(p)) {
            return Err(format!(
                "{path:?} is not a URL path (spaces and other special characters must be \
                 %-escaped): {text:?}"
            ));
        }
        Ok(UpstreamUrl {
            text: text.to_string(),
            tls,
            host,
            port,
            base_path: path,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            port => (host, Some(port.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

impl UpstreamUrl {
    /// Where to dial.
    pub fn target(&self) -> Target {
        Target::Tcp {
            host: self.host.clone(),
            port: self.port,
        }
    }

    /// The `Host` header that names this upstream: the port only when it is not the scheme's
    /// default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (false, 80) | (true, 443) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }

    /// The path and query to request upstream. `path` is the request's whole path, `rest` the
    /// part after the route's prefix (empty or starting with `/`).
    ///
    /// ```
    /// use wsgate::handler::proxy::UpstreamUrl;
    /// let url: UpstreamUrl = "ws://127.0.0.1:3000/websocket".parse().unwrap();
    /// assert_eq!(url.map_path("/chat/x", "/x", Some("y=1")), "/websocket/x?y=1");
    /// let url: UpstreamUrl = "ws://127.0.0.1:3000".parse().unwrap();
    /// assert_eq!(url.map_path("/chat/x", "/x", None), "/chat/x");
    /// ```
    pub fn map_path(&self, path: &str, rest: &str, query: Option<&str>) -> String {
        let mut mapped = match &self.base_path {
            None => path.to_string(),
            Some(base) if rest.is_empty() => base.clone(),
            Some(base) => format!("{}{rest}", base.trim_end_matches('/')),
        };
        if mapped.is_empty() {
            mapped.push('/');
        }
        if let Some(query) = query {
            mapped.push('?');
            mapped.push_str(query);
        }
        mapped
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(upstream: &str, path: &str, rest: &str, query: Option<&str>) -> String {
        upstream
            .parse::<UpstreamUrl>()
            .unwrap()
            .map_path(path, rest, query)
    }

    /// Route prefix, upstream, request → what the upstream is asked for.
    #[test]
    fn path_mapping_table() {
        let cases = [
            (
                "/chat",
                "ws://u/websocket",
                "/chat/x?y=1",
                "/websocket/x?y=1",
            ),
            ("/chat", "ws://u/websocket", "/chat", "/websocket"),
            ("/chat", "ws://u/websocket", "/chat/", "/websocket/"),
            ("/chat", "ws://u/websocket/", "/chat/x", "/websocket/x"),
            ("/chat", "ws://u/websocket/", "/chat", "/websocket/"),
            ("/chat", "ws://u", "/chat/x?y=1", "/chat/x?y=1"),
            ("/chat", "ws://u/", "/chat/x", "/x"),
            ("/chat", "ws://u/", "/chat", "/"),
            ("/", "ws://u/app", "/x/y", "/app/x/y"),
            ("/", "ws://u", "/x/y?q", "/x/y?q"),
            ("/a/b", "http://u/c", "/a/b/%2e%2e/d", "/c/%2e%2e/d"),
            (
                "/api",
                "https://u:8443/v2",
                "/api/users?id=7&x",
                "/v2/users?id=7&x",
            ),
        ];
        for (prefix, upstream, request, expected) in cases {
            let (path, query) = match request.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (request, None),
            };
            let rest = crate::matching::strip_prefix(prefix, path).unwrap();
            assert_eq!(
                map(upstream, path, rest, query),
                expected,
                "{prefix} + {upstream} + {request}"
            );
        }
    }

    #[test]
    fn parses_schemes_ports_and_ipv6() {
        let url: UpstreamUrl = "wss://[::1]:9443/x".parse().unwrap();
        assert_eq!((url.tls, url.host.as_str(), url.port), (true, "::1", 9443));
        assert_eq!(url.authority(), "[::1]:9443");
        let url: UpstreamUrl = "HTTP://Example.COM".parse().unwrap();
        assert_eq!(
            (url.tls, url.port, url.authority()),
            (false, 80, "example.com".into())
        );
        assert!("tcp://a:1".parse::<UpstreamUrl>().is_err());
        assert!("ws://a:0".parse::<UpstreamUrl>().is_err());
        assert!("ws://a/x?q".parse::<UpstreamUrl>().is_err());
        assert!("ws://a/pa th".parse::<UpstreamUrl>().is_err());
        assert!("ws://a b:1".parse::<UpstreamUrl>().is_err());
    }
}
