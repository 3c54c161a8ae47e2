//! The host a request names (`Host`, or the authority of an absolute URI), checked and put in
//! canonical form before routing, so that routes match and upstreams receive one spelling.

use std::{fmt, net::Ipv6Addr};

/// Why a request's host is refused (400, RFC 9112 §3.2: "a Host header field with an invalid
/// field value").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing before the port, or nothing at all.
    #[error("the host is empty")]
    Empty,
    /// `user@host`: user info is not part of a request's host (RFC 9110 §4.2.4).
    #[error("the host carries user info (user@)")]
    UserInfo,
    /// A port that is empty, not digits or above 65535.
    #[error("the port is not a number from 0 to 65535")]
    Port,
    /// Neither a host name, nor an IPv4 address, nor a bracketed IPv6 address.
    #[error("not a host name, an IPv4 address or a bracketed IPv6 address")]
    Name,
}

/// A checked host and optional port. The name is a DNS-shaped name (letters, digits, `-` and
/// `_` in dot-separated labels, which covers IPv4 addresses) without its trailing dot, or an
/// IPv6 address in brackets. Percent-escapes and the other characters RFC 3986 allows in a
/// reg-name never appear in a DNS name; they are refused, since upstreams would each read
/// them their own way.
///
/// ```
/// use wsgate::matching::{Authority, HostError};
/// let host = Authority::parse("App.test.:8080").unwrap();
/// assert_eq!((host.host, host.port), ("App.test", Some(8080)));
/// assert_eq!(host.to_string(), "App.test:8080");
/// assert_eq!(Authority::parse("[::1]").unwrap().host, "[::1]");
/// assert_eq!(Authority::parse("a:99999"), Err(HostError::Port));
/// assert_eq!(Authority::parse("user@a"), Err(HostError::UserInfo));
/// assert_eq!(Authority::parse("a b"), Err(HostError::Name));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    /// The name without a trailing dot (`app.test.` is `app.test`), or `[IPv6]`.
    pub host: &'a str,
    /// The port, when one was written.
    pub port: Option<u16>,
}

impl<'a> Authority<'a> {
    /// Checks `text` (a `Host` value or a URI's authority).
    pub fn parse(text: &'a str) -> Result<Self, HostError> {
        if text.contains('@') {
            return Err(HostError::UserInfo);
        }
        let (host, port) = split_port(text)?;
        if host.is_empty() {
            return Err(HostError::Empty);
        }
        let port = port.map(parse_port).transpose()?;
        let host = match host.strip_prefix('[') {
            Some(inner) => {
                let address = inner.strip_suffix(']').ok_or(HostError::Name)?;
                address.parse::<Ipv6Addr>().map_err(|_| HostError::Name)?;
                host
            }
            None => host.strip_suffix('.').unwrap_or(host),
        };
        if !host.starts_with('[') && !is_name(host) {
            return Err(HostError::Name);
        }
        Ok(Authority { host, port })
    }
}

impl fmt::Display for Authority<'_> {
    /// The canonical form: `host` or `host:port`, the port without leading zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// `host` and the text after its port colon: `[v6]:p`, `[v6]`, `name:p`, `name`.
fn split_port(text: &str) -> Result<(&str, Option<&str>), HostError> {
    if text.starts_with('[') {
        let close = text.find(']').ok_or(HostError::Name)?;
        let (host, after) = text.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => Ok((host, Some(after.strip_prefix(':').ok_or(HostError::Name)?))),
        };
    }
    Ok(match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

/// Digits only (`u16::from_str` would also take `+80`), at most 65535.
fn parse_port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::Port);
    }
    text.parse().map_err(|_| HostError::Port)
}

/// Dot-separated labels of letters, digits, `-` and `_`, none empty.
fn is_name(name: &str) -> bool {
    name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_accepted_in_canonical_form() {
        let cases = [
            ("a", "a"),
            ("app.test", "app.test"),
            ("app.test.", "app.test"),
            ("App.Test.:80", "App.Test:80"),
            ("a:0", "a:0"),
            ("a:65535", "a:65535"),
            ("a:0080", "a:80"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("[::1]", "[::1]"),
            ("[::ffff:1.2.3.4]:443", "[::ffff:1.2.3.4]:443"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("_srv.host-1", "_srv.host-1"),
        ];
        for (text, canonical) in cases {
            let parsed = Authority::parse(text).map(|a| a.to_string());
            assert_eq!(parsed.as_deref(), Ok(canonical), "{text:?}");
        }
    }

    #[test]
    fn malformed_hosts_are_refused_with_their_reason() {
        use HostError::*;
        let cases = [
            ("", Empty),
            (":80", Empty),
            ("a:abc", Port),
            ("a:99999", Port),
            ("a:", Port),
            ("a:+80", Port),
            ("a:-1", Port),
            ("user@a", UserInfo),
            ("@a", UserInfo),
            ("a b", Name),
            (" a", Name),
            ("a..b", Name),
            (".a", Name),
            ("a..", Name),
            (".", Name),
            ("a/b", Name),
            ("a%2eb", Name),
            ("a,b", Name),
            ("a:1:2", Port),
            ("::1", Empty),
            ("[::1", Name),
            ("[::1]x", Name),
            ("[::1]:", Port),
            ("[zz]", Name),
            ("[fe80::1%25eth0]", Name),
            ("[v1.x]", Name),
            ("[1.2.3.4]", Name),
        ];
        for (text, error) in cases {
            assert_eq!(Authority::parse(text), Err(error), "{text:?}");
        }
    }
}
