//! The address side of the egress policy: the ranges that are not the public internet (and
//! what to call an address in each), the IPv4 address an IPv6 one may embed, network
//! arithmetic, and this machine's own addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range refused under [`Fallback::Public`](super::Fallback::Public), and what to call an address in it.
pub(super) struct Blocked {
    addr: IpAddr,
    prefix: u8,
    /// Completes "ADDR is …".
    pub(super) what: &'static str,
}

impl Blocked {
    pub(super) fn contains(&self, addr: IpAddr) -> bool {
        net_contains(self.addr, self.prefix, addr)
    }

    /// Whether an allowed name may resolve into this range.
    pub(super) fn opens_to_names(&self) -> bool {
        self.what == PRIVATE || self.what == SHARED
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8, what: &'static str) -> Blocked {
    let addr = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    Blocked { addr, prefix, what }
}

/// `bits` is the network address as one number: `0xfe80 << 112` is `fe80::`.
const fn v6(bits: u128, prefix: u8, what: &'static str) -> Blocked {
    let addr = IpAddr::V6(Ipv6Addr::from_bits(bits));
    Blocked { addr, prefix, what }
}

const UNSPECIFIED: &str = "an unspecified address";
const PRIVATE: &str = "a private address (allow it explicitly)";
const SHARED: &str = "a shared (CGNAT) address (allow it explicitly)";
const LOOPBACK: &str = "a loopback address";
const LINK_LOCAL: &str = "a link-local address";
const MULTICAST: &str = "a multicast address";
const RESERVED: &str = "a reserved address";

/// The ranges [`Fallback::Public`](super::Fallback::Public) refuses: everything that is not the public internet
/// (RFC 6890's special-purpose registries, minus the documentation ranges, which route
/// nowhere). NAT64 (`64:ff9b::/96`), IPv4-translated (`::ffff:0:0:0/96`) and 6to4
/// (`2002::/16`) are not listed: the IPv4 address they embed is checked against this table
/// instead.
pub(super) const BLOCKED: &[Blocked] = &[
    v4(0, 0, 0, 0, 8, UNSPECIFIED), // "this network": a connect to 0.0.0.0 reaches this machine
    v4(10, 0, 0, 0, 8, PRIVATE),    // RFC 1918
    v4(100, 64, 0, 0, 10, SHARED),  // carrier-grade NAT (RFC 6598)
    v4(127, 0, 0, 0, 8, LOOPBACK),  // the whole /8 is loopback on Linux
    v4(169, 254, 0, 0, 16, LINK_LOCAL), // includes cloud metadata at 169.254.169.254
    v4(172, 16, 0, 0, 12, PRIVATE), // RFC 1918
    v4(192, 0, 0, 0, 24, RESERVED), // IETF protocol assignments (RFC 6890)
    v4(192, 168, 0, 0, 16, PRIVATE), // RFC 1918
    v4(198, 18, 0, 0, 15, RESERVED), // benchmarking (RFC 2544)
    v4(224, 0, 0, 0, 4, MULTICAST), // RFC 5771
    v4(240, 0, 0, 0, 4, RESERVED),  // class E, including 255.255.255.255 broadcast
    v6(0, 128, UNSPECIFIED),        // `::`: like 0.0.0.0, a connect reaches this machine
    v6(1, 128, LOOPBACK),           // `::1`
    v6(0, 96, RESERVED),            // IPv4-compatible (deprecated): `::127.0.0.1` and the like
    v6(0x0100 << 112, 64, RESERVED), // discard-only (RFC 6666)
    v6(0x0064_ff9b_0001 << 80, 48, RESERVED), // local-use NAT64 (RFC 8215): reaches anything
    v6(0x2001 << 112, 23, RESERVED), // IETF protocol assignments, including Teredo
    v6(0xfc00 << 112, 7, PRIVATE),  // unique local (RFC 4193), includes fd00:ec2::254 (metadata)
    v6(0xfe80 << 112, 10, LINK_LOCAL), // RFC 4291
    v6(0xfec0 << 112, 10, PRIVATE), // site-local (deprecated by RFC 3879, still routed inside)
    v6(0xff00 << 112, 8, MULTICAST), // RFC 4291
];

/// `addr`, then the IPv4 address it embeds, if any: NAT64 (`64:ff9b::a.b.c.d`, RFC 6052),
/// IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765's SIIT) and 6to4 (`2002:AABB:CCDD::/48`,
/// RFC 3056) reach that IPv4 address through a translator.
pub(super) fn candidates(addr: IpAddr) -> impl Iterator<Item = IpAddr> {
    std::iter::once(addr).chain(embedded_ipv4(addr).map(IpAddr::V4))
}

/// The `/96` NAT64 well-known prefix, shifted down to its 96 bits.
const NAT64_PREFIX: u128 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0).to_bits() >> 32;

/// The `/96` IPv4-translated prefix `::ffff:0:0:0`, shifted down to its 96 bits. (Unlike the
/// IPv4-mapped `::ffff:a.b.c.d`, which `to_canonical` turns into the IPv4 address itself, the
/// kernel routes it as IPv6, to a translator that may sit next to the IPv4 network.)
const TRANSLATED_PREFIX: u128 = 0xffff_0000;

/// The IPv4 address a NAT64, IPv4-translated or 6to4 address embeds.
fn embedded_ipv4(addr: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = addr else {
        return None;
    };
    let bits = v6.to_bits();
    if bits >> 32 == NAT64_PREFIX || bits >> 32 == TRANSLATED_PREFIX {
        Some(Ipv4Addr::from_bits(bits as u32)) // the last 32 bits
    } else if bits >> 112 == 0x2002 {
        Some(Ipv4Addr::from_bits((bits >> 80) as u32)) // bits 16..48
    } else {
        None
    }
}

/// How a reason names `candidate`, the address checked for `addr`.
pub(super) fn subject(addr: IpAddr, candidate: IpAddr) -> String {
    if addr == candidate {
        addr.to_string()
    } else {
        format!("{addr} (embedding {candidate})")
    }
}

pub(super) fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

pub(super) fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & v4_mask(prefix))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & v6_mask(prefix))),
    }
}

/// Whether the network `net/prefix` contains `addr`; never across address families.
pub(super) fn net_contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(net), IpAddr::V4(addr)) => {
            (net.to_bits() ^ addr.to_bits()) & v4_mask(prefix) == 0
        }
        (IpAddr::V6(net), IpAddr::V6(addr)) => {
            (net.to_bits() ^ addr.to_bits()) & v6_mask(prefix) == 0
        }
        _ => false,
    }
}

/// This machine's addresses, from Linux's `/proc/net/fib_trie` (IPv4) and
/// `/proc/net/if_inet6` (IPv6), without duplicates. Empty where those files cannot be read
/// (other systems); loopback and private ranges are blocked anyway, so what this adds is the
/// machine's public addresses.
pub(crate) fn own_addresses() -> Vec<IpAddr> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let v4 = parse_fib_trie(&read("/proc/net/fib_trie")).into_iter();
    let v6 = parse_if_inet6(&read("/proc/net/if_inet6")).into_iter();
    let mut own = Vec::new();
    for addr in v4.map(IpAddr::V4).chain(v6.map(IpAddr::V6)) {
        if !own.contains(&addr) {
            own.push(addr);
        }
    }
    own
}

/// The local IPv4 addresses in `/proc/net/fib_trie`: each `|-- a.b.c.d` leaf followed by a
/// `/32 host LOCAL` line. The trie is printed once per table, so addresses repeat.
pub(super) fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|pair| pair[1].split_whitespace().eq(["/32", "host", "LOCAL"]))
        .filter_map(|pair| pair[0].strip_prefix("|--")?.trim().parse().ok())
        .collect()
}

/// The IPv6 addresses in `/proc/net/if_inet6`: the first field of each line, 32 hex digits.
pub(super) fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|hex| hex.len() == 32)
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Ipv6Addr::from_bits)
        .collect()
}
