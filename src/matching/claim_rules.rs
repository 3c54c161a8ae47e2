//! The rules every agent claim is held to, as pure functions: a host claim made canonical and
//! refused for IP literals and `localhost`, host patterns that cover or overlap one another, a
//! path claim held to the agents' path zones and kept off configured routes, and claims (hosts
//! or paths) that nest. The hub applies them; docs/security.md lists them.

use crate::matching::{Authority, HostPattern, strip_prefix};

/// The refusal when the gateway sets no `[agents] hosts`.
pub(crate) const NO_HOST_CLAIMS: &str = "this gateway allows no host claims: set [agents] hosts";

/// Why a host cannot be claimed, by its form alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRefusal {
    /// An IP address in any form a client or resolver reads as one: a host route on it would
    /// take what visitors reach the gateway by address.
    #[error("host {0} is an IP address: agents claim host names")]
    IpLiteral(String),
    /// `localhost` or a name under `.localhost`: the gateway's own machine.
    #[error("host {0} is localhost: it names the gateway's own machine")]
    Localhost(String),
    /// Not a host name or `*.` pattern.
    #[error("expected a host name such as \"app.example.com\" or \"*.example.com\", found {0:?}")]
    Malformed(String),
}

/// Why a path claim is refused by the gateway's path rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// `[agents] paths = []`: the operator gave agents no path.
    #[error("this gateway allows no path claims: [agents] paths is empty")]
    NoZone,
    /// Outside every `[agents] paths` zone.
    #[error("path {claim} is not under this gateway's [agents] paths ({zones})")]
    OutsideZones {
        /// The claim.
        claim: String,
        /// The zones, comma-separated.
        zones: String,
    },
    /// A configured `/` route answers every path and no zone carves agents a space out of it.
    #[error(
        "the configured route {route:?} answers every path: set [agents] paths to give agents a zone"
    )]
    CatchAll {
        /// The `/` route's name.
        route: String,
    },
    /// At or under a configured route's prefix, outside any zone carved out of it.
    #[error("{claim} would take requests from the configured route {route:?}")]
    Configured {
        /// The claim.
        claim: String,
        /// The route's name.
        route: String,
    },
}

/// A configured route without a host, as the path rules see it: its name and prefix. (Routes
/// with a host outrank every path claim on their host, so no path claim takes from them.)
#[derive(Debug, Clone, Copy)]
pub struct ConfiguredPath<'a> {
    /// The route's name, for the refusal.
    pub name: &'a str,
    /// Its prefix, canonical.
    pub prefix: &'a str,
}

/// Checks a canonical path claim against the gateway's path rules:
///
/// 1. with `[agents] paths` (`zones`), the claim lies at or under one of them;
/// 2. a claim at or under any configured route's prefix, `/` included, is refused, unless it
///    lies in a zone strictly under that prefix: the operator carved that zone out of it.
///
/// So without zones, a claim is free anywhere no configured prefix covers, and nowhere beside
/// a configured `/` route.
///
/// ```
/// use wsgate::matching::claim_rules::{ConfiguredPath, check_path};
/// let web = [ConfiguredPath { name: "web", prefix: "/" }];
/// let zones = vec!["/agents".to_string()];
/// assert!(check_path("/agents/app", Some(&zones), &web).is_ok());
/// assert!(check_path("/vnc.html", Some(&zones), &web).is_err());
/// assert!(check_path("/vnc.html", None, &web).is_err());
/// assert!(check_path("/app", None, &[]).is_ok());
/// ```
pub fn check_path(
    claim: &str,
    zones: Option<&[String]>,
    configured: &[ConfiguredPath<'_>],
) -> Result<(), PathRefusal> {
    let within = |prefix: &str, path: &str| strip_prefix(prefix, path).is_some();
    match zones {
        Some([]) => return Err(PathRefusal::NoZone),
        Some(zones) if !zones.iter().any(|zone| within(zone, claim)) => {
            return Err(PathRefusal::OutsideZones {
                claim: claim.to_string(),
                zones: zones.join(", "),
            });
        }
        _ => {}
    }
    for route in configured.iter().filter(|r| within(r.prefix, claim)) {
        let carved_out = zones
            .into_iter()
            .flatten()
            .any(|zone| within(zone, claim) && zone != route.prefix && within(route.prefix, zone));
        if carved_out {
            continue;
        }
        return Err(match zones {
            None if route.prefix == "/" => PathRefusal::CatchAll {
                route: route.name.to_string(),
            },
            _ => PathRefusal::Configured {
                claim: claim.to_string(),
                route: route.name.to_string(),
            },
        });
    }
    Ok(())
}

/// How a claim lies against another: the same match, inside it, or around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// Both match exactly the same requests.
    Same,
    /// Everything the claim matches, the other matches too (`x.a.test` in `*.a.test`,
    /// `/alpha/x` in `/alpha`).
    Inside,
    /// The claim matches everything the other matches, and more.
    Around,
}

/// The longest host name DNS allows, and its longest label (RFC 1035 §2.3.4).
const MAX_HOST_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;

/// A host claim as the hub compares it: lowercase, one trailing dot dropped (`app.test.` is
/// `app.test`), every label a valid DNS label; refused when it is an IP literal or localhost.
///
/// ```
/// use wsgate::matching::claim_rules::{HostRefusal, canonical_host};
/// assert_eq!(canonical_host("App.Test.").unwrap().to_string(), "app.test");
/// assert!(matches!(canonical_host("0x7f.1"), Err(HostRefusal::IpLiteral(_))));
/// assert!(matches!(canonical_host("a.localhost"), Err(HostRefusal::Localhost(_))));
/// ```
pub fn canonical_host(text: &str) -> Result<HostPattern, HostRefusal> {
    let lower = text.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let domain = name.strip_prefix("*.").unwrap_or(name);
    if is_ip_literal(domain) {
        return Err(HostRefusal::IpLiteral(text.to_string()));
    }
    if domain == "localhost" || domain.ends_with(".localhost") {
        return Err(HostRefusal::Localhost(text.to_string()));
    }
    let labels_ok = domain.len() <= MAX_HOST_BYTES
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= MAX_LABEL_BYTES);
    match HostPattern::parse(name) {
        Ok(pattern) if labels_ok => Ok(pattern),
        _ => Err(HostRefusal::Malformed(text.to_string())),
    }
}

/// Whether `host` (no port, no trailing dot) is an IP address as a URL parser or resolver
/// reads it: IPv6 (with or without brackets), or a name whose last label is a number, which
/// the WHATWG URL parser and `inet_aton` take as IPv4 (`2130706433`, `0x7f.1`, `127.1`,
/// `017.0.0.1`).
pub(crate) fn is_ip_literal(host: &str) -> bool {
    if host.starts_with('[') || host.contains(':') || host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    host.rsplit('.').next().is_some_and(is_number_label)
}

/// A label `inet_aton` reads as a number: decimal (also octal with a leading 0) or `0x` hex.
fn is_number_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.chars().all(|c| c.is_ascii_hexdigit()),
        None => !label.is_empty() && label.chars().all(|c| c.is_ascii_digit()),
    }
}

/// The host a request reached the gateway by, from its `Host` (made canonical by
/// `front::request::prepare`): port removed, lowercase, no trailing dot; `[::1]:80` is
/// `[::1]`.
pub(crate) fn reached_host(authority: &str) -> Option<String> {
    Authority::parse(authority)
        .ok()
        .map(|authority| authority.host.to_ascii_lowercase())
}

/// How the host pattern `claim` lies against `other`, if any host matches both. Two exact
/// names overlap only when equal; a wildcard holds every name (and narrower wildcard) under it.
pub(crate) fn host_nesting(claim: &HostPattern, other: &HostPattern) -> Option<Nesting> {
    use HostPattern::{Exact, Wildcard};
    match (claim, other) {
        (Exact(a), Exact(b)) => (a == b).then_some(Nesting::Same),
        (Exact(name), Wildcard(_)) => other.matches(name).then_some(Nesting::Inside),
        (Wildcard(_), Exact(name)) => claim.matches(name).then_some(Nesting::Around),
        (Wildcard(a), Wildcard(b)) if a == b => Some(Nesting::Same),
        // Both suffixes start with a dot, so `ends_with` compares whole labels.
        (Wildcard(a), Wildcard(b)) if a.ends_with(b.as_str()) => Some(Nesting::Inside),
        (Wildcard(a), Wildcard(b)) if b.ends_with(a.as_str()) => Some(Nesting::Around),
        (Wildcard(_), Wildcard(_)) => None,
    }
}

/// Whether every host `inner` matches, `outer` matches too.
pub fn covers(outer: &HostPattern, inner: &HostPattern) -> bool {
    matches!(
        host_nesting(inner, outer),
        Some(Nesting::Same | Nesting::Inside)
    )
}

/// How the path prefix `claim` lies against `other` (both normalised), on segment boundaries:
/// `/alpha/x` is inside `/alpha`, `/alphabet` is neither.
pub(crate) fn path_nesting(claim: &str, other: &str) -> Option<Nesting> {
    if claim == other {
        Some(Nesting::Same)
    } else if strip_prefix(other, claim).is_some() {
        Some(Nesting::Inside)
    } else if strip_prefix(claim, other).is_some() {
        Some(Nesting::Around)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
