//! PROXY protocol v1/v2 headers (haproxy's spec), so a target learns the client's address.
//!
//! websockify cannot do this: behind it, a VNC or SSH server only ever sees the gateway.

use std::net::{IpAddr, SocketAddr};

pub use crate::config::target::ProxyProtocol;

/// The 12-byte signature every v2 header starts with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Both addresses in one family: an IPv4 address is mapped when the other one is IPv6.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let to_v6 = |addr: SocketAddr| match addr.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    };
    if source.is_ipv4() == destination.is_ipv4() {
        (source, destination)
    } else {
        (to_v6(source), to_v6(destination))
    }
}

impl ProxyProtocol {
    /// The header announcing a connection from `source` (the client) to `destination` (the
    /// gateway address it reached).
    ///
    /// ```
    /// use wsgate::connector::ProxyProtocol;
    /// let header = ProxyProtocol::V1.header("192.0.2.1:5000".parse().unwrap(), "198.51.100.2:443".parse().unwrap());
    /// assert_eq!(header, b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n");
    /// ```
    pub fn header(self, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
        let (source, destination) = same_family(source, destination);
        match self {
            ProxyProtocol::V1 => v1(source, destination),
            ProxyProtocol::V2 => v2(source, destination),
        }
    }
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    // 0x21: version 2, command PROXY. 0x11: TCP over IPv4; 0x21: TCP over IPv6.
    header.push(0x21);
    let addresses: Vec<u8> = match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            header.push(0x11);
            [src.octets().as_slice(), dst.octets().as_slice()].concat()
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            header.push(0x21);
            [src.octets().as_slice(), dst.octets().as_slice()].concat()
        }
        _ => unreachable!("same_family maps both addresses into one family"),
    };
    let length = (addresses.len() + 4) as u16;
    header.extend_from_slice(&length.to_be_bytes());
    header.extend_from_slice(&addresses);
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_ipv4_layout() {
        let header = ProxyProtocol::V2.header(
            "10.0.0.1:4000".parse().unwrap(),
            "10.0.0.2:5900".parse().unwrap(),
        );
        assert_eq!(&header[..12], &V2_SIGNATURE);
        assert_eq!(header[12], 0x21);
        assert_eq!(header[13], 0x11);
        assert_eq!(u16::from_be_bytes([header[14], header[15]]), 12);
        assert_eq!(&header[16..20], &[10, 0, 0, 1]);
        assert_eq!(&header[20..24], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([header[24], header[25]]), 4000);
        assert_eq!(u16::from_be_bytes([header[26], header[27]]), 5900);
        assert_eq!(header.len(), 28);
    }

    #[test]
    fn mixed_families_become_ipv6() {
        let header = ProxyProtocol::V1.header(
            "10.0.0.1:4000".parse().unwrap(),
            "[::1]:80".parse().unwrap(),
        );
        assert_eq!(header, b"PROXY TCP6 ::ffff:10.0.0.1 ::1 4000 80\r\n");
        let v2 = ProxyProtocol::V2.header(
            "10.0.0.1:4000".parse().unwrap(),
            "[::1]:80".parse().unwrap(),
        );
        assert_eq!(v2[13], 0x21);
        assert_eq!(v2.len(), 16 + 36);
    }
}
