//! The agent config file: a full file becomes a plan, and errors name file:line:col.

use super::*;

fn error(text: &str) -> String {
    parse("agent.toml", text, Path::new("."))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_full_file_becomes_a_plan() {
    let plan = parse(
        "agent.toml",
        r#"
server = ["ws://gw1:8080/_wsgate/agent", "wss://gw2/_wsgate/agent"]
token = "t"
name = "office"
shutdown_grace = "5s"
[[expose]]
name = "api"
local = "http://127.0.0.1:8080"
path = "/api"
[[expose]]
name = "ssh"
local = "tcp://192.168.5.16:22"
secret = "s"
[[forward]]
listen = "127.0.0.1:9909"
service = "db"
secret = "s2"
[socks5]
listen = "127.0.0.1:1080"
username = "u"
password = "p"
udp_idle_timeout = "30s"
[http_proxy]
listen = "127.0.0.1:8118"
via = "branch"
secret = "s3"
[egress]
secret = "s4"
allow = ["192.168.5.0/24"]
"#,
        Path::new("."),
    )
    .unwrap();
    assert_eq!(plan.servers.len(), 2);
    assert_eq!(plan.name, "office");
    assert_eq!(plan.shutdown_grace, std::time::Duration::from_secs(5));
    assert_eq!(plan.services[0].dial, "127.0.0.1:8080");
    assert_eq!(plan.services[0].service.expose, Expose::Path("/api".into()));
    assert!(matches!(
        plan.services[1].service.expose,
        Expose::Private(_)
    ));
    assert_eq!(plan.forwards[0].listen.port(), 9909);
    let socks5 = plan.socks5.unwrap();
    assert!(socks5.credentials.unwrap().matches("u", "p"));
    assert_eq!(socks5.udp_idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(plan.http_proxy.unwrap().via.unwrap().agent, "branch");
    assert_eq!(plan.exit.unwrap().secret.expose(), "s4");
}

#[test]
fn errors_name_file_line_and_column() {
    let head = "server = \"ws://gw/_wsgate/agent\"\ntoken = \"t\"\n";
    let cases = [
        (
            format!("{head}[[expose]]\nname = \"a\"\nlocal = \"http://127.0.0.1:1\"\n"),
            "agent.toml:3:1: expected one of `path`, `host`, `remote_port` or `secret`",
        ),
        (
            format!("{head}[[expose]]\nname = \"a\"\nlocal = \"ftp://x:1\"\npath = \"/a\"\n"),
            "agent.toml:5:9: expected an http://, https:// or tcp:// service",
        ),
        (
            format!(
                "{head}[[expose]]\nname = \"a\"\nlocal = \"tcp://x:1\"\npath = \"/a\"\nhost = \"h\"\n"
            ),
            "agent.toml:7:8: an [[expose]] has one of",
        ),
        (
            "server = \"http://gw\"\ntoken = \"t\"\n".to_string(),
            "agent.toml:1:10: expected a ws:// or wss:// gateway URL",
        ),
        (
            format!(
                "{head}[[forward]]\nlisten = \"nowhere\"\nservice = \"s\"\nsecret = \"x\"\n"
            ),
            "agent.toml:4:10:",
        ),
        (
            format!("{head}name = \"evil\\nFAKE LOG\"\n[socks5]\nlisten = \"127.0.0.1:1\"\n"),
            "agent.toml:3:8: agent name must be 1-64 characters of A-Z a-z 0-9 - _ .",
        ),
        (
            format!("{head}[[expose]]\nname = \"a b\"\nlocal = \"tcp://x:1\"\npath = \"/a\"\n"),
            "agent.toml:4:8: service name must be 1-64 characters of A-Z a-z 0-9 - _ .",
        ),
        (
            "server = \"ws://gw/_wsgate/agent\"\ntoken = \"t \"\n[socks5]\nlisten = \"127.0.0.1:1\"\n".to_string(),
            "agent.toml:2:9: the token has a space at its start or end",
        ),
        (
            format!("{head}colour = \"red\"\n"),
            "agent.toml:3:1: unknown field `colour`",
        ),
        (
            format!("{head}[socks5]\nlisten = \"127.0.0.1:1080\"\nusername = \"u\"\n"),
            "agent.toml:5:12: expected both `username` and `password`, or neither",
        ),
        (
            format!("{head}[socks5]\nlisten = \"127.0.0.1:1080\"\nvia = \"office\"\n"),
            "agent.toml:5:7: expected both `via` (the exit agent) and `secret`",
        ),
        (
            format!(
                "{head}[http_proxy]\nlisten = \"127.0.0.1:8118\"\nudp_idle_timeout = \"1s\"\n"
            ),
            "agent.toml:5:20: `udp_idle_timeout` is for [socks5]",
        ),
        (
            format!("{head}[egress]\nallow = [\"10.0.0.0/8\"]\n"),
            "agent.toml:3:1: expected `secret`: the secret other agents give with `via`",
        ),
    ];
    for (text, expected) in cases {
        let got = error(&text);
        assert!(
            got.starts_with(expected),
            "for:\n{text}\ngot:\n{got}\nexpected:\n{expected}"
        );
    }
}
