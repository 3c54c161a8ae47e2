//! Log lines cannot be forged from outside: agent names with a newline or an escape byte, a
//! 64 KiB name, SOCKS5 hostnames with a newline and request paths with line separators are
//! refused or written escaped, in the real binaries' stderr. Also: token files open to others
//! are warned about, and the agent token is compared exactly.

mod support;

use std::{net::SocketAddr, os::unix::fs::PermissionsExt, path::Path};

use support::{
    Gateway, STEP,
    http_client::HttpConn,
    net::{raw_request, upgrade_request},
    process::{self, Wsgate},
    raw_agent::{self, RawSession},
    socks::{self, Target},
    tempdir,
};
use tokio::sync::mpsc;
use wsgate::{
    session::SessionHandle,
    wire::{self, Control, Failure},
};

/// The rule refusals state.
const NAME_RULE: &str = "agent name must be 1-64 characters of A-Z a-z 0-9 - _ .";

/// A name that forged a line and painted the terminal red before the fix.
const FORGED_NAME: &str = "evil\nFAKE LOG agent connected agent=admin\u{1b}[31m";

/// The real gateway with `[agents]` (`agents` keys, and token `t0ken`, which may use egress)
/// and `extra` tables.
async fn gateway(dir: &Path, agents: &str, extra: &str) -> Wsgate {
    let config = dir.join("gateway.toml");
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[agents]\n{agents}\
         [[agents.token]]\ntoken = \"t0ken\"\negress = true\n{extra}"
    );
    std::fs::write(&config, text).unwrap();
    process::spawn(&["serve", "-c", config.to_str().unwrap()]).await
}

/// Reads `lines` until one contains `needle`: every line read, that one last.
async fn lines_until(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(STEP, async {
        while let Some(line) = lines.recv().await {
            seen.push(line);
            if seen.last().is_some_and(|l| l.contains(needle)) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no line with {needle:?} in:\n{seen:#?}");
    seen
}

/// Fails if a line was forged (starts with `FAKE LOG`) or carries a raw control character or
/// line separator.
fn assert_no_forged_line(lines: &[String]) {
    for line in lines {
        assert!(!line.starts_with("FAKE LOG"), "forged line: {line:?}");
        let raw = line
            .chars()
            .find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}'));
        assert_eq!(raw, None, "raw character in {line:?}");
    }
}

/// A raw agent: token `t0ken`, WebSocket, yamux, control stream, hello with `name`. The
/// gateway's first answer, and the session (to open more streams while it lives).
async fn hello(gateway: SocketAddr, name: &str) -> (Control, SessionHandle) {
    let host = gateway.to_string();
    let (raw, answer) =
        raw_agent::hello(gateway, &host, "t0ken", name, wire::VERSION, |_| {}).await;
    let RawSession {
        session,
        mut control,
    } = raw;
    // The control stream stays open for the session's life.
    tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut control, &mut rest).await;
    });
    (answer, session)
}

fn assert_rejected(answer: &Control) {
    match answer {
        Control::Rejected { reason } => assert_eq!(reason, NAME_RULE),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn an_agent_name_with_a_newline_and_an_escape_is_refused_and_forges_no_line() {
    let dir = tempdir("logs-name");
    let mut gw = gateway(&dir, "", "").await;
    let (answer, _session) = hello(gw.addr, FORGED_NAME).await;
    assert_rejected(&answer);
    // A good agent after it: once its line is read, every line of the refusal has been.
    let (answer, _good) = hello(gw.addr, "sentinel").await;
    assert!(matches!(answer, Control::Welcome { .. }), "{answer:?}");
    let lines = lines_until(&mut gw.stderr, "agent=sentinel").await;
    assert_no_forged_line(&lines);
    let refused = lines.iter().find(|l| l.contains("agent refused")).unwrap();
    assert!(
        refused.contains(r"agent=evil\nFAKE LOG agent connected agent=admin\u{1b}[31m"),
        "{refused}"
    );

    // The real agent binary refuses the name before it dials.
    let server = format!("ws://{}/_wsgate/agent", gw.addr);
    let args = ["agent", "--server", &server, "--token", "t0ken"];
    let mut argv: Vec<&str> = args.to_vec();
    argv.extend(["--name", FORGED_NAME, "--socks5", "127.0.0.1:0"]);
    let (code, stderr) = process::run(&argv).await;
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains(&format!("--name: {NAME_RULE}")), "{stderr}");
}

#[tokio::test]
async fn a_64_kib_agent_name_is_refused_and_logged_short() {
    let dir = tempdir("logs-long-name");
    let mut gw = gateway(&dir, "", "").await;
    // As long as a control frame allows: the hello is read whole, then refused for the name.
    let name = "x".repeat(wire::MAX_FRAME_BYTES - 64);
    let (answer, _session) = hello(gw.addr, &name).await;
    assert_rejected(&answer);
    let line = gw.wait_for_log("agent refused").await;
    assert!(line.len() < 1024, "{} bytes: {line}", line.len());
    assert!(line.contains(&format!("{}…", "x".repeat(256))), "{line}");
    // One byte over the limit, in the rule's character set, is refused too.
    let (answer, _session) = hello(gw.addr, &"x".repeat(65)).await;
    assert_rejected(&answer);
    let (answer, _session) = hello(gw.addr, &"x".repeat(64)).await;
    assert!(matches!(answer, Control::Welcome { .. }), "{answer:?}");
}

#[tokio::test]
async fn an_unexpected_control_message_is_logged_escaped_and_short() {
    let dir = tempdir("logs-control");
    let mut gw = gateway(&dir, "", "").await;
    let host = gw.addr.to_string();
    let (raw, answer) =
        raw_agent::hello(gw.addr, &host, "t0ken", "odd", wire::VERSION, |_| {}).await;
    assert!(matches!(answer, Control::Welcome { .. }), "{answer:?}");
    // A gateway-to-agent message, from the agent, as long as a control frame allows.
    let reason = format!("{FORGED_NAME}{}", "x".repeat(wire::MAX_FRAME_BYTES - 1024));
    let mut control = raw.control;
    wsgate::session::messages::write_frame(&mut control, &Control::Rejected { reason })
        .await
        .unwrap();
    let lines = lines_until(&mut gw.stderr, "unexpected control message").await;
    assert_no_forged_line(&lines);
    let line = lines.last().unwrap();
    assert!(line.len() < 1024, "{} bytes: {line}", line.len());
    assert!(
        line.contains(r#"control=Rejected { reason: \"evil\\nFAKE LOG"#) && line.contains("x…"),
        "{line}"
    );
}

/// The real agent with a SOCKS5 proxy, its stderr and the proxy's address, once its session
/// is up.
async fn socks_agent(
    gateway: SocketAddr,
) -> (
    tokio::process::Child,
    mpsc::UnboundedReceiver<String>,
    SocketAddr,
) {
    let server = format!("ws://{gateway}/_wsgate/agent");
    let args = [
        "agent", "--server", &server, "--token", "t0ken", "--name", "laptop",
    ];
    let mut argv: Vec<&str> = args.to_vec();
    argv.extend(["--socks5", "127.0.0.1:0"]);
    let (child, mut lines) = process::start(&argv);
    let listening = lines_until(&mut lines, "SOCKS5 proxy listening").await;
    let proxy = listening
        .last()
        .and_then(|l| l.split("listen=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("the proxy's address");
    lines_until(&mut lines, "gateway session up").await;
    (child, lines, proxy)
}

#[tokio::test]
async fn a_socks5_hostname_with_a_newline_is_refused_at_the_agent_and_at_the_exit() {
    let dir = tempdir("logs-socks");
    let mut gw = gateway(&dir, "", "[egress]\nallow = [\"127.0.0.0/8\"]\n").await;
    let (_agent, mut agent_lines, proxy) = socks_agent(gw.addr).await;
    // A destination the policy denies, after each attack: its line closes what is read.
    let sentinel = "10.255.255.1:9";

    // At the agent: reply 1 (general failure, as for any malformed name), nothing sent on.
    let forged = Target::Name("x\nFAKE LOG agent=admin".into(), 80);
    let (code, _) = socks::connect(proxy, &forged).await;
    assert_eq!(code, 1);
    let (code, _) = socks::connect(proxy, &Target::Addr(sentinel.parse().unwrap())).await;
    assert_eq!(code, 2, "the sentinel is denied by the policy");
    let lines = lines_until(&mut agent_lines, sentinel).await;
    assert_no_forged_line(&lines);
    assert!(
        lines.iter().any(|l| l.contains("socks5: request refused")),
        "{lines:#?}"
    );

    // At the exit: a raw agent asks the gateway itself for the name.
    let (answer, session) = hello(gw.addr, "raw").await;
    assert!(matches!(answer, Control::Welcome { .. }), "{answer:?}");
    let connect = |host: &str| {
        wire::Request::Connect(wire::Connect {
            host: host.into(),
            port: 80,
            via: None,
        })
    };
    let mut stream = session.open().await.unwrap();
    let refused =
        wsgate::session::messages::ask(&mut stream, &connect("x\nFAKE LOG agent=admin\u{1b}[31m"))
            .await;
    let (failure, reason) = refused.expect_err("the name must be refused");
    assert_eq!(failure, Failure::General, "{reason}");
    assert!(!reason.contains('\n'), "{reason:?}");
    let mut stream = session.open().await.unwrap();
    let refused = wsgate::session::messages::ask(&mut stream, &connect("10.255.255.1")).await;
    assert_eq!(refused.unwrap_err().0, Failure::NotAllowed);
    let lines = lines_until(&mut gw.stderr, "10.255.255.1:80").await;
    assert_no_forged_line(&lines);
    let line = lines.iter().find(|l| l.contains("egress failed")).unwrap();
    assert!(
        line.contains(r"destination=x\nFAKE LOG agent=admin\u{1b}[31m:80"),
        "{line}"
    );
}

#[tokio::test]
async fn a_request_path_with_line_separators_and_c1_controls_is_logged_escaped() {
    let dir = tempdir("logs-path");
    let mut gw = gateway(&dir, "", "").await;
    // Control bytes cannot be sent raw (the HTTP parser refuses them), so `%0a` and `%1b` stay
    // encoded; UTF-8 line separators, bidi overrides and C1 controls can be, and are escaped.
    let path = "/x%0aFAKE%1b[31m\u{2028}FAKE%20LOG\u{202e}\u{9b}2J";
    let response = raw_request(gw.addr, &format!("GET {path} HTTP/1.1\nHost: a")).await;
    assert_eq!(response.status, 404);
    let lines = lines_until(&mut gw.stderr, "wsgate::access").await;
    assert_no_forged_line(&lines);
    let line = lines.last().unwrap();
    assert!(
        line.contains(r"path=/x%0aFAKE%1b[31m\u{2028}FAKE%20LOG\u{202e}\u{9b}2J"),
        "{line}"
    );
}

/// The real gateway's banner with an agent token file and a websockify token file of `mode`.
async fn banner_with_token_files(name: &str, mode: u32) -> Vec<String> {
    let dir = tempdir(name);
    for (file, text) in [
        ("agent-tokens", "t1\n"),
        ("vnc-tokens", "vnc: 127.0.0.1:5900\n"),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let agents = "token_file = \"agent-tokens\"\n";
    let route = "[[route]]\npath = \"/vnc\"\nbridge_tokens = \"vnc-tokens\"\n";
    let gw = gateway(&dir, agents, route).await;
    gw.banner
}

#[tokio::test]
async fn token_files_readable_by_others_are_warned_about_as_ssh_does() {
    let banner = banner_with_token_files("logs-token-644", 0o644).await;
    for file in ["agent-tokens", "vnc-tokens"] {
        let warned = banner.iter().any(|line| {
            line.contains("WARN")
                && line.contains(&format!(
                    "{file} is readable by others (mode 0644); chmod 600 it"
                ))
        });
        assert!(warned, "no warning for {file}:\n{banner:#?}");
    }
    let banner = banner_with_token_files("logs-token-600", 0o600).await;
    assert!(
        !banner
            .iter()
            .any(|line| line.contains("readable by others")),
        "{banner:#?}"
    );
}

#[tokio::test]
async fn an_agent_token_with_extra_white_space_gets_401() {
    let gateway = Gateway::start("[agents]\ntokens = [\"t0ken\"]\n").await;
    for offered in [
        "Bearer  t0ken",
        "Bearer \tt0ken",
        "Bearer t0ken x",
        "Bearer t0ke",
    ] {
        let extra = format!("Authorization: {offered}");
        let response = upgrade_request(gateway.addr, "/_wsgate/agent", &extra).await;
        assert_eq!(response.status, 401, "{offered:?}");
    }
    // The exact token is taken.
    let (answer, _session) = hello(gateway.addr, "exact").await;
    assert!(matches!(answer, Control::Welcome { .. }), "{answer:?}");
    // The agent refuses to send a token with a space at an end: HTTP would drop it on the way.
    let (code, stderr) = process::run(&[
        "agent",
        "--server",
        &format!("ws://{}/_wsgate/agent", gateway.addr),
        "--token",
        "t0ken ",
        "--socks5",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains("--token: the token has a space at its start or end"),
        "{stderr}"
    );
}

/// The access line for `path` among `lines` (the first that names it).
fn access_line<'a>(lines: &'a [String], path: &str) -> &'a str {
    let needle = format!("path={path} ");
    lines
        .iter()
        .find(|l| l.contains("wsgate::access") && l.contains(&needle))
        .unwrap_or_else(|| panic!("no access line for {path} in {lines:#?}"))
}

#[tokio::test]
async fn a_static_file_sent_in_full_is_logged_complete_and_one_cut_short_is_not() {
    let dir = tempdir("logs-complete");
    let root = dir.join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("page.html"), "<h1>whole</h1>").unwrap();
    // Sparse: far more than the socket buffers hold, so the gateway is still writing it when
    // the client leaves.
    let big = std::fs::File::create(root.join("big.bin")).unwrap();
    big.set_len(256 << 20).unwrap();
    let route = format!("[[route]]\npath = \"/\"\nstatic = \"{}\"\n", root.display());
    let mut gw = gateway(&dir, "", &route).await;

    let mut client = HttpConn::connect(gw.addr).await;
    let page = client.get("/page.html").await;
    assert_eq!((page.status, page.text().as_str()), (200, "<h1>whole</h1>"));
    let missing = client.get("/missing").await;
    assert_eq!(missing.status, 404);
    let mut cut = HttpConn::connect(gw.addr).await;
    cut.send_head("GET", "/big.bin", &[], Some(0)).await;
    assert_eq!(cut.read_head().await.status, 200);
    drop(cut);
    let lines = lines_until(&mut gw.stderr, "path=/big.bin ").await;

    let whole = access_line(&lines, "/page.html");
    for field in ["status=200", "bytes_down=14", "complete=true", "outcome=ok"] {
        assert!(whole.contains(field), "{field} missing in: {whole}");
    }
    let refused = access_line(&lines, "/missing");
    for field in ["status=404", "complete=true", "outcome=not_found"] {
        assert!(refused.contains(field), "{field} missing in: {refused}");
    }
    let cut_short = access_line(&lines, "/big.bin");
    assert!(cut_short.contains("complete=false"), "{cut_short}");
}
