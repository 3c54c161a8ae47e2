//! The claim rules, case by case: host forms, nesting, coverage, path zones.

use crate::matching::claim_rules::*;

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
fn path_claims_keep_to_zones_and_off_configured_routes() {
    let catch_all = ConfiguredPath {
        name: "web",
        prefix: "/",
    };
    let vnc = ConfiguredPath {
        name: "vnc",
        prefix: "/vnc",
    };
    let inner = ConfiguredPath {
        name: "admin",
        prefix: "/agents/admin",
    };
    let zones = |list: &[&str]| list.iter().map(|z| z.to_string()).collect::<Vec<_>>();
    let agents = zones(&["/agents"]);
    let none: Vec<String> = Vec::new();
    let catch_all_refusal = "the configured route \"web\" answers every path: set [agents] \
                             paths to give agents a zone";
    type Case<'a> = (
        &'a str,
        Option<&'a [String]>,
        Vec<ConfiguredPath<'a>>,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        // No zones: free beside configured prefixes, nowhere beside a `/` route.
        ("/app", None, vec![vnc], ""),
        (
            "/vnc",
            None,
            vec![vnc],
            "/vnc would take requests from the configured route \"vnc\"",
        ),
        ("/vnc/x", None, vec![vnc], "/vnc/x would take requests"),
        ("/vncx", None, vec![vnc], ""),
        ("/", None, vec![vnc], ""),
        ("/vnc.html", None, vec![catch_all, vnc], catch_all_refusal),
        ("/app.js", None, vec![catch_all], catch_all_refusal),
        ("/", None, vec![catch_all], catch_all_refusal),
        // Zones: inside one, and carved out of `/` only.
        ("/agents", Some(&agents), vec![catch_all, vnc], ""),
        ("/agents/app", Some(&agents), vec![catch_all, vnc], ""),
        (
            "/agentsx",
            Some(&agents),
            vec![catch_all],
            "path /agentsx is not under this gateway's [agents] paths (/agents)",
        ),
        (
            "/vnc.html",
            Some(&agents),
            vec![catch_all],
            "path /vnc.html is not under",
        ),
        ("/", Some(&agents), vec![], "path / is not under"),
        (
            "/agents/admin/x",
            Some(&agents),
            vec![catch_all, inner],
            "/agents/admin/x would take requests from the configured route \"admin\"",
        ),
        ("/agents/adminx", Some(&agents), vec![catch_all, inner], ""),
        (
            "/app",
            Some(&none),
            vec![],
            "this gateway allows no path claims: [agents] paths is empty",
        ),
    ];
    for (claim, zones, configured, expected) in cases {
        let got = check_path(claim, zones, &configured).map_err(|r| r.to_string());
        match got {
            Ok(()) => assert!(expected.is_empty(), "{claim} {zones:?}: allowed"),
            Err(why) => assert!(
                !expected.is_empty() && why.starts_with(expected),
                "{claim} {zones:?}: {why}"
            ),
        }
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
        assert_eq!(
            reached_host(authority).as_deref(),
            Some(expected),
            "{authority}"
        );
    }
}
