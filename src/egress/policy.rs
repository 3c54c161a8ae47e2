//! The egress policy: which destinations the forward proxies may reach through the gateway, so
//! that an agent cannot use the gateway to reach into the gateway's own network (SSRF).
//!
//! The checks are pure and cheap; [`super::dial()`] calls them in order: port, name, then every
//! address the name resolves to.

use std::{
    fmt,
    net::IpAddr,
    ops::RangeInclusive,
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
};

mod addresses;

pub(crate) use addresses::own_addresses;
use addresses::*;

use crate::matching::HostPattern;

/// A destination an allow or deny list names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A network in CIDR form; a bare address is a /32 (IPv4) or /128 (IPv6).
    Net {
        /// The network address, host bits cleared.
        addr: IpAddr,
        /// The prefix length: at most 32 for IPv4, 128 for IPv6.
        prefix: u8,
    },
    /// A host name, exact or `*.` wildcard (which does not match the bare suffix). It matches
    /// the name a client asks for, never what an address resolves back to.
    Name(HostPattern),
}

impl Rule {
    /// A network rule, its host bits cleared. An IPv4-mapped IPv6 network
    /// (`::ffff:10.0.0.0/104`) becomes the IPv4 network it maps, since addresses are
    /// compared in their canonical form.
    fn net(addr: IpAddr, prefix: u8) -> Rule {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Rule::Net {
            addr: masked(addr, prefix),
            prefix,
        }
    }

    /// Whether this is a network rule containing `addr` (canonical).
    fn contains(&self, addr: IpAddr) -> bool {
        matches!(self, Rule::Net { addr: net, prefix } if net_contains(*net, *prefix, addr))
    }

    /// Whether this is a name rule matching `name` (trailing dot already removed).
    fn matches_name(&self, name: &str) -> bool {
        matches!(self, Rule::Name(pattern) if pattern.matches(name))
    }
}

/// Parses `"10.0.0.0/8"`, `"192.168.1.7"`, `"::1"`, `"[::1]"`, `"fd00::/8"`, `"example.com"`
/// or `"*.example.com"`. Host bits set in a CIDR (`"10.1.2.3/8"`) are accepted and cleared,
/// as `ip route` does, rather than refused: the intent is plain.
impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        let expected = || {
            format!(
                "expected a CIDR (\"10.0.0.0/8\"), an address, or a host name (\"*.example.com\"), found {text:?}"
            )
        };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr_text = addr_text
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(addr_text);
        let Ok(addr) = addr_text.parse::<IpAddr>() else {
            return match prefix_text {
                None => parse_name(text).ok_or_else(expected),
                Some(_) => Err(expected()),
            };
        };
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(prefix) => prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("expected a prefix length from 0 to {max} after \"/\", found {text:?}")
            })?,
        };
        Ok(Rule::net(addr, prefix))
    }
}

/// A name rule, or `None` when `text` is no host name. A name whose last label is all digits
/// is a mistyped address (`10.0.0.300`), not a name.
fn parse_name(text: &str) -> Option<Rule> {
    let name = text.strip_suffix('.').unwrap_or(text);
    let last_label = name.rsplit('.').next().unwrap_or(name);
    if last_label.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    HostPattern::parse(name).ok().map(Rule::Name)
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
            Rule::Name(pattern) => write!(f, "{pattern}"),
        }
    }
}

/// A destination port or an inclusive range of them, never including 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange(RangeInclusive<u16>);

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.0.contains(&port)
    }
}

/// Parses `"443"` or `"8000-8100"`.
impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<PortRange, String> {
        let (start, end) = text.split_once('-').unwrap_or((text, text));
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p != 0);
        match (port(start), port(end)) {
            (Some(start), Some(end)) if start <= end => Ok(PortRange(start..=end)),
            (Some(start), Some(end)) => Err(format!(
                "expected a range from low to high (\"{end}-{start}\"), found {text:?}"
            )),
            _ => Err(format!(
                "expected a port (\"443\") or a range of ports (\"8000-8100\"), each from 1 to 65535, found {text:?}"
            )),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, end) = (self.0.start(), self.0.end());
        if start == end {
            write!(f, "{start}")
        } else {
            write!(f, "{start}-{end}")
        }
    }
}

/// What happens to an address no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Allowed unless it is in a blocked range (loopback, private, link-local, multicast,
    /// reserved…) or one of this machine's addresses: the public internet, nothing inside.
    #[default]
    Public,
    /// Denied: only what an allow rule names is reachable.
    Deny,
}

/// Why the policy refuses a destination: a short sentence naming the rule or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// What a name's rules decide before it is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameVerdict {
    /// An allow rule names it: its addresses skip the fallback (deny networks still apply).
    Allowed,
    /// No rule names it: its addresses decide.
    Undecided,
}

/// The egress policy. Deny rules beat allow rules; allow rules beat the fallback.
#[derive(Debug)]
pub struct Policy {
    /// Destinations reachable whatever the fallback says.
    allow: Vec<Rule>,
    /// Destinations never reachable; they beat every allow rule.
    deny: Vec<Rule>,
    /// Reachable ports; `None` means all.
    ports: Option<Vec<PortRange>>,
    /// Unreachable ports; they beat `ports`.
    deny_ports: Vec<PortRange>,
    /// What happens to addresses no rule names.
    fallback: Fallback,
    /// This machine's addresses, read once: under [`Fallback::Public`] they are refused, since
    /// a public address of the gateway reaches its own listeners (admin, internal ports) just
    /// as loopback does.
    own: Vec<IpAddr>,
    /// Connections and datagrams refused so far (a metric), counted by the caller, once each.
    denials: AtomicU64,
}

impl Policy {
    /// A policy; reads this machine's addresses ([`own_addresses`]) once, here.
    pub fn new(
        allow: Vec<Rule>,
        deny: Vec<Rule>,
        ports: Option<Vec<PortRange>>,
        deny_ports: Vec<PortRange>,
        fallback: Fallback,
    ) -> Policy {
        Policy {
            allow,
            deny,
            ports,
            deny_ports,
            fallback,
            own: own_addresses(),
            denials: AtomicU64::new(0),
        }
    }

    /// The same policy with `own` as this machine's addresses instead of those read from the
    /// system, so that tests do not depend on the machine they run on.
    #[cfg(test)]
    pub(crate) fn with_own_addresses(mut self, own: Vec<IpAddr>) -> Policy {
        self.own = own.into_iter().map(|addr| addr.to_canonical()).collect();
        self
    }

    /// The same policy, with `more` also counted as this machine's addresses (a public address
    /// a 1:1 NAT maps to it, which no interface lists).
    pub(crate) fn with_more_own_addresses(mut self, more: &[IpAddr]) -> Policy {
        self.own.extend(more.iter().map(|addr| addr.to_canonical()));
        self
    }

    /// Whether `port` may be dialled.
    pub(crate) fn check_port(&self, port: u16) -> Result<(), Denied> {
        if port == 0 {
            return Err(Denied("port 0 is not a destination".into()));
        }
        if let Some(range) = self.deny_ports.iter().find(|range| range.contains(port)) {
            return Err(Denied(if range.0.start() == range.0.end() {
                format!("port {port} is denied")
            } else {
                format!("port {port} is in the denied ports {range}")
            }));
        }
        match &self.ports {
            Some(ports) if !ports.iter().any(|range| range.contains(port)) => {
                Err(Denied(format!("port {port} is not in the allowed ports")))
            }
            _ => Ok(()),
        }
    }

    /// What the name rules say of `name` (case-insensitive, a trailing dot ignored).
    pub(crate) fn check_name(&self, name: &str) -> Result<NameVerdict, Denied> {
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(rule) = self.deny.iter().find(|rule| rule.matches_name(name)) {
            return Err(Denied(format!("{name} matches the deny rule {rule}")));
        }
        if self.allow.iter().any(|rule| rule.matches_name(name)) {
            Ok(NameVerdict::Allowed)
        } else {
            Ok(NameVerdict::Undecided)
        }
    }

    /// Whether `addr` may be dialled; `name_allowed` when it is the address of a name an allow
    /// rule names ([`NameVerdict::Allowed`]). IPv4-mapped IPv6 addresses count as the IPv4
    /// address they map; deny networks also catch an IPv4 address embedded in NAT64,
    /// IPv4-translated (`::ffff:0:a.b.c.d`) or 6to4.
    pub(crate) fn check_addr(&self, addr: IpAddr, name_allowed: bool) -> Result<(), Denied> {
        let addr = addr.to_canonical();
        for candidate in candidates(addr) {
            if let Some(rule) = self.deny.iter().find(|rule| rule.contains(candidate)) {
                let subject = subject(addr, candidate);
                return Err(Denied(format!("{subject} is in the deny rule {rule}")));
            }
        }
        if self.allow.iter().any(|rule| rule.contains(addr)) {
            return Ok(());
        }
        if name_allowed {
            return self.check_blocked(addr, true);
        }
        match self.fallback {
            Fallback::Deny => Err(Denied(format!("{addr} is not allowed by any rule"))),
            Fallback::Public => self.check_blocked(addr, false),
        }
    }

    /// Refused if blocked or this machine's own. For the address of an allowed name (`named`)
    /// only the private and shared ranges are open (an internal host by its name): loopback,
    /// link-local (metadata), this machine's addresses and the rest stay closed unless a
    /// network rule opens them, so a name whose DNS someone else controls cannot point at them.
    fn check_blocked(&self, addr: IpAddr, named: bool) -> Result<(), Denied> {
        for candidate in candidates(addr) {
            let subject = subject(addr, candidate);
            let closed = |b: &&Blocked| b.contains(candidate) && !(named && b.opens_to_names());
            if let Some(blocked) = BLOCKED.iter().find(closed) {
                return Err(Denied(format!("{subject} is {}", blocked.what)));
            }
            if self.own.contains(&candidate) {
                return Err(Denied(format!("{subject} is an address of this machine")));
            }
        }
        Ok(())
    }

    /// Counts one refused connection or datagram; returns the new total. The checks do not
    /// count, since one connection may take several checks (one per resolved address).
    pub(crate) fn count_denial(&self) -> u64 {
        self.denials.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// No rules, all ports, [`Fallback::Public`].
impl Default for Policy {
    fn default() -> Policy {
        Policy::new(Vec::new(), Vec::new(), None, Vec::new(), Fallback::Public)
    }
}

#[cfg(test)]
mod tests;
