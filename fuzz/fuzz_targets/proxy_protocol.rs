//! The PROXY protocol headers wsgate writes toward a target, for any pair of addresses a client
//! and a listener can have. Property: the header is well formed — an independent parser (the
//! `ppp` crate) reads back exactly the addresses given (an IPv4 one mapped into IPv6 when the
//! other is IPv6), the v1 line fits the spec's 107 bytes, and nothing follows the header.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use ppp::{v1, v2};
use wsgate::connector::ProxyProtocol;

fuzz_target!(|input: (bool, SocketAddr, SocketAddr)| {
    let (v2, source, destination) = input;
    let (source, destination) = same_family(source, destination);
    if v2 {
        check_v2(source, destination);
    } else {
        check_v1(source, destination);
    }
});

/// What the receiver must see: both in one family, IPv4 mapped when the other is IPv6.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(ip.to_ipv6_mapped().into(), a.port()),
        IpAddr::V6(_) => a,
    };
    match source.is_ipv4() == destination.is_ipv4() {
        true => (source, destination),
        false => (v6(source), v6(destination)),
    }
}

fn check_v1(source: SocketAddr, destination: SocketAddr) {
    let header = ProxyProtocol::V1.header(source, destination);
    assert!(header.len() <= 107, "v1 header over 107 bytes: {header:?}");
    let parsed = v1::Header::try_from(header.as_slice()).expect("ppp reads the v1 header");
    assert_eq!(
        parsed.header.len(),
        header.len(),
        "bytes after the v1 header"
    );
    let expected = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v1::Addresses::new_tcp4(s, d, source.port(), destination.port())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            v1::Addresses::new_tcp6(s, d, source.port(), destination.port())
        }
        _ => unreachable!("same_family"),
    };
    assert_eq!(parsed.addresses, expected);
}

fn check_v2(source: SocketAddr, destination: SocketAddr) {
    let header = ProxyProtocol::V2.header(source, destination);
    let parsed = v2::Header::try_from(header.as_slice()).expect("ppp reads the v2 header");
    assert_eq!(parsed.len(), header.len(), "bytes after the v2 header");
    assert_eq!(parsed.command, v2::Command::Proxy);
    assert_eq!(parsed.protocol, v2::Protocol::Stream);
    let expected: v2::Addresses = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v2::IPv4::new(s, d, source.port(), destination.port()).into()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            v2::IPv6::new(s, d, source.port(), destination.port()).into()
        }
        _ => unreachable!("same_family"),
    };
    assert_eq!(parsed.addresses, expected);
}
