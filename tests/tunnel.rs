//! The tunnel end to end: the real `wsgate agent` binary dials a gateway (the real binary, or
//! one in this process) and exposes local HTTP, WebSocket and TCP services through it, by
//! path and by domain. Readiness is always a log line: the gateway's `listening on` and
//! `agent left`, the agent's `service registered`, the gateway's `agent's routes removed` and
//! (at debug) `connection closed`.

mod support;

use std::{net::SocketAddr, path::PathBuf};

use futures_util::{SinkExt, StreamExt};
use tokio::{io::AsyncReadExt, process::Child, sync::mpsc};
use tokio_websockets::Message;

use support::{
    Gateway, STEP, connect, echo_in_varied_messages,
    http_client::HttpConn,
    http_upstream::{HttpUpstream, pattern},
    json::parse_string_map,
    net::{echo_server, raw_request, upgrade_request},
    process::{self, Wsgate},
    random_bytes, read_bytes, read_close, send_binary,
    upstream::{Peer, RawWs, WsUpstream, opcode},
};

/// The token every gateway here accepts.
const TOKEN: &str = "t0ken";

/// The `[agents]` table every gateway here has: agents may claim hosts under `example.com`.
const AGENTS: &str =
    "[agents]\ntokens = [\"t0ken\"]\nheartbeat_timeout = \"6s\"\nhosts = [\"*.example.com\"]\n";

/// A running `wsgate agent`; killed on drop.
struct Agent {
    child: Child,
    /// Its stderr, line by line, drained continuously so it never blocks on a full pipe.
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl Agent {
    /// Starts `wsgate agent --server ws://GATEWAY/_wsgate/agent --token TOKEN --name NAME
    /// SERVICES…`; does not wait for anything.
    fn spawn(gateway: SocketAddr, token: &str, name: &str, services: &[String]) -> Agent {
        let server = format!("ws://{gateway}/_wsgate/agent");
        let mut args: Vec<String> = [
            "agent", "--server", &server, "--token", token, "--name", name,
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(services);
        let (child, lines) = process::start(&args);
        Agent {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Starts an agent with `services` and waits until each one is registered.
    async fn ready(gateway: SocketAddr, name: &str, services: &[String]) -> Agent {
        let mut agent = Agent::spawn(gateway, TOKEN, name, services);
        for _ in services {
            agent.wait_for("service registered").await;
        }
        agent
    }

    /// Reads stderr lines until one contains `needle`; returns it.
    async fn wait_for(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(STEP, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("agent exited before {needle:?}:\n{}", self.seen.join("\n")),
            Err(_) => panic!("no agent line with {needle:?}:\n{}", self.seen.join("\n")),
        }
    }

    /// Waits for the agent to exit on its own: its exit code and all of its stderr.
    async fn exit(mut self) -> (i32, String) {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("the agent did not exit")
            .unwrap();
        while let Some(line) = tokio::time::timeout(STEP, self.lines.recv())
            .await
            .expect("stderr did not end")
        {
            self.seen.push(line);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"))
    }

    /// SIGKILL, and wait for the process to be gone.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill the agent");
    }
}

/// A service on the agent's command line: `SCHEME://ADDR/?mode=MODE&value=VALUE`.
/// A gateway in this process on [`AGENTS`], and an agent named `office` that has registered
/// `services` with it.
async fn office(services: &[String]) -> (Gateway, Agent) {
    let gateway = Gateway::start(AGENTS).await;
    let agent = Agent::ready(gateway.addr, "office", services).await;
    (gateway, agent)
}

fn service(scheme: &str, addr: SocketAddr, mode: &str, value: &str) -> String {
    let slash = if scheme == "http" { "/" } else { "" };
    format!("{scheme}://{addr}{slash}?mode={mode}&value={value}")
}

/// The real gateway binary with `[agents]` and `extra`, on 127.0.0.1:0 unless `listen` is set.
async fn gateway_process(listen: &str, extra: &str) -> (Wsgate, PathBuf) {
    gateway_logging(listen, extra, "info").await
}

/// [`gateway_process`], logging what the `RUST_LOG` directives `filter` enable.
async fn gateway_logging(listen: &str, extra: &str, filter: &str) -> (Wsgate, PathBuf) {
    let dir = support::tempdir("tunnel");
    let file = dir.join("gateway.toml");
    std::fs::write(&file, format!("listen = [\"{listen}\"]\n{AGENTS}{extra}")).unwrap();
    let args = ["serve", "-c", file.to_str().unwrap()];
    let (child, stderr) = process::start_logging(process::BIN, &args, filter);
    (process::ready(child, stderr).await, dir)
}

/// `GET path` with `Host: host` on a fresh connection.
async fn get(gateway: SocketAddr, host: &str, path: &str) -> support::net::RawResponse {
    raw_request(gateway, &format!("GET {path} HTTP/1.1\nHost: {host}")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn http_in_path_mode_status_headers_and_a_streamed_50_mib_body() {
    let upstream = HttpUpstream::start("office-api").await;
    let (gateway, _dir) = gateway_process("127.0.0.1:0", "").await;
    let agent = Agent::ready(
        gateway.addr,
        "office",
        &[service("http", upstream.addr, "path", "api")],
    )
    .await;
    let mut client = HttpConn::connect(gateway.addr).await;

    let response = client.get("/api/name").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "office-api")
    );
    let response = client.get("/api/status/418").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (418, "status 418\n")
    );

    let response = client
        .request(
            "GET",
            "/api/headers?q=1",
            &[("X-Probe", "through-agent")],
            b"",
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = parse_string_map(&response.text());
    assert_eq!(seen["x-probe"], "through-agent");
    assert_eq!(
        seen["path"], "/headers?q=1",
        "the /api prefix is mapped away"
    );

    let total: u64 = 50 << 20;
    client
        .send_head("GET", &format!("/api/stream?bytes={total}"), &[], Some(0))
        .await;
    assert_eq!(client.read_head().await.status, 200);
    let mut received = 0u64;
    while let Some(chunk) = client.read_chunk().await {
        assert_eq!(chunk, pattern(received, chunk.len()), "at byte {received}");
        received += chunk.len() as u64;
    }
    assert_eq!(received, total);

    // Keep-alive survived the whole body.
    let response = client.get("/api/name").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "office-api")
    );
    drop(agent);
}

#[tokio::test]
async fn domain_mode_serves_its_host_and_no_other() {
    let upstream = HttpUpstream::start("app").await;
    let (gateway, _agent) =
        office(&[service("http", upstream.addr, "domain", "app.example.com")]).await;

    let response = get(gateway.addr, "app.example.com", "/name").await;
    assert_eq!((response.status, response.text().as_str()), (200, "app"));
    let response = get(gateway.addr, "app.example.com:8443", "/headers").await;
    assert_eq!(response.status, 200);
    let seen = parse_string_map(&response.text());
    assert_eq!(seen["path"], "/headers", "domain mode keeps the path");

    for host in ["other.example.com", "example.com", "x.app.example.com"] {
        let response = get(gateway.addr, host, "/name").await;
        assert_eq!(response.status, 404, "Host: {host}: {}", response.text());
    }
    assert_eq!(upstream.requests(), 2);
}

#[tokio::test]
async fn a_websocket_app_behind_an_agent_echoes_text_and_binary() {
    let app = WsUpstream::start(Peer::Python).await;
    let (gateway, _agent) = office(&[service("http", app.addr, "path", "chat")]).await;
    let mut client = connect(&gateway.ws_url("/chat/room"), "")
        .await
        .unwrap_or_else(|e| panic!("{e}; upstream stderr: {}", app.stderr()));

    client
        .send(Message::text("hello through the tunnel"))
        .await
        .unwrap();
    let message = tokio::time::timeout(STEP, client.next())
        .await
        .expect("echo timed out")
        .expect("stream ended")
        .unwrap();
    assert_eq!(message.as_text(), Some("hello through the tunnel"));

    let data = random_bytes(300 * 1024, 3);
    send_binary(&mut client, &data).await;
    let message = tokio::time::timeout(STEP, client.next())
        .await
        .expect("echo timed out")
        .expect("stream ended")
        .unwrap();
    assert!(message.is_binary());
    assert!(
        message.into_payload()[..] == data[..],
        "binary echo differs"
    );

    // The upstream saw the mapped path.
    let mut headers = connect(&gateway.ws_url("/chat/x/headers"), "")
        .await
        .unwrap();
    let message = tokio::time::timeout(STEP, headers.next())
        .await
        .expect("headers timed out")
        .expect("stream ended")
        .unwrap();
    let seen = parse_string_map(message.as_text().expect("a text message"));
    assert_eq!(seen["path"], "/x/headers");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_service_via_a_bridge_route_64_mib_each_way_byte_exact() {
    let echo = echo_server(true).await;
    let (gateway, _agent) = office(&[service("tcp", echo, "path", "vnc")]).await;
    let client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    let data = random_bytes(64 << 20, 11);
    let received = echo_in_varied_messages(client, &data).await;
    assert_eq!(received.len(), data.len());
    assert!(received == data, "echoed bytes differ from the bytes sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_requests_through_one_agent_get_their_own_bodies() {
    let upstream = HttpUpstream::start("api").await;
    let (gateway, _agent) = office(&[service("http", upstream.addr, "path", "api")]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..200u64 {
        let addr = gateway.addr;
        tasks.spawn(async move {
            let mut client = HttpConn::connect(addr).await;
            let body = random_bytes(64 * 1024 + index as usize, index + 1);
            let response = client.request("POST", "/api/echo", &[], &body).await;
            assert_eq!(response.status, 200, "request {index}");
            assert!(response.body == body, "request {index} got another body");
            index
        });
    }
    let mut done = Vec::new();
    while let Some(result) = tokio::time::timeout(STEP, tasks.join_next())
        .await
        .expect("requests timed out")
    {
        done.push(result.unwrap());
    }
    assert_eq!(done.len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn six_hundred_concurrent_bridge_sessions_through_one_agent_get_their_own_bytes() {
    let echo = echo_server(true).await;
    let (gateway, _agent) = office(&[service("tcp", echo, "path", "tcp")]).await;
    let url = gateway.ws_url("/tcp");
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..SESSIONS {
        let url = url.clone();
        tasks.spawn(async move {
            let mut client = connect(&url, "binary").await.unwrap();
            let data = random_bytes(32 * 1024, index + 1);
            send_binary(&mut client, &data).await;
            assert!(
                read_bytes(&mut client, data.len()).await == data,
                "session {index} got other bytes"
            );
            client
        });
    }
    // Every session stays open until all have answered: all their streams at once, more than
    // yamux's default stream limit (256 un-acknowledged, 512 in all).
    let mut open = Vec::new();
    while let Some(result) = tokio::time::timeout(STEP, tasks.join_next())
        .await
        .expect("sessions timed out")
    {
        open.push(result.unwrap());
    }
    assert_eq!(open.len(), SESSIONS as usize);
}

/// Bridge sessions held open at once through one agent in the test above.
const SESSIONS: u64 = 600;

#[tokio::test]
async fn a_bad_token_makes_the_agent_exit_and_a_bare_upgrade_gets_401() {
    let upstream = HttpUpstream::start("api").await;
    let gateway = Gateway::start(AGENTS).await;

    let agent = Agent::spawn(
        gateway.addr,
        "wrong",
        "office",
        &[service("http", upstream.addr, "path", "api")],
    );
    let (code, stderr) = agent.exit().await;
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains("the gateway refused the token (401)"),
        "{stderr}"
    );

    let response = upgrade_request(gateway.addr, "/_wsgate/agent", "").await;
    assert_eq!(response.status, 401, "{}", response.text());
    let response = upgrade_request(
        gateway.addr,
        "/_wsgate/agent",
        "Authorization: Bearer wrong\n",
    )
    .await;
    assert_eq!(response.status, 401, "{}", response.text());
    let response = get(gateway.addr, "x", "/api/name").await;
    assert_eq!(response.status, 404, "nothing was registered");
}

#[tokio::test]
async fn a_second_agent_is_refused_naming_the_holder_and_the_same_agent_takes_over() {
    let first = HttpUpstream::start("first").await;
    let second = HttpUpstream::start("second").await;
    let (mut gateway, _dir) = gateway_process("127.0.0.1:0", "").await;
    let mut office = Agent::ready(
        gateway.addr,
        "office",
        &[service("http", first.addr, "path", "api")],
    )
    .await;

    let mut home = Agent::spawn(
        gateway.addr,
        TOKEN,
        "home",
        &[service("http", second.addr, "path", "api")],
    );
    let refused = home.wait_for("service refused").await;
    assert!(
        refused.contains("service=api") && refused.contains(r#"/api is held by agent"#),
        "{refused}"
    );
    assert!(refused.contains("office"), "the holder is named: {refused}");
    let response = get(gateway.addr, "x", "/api/name").await;
    assert_eq!((response.status, response.text().as_str()), (200, "first"));
    home.kill().await;

    // The same name and token from another process: it takes the route over at once, while
    // the first is still connected.
    let mut again = Agent::spawn(
        gateway.addr,
        TOKEN,
        "office",
        &[service("http", second.addr, "path", "api")],
    );
    let registered = again.wait_for("service registered").await;
    assert!(registered.contains("url=/api"), "{registered}");
    gateway
        .wait_for_log("agent reconnected: its previous session is replaced")
        .await;
    // The first process's session was ended by the gateway. It would reconnect and take the
    // route back (same name, same token) after its backoff; stop it before it does.
    office.wait_for("reconnecting").await;
    office.kill().await;
    for _ in 0..5 {
        let response = get(gateway.addr, "x", "/api/name").await;
        assert_eq!((response.status, response.text().as_str()), (200, "second"));
    }
    assert_eq!(first.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_transfer_ends_the_download_and_its_routes() {
    let upstream = HttpUpstream::start("api").await;
    let other = HttpUpstream::start("other").await;
    let configured = format!(
        "[[route]]\npath = \"/static\"\nproxy = \"{}\"\n",
        other.url("/")
    );
    let (mut gateway, _dir) = gateway_logging("127.0.0.1:0", &configured, CLOSES).await;
    let pid = gateway.child.id().unwrap();
    let fds_before = open_fds(pid);
    let rss_before = support::process::rss_kib(pid);
    let agent = Agent::ready(
        gateway.addr,
        "office",
        &[service("http", upstream.addr, "path", "api")],
    )
    .await;
    // Every connection opened from here on: the gateway's descriptors are counted again
    // once each has logged `connection closed`.
    let connected = gateway.wait_for_log("agent connected").await;
    let mut opened = vec![client_addr(&connected).expect("the agent's address")];

    let total: u64 = 1 << 30;
    let mut client = HttpConn::connect(gateway.addr).await;
    opened.push(client.io.get_ref().local_addr().unwrap());
    client
        .send_head("GET", &format!("/api/stream?bytes={total}"), &[], Some(0))
        .await;
    assert_eq!(client.read_head().await.status, 200);
    let mut received = 0u64;
    while received < 4 << 20 {
        let chunk = client.read_chunk().await.expect("more body");
        assert_eq!(chunk, pattern(received, chunk.len()), "at byte {received}");
        received += chunk.len() as u64;
    }
    agent.kill().await;

    // The rest of the body: it must end early (EOF or an error), never hang, never look
    // complete (no last chunk).
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let ended = tokio::time::timeout(STEP, async {
        loop {
            match client.io.read(&mut buf).await {
                Ok(0) => return "eof".to_string(),
                Ok(n) => {
                    rest.extend_from_slice(&buf[..n]);
                    // Keep only the tail: it is all that is checked.
                    if rest.len() > 1 << 20 {
                        rest.drain(..rest.len() - 64);
                    }
                }
                Err(error) => return error.to_string(),
            }
        }
    })
    .await
    .expect("the download hung after the agent was killed");
    assert!(
        !rest.ends_with(b"\r\n0\r\n\r\n"),
        "the body looked complete after the agent died ({ended})"
    );

    // The routes stay for one heartbeat timeout, answering 502 (the agent is away, not
    // unknown), then go. (Connections closing meanwhile are noted.)
    let mut closed = Vec::new();
    gateway
        .wait_for(|line| noting_closed(line, &mut closed, "agent left"))
        .await;
    let (addr, response) = get_noting(gateway.addr, "x", "/api/name").await;
    assert_eq!(response.status, 502, "{}", response.text());
    opened.push(addr);
    gateway
        .wait_for(|line| noting_closed(line, &mut closed, "agent's routes removed"))
        .await;
    let (addr, response) = get_noting(gateway.addr, "x", "/api/name").await;
    assert_eq!(response.status, 404, "{}", response.text());
    opened.push(addr);
    // Everything the agent's session and the dead download held is released: once every
    // connection opened since (the download's client connection is closed now) has logged
    // its close, the gateway is back to its descriptors from before.
    drop(client);
    if !opened.iter().all(|addr| closed.contains(addr)) {
        gateway
            .wait_for(|line| {
                noting_closed(line, &mut closed, "connection closed")
                    && opened.iter().all(|addr| closed.contains(addr))
            })
            .await;
    }
    let fds_after = open_fds(pid);
    assert!(
        fds_after <= fds_before,
        "{fds_after} descriptors open, {fds_before} before the agent"
    );
    // Memory: what the download's stream buffered (its window, which auto-tuning grows to
    // tens of MiB under load) may stay with the allocator, but nothing beyond that bound: a
    // leaked session would keep the whole 1 GiB download's worth of windows and tasks.
    let rss_after = support::process::rss_kib(pid);
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "RSS {rss_after} KiB after, {rss_before} KiB before the agent"
    );

    // The gateway is healthy: a configured route works, and a new agent registers and serves.
    let response = get(gateway.addr, "x", "/static/name").await;
    assert_eq!((response.status, response.text().as_str()), (200, "other"));
    let _agent = Agent::ready(
        gateway.addr,
        "office",
        &[service("http", upstream.addr, "path", "api")],
    )
    .await;
    let response = get(gateway.addr, "x", "/api/name").await;
    assert_eq!((response.status, response.text().as_str()), (200, "api"));
}

#[tokio::test]
async fn a_restarted_gateway_gets_the_agent_and_its_routes_back() {
    let upstream = HttpUpstream::start("api").await;
    let echo = echo_server(false).await;
    let (gateway, _dir) = gateway_process("127.0.0.1:0", "").await;
    let addr = gateway.addr;
    let mut agent = Agent::ready(
        addr,
        "office",
        &[
            service("http", upstream.addr, "path", "api"),
            service("tcp", echo, "domain", "vnc.example.com"),
        ],
    )
    .await;
    let response = get(addr, "x", "/api/name").await;
    assert_eq!((response.status, response.text().as_str()), (200, "api"));

    let mut old = gateway.child;
    old.kill().await.expect("kill the gateway");
    agent.wait_for("reconnecting").await;

    let (_gateway, _dir2) = gateway_process(&addr.to_string(), "").await;
    agent.wait_for("service registered").await;
    agent.wait_for("service registered").await;

    let response = get(addr, "x", "/api/name").await;
    assert_eq!((response.status, response.text().as_str()), (200, "api"));
    // Host routing: a raw upgrade, to send `Host: vnc.example.com`.
    let mut raw = RawWs::handshake(
        addr,
        "/",
        &[
            ("Host", "vnc.example.com"),
            ("Sec-WebSocket-Protocol", "binary"),
        ],
    )
    .await;
    assert_eq!(raw.response.status, 101, "{}", raw.response.text());
    raw.send_frame(opcode::BINARY, b"ping over vnc").await;
    let (opcode, payload) = raw.read_frame().await;
    assert_eq!(
        (opcode, payload.as_slice()),
        (opcode::BINARY, &b"ping over vnc"[..])
    );
}

/// Descriptors process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// The gateway's log filter that also says when each client connection's socket is closed.
const CLOSES: &str = "info,wsgate::io::closing=debug";

/// The client address a gateway log line names (its connection's span, or a
/// `connection closed` line's field).
fn client_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.rsplit_once("client.addr=")?;
    rest.split(['}', ' ']).next()?.parse().ok()
}

/// Notes in `closed` the client of a `connection closed` line; whether `line` holds `needle`.
fn noting_closed(line: &str, closed: &mut Vec<SocketAddr>, needle: &str) -> bool {
    if line.contains("connection closed") {
        closed.extend(client_addr(line));
    }
    line.contains(needle)
}

/// [`get`], with the client address the request came from.
async fn get_noting(
    gateway: SocketAddr,
    host: &str,
    path: &str,
) -> (SocketAddr, support::net::RawResponse) {
    let stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
    let addr = stream.local_addr().unwrap();
    let head = format!("GET {path} HTTP/1.1\nHost: {host}");
    (addr, support::net::raw_request_on(stream, &head).await)
}

#[tokio::test]
async fn open_websockets_through_a_departed_agent_close_with_1001() {
    let echo = echo_server(true).await;
    let (gateway, agent) = office(&[service("tcp", echo, "path", "vnc")]).await;
    let mut client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    send_binary(&mut client, b"still there?").await;
    assert_eq!(read_bytes(&mut client, 12).await, b"still there?");
    agent.kill().await;
    let (code, reason) = read_close(&mut client).await;
    assert_eq!((code, reason.as_str()), (1001, "the agent left"));
}

#[tokio::test]
async fn an_https_local_is_reached_over_tls_through_the_tunnel() {
    // The local service speaks only TLS (a wsgate with a self-signed test certificate in front
    // of a plain upstream), as an appliance's admin page does.
    let upstream = HttpUpstream::start("behind-tls").await;
    let dir = support::tempdir("tunnel-https-local");
    let pki = support::certs::make(&dir);
    let local = Gateway::start(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[route]]\npath = \"/\"\nproxy = \"{}\"\n",
        pki.cert_path.display(),
        pki.key_path.display(),
        upstream.url("/")
    ))
    .await;
    let (gateway, _agent) =
        office(&[format!("https://{}/?mode=path&value=admin", local.addr)]).await;
    let response = get(gateway.addr, "x", "/admin/name").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "behind-tls")
    );
}

#[tokio::test]
async fn a_visitor_that_stops_reading_does_not_stall_the_agents_other_visitors() {
    let upstream = HttpUpstream::start("api").await;
    let (gateway, _agent) = office(&[service("http", upstream.addr, "path", "api")]).await;
    // A 1 GiB download whose client reads its head and then nothing: its stream's window
    // fills and its upstream waits; the agent's other streams go on.
    let mut stalled = HttpConn::connect(gateway.addr).await;
    stalled
        .send_head("GET", "/api/stream?bytes=1073741824", &[], Some(0))
        .await;
    assert_eq!(stalled.read_head().await.status, 200);
    for n in 0..20 {
        let response = tokio::time::timeout(STEP, get(gateway.addr, "x", "/api/name"))
            .await
            .unwrap_or_else(|_| panic!("request {n} stalled behind the unread download"));
        assert_eq!((response.status, response.text().as_str()), (200, "api"));
    }
    // And a big transfer on another stream still flows while the first one is stuck.
    let mut other = HttpConn::connect(gateway.addr).await;
    let response = tokio::time::timeout(STEP, other.get("/api/stream?bytes=16777216"))
        .await
        .expect("a second download stalled behind the unread one");
    assert_eq!(response.body.len(), 16 << 20);
    drop(stalled);
}

/// A raw agent: says hello with `version`; the gateway's answer.
async fn hello_with_version(gateway: SocketAddr, version: u32) -> wsgate::wire::Control {
    let host = gateway.to_string();
    let name = "from-the-future";
    support::raw_agent::hello(gateway, &host, "t0ken", name, version, |_| {})
        .await
        .1
}

#[tokio::test]
async fn an_agent_speaking_another_protocol_version_is_told_both_versions() {
    let gateway = Gateway::start(AGENTS).await;
    match hello_with_version(gateway.addr, 99).await {
        wsgate::wire::Control::Rejected { reason } => assert_eq!(
            reason,
            "protocol version 99 is not supported: this gateway speaks version 2"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(matches!(
        hello_with_version(gateway.addr, wsgate::wire::VERSION).await,
        wsgate::wire::Control::Welcome { .. }
    ));
}
