//! Config errors: each names file:line:col and what was expected (golden strings), and the
//! binary exits with 64 before it listens.

mod support;

use std::path::Path;

use support::{process, tempdir};
use wsgate::config::validate;

fn error_of(toml: &str) -> String {
    validate::gateway("gw.toml", toml, Path::new("."))
        .expect_err("config must be rejected")
        .to_string()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap()
}

#[test]
fn errors_name_file_line_and_column() {
    let cases = [
        (
            "listen = [\"127.0.0.1:0\"]\n[[route]]\npath = \"/\"\nbrige = \"tcp://127.0.0.1:1\"\n",
            "gw.toml:4:1: unknown field `brige`, expected one of",
        ),
        (
            "[[route]]\npath = \"/vnc\"\nbridge = \"http://127.0.0.1:5900\"\n",
            "gw.toml:3:10: expected \"tcp://host:port\" or \"unix:/path\", found \"http://127.0.0.1:5900\"",
        ),
        (
            "[[route]]\nbridge = \"tcp://127.0.0.1:5900\"\nheartbeat = \"10\"\n",
            "gw.toml:3:13: expected a duration such as \"10s\", \"250ms\", \"5m\" or \"1h\", found \"10\"",
        ),
        (
            "listen = [\"127.0.0.1:0\", \"nope\"]\n",
            "gw.toml:1:26: expected an address such as \"127.0.0.1:8080\" or \"[::1]:8080\", found \"nope\"",
        ),
        (
            "[[route]]\npath = \"/x\"\n",
            "gw.toml:1:1: expected a handler in this route",
        ),
        (
            "[[route]]\npath = \"x\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a path starting with \"/\"",
        ),
        ("listen = [\"127.0.0.1:0\"\n", "gw.toml:1:"),
        (
            "[[route]]\nbridge = \"tcp://a:1\"\n[[route]]\nbridge = \"tcp://b:1\"\n",
            "gw.toml:3:1: this route can never match: route \"/\" has the same host and path",
        ),
        (
            "[[route]]\nstatic = \"/\"\nheartbeat = \"1s\"\n",
            "gw.toml:3:13: `heartbeat` applies to bridge routes only",
        ),
        (
            "[[route]]\nbridge = \"tcp://a:1\"\nproxy_protocol = \"v3\"\n",
            "gw.toml:3:18: expected \"v1\" or \"v2\", found \"v3\"",
        ),
        (
            "[limits]\nmessage_memory = \"8MiB\"\n[[route]]\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:18: expected `max_message_size` at most a third of `[limits] message_memory` (8388608 bytes)",
        ),
        (
            "[limits]\nmessage_memory = \"8MiB\"\n[[route]]\nbridge = \"tcp://a:1\"\nmax_message_size = \"9MiB\"\n",
            "gw.toml:5:20: expected `max_message_size` at most a third of `[limits] message_memory`",
        ),
        (
            "[limits]\nsessions_per_token = 0\n",
            "gw.toml:2:22: expected a number above zero",
        ),
        (
            "[limits]\ntunnel_memory = \"1MiB\"\ntunnel_memory_per_token = \"2MiB\"\n",
            "gw.toml:3:27: expected `tunnel_memory_per_token` at most `tunnel_memory`",
        ),
        (
            "[limits]\nmessage_memory = \"lots\"\n",
            "gw.toml:2:18: expected a size such as",
        ),
        (
            "[[route]]\nbridge = \"tcp://a:1\"\nmax_message_size = \"lots\"\n",
            "gw.toml:3:20: expected a size such as",
        ),
        (
            "[[route]]\nhost = \"*example.com\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a host name such as",
        ),
        (
            "[[route]]\nproxy = [\"ws://a:1\", \"tcp://b:2\"]\n",
            "gw.toml:2:22: expected an upstream URL such as \"ws://127.0.0.1:3000/path\"",
        ),
        (
            "[[route]]\nproxy = \"ws://a:1\"\nmode = \"frames\"\n",
            "gw.toml:3:8: expected \"splice\" or \"message\", found \"frames\"",
        ),
        (
            "[[route]]\nproxy = \"ws://a:1\"\nheartbeat = \"1s\"\n",
            "gw.toml:3:13: `heartbeat` applies to bridge routes only",
        ),
        (
            "[[route]]\nbridge = \"tcp://a:1\"\nbalance = \"round_robin\"\n",
            "gw.toml:3:11: `balance` applies to proxy routes only",
        ),
        (
            "[[route]]\nproxy = \"ws://a:1\"\nstatic = \".\"\n",
            "gw.toml:3:10: a route has one handler: `static` cannot be combined with `proxy`",
        ),
        (
            "[[route]]\nproxy = \"wss://a:1\"\ntls_ca = \"ca.pem\"\ntls_verify = false\n",
            "gw.toml:4:14: `tls_verify = false` checks nothing",
        ),
        (
            "[[route]]\nproxy = \"ws://a:1\"\nset_headers = { \"X-A\" = \"line\\nbreak\" }\n",
            "gw.toml:3:25: expected a header value of visible ASCII characters",
        ),
        (
            "[agents]\npath = \"/agents\"\n",
            "gw.toml:1:1: expected agent tokens",
        ),
        (
            "[agents]\ntokens = [\"t\"]\nheartbeat_timeout = \"soon\"\n",
            "gw.toml:3:21: expected a duration",
        ),
        (
            "[egress]\nallow = [\"10.0.0.0/8\"]\n",
            "gw.toml:1:1: [egress] serves agents: it needs an [agents] section",
        ),
        (
            "[agents]\ntokens = [\"t\"]\n[egress]\nallow = [\"10.0.0.0/40\"]\n",
            "gw.toml:4:10: expected a prefix length from 0 to 32",
        ),
        (
            "[agents]\ntokens = [\"t\"]\n[egress]\ndeny_ports = [\"25-22\"]\n",
            "gw.toml:4:15: ",
        ),
        (
            "[agents]\ntokens = [\"t\"]\n[egress]\ndefault = \"open\"\n",
            "gw.toml:4:11: expected \"public\" or \"deny\", found \"open\"",
        ),
        (
            "[agents]\ntokens = [\"t\"]\n[egress]\nown_addresses = [\"gw.example.com\"]\n",
            "gw.toml:4:18: invalid IP address syntax",
        ),
        (
            "[agents]\ntokens = [\"t\"]\n[egress]\nsecret = \"s\"\n",
            "gw.toml:4:10: `secret` belongs in an agent's [egress]",
        ),
        (
            "[[route]]\nproxy = \"ws://a:1\"\n[[route]]\nstatic = \".\"\n",
            "gw.toml:3:1: this route can never match: route \"/\" has the same host and path",
        ),
        (
            "[agents]\ntokens = [\"t\"]\nhosts = [\"127.0.0.1\"]\n",
            "gw.toml:3:10: host 127.0.0.1 is an IP address: agents claim host names",
        ),
        (
            "[agents]\ntokens = [\"t\"]\nhosts = [\"a.test\", \"*.localhost\"]\n",
            "gw.toml:3:20: host *.localhost is localhost: it names the gateway's own machine",
        ),
        (
            "[agents]\ntokens = [\"t\"]\nhosts = [\"a..test\"]\n",
            "gw.toml:3:10: expected a host name such as \"app.example.com\" or \"*.example.com\"",
        ),
        (
            "[agents]\n[[agents.token]]\ntoken = \"t\"\nhosts = [\"*.office.example.com\"]\n",
            "gw.toml:4:10: a token's `hosts` narrows [agents] hosts, which is not set: set \
             [agents] hosts to the patterns agents may claim hosts under",
        ),
        (
            "[agents]\nhosts = [\"*.tunnel.example.com\"]\n[[agents.token]]\ntoken = \"t\"\n\
             hosts = [\"a.tunnel.example.com\", \"*.example.com\"]\n",
            "gw.toml:5:34: host pattern *.example.com is not under [agents] hosts \
             (*.tunnel.example.com)",
        ),
        (
            "[agents]\nhosts = [\"app.example.com\"]\n[[agents.token]]\ntoken = \"t\"\n\
             hosts = [\"*.app.example.com\"]\n",
            "gw.toml:5:10: host pattern *.app.example.com is not under [agents] hosts \
             (app.example.com)",
        ),
        (
            "[[route]]\npath = \"/a//b\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a path in the canonical form requests are matched in, \
             found \"/a//b\": write \"/a/b\"",
        ),
        (
            "[[route]]\npath = \"/%61dmin\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a path in the canonical form requests are matched in, \
             found \"/%61dmin\": write \"/admin\"",
        ),
        (
            "[[route]]\npath = \"/a/./b/\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a path in the canonical form requests are matched in, \
             found \"/a/./b/\": write \"/a/b\"",
        ),
        (
            "[[route]]\npath = \"/api/..;/admin\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a path that requests can take, found \"/api/..;/admin\": \
             path parameters on a dot segment",
        ),
        (
            "[[route]]\nhost = \"a..test\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:2:8: expected a host name such as \"vnc.example.com\"",
        ),
        (
            "[agents]\ntokens = [\"t\"]\npaths = [\"/agents\", \"/vnc/agents\"]\n\
             [[route]]\nname = \"vnc\"\npath = \"/vnc\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:3:21: [agents] paths zone /vnc/agents lies under /vnc, the prefix of the \
             configured route \"vnc\": agents would take its requests; give agents a path of \
             their own",
        ),
        (
            "[agents]\ntokens = [\"t\"]\npaths = [\"/vnc/\"]\n\
             [[route]]\nname = \"vnc\"\npath = \"/vnc\"\nbridge = \"tcp://a:1\"\n",
            "gw.toml:3:10: [agents] paths zone /vnc is the prefix of the configured route \
             \"vnc\"",
        ),
        (
            "[agents]\ntokens = [\"t\"]\npaths = [\"/\"]\n\
             [[route]]\nname = \"web\"\nstatic = \".\"\n",
            "gw.toml:3:10: [agents] paths zone / is the prefix of the configured route \"web\"",
        ),
        (
            "[agents]\ntokens = [\"t\"]\npaths = [\"/%61gents\"]\n",
            "gw.toml:3:10: expected a path in the canonical form requests are matched in",
        ),
        (
            "[agents]\npaths = [\"/agents\"]\n[[agents.token]]\ntoken = \"t\"\n\
             paths = [\"/agents/office\", \"/office\"]\n",
            "gw.toml:5:28: path prefix /office is not under [agents] paths (/agents)",
        ),
        (
            "[agents]\ntokens = [\"t\"]\ngateway_names = [\"gw.example.com\", \"*.example.com\"]\n",
            "gw.toml:3:36: expected a host name the gateway is reached by, such as \
             \"gw.example.com\", found \"*.example.com\"",
        ),
    ];
    for (toml, expected) in cases {
        let error = error_of(toml);
        assert!(
            first_line(&error).starts_with(expected),
            "for:\n{toml}\ngot:\n{error}\nexpected prefix:\n{expected}"
        );
    }
}

#[test]
fn errors_show_the_line_and_a_caret() {
    let error = error_of("[[route]]\npath = \"/vnc\"\nbridge = \"http://x\"\n");
    let lines: Vec<&str> = error.lines().collect();
    assert_eq!(lines[1], "  | bridge = \"http://x\"");
    assert_eq!(lines[2], "  |          ^");
}

#[tokio::test]
async fn the_binary_exits_64_before_listening_on_a_bad_config() {
    let dir = tempdir("config");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "listen = [\"127.0.0.1:0\"]\n[[route]]\nbridge = \"tcp://127.0.0.1:1\"\nidle = \"5s\"\n",
    )
    .unwrap();
    let (code, stderr) = process::run(&["serve", "-c", file.to_str().unwrap()]).await;
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains("bad.toml:4:1: unknown field `idle`"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[tokio::test]
async fn check_prints_the_route_table_in_precedence_order() {
    let dir = tempdir("check");
    let file = dir.join("gw.toml");
    std::fs::write(
        &file,
        "[[route]]\nname = \"root\"\nbridge = \"tcp://127.0.0.1:1\"\n[[route]]\nname = \"vnc\"\npath = \"/vnc\"\nbridge = \"tcp://127.0.0.1:5900\"\n[[route]]\nname = \"office\"\nhost = \"*.example.com\"\nbridge = \"tcp://127.0.0.1:22\"\n",
    )
    .unwrap();
    let (code, stderr) = process::run(&["check", "-c", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{stderr}");
    let office = stderr.find("office").expect("office listed");
    let vnc = stderr.find("vnc ").expect("vnc listed");
    let root = stderr.find("root").expect("root listed");
    assert!(
        office < vnc && vnc < root,
        "host first, then longest path:\n{stderr}"
    );
    assert!(stderr.contains("bridge tcp://127.0.0.1:5900"), "{stderr}");
}

/// A token file that exists but cannot be read loads (loading reads no file but the
/// config) and fails where the gateway assembles, named at its place, exit 64.
#[tokio::test]
async fn an_unreadable_agent_token_file_fails_at_assembly_where_it_is_named() {
    let dir = tempdir("token-dir");
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let file = dir.join("gw.toml");
    let text = "listen = [\"127.0.0.1:0\"]\n[agents]\ntoken_file = \"tokens\"\n";
    std::fs::write(&file, text).unwrap();
    assert!(
        wsgate::config::load(&file).is_ok(),
        "loading does not read it"
    );
    for command in ["check", "serve"] {
        let (code, stderr) = process::run(&[command, "-c", file.to_str().unwrap()]).await;
        assert_eq!(code, 64, "{command}: {stderr}");
        assert!(stderr.contains("gw.toml:3:14: cannot read "), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

#[test]
fn missing_files_are_reported_where_they_are_named() {
    let error = error_of("[tls]\ncert = \"/nonexistent/cert.pem\"\n");
    assert!(
        first_line(&error)
            .starts_with("gw.toml:2:8: certificate file /nonexistent/cert.pem does not exist"),
        "{error}"
    );
    let error = error_of("[[route]]\nstatic = \"/nonexistent/dir\"\n");
    assert!(
        first_line(&error)
            .starts_with("gw.toml:2:10: static directory /nonexistent/dir does not exist"),
        "{error}"
    );
}

#[test]
fn agent_host_patterns_are_canonical_and_tokens_narrow_them() {
    let config = validate::gateway(
        "gw.toml",
        "[agents]\nhosts = [\"*.Tunnel.example.com.\", \"app.example.com\"]\n\
         [[agents.token]]\ntoken = \"t\"\nhosts = [\"*.a.tunnel.example.com\", \"app.example.com.\"]\n",
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let agents = config.agents.expect("[agents]");
    let zone: Vec<String> = agents.hosts.iter().map(ToString::to_string).collect();
    assert_eq!(zone, ["*.tunnel.example.com", "app.example.com"]);
    let narrowed: Vec<String> = agents.limits[0]
        .hosts
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    assert_eq!(narrowed, ["*.a.tunnel.example.com", "app.example.com"]);

    let without = validate::gateway("gw.toml", "[agents]\ntokens = [\"t\"]\n", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        without.agents.expect("[agents]").hosts.is_empty(),
        "no [agents] hosts: agents claim no hosts"
    );
}

#[test]
fn route_hosts_and_paths_load_in_the_canonical_form_requests_are_matched_in() {
    let config = validate::gateway(
        "gw.toml",
        "[[route]]\nhost = \"App.Test.\"\npath = \"/a/b/\"\nbridge = \"tcp://a:1\"\n\
         [[route]]\npath = \"/a%2Fb\"\nbridge = \"tcp://a:1\"\n",
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let routes: Vec<(Option<String>, &str)> = config
        .routes
        .iter()
        .map(|r| (r.host.as_ref().map(ToString::to_string), r.path.as_str()))
        .collect();
    assert_eq!(
        routes,
        [(Some("app.test".to_string()), "/a/b"), (None, "/a%2Fb")]
    );
    // The trailing-dot host answers the request as routing sees it.
    let routes = wsgate::gateway::assemble::routes(&config.routes).unwrap();
    let router = wsgate::router::Router::new(routes);
    let found = router.find(Some("app.test:8080"), "/a/b/c", false);
    assert_eq!(
        found.map(|m| m.route.name.clone()).as_deref(),
        Some("app.test/a/b")
    );
}

#[test]
fn agent_path_zones_may_lie_under_the_catch_all_and_tokens_narrow_them() {
    let config = validate::gateway(
        "gw.toml",
        "[agents]\npaths = [\"/agents/\", \"/apps\"]\ngateway_names = [\"GW.example.com.\"]\n\
         [[agents.token]]\ntoken = \"t\"\npaths = [\"/agents/office\"]\n\
         [[route]]\nname = \"web\"\nstatic = \".\"\n\
         [[route]]\nname = \"inner\"\npath = \"/agents/admin\"\nstatic = \".\"\n",
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let agents = config.agents.expect("[agents]");
    assert_eq!(
        agents.paths.as_deref(),
        Some(&["/agents".to_string(), "/apps".to_string()][..])
    );
    assert_eq!(agents.gateway_names, ["gw.example.com"]);
    assert_eq!(
        agents.limits[0].paths.as_deref(),
        Some(&["/agents/office".to_string()][..])
    );
    let without = validate::gateway("gw.toml", "[agents]\ntokens = [\"t\"]\n", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(without.agents.expect("[agents]").paths, None);
}
