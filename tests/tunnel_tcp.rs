//! An agent's `tcp://` services beyond routes: on a gateway TCP port from the allowed range
//! (`remote_port`), and private, reached only by other agents' forwards with the secret.

mod support;

use support::{STEP, net::echo_server, process, tempdir};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Child,
};

/// A port the kernel just had free (released again for the gateway to bind).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts the real gateway on the config `text` (written to a fresh directory named `name`).
async fn gateway_from(name: &str, text: &str) -> process::Wsgate {
    let config = tempdir(name).join("gw.toml");
    std::fs::write(&config, text).unwrap();
    process::spawn(&["serve", "-c", config.to_str().unwrap()]).await
}

/// The agent's registration answer (`service registered` / `service refused` line) for the
/// service `name`.
fn answer_for(answers: &[String], name: &str) -> String {
    answers
        .iter()
        .find(|l| l.contains(&format!("service={name} ")))
        .unwrap_or_else(|| panic!("no answer for {name}: {answers:#?}"))
        .clone()
}

/// Starts `wsgate agent` and returns it with the `service registered` / `service refused`
/// lines it printed for `expected` services.
async fn agent(
    gateway: std::net::SocketAddr,
    services: &[String],
    expected: usize,
) -> (Child, Vec<String>) {
    agent_named("box", gateway, services, expected).await
}

/// As [`agent`], with a name; `services` may also hold `--forward` arguments.
async fn agent_named(
    name: &str,
    gateway: std::net::SocketAddr,
    services: &[String],
    expected: usize,
) -> (Child, Vec<String>) {
    let mut args = vec![
        "agent".to_string(),
        "--server".into(),
        format!("ws://{gateway}/_wsgate/agent"),
        "--token".into(),
        "t0ken".into(),
        "--name".into(),
        name.into(),
    ];
    args.extend(services.iter().cloned());
    run_agent(&args, expected).await
}

/// Runs `wsgate ARGS` (an agent) and waits for `expected` registration answers (`service
/// registered` or `service refused` lines), which it returns; its log is drained afterwards.
async fn run_agent(args: &[String], expected: usize) -> (Child, Vec<String>) {
    let (child, mut lines) = process::start(args);
    let mut answers = Vec::new();
    tokio::time::timeout(STEP, async {
        while answers.len() < expected {
            let line = lines.recv().await.expect("agent exited");
            if line.contains("service registered") || line.contains("service refused") {
                answers.push(line);
            }
        }
    })
    .await
    .expect("the agent did not register in time");
    (child, answers)
}

#[tokio::test]
async fn a_remote_port_carries_64_mib_each_way_and_the_range_is_enforced() {
    let echo = echo_server(true).await;
    let port = free_port();
    let mut gateway = gateway_from("tunnel-ports", &format!("listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"t0ken\"]\nremote_ports = \"{port}-{port}\"\n")).await;
    let outside = if port == u16::MAX { port - 1 } else { port + 1 };
    let services = [
        format!("tcp://{echo}?mode=port&value={port}&name=echo"),
        format!("tcp://{echo}?mode=port&value={outside}&name=outside"),
    ];
    let (_agent, answers) = agent(gateway.addr, &services, 2).await;
    let registered = answers.iter().find(|l| l.contains("service=echo")).unwrap();
    assert!(
        registered.contains(&format!("url=tcp://127.0.0.1:{port}")),
        "{registered}"
    );
    let refused = answers
        .iter()
        .find(|l| l.contains("service=outside"))
        .unwrap();
    assert!(
        refused.contains("is outside the allowed range"),
        "{refused}"
    );

    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    tokio::time::timeout(STEP * 3, read.read_to_end(&mut back))
        .await
        .expect("the echo did not finish")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ through the remote port");
    let line = gateway.wait_for_log("remote port connection closed").await;
    let sizes = format!("bytes_up={} bytes_down={}", data.len(), data.len());
    assert!(
        line.contains("outcome=ok") && line.contains(&sizes),
        "{line}"
    );
}

/// Sends `len` bytes to `port` and returns what comes back before the connection closes.
async fn echo_through(port: u16, len: usize) -> std::io::Result<Vec<u8>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&vec![7u8; len]).await;
        let _ = write.shutdown().await;
    });
    let mut back = Vec::new();
    let read = tokio::time::timeout(STEP, read.read_to_end(&mut back)).await;
    let _ = writer.await;
    read.expect("no end within the step")?;
    Ok(back)
}

#[tokio::test]
async fn a_private_service_is_reached_by_another_agents_forward_with_its_secret() {
    let echo = echo_server(true).await;
    let gateway = gateway_from(
        "tunnel-private",
        "listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"t0ken\"]\n",
    )
    .await;
    let private = [format!("tcp://{echo}?mode=private&value=ssh&secret=s3cret")];
    let (_home, answers) = agent_named("home", gateway.addr, &private, 1).await;
    assert!(answers[0].contains("service registered"), "{}", answers[0]);
    let (right, wrong) = (free_port(), free_port());
    let forwards = [
        "--forward".to_string(),
        format!("127.0.0.1:{right}=ssh?secret=s3cret"),
        "--forward".into(),
        format!("127.0.0.1:{wrong}=ssh?secret=guess"),
        // A public service too, so the agent's registration line says it is connected.
        format!("tcp://{echo}?mode=path&value=laptop-echo"),
    ];
    let (_laptop, _) = agent_named("laptop", gateway.addr, &forwards, 1).await;
    let back = echo_through(right, 1 << 20).await.unwrap();
    assert_eq!(
        back.len(),
        1 << 20,
        "the forward with the secret carries the bytes"
    );
    let refused = echo_through(wrong, 1000).await;
    assert!(
        refused.as_ref().map_or(true, Vec::is_empty),
        "a wrong secret reached the service: {refused:?}"
    );
}

/// A gateway with `[agents]` allowing exactly `port` as a remote port; heartbeats time out
/// after `heartbeat`.
async fn gateway_allowing(port: u16, heartbeat: &str) -> process::Wsgate {
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"t0ken\"]\n\
         remote_ports = \"{port}-{port}\"\nheartbeat_timeout = \"{heartbeat}\"\n"
    );
    gateway_from("tunnel-gateway", &text).await
}

#[tokio::test]
async fn an_agent_registers_on_every_gateway_it_is_given() {
    let echo = echo_server(true).await;
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (
        gateway_allowing(port_a, "30s").await,
        gateway_allowing(port_b, "30s").await,
    );
    let args: Vec<String> = [
        "agent".to_string(),
        "--server".into(),
        format!("ws://{}/_wsgate/agent", a.addr),
        "--server".into(),
        format!("ws://{}/_wsgate/agent", b.addr),
        "--token".into(),
        "t0ken".into(),
        format!("tcp://{echo}?mode=port&value={port_a}&name=on-a"),
        format!("tcp://{echo}?mode=port&value={port_b}&name=on-b"),
    ]
    .into();
    // Each gateway allows one of the two ports: each registers one service, refuses the other.
    let (_agent, answers) = run_agent(&args, 4).await;
    let registered = answers
        .iter()
        .filter(|l| l.contains("service registered"))
        .count();
    assert_eq!(registered, 2, "{answers:#?}");
    for port in [port_a, port_b] {
        assert_eq!(echo_through(port, 100_000).await.unwrap().len(), 100_000);
    }
}

#[tokio::test]
async fn a_silent_agent_is_dropped_after_the_heartbeat_timeout() {
    let echo = echo_server(true).await;
    let port = free_port();
    let gateway = gateway_allowing(port, "1s").await;
    let services = [format!("tcp://{echo}?mode=port&value={port}")];
    let (agent, _) = agent(gateway.addr, &services, 1).await;
    assert_eq!(echo_through(port, 1000).await.unwrap().len(), 1000);
    // Frozen, not gone: its TCP connection stays open, only heartbeats stop.
    let pid = agent.id().unwrap().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status();
    assert!(stopped.unwrap().success());
    // After the timeout plus the grace for reconnecting, the gateway closes the port and
    // says so.
    let mut gateway = gateway;
    gateway.wait_for_log("remote port closed").await;
    let dropped = TcpStream::connect(("127.0.0.1", port)).await.is_err();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert!(dropped, "the gateway kept a silent agent's port open");
}

#[tokio::test]
async fn gateway_shutdown_ends_agent_sessions_instead_of_waiting_out_the_grace() {
    let echo = echo_server(true).await;
    let port = free_port();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nshutdown_grace = \"60s\"\n[agents]\ntokens = [\"t0ken\"]\n\
         remote_ports = \"{port}-{port}\"\n"
    );
    let gateway = gateway_from("tunnel-shutdown", &text).await;
    let services = [format!("tcp://{echo}?mode=port&value={port}")];
    let (_agent, _) = agent(gateway.addr, &services, 1).await;
    // A connected agent must not hold the drain for the whole 60 s grace.
    let code = tokio::time::timeout(STEP, gateway.terminate())
        .await
        .expect("the gateway waited out its grace for an agent session");
    assert_eq!(code, 0);
}

#[tokio::test]
async fn a_limited_token_claims_only_what_it_is_allowed() {
    let echo = echo_server(true).await;
    let gateway = gateway_from(
        "tunnel-limits",
        "listen = [\"127.0.0.1:0\"]\n[agents]\nhosts = [\"*.example.com\"]\n\
         [[agents.token]]\ntoken = \"t0ken\"\n\
         paths = [\"/office\"]\nhosts = [\"*.office.example.com\"]\n",
    )
    .await;
    let services = [
        format!("tcp://{echo}?mode=path&value=office/vnc&name=inside"),
        format!("tcp://{echo}?mode=path&value=admin&name=outside"),
        format!("tcp://{echo}?mode=domain&value=vnc.office.example.com&name=host-inside"),
        format!("tcp://{echo}?mode=domain&value=vnc.example.com&name=host-outside"),
    ];
    let (_agent, answers) = agent(gateway.addr, &services, 4).await;
    let answer = |name: &str| answer_for(&answers, name);
    assert!(
        answer("inside").contains("service registered"),
        "{answers:#?}"
    );
    assert!(
        answer("host-inside").contains("service registered"),
        "{answers:#?}"
    );
    assert!(
        answer("outside").contains("may not expose /admin"),
        "{answers:#?}"
    );
    assert!(
        answer("host-outside").contains("may not expose host vnc.example.com"),
        "{answers:#?}"
    );
}

#[tokio::test]
async fn an_agent_runs_from_its_config_file() {
    let echo = echo_server(true).await;
    let port = free_port();
    let gateway = gateway_allowing(port, "30s").await;
    let dir = tempdir("tunnel-agent-config");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"ws://{}/_wsgate/agent\"\ntoken = \"t0ken\"\nname = \"from-file\"\n\
             [[expose]]\nname = \"echo\"\nlocal = \"tcp://{echo}\"\nremote_port = {port}\n",
            gateway.addr
        ),
    )
    .unwrap();
    let args = [
        "agent".to_string(),
        "-c".into(),
        config.display().to_string(),
    ];
    let (_agent, answers) = run_agent(&args, 1).await;
    assert!(answers[0].contains("service registered"), "{answers:#?}");
    assert_eq!(echo_through(port, 100_000).await.unwrap().len(), 100_000);
}

#[tokio::test]
async fn agents_cannot_take_requests_from_configured_routes() {
    let echo = echo_server(true).await;
    let gateway = gateway_from(
        "tunnel-shadow",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"t0ken\"]\n\
             hosts = [\"*.example.com\"]\n\
             [[route]]\npath = \"/api\"\nbridge = \"tcp://{echo}\"\n\
             [[route]]\nhost = \"admin.example.com\"\nbridge = \"tcp://{echo}\"\n"
        ),
    )
    .await;
    let services = [
        format!("tcp://{echo}?mode=path&value=api/admin&name=under-api"),
        format!("tcp://{echo}?mode=domain&value=admin.example.com&name=admin-host"),
        format!("tcp://{echo}?mode=path&value=mine&name=free"),
    ];
    let (_agent, answers) = agent(gateway.addr, &services, 3).await;
    let answer = |name: &str| answer_for(&answers, name);
    assert!(answer("under-api").contains("would take requests from the configured route"));
    assert!(answer("admin-host").contains("would take requests from the configured route"));
    assert!(
        answer("free").contains("service registered"),
        "{answers:#?}"
    );
}

#[tokio::test]
async fn a_remote_port_closes_at_shutdown_while_the_gateway_drains() {
    let echo = echo_server(true).await;
    // An upstream that never answers: a request to it holds the gateway's drain open.
    let silent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = silent_listener.local_addr().unwrap();
    let port = free_port();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nshutdown_grace = \"60s\"\n[[route]]\npath = \"/slow\"\n\
         proxy = \"http://{silent}\"\n[agents]\ntokens = [\"t0ken\"]\n\
         remote_ports = \"{port}-{port}\"\nheartbeat_timeout = \"60s\"\n"
    );
    let mut gateway = gateway_from("tunnel-port-shutdown", &text).await;
    let services = [format!("tcp://{echo}?mode=port&value={port}")];
    let (_agent, _) = agent(gateway.addr, &services, 1).await;
    assert_eq!(echo_through(port, 1000).await.unwrap().len(), 1000);
    let mut held = TcpStream::connect(gateway.addr).await.unwrap();
    let head = format!("GET /slow HTTP/1.1\r\nHost: {}\r\n\r\n", gateway.addr);
    held.write_all(head.as_bytes()).await.unwrap();
    // The gateway dialled the upstream: the request is in flight before the signal.
    let (_in_flight, _) = tokio::time::timeout(STEP, silent_listener.accept())
        .await
        .expect("the gateway never forwarded the held request")
        .unwrap();
    let pid = gateway.child.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(signalled.unwrap().success());
    gateway.wait_for_log("shutdown started").await;
    // Not released with its agent (that waits out the 60 s heartbeat timeout): closed by
    // the shutdown itself, while the held request keeps the gateway draining.
    gateway.wait_for_log("remote port closed").await;
    let refused = TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        refused.is_err(),
        "the remote port still accepts during the drain"
    );
    assert!(
        gateway.child.try_wait().unwrap().is_none(),
        "the gateway already exited"
    );
}
