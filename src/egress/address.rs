//! A destination as SOCKS5 writes it (RFC 1928 §5): an address type, the address, the port.
//! The SOCKS5 server reads it from requests and UDP headers; the tunnel frames datagrams with it.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

const IPV4: u8 = 1;
const NAME: u8 = 3;
const IPV6: u8 = 4;

/// A host: an address, or a name to resolve where the connection leaves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A domain name.
    Name(String),
}

impl Host {
    /// `text` as an address if it is one (IPv6 with or without brackets), else as a name.
    pub fn parse(text: &str) -> Host {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        bare.parse()
            .map_or_else(|_| Host::Name(text.to_string()), Host::Ip)
    }
}

impl fmt::Display for Host {
    /// Addresses and names as written, IPv6 without brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A host and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

/// Whether `name` may be a host name: not empty, and no control character or white space. A
/// name with a newline or an escape byte resolves nowhere; refused where it arrives (the
/// agent's SOCKS5 server, the exit), it never travels on to a resolver or into a log.
pub(crate) fn is_host_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Why an address could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// An address type other than IPv4, name or IPv6 (SOCKS5 reply 0x08).
    UnknownType(u8),
    /// A name that is empty, not UTF-8, or has a control character or white space (SOCKS5
    /// reply 0x01).
    BadName,
}

impl Address {
    /// Reads an address from the start of `bytes`: the address and the bytes it took, or
    /// `None` when `bytes` ends before it does.
    pub fn decode(bytes: &[u8]) -> Result<Option<(Address, usize)>, AddressError> {
        let Some(&kind) = bytes.first() else {
            return Ok(None);
        };
        let (host, end) = match kind {
            IPV4 => match bytes.get(1..5) {
                Some(b) => (Host::Ip(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()), 5),
                None => return Ok(None),
            },
            IPV6 => match bytes.get(1..17) {
                Some(b) => {
                    let octets: [u8; 16] = b.try_into().expect("16 bytes");
                    (Host::Ip(Ipv6Addr::from(octets).into()), 17)
                }
                None => return Ok(None),
            },
            NAME => {
                let Some(&len) = bytes.get(1) else {
                    return Ok(None);
                };
                let end = 2 + usize::from(len);
                let Some(name) = bytes.get(2..end) else {
                    return Ok(None);
                };
                match std::str::from_utf8(name) {
                    Ok(name) if is_host_name(name) => (Host::Name(name.to_string()), end),
                    _ => return Err(AddressError::BadName),
                }
            }
            other => return Err(AddressError::UnknownType(other)),
        };
        match bytes.get(end..end + 2) {
            Some(port) => {
                let port = u16::from_be_bytes([port[0], port[1]]);
                Ok(Some((Address { host, port }, end + 2)))
            }
            None => Ok(None),
        }
    }

    /// Appends the address as SOCKS5 writes it. A name longer than 255 bytes is cut (DNS
    /// names are at most 253).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.host {
            Host::Ip(IpAddr::V4(ip)) => {
                out.push(IPV4);
                out.extend_from_slice(&ip.octets());
            }
            Host::Ip(IpAddr::V6(ip)) => {
                out.push(IPV6);
                out.extend_from_slice(&ip.octets());
            }
            Host::Name(name) => {
                let name = &name.as_bytes()[..name.len().min(255)];
                out.push(NAME);
                out.push(name.len() as u8);
                out.extend_from_slice(name);
            }
        }
        out.extend_from_slice(&self.port.to_be_bytes());
    }
}

impl From<std::net::SocketAddr> for Address {
    fn from(addr: std::net::SocketAddr) -> Self {
        Address {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }
}

impl fmt::Display for Address {
    /// `host:port`, IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            host => write!(f, "{host}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        for text in ["192.0.2.7:80", "[2001:db8::1]:443", "example.com:8080"] {
            let (host, port) = text.rsplit_once(':').unwrap();
            let address = Address {
                host: Host::parse(host),
                port: port.parse().unwrap(),
            };
            let mut bytes = Vec::new();
            address.encode(&mut bytes);
            bytes.extend_from_slice(b"rest");
            let (read, used) = Address::decode(&bytes).unwrap().unwrap();
            assert_eq!(
                (read.to_string().as_str(), &bytes[used..]),
                (text, &b"rest"[..])
            );
        }
    }

    #[test]
    fn short_input_asks_for_more_and_bad_input_is_an_error() {
        let mut bytes = Vec::new();
        Address::from(std::net::SocketAddr::from(([10, 0, 0, 1], 22))).encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(Address::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            Address::decode(&[9, 0, 0]),
            Err(AddressError::UnknownType(9))
        );
        assert_eq!(Address::decode(&[3, 0, 0, 80]), Err(AddressError::BadName));
        for name in ["x\nFAKE LOG", "red\u{1b}[31m", "a b", "tab\t", "csi\u{9b}"] {
            let mut bytes = vec![3, name.len() as u8];
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&[0, 80]);
            assert_eq!(
                Address::decode(&bytes),
                Err(AddressError::BadName),
                "{name:?}"
            );
        }
    }
}
