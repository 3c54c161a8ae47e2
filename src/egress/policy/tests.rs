//! The policy's decisions, case by case.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn rules(texts: &[&str]) -> Vec<Rule> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

/// A policy with no own addresses, so tests do not depend on this machine.
fn policy(allow: &[&str], deny: &[&str], fallback: Fallback) -> Policy {
    Policy::new(rules(allow), rules(deny), None, Vec::new(), fallback)
        .with_own_addresses(Vec::new())
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn reason(result: Result<(), Denied>) -> String {
    result.expect_err("expected a denial").0
}

#[test]
fn rules_parse() {
    let net = |addr: &str, prefix| Rule::Net {
        addr: addr.parse().unwrap(),
        prefix,
    };
    let name = |pattern| Rule::Name(HostPattern::parse(pattern).unwrap());
    let cases = [
        ("10.0.0.0/8", net("10.0.0.0", 8)),
        ("10.1.2.3/8", net("10.0.0.0", 8)),
        ("192.168.1.7", net("192.168.1.7", 32)),
        ("0.0.0.0/0", net("0.0.0.0", 0)),
        ("::1", net("::1", 128)),
        ("[::1]", net("::1", 128)),
        ("fd00::/8", net("fd00::", 8)),
        ("fd12:3456::1/8", net("fd00::", 8)),
        ("[fd00::]/8", net("fd00::", 8)),
        ("::ffff:10.0.0.0/104", net("10.0.0.0", 8)),
        ("example.com", name("example.com")),
        ("Example.COM.", name("example.com")),
        ("*.example.com", name("*.example.com")),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<Rule>(), Ok(expected), "{text}");
    }
    for text in [
        "",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/x",
        "10.0.0.300",
        "1.2.3",
        "example.com/8",
        "exa mple.com",
        "*example.com",
        "[::1",
        "http://example.com",
    ] {
        assert!(text.parse::<Rule>().is_err(), "{text} should not parse");
    }
    assert_eq!(
        "nope!".parse::<Rule>().unwrap_err(),
        "expected a CIDR (\"10.0.0.0/8\"), an address, or a host name (\"*.example.com\"), found \"nope!\""
    );
    assert!(
        "10.0.0.0/33"
            .parse::<Rule>()
            .unwrap_err()
            .contains("from 0 to 32")
    );
    assert_eq!(rules(&["fd00::/8"])[0].to_string(), "fd00::/8");
}

#[test]
fn port_ranges_parse() {
    let range: PortRange = "8000-8100".parse().unwrap();
    assert!(range.contains(8000) && range.contains(8100) && !range.contains(8101));
    assert_eq!(range.to_string(), "8000-8100");
    assert_eq!("443".parse::<PortRange>().unwrap().to_string(), "443");
    for text in ["0", "0-10", "8100-8000", "65536", "", "a-b", "1-2-3", "-5"] {
        assert!(
            text.parse::<PortRange>().is_err(),
            "{text} should not parse"
        );
    }
    assert!(
        "8100-8000"
            .parse::<PortRange>()
            .unwrap_err()
            .contains("\"8000-8100\"")
    );
}

#[test]
fn ports_are_checked() {
    let ports = ["443", "8000-8100"].map(|p| p.parse().unwrap()).to_vec();
    let deny_ports = ["25", "8080-8081"].map(|p| p.parse().unwrap()).to_vec();
    let policy = Policy::new(vec![], vec![], Some(ports), deny_ports, Fallback::Public);
    assert!(policy.check_port(443).is_ok());
    assert!(policy.check_port(8000).is_ok());
    assert_eq!(
        reason(policy.check_port(22)),
        "port 22 is not in the allowed ports"
    );
    assert_eq!(reason(policy.check_port(25)), "port 25 is denied");
    assert_eq!(
        reason(policy.check_port(8080)),
        "port 8080 is in the denied ports 8080-8081"
    );
    let open = Policy::default();
    assert!(open.check_port(22).is_ok() && open.check_port(65535).is_ok());
    assert!(open.check_port(0).is_err());
}

#[test]
fn names_match_wildcards_case_and_trailing_dot() {
    let policy = policy(
        &["*.example.com", "api.test"],
        &["*.internal"],
        Fallback::Deny,
    );
    let cases = [
        ("a.example.com", Ok(NameVerdict::Allowed)),
        ("A.B.Example.COM.", Ok(NameVerdict::Allowed)),
        ("example.com", Ok(NameVerdict::Undecided)),
        ("API.test.", Ok(NameVerdict::Allowed)),
        ("xapi.test", Ok(NameVerdict::Undecided)),
        (
            "db.internal",
            Err(Denied(
                "db.internal matches the deny rule *.internal".into(),
            )),
        ),
        (
            "DB.Internal.",
            Err(Denied(
                "DB.Internal matches the deny rule *.internal".into(),
            )),
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(policy.check_name(name), expected, "{name}");
    }
}

#[test]
fn deny_beats_allow() {
    let policy = policy(
        &["*.example.com", "10.0.0.0/8"],
        &["secret.example.com", "10.9.0.0/16"],
        Fallback::Public,
    );
    assert!(policy.check_name("secret.example.com").is_err());
    assert!(policy.check_addr(addr("10.1.0.1"), false).is_ok());
    assert_eq!(
        reason(policy.check_addr(addr("10.9.0.1"), false)),
        "10.9.0.1 is in the deny rule 10.9.0.0/16"
    );
}

#[test]
fn explicit_allow_beats_the_private_block() {
    let policy = policy(&["10.0.0.0/8", "::1"], &[], Fallback::Public);
    assert!(policy.check_addr(addr("10.1.2.3"), false).is_ok());
    assert!(policy.check_addr(addr("::1"), false).is_ok());
    assert_eq!(
        reason(policy.check_addr(addr("192.168.1.5"), false)),
        "192.168.1.5 is a private address (allow it explicitly)"
    );
    let default = Policy::default().with_own_addresses(Vec::new());
    assert_eq!(
        reason(default.check_addr(addr("10.1.2.3"), false)),
        "10.1.2.3 is a private address (allow it explicitly)"
    );
    assert_eq!(
        reason(default.check_addr(addr("127.0.0.1"), false)),
        "127.0.0.1 is a loopback address"
    );
    assert!(default.check_addr(addr("93.184.216.34"), false).is_ok());
    assert!(
        default
            .check_addr(addr("2606:2800:220:1::1"), false)
            .is_ok()
    );
}

#[test]
fn allowed_name_passes_its_private_address_but_not_a_deny_network() {
    let policy = policy(&["db.corp"], &["10.9.0.0/16"], Fallback::Public);
    assert_eq!(policy.check_name("db.corp"), Ok(NameVerdict::Allowed));
    assert!(policy.check_addr(addr("10.1.2.3"), true).is_ok());
    assert!(policy.check_addr(addr("10.1.2.3"), false).is_err());
    assert!(policy.check_addr(addr("10.9.0.1"), true).is_err());
}

#[test]
fn an_allowed_name_cannot_reach_loopback_metadata_or_this_machine() {
    let own = vec![addr("203.0.113.7")];
    let named = policy(&["*.example.com"], &[], Fallback::Public).with_own_addresses(own);
    for text in [
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "203.0.113.7",
        "0.0.0.0",
    ] {
        assert!(named.check_addr(addr(text), true).is_err(), "{text}");
    }
    assert!(named.check_addr(addr("100.64.1.1"), true).is_ok());
    let opened = policy(&["*.example.com", "127.0.0.0/8"], &[], Fallback::Public);
    assert!(opened.check_addr(addr("127.0.0.1"), true).is_ok());
}

#[test]
fn configured_own_addresses_are_denied_too() {
    let policy = policy(&[], &[], Fallback::Public)
        .with_own_addresses(Vec::new())
        .with_more_own_addresses(&[addr("198.51.100.9")]);
    assert_eq!(
        reason(policy.check_addr(addr("198.51.100.9"), false)),
        "198.51.100.9 is an address of this machine"
    );
    assert!(policy.check_addr(addr("198.51.100.10"), false).is_ok());
}

#[test]
fn odd_ipv6_forms_of_internal_addresses_are_denied() {
    let policy = policy(&[], &[], Fallback::Public).with_own_addresses(Vec::new());
    for text in [
        "::127.0.0.1",
        "64:ff9b:1::7f00:1",
        "fec0::1",
        "2001::1",
        "100::1",
    ] {
        assert!(policy.check_addr(addr(text), false).is_err(), "{text}");
    }
}

#[test]
fn fallback_deny_allows_only_rules() {
    let policy = policy(&["93.184.216.0/24"], &[], Fallback::Deny);
    assert!(policy.check_addr(addr("93.184.216.34"), false).is_ok());
    assert!(policy.check_addr(addr("1.1.1.1"), true).is_ok());
    assert_eq!(
        reason(policy.check_addr(addr("1.1.1.1"), false)),
        "1.1.1.1 is not allowed by any rule"
    );
}

#[test]
fn blocked_ranges_and_their_disguises() {
    let policy = policy(&[], &[], Fallback::Public);
    let cases = [
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("::ffff:127.0.0.1", "127.0.0.1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("::", ":: is an unspecified address"),
        (
            "fd00:ec2::254",
            "fd00:ec2::254 is a private address (allow it explicitly)",
        ),
        ("fe80::1", "fe80::1 is a link-local address"),
        (
            "100.64.0.1",
            "100.64.0.1 is a shared (CGNAT) address (allow it explicitly)",
        ),
        (
            "172.31.255.255",
            "172.31.255.255 is a private address (allow it explicitly)",
        ),
        ("198.19.0.1", "198.19.0.1 is a reserved address"),
        ("239.1.1.1", "239.1.1.1 is a multicast address"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("255.255.255.255", "255.255.255.255 is a reserved address"),
        (
            "64:ff9b::7f00:1",
            "64:ff9b::7f00:1 (embedding 127.0.0.1) is a loopback address",
        ),
        (
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe (embedding 169.254.169.254) is a link-local address",
        ),
        (
            "2002:c0a8:105::1",
            "2002:c0a8:105::1 (embedding 192.168.1.5) is a private address (allow it explicitly)",
        ),
        (
            "::ffff:0:127.0.0.1",
            "::ffff:0:7f00:1 (embedding 127.0.0.1) is a loopback address",
        ),
        (
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:a9fe:a9fe (embedding 169.254.169.254) is a link-local address",
        ),
        (
            "::ffff:0:10.1.2.3",
            "::ffff:0:a01:203 (embedding 10.1.2.3) is a private address (allow it explicitly)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            reason(policy.check_addr(addr(text), false)),
            expected,
            "{text}"
        );
    }
    for text in [
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
        "::ffff:0:93.184.216.34",
        "172.32.0.1",
        "100.128.0.1",
    ] {
        assert!(policy.check_addr(addr(text), false).is_ok(), "{text}");
    }
}

#[test]
fn deny_networks_catch_embedded_and_mapped_addresses() {
    let policy = policy(&[], &["93.184.216.0/24"], Fallback::Public);
    for text in [
        "93.184.216.34",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        "::ffff:0:93.184.216.34",
        "2002:5db8:d822::1",
    ] {
        assert!(policy.check_addr(addr(text), true).is_err(), "{text}");
    }
}

#[test]
fn own_addresses_are_denied() {
    let own = vec![addr("203.0.113.7"), addr("2001:db8::7")];
    let policy = policy(&["2001:db8::7"], &[], Fallback::Public).with_own_addresses(own);
    assert_eq!(
        reason(policy.check_addr(addr("203.0.113.7"), false)),
        "203.0.113.7 is an address of this machine"
    );
    assert!(
        policy
            .check_addr(addr("::ffff:203.0.113.7"), false)
            .is_err()
    );
    assert!(
        policy
            .check_addr(addr("64:ff9b::cb00:7107"), false)
            .is_err()
    );
    assert!(
        policy
            .check_addr(addr("::ffff:0:203.0.113.7"), false)
            .is_err()
    );
    assert!(
        policy.check_addr(addr("2001:db8::7"), false).is_ok(),
        "explicitly allowed"
    );
    assert!(policy.check_addr(addr("203.0.113.8"), false).is_ok());
}

#[test]
fn denials_are_counted_by_the_caller() {
    let policy = Policy::default();
    assert!(policy.check_addr(addr("127.0.0.1"), false).is_err());
    // The check counted nothing: the first denial the caller counts is the first.
    assert_eq!(policy.count_denial(), 1);
    assert_eq!(policy.count_denial(), 2);
}

const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
 |-- 0.0.0.0
    /0 universe UNICAST
 +-- 127.0.0.0/8 2 0 2
    +-- 127.0.0.0/31 1 0 0
       |-- 127.0.0.0
          /8 host LOCAL
       |-- 127.0.0.1
          /32 host LOCAL
    |-- 127.255.255.255
       /32 link BROADCAST
 +-- 203.0.113.0/24 2 0 2
    +-- 203.0.113.0/30 2 0 2
       |-- 203.0.113.0
          /24 link UNICAST
       |-- 203.0.113.2
          /32 host LOCAL
    |-- 203.0.113.255
       /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
 +-- 127.0.0.0/8 2 0 2
       |-- 127.0.0.1
          /32 host LOCAL
 +-- 203.0.113.0/24 2 0 2
       |-- 203.0.113.2
          /32 host LOCAL
";

const IF_INET6: &str = "\
fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
";

#[test]
fn proc_files_parse() {
    let v4: Vec<Ipv4Addr> = ["127.0.0.1", "203.0.113.2", "127.0.0.1", "203.0.113.2"]
        .map(|a| a.parse().unwrap())
        .to_vec();
    assert_eq!(parse_fib_trie(FIB_TRIE), v4);
    let v6: Vec<Ipv6Addr> = ["fd00::2", "fe80::fc:ff:fe00:1", "::1"]
        .map(|a| a.parse().unwrap())
        .to_vec();
    assert_eq!(parse_if_inet6(IF_INET6), v6);
    assert!(parse_fib_trie("").is_empty() && parse_if_inet6("garbage\n").is_empty());
    let own = own_addresses();
    let mut unique = own.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(own.len(), unique.len(), "own addresses repeat: {own:?}");
}
