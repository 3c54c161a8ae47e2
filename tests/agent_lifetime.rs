//! The agent's own lifetime: SIGTERM drains its open streams within the grace period, a busy
//! local listen address is a local error, and local requests made while no gateway session
//! is up wait for one. Real processes: the gateway and agents are the `wsgate` binary.

mod support;

use std::net::SocketAddr;

use support::{
    STEP,
    net::echo_server,
    process,
    socks::{self, Target},
    tempdir,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Child,
    sync::mpsc,
};

/// The gateway config: token `t0ken` may use egress to loopback.
fn gateway_text(listen: &str) -> String {
    format!(
        "listen = [\"{listen}\"]\n[agents]\n[[agents.token]]\ntoken = \"t0ken\"\negress = true\n\
         [egress]\nallow = [\"127.0.0.0/8\"]\n"
    )
}

/// Starts the real gateway listening on `listen`.
async fn gateway(name: &str, listen: &str) -> process::Wsgate {
    let config = tempdir(name).join("gw.toml");
    std::fs::write(&config, gateway_text(listen)).unwrap();
    process::spawn(&["serve", "-c", config.to_str().unwrap()]).await
}

/// A running agent: the child, its log, and its SOCKS5 proxy's address.
struct Agent {
    child: Child,
    log: mpsc::UnboundedReceiver<String>,
    socks5: SocketAddr,
}

impl Agent {
    /// Starts `wsgate agent` for the gateway at `gateway` with a SOCKS5 proxy on a free port
    /// and `extra` arguments; returns once the proxy listens (the session may not be up).
    async fn start(gateway: SocketAddr, extra: &[&str]) -> Agent {
        let server = format!("ws://{gateway}/_wsgate/agent");
        let mut args = vec!["agent", "--server", &server, "--token", "t0ken"];
        args.extend(["--name", "laptop", "--socks5", "127.0.0.1:0"]);
        args.extend(extra);
        Agent::run(&args).await
    }

    /// Runs `wsgate ARGS` (an agent with a SOCKS5 proxy); returns once the proxy listens.
    async fn run(args: &[&str]) -> Agent {
        let (child, log) = process::start(args);
        let mut agent = Agent {
            child,
            log,
            socks5: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let line = agent.wait_for("SOCKS5 proxy listening").await;
        let value = line.split("listen=").nth(1).unwrap().split_whitespace();
        agent.socks5 = value.clone().next().unwrap().parse().unwrap();
        agent
    }

    /// Reads the log until a line holds `needle`; returns it.
    async fn wait_for(&mut self, needle: &str) -> String {
        tokio::time::timeout(STEP, async {
            loop {
                let line = self.log.recv().await.expect("the agent exited");
                if line.contains(needle) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the agent never logged {needle:?}"))
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(sent.unwrap().success());
    }

    /// Waits for the exit code.
    async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(STEP, self.child.wait()).await;
        status
            .expect("the agent did not exit")
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

/// Sends `data` on `stream` and reads as much back (from an echo server).
async fn echo(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    let read = tokio::time::timeout(STEP, stream.read_exact(&mut back)).await;
    read.expect("no echo in time").unwrap();
    back
}

/// A gateway and an agent with its session up, and a SOCKS5 stream open through them to an
/// echo server.
async fn open_stream(name: &str, grace: &str) -> (process::Wsgate, Agent, TcpStream) {
    let gateway = gateway(name, "127.0.0.1:0").await;
    let mut agent = Agent::start(gateway.addr, &["--shutdown-grace", grace]).await;
    agent.wait_for("gateway session up").await;
    let target = Target::Addr(echo_server(true).await);
    let (code, stream) = socks::connect(agent.socks5, &target).await;
    assert_eq!(code, 0, "SOCKS5 CONNECT failed");
    let mut stream = stream.unwrap();
    assert_eq!(echo(&mut stream, b"before").await, b"before");
    (gateway, agent, stream)
}

#[tokio::test]
async fn sigterm_drains_an_open_stream_until_its_client_closes_it() {
    let (_gateway, mut agent, mut stream) = open_stream("agent-drain", "60s").await;
    agent.terminate();
    agent.wait_for("shutdown started").await;
    // No new clients, but the open stream keeps working through the gateway session.
    let refused = TcpStream::connect(agent.socks5).await;
    assert!(
        refused.is_err(),
        "the SOCKS5 proxy still accepts after SIGTERM"
    );
    assert_eq!(
        echo(&mut stream, b"during the drain").await,
        b"during the drain"
    );
    drop(stream);
    agent.wait_for("shutdown finished").await;
    assert_eq!(agent.exit_code().await, 0);
}

#[tokio::test]
async fn sigterm_closes_what_is_still_open_when_the_grace_period_ends() {
    let (_gateway, mut agent, mut stream) = open_stream("agent-grace", "1s").await;
    agent.terminate();
    agent.wait_for("grace period over").await;
    assert_eq!(agent.exit_code().await, 0);
    // Closed with the process: the client reads its end (or a reset), not more bytes.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the stream stayed open after the agent exited"
    );
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_busy_local_address_is_a_local_bind_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let cases = [
        ("--socks5", addr.clone(), "SOCKS5 proxy"),
        ("--http-proxy", addr.clone(), "HTTP proxy"),
        ("--forward", format!("{addr}=ssh?secret=s3cret"), "forward"),
    ];
    for (flag, value, what) in cases {
        let args = [
            "agent",
            "--server",
            "ws://127.0.0.1:9/_wsgate/agent",
            "--token",
            "t0ken",
            flag,
            &value,
        ];
        let (code, stderr) = process::run(&args).await;
        assert_ne!(code, 0, "{flag}: {stderr}");
        let expected = format!("cannot listen on {addr} for the agent's {what}");
        assert!(stderr.contains(&expected), "{flag}: {stderr}");
        assert!(!stderr.contains("gateway refused"), "{flag}: {stderr}");
    }
}

/// The address the agent dials for its gateway: it refuses (closes at once) until `open`
/// names where the gateway now listens, then carries each connection there. The agent can
/// be started before any gateway exists without a port bound, released and bound again.
async fn gateway_door() -> (SocketAddr, tokio::sync::watch::Sender<Option<SocketAddr>>) {
    let door = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = door.local_addr().unwrap();
    let (open, opened) = tokio::sync::watch::channel(None::<SocketAddr>);
    tokio::spawn(async move {
        while let Ok((mut visitor, _)) = door.accept().await {
            let Some(gateway) = *opened.borrow() else {
                continue; // dropped: the agent sees its dial fail and tries again
            };
            tokio::spawn(async move {
                let mut upstream = TcpStream::connect(gateway).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut visitor, &mut upstream).await;
            });
        }
    });
    (addr, open)
}

#[tokio::test]
async fn a_request_before_the_gateway_is_up_waits_for_the_session() {
    let (door, open) = gateway_door().await;
    let mut agent = Agent::start(door, &[]).await;
    let target = Target::Addr(echo_server(true).await);
    let proxy = agent.socks5;
    let request = tokio::spawn(async move { socks::connect(proxy, &target).await });
    agent.wait_for("no gateway session yet").await;
    let gateway = gateway("agent-wait", "127.0.0.1:0").await;
    open.send(Some(gateway.addr)).unwrap();
    let (code, stream) = request.await.unwrap();
    assert_eq!(code, 0, "the held request failed");
    assert_eq!(echo(&mut stream.unwrap(), b"late").await, b"late");
}

#[tokio::test]
async fn a_request_without_a_gateway_fails_after_the_connect_timeout() {
    let nowhere = support::net::refused_port().await;
    let mut agent = Agent::start(nowhere, &[]).await;
    let target = Target::Addr(echo_server(true).await);
    let started = tokio::time::Instant::now();
    let (code, _) = socks::connect(agent.socks5, &target).await;
    // 3: network unreachable (no gateway session), after the 10 s wait, not at once.
    assert_eq!(code, 3);
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent gave up"
    );
}

/// An agent from an `agent.toml` with `shutdown_grace = file_grace` (and `extra` arguments),
/// stopped with a stream open: the grace its drain logs, once the grace period is over.
async fn grace_used(name: &str, file_grace: &str, extra: &[&str]) -> String {
    let gateway = gateway(name, "127.0.0.1:0").await;
    let file = tempdir(name).join("agent.toml");
    let text = format!(
        "server = \"ws://{}/_wsgate/agent\"\ntoken = \"t0ken\"\nname = \"laptop\"\n\
         shutdown_grace = \"{file_grace}\"\n[socks5]\nlisten = \"127.0.0.1:0\"\n",
        gateway.addr
    );
    std::fs::write(&file, text).unwrap();
    let mut args = vec!["agent", "-c", file.to_str().unwrap()];
    args.extend(extra);
    let mut agent = Agent::run(&args).await;
    agent.wait_for("gateway session up").await;
    let target = Target::Addr(echo_server(true).await);
    let (code, stream) = socks::connect(agent.socks5, &target).await;
    assert_eq!(code, 0, "SOCKS5 CONNECT failed");
    let mut stream = stream.unwrap();
    assert_eq!(echo(&mut stream, b"before").await, b"before");
    // The stream stays open, so only the grace period ends the drain (within STEP: never
    // the 30 s default).
    agent.terminate();
    let started = agent.wait_for("shutdown started").await;
    agent.wait_for("grace period over").await;
    assert_eq!(agent.exit_code().await, 0);
    drop(stream);
    let grace = started.split("grace=").nth(1).unwrap();
    grace.split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn the_config_files_shutdown_grace_bounds_the_drain() {
    assert_eq!(grace_used("agent-file-grace", "1s", &[]).await, "1s");
}

#[tokio::test]
async fn the_command_lines_shutdown_grace_overrides_the_files() {
    let grace = grace_used("agent-flag-grace", "10m", &["--shutdown-grace", "1s"]).await;
    assert_eq!(grace, "1s");
}
