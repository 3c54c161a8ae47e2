//! The rules every agent claim is held to, as pure functions: a host claim made canonical and
//! refused for IP literals and `localhost`, host patterns that cover or overlap one another,
//! and claims (hosts or paths) that nest. The hub applies them; docs/security.md lists them.

use crate::router::{HostPattern, strip_prefix};

/// The refusal when the gateway sets no `[agents] hosts`.
pub const NO_HOST_CLAIMS: &str = "this gateway allows no host claims: set [agents] hosts";

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
/// use wsgate::tunnel::claim_rules::{HostRefusal, canonical_host};
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
pub fn is_ip_literal(host: &str) -> bool {
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

/// The host a request reached the gateway by, from its `Host` (or authority): port removed,
/// lowercase, one trailing dot dropped; `[::1]:80` is `[::1]`.
pub fn reached_host(authority: &str) -> String {
    let host = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => &authority[..colon],
        _ => authority,
    };
    let lower = host.to_ascii_lowercase();
    lower.strip_suffix('.').unwrap_or(&lower).to_string()
}

/// How the host pattern `claim` lies against `other`, if any host matches both. Two exact
/// names overlap only when equal; a wildcard holds every name (and narrower wildcard) under it.
pub fn host_nesting(claim: &HostPattern, other: &HostPattern) -> Option<Nesting> {
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
pub fn path_nesting(claim: &str, other: &str) -> Option<Nesting> {
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
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        HostPattern::parse(text).unwrap()
    }

    #[test]
    fn hosts_are_canonical_or_refused_by_rule() {
        type Expected = Result<&'static str, fn(String) -> HostRefusal>;
        let ip: fn(String) -> HostRefusal = HostRefusal::IpLiteral;
        let local: fn(String) -> HostRefusal = HostRefusal::Localhost;
        let bad: fn(String) -> HostRefusal = HostRefusal::Malformed;
        let cases: &[(&str, Expected)] = &[
            ("app.test", Ok("app.test")),
            ("App.Test.", Ok("app.test")),
            ("*.Tunnel.example.com", Ok("*.tunnel.example.com")),
            ("*.tunnel.example.com.", Ok("*.tunnel.example.com")),
            ("a1.example.com", Ok("a1.example.com")),
            ("0x7f.example", Ok("0x7f.example")),
            ("example.0xg", Ok("example.0xg")),
            ("localhost.example.com", Ok("localhost.example.com")),
            ("127.0.0.1", Err(ip)),
            ("127.0.0.1.", Err(ip)),
            ("0.0.0.0", Err(ip)),
            ("2130706433", Err(ip)),
            ("0x7f.1", Err(ip)),
            ("0x7F000001", Err(ip)),
            ("127.1", Err(ip)),
            ("017.0.0.1", Err(ip)),
            ("app.example.123", Err(ip)),
            ("app.0x", Err(ip)),
            ("*.10.0.0", Err(ip)),
            ("[::1]", Err(ip)),
            ("::1", Err(ip)),
            ("[::ffff:127.0.0.1]", Err(ip)),
            ("localhost", Err(local)),
            ("LOCALHOST.", Err(local)),
            ("x.localhost", Err(local)),
            ("*.localhost", Err(local)),
            ("", Err(bad)),
            (".", Err(bad)),
            ("*", Err(bad)),
            ("*.", Err(bad)),
            ("a..b.test", Err(bad)),
            (".a.test", Err(bad)),
            ("a.test..", Err(bad)),
            ("a b.test", Err(bad)),
            ("a.*.test", Err(bad)),
            ("user@a.test", Err(bad)),
        ];
        for (claim, expected) in cases {
            let got = canonical_host(claim).map(|p| p.to_string());
            let expected = expected
                .map(str::to_string)
                .map_err(|refusal| refusal(claim.to_string()));
            assert_eq!(got, expected, "claim {claim:?}");
        }
        let long_label = format!("{}.test", "a".repeat(64));
        assert!(canonical_host(&long_label).is_err(), "a 64-byte label");
        let long_name = format!("{}test", "abcdefghi.".repeat(25));
        assert!(canonical_host(&long_name).is_err(), "a 254-byte name");
    }

    #[test]
    fn refusals_name_the_rule() {
        let cases = [
            (
                "127.0.0.1",
                "host 127.0.0.1 is an IP address: agents claim host names",
            ),
            (
                "localhost",
                "host localhost is localhost: it names the gateway's own machine",
            ),
            (
                "a b",
                "expected a host name such as \"app.example.com\" or \"*.example.com\", found \"a b\"",
            ),
        ];
        for (claim, text) in cases {
            assert_eq!(
                canonical_host(claim).unwrap_err().to_string(),
                text,
                "claim {claim:?}"
            );
        }
    }

    #[test]
    fn host_patterns_nest_on_label_boundaries() {
        use Nesting::{Around, Inside, Same};
        let cases: [(&str, &str, Option<Nesting>); 14] = [
            ("a.test", "a.test", Some(Same)),
            ("a.test", "b.test", None),
            ("x.a.test", "*.a.test", Some(Inside)),
            ("a.test", "*.a.test", None),
            ("xa.test", "*.a.test", None),
            ("*.a.test", "x.a.test", Some(Around)),
            ("*.a.test", "a.test", None),
            ("*.a.test", "*.a.test", Some(Same)),
            ("*.x.a.test", "*.a.test", Some(Inside)),
            ("*.a.test", "*.x.a.test", Some(Around)),
            ("*.ba.test", "*.a.test", None),
            ("*.a.test", "*.ba.test", None),
            ("*.test", "deep.x.a.test", Some(Around)),
            ("deep.x.a.test", "*.test", Some(Inside)),
        ];
        for (claim, other, expected) in cases {
            let got = host_nesting(&pattern(claim), &pattern(other));
            assert_eq!(got, expected, "{claim} against {other}");
        }
    }

    #[test]
    fn covers_means_every_host_inside() {
        let cases = [
            ("*.tunnel.test", "app.tunnel.test", true),
            ("*.tunnel.test", "*.a.tunnel.test", true),
            ("*.tunnel.test", "*.tunnel.test", true),
            ("*.tunnel.test", "tunnel.test", false),
            ("*.a.tunnel.test", "*.tunnel.test", false),
            ("app.test", "app.test", true),
            ("app.test", "*.app.test", false),
            ("app.test", "x.app.test", false),
        ];
        for (outer, inner, expected) in cases {
            let got = covers(&pattern(outer), &pattern(inner));
            assert_eq!(got, expected, "{outer} covers {inner}");
        }
    }

    #[test]
    fn paths_nest_on_segment_boundaries() {
        use Nesting::{Around, Inside, Same};
        let cases = [
            ("/alpha", "/alpha", Some(Same)),
            ("/alpha/x", "/alpha", Some(Inside)),
            ("/alpha", "/alpha/x", Some(Around)),
            ("/alphabet", "/alpha", None),
            ("/alpha", "/alphabet", None),
            ("/", "/alpha", Some(Around)),
            ("/alpha", "/", Some(Inside)),
            ("/a/b/c", "/a/b", Some(Inside)),
            ("/beta", "/alpha", None),
        ];
        for (claim, other, expected) in cases {
            assert_eq!(
                path_nesting(claim, other),
                expected,
                "{claim} against {other}"
            );
        }
    }

    #[test]
    fn the_reached_host_drops_port_case_and_trailing_dot() {
        let cases = [
            ("GW.example.com:8080", "gw.example.com"),
            ("gw.example.com.", "gw.example.com"),
            ("gw.example.com.:443", "gw.example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("127.0.0.1:8080", "127.0.0.1"),
        ];
        for (authority, expected) in cases {
            assert_eq!(reached_host(authority), expected, "{authority}");
        }
    }
}
