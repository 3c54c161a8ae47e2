//! The gateway-wide budgets under the attacks that found them missing, on the real binary:
//! unfinished WebSocket messages across many connections (memory, returned after close), and
//! idle WebSockets filling the descriptor limit (visitors refused early, agents still in).

mod support;

use std::net::SocketAddr;

use support::{
    net::echo_server,
    process,
    upstream::{RawWs, client_frame, opcode, parse_close},
    *,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes a gateway config into a fresh directory and returns its path.
fn config(name: &str, text: &str) -> String {
    let dir = tempdir(name);
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// One client frame, masked with the zero key.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(fin, opcode, payload, [0; 4])
}

/// How one flooding connection ended.
#[derive(Debug)]
enum Flood {
    /// It sent every fragment and still holds them (no close came); the connection is kept
    /// open, holding its charge, until the outcome is dropped.
    Held(#[allow(dead_code)] RawWs),
    /// The gateway closed it with this code and reason.
    Closed(u16, String),
    /// The connection was reset before its close could be read.
    Reset,
}

impl std::fmt::Debug for RawWs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawWs")
    }
}

/// Opens a WebSocket to `addr` and sends `fragments` fragments of `size` bytes of one binary
/// message, never the final frame, then a ping; reads at the same time. The pong says the
/// gateway read every fragment and holds them; a close says it refused one.
async fn flood(addr: SocketAddr, fragments: usize, size: usize) -> Flood {
    let mut ws = RawWs::handshake(addr, "/", &[]).await;
    assert_eq!(ws.response.status, 101);
    let chunk = vec![b'm'; size];
    let mut sent = 0;
    let mut head = [0u8; 2];
    loop {
        let bytes = match sent {
            0 => frame(false, opcode::BINARY, &chunk),
            n if n < fragments => frame(false, opcode::CONTINUATION, &chunk),
            _ => frame(true, opcode::PING, b"held?"),
        };
        // Unbuffered halves: the handshake left nothing in `ws.io`'s buffer (the gateway
        // sends nothing before our frames), and nothing read here may be lost.
        let (mut reader, writer) = ws.io.get_mut().split();
        tokio::select! {
            biased;
            read = reader.read_exact(&mut head) => {
                let outcome = match read {
                    Ok(_) if head[0] & 0x0f == opcode::PONG => {
                        let mut payload = [0u8; 5];
                        reader.read_exact(&mut payload).await.expect("the pong's payload");
                        None
                    }
                    Ok(_) => Some(read_close(&mut reader, head).await),
                    Err(_) => Some(Flood::Reset),
                };
                return outcome.unwrap_or(Flood::Held(ws));
            }
            written = write_all(writer, &bytes), if sent <= fragments => {
                if written.is_err() {
                    return Flood::Reset;
                }
                sent += 1;
            }
        }
    }
}

async fn write_all(
    mut writer: tokio::net::tcp::WriteHalf<'_>,
    bytes: &[u8],
) -> std::io::Result<()> {
    writer.write_all(bytes).await
}

/// The rest of a frame whose two header bytes are read: a close's code and reason.
async fn read_close<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, head: [u8; 2]) -> Flood {
    assert_eq!(
        head[0] & 0x0f,
        opcode::CLOSE,
        "the gateway sends only a close"
    );
    let mut payload = vec![0; usize::from(head[1] & 0x7f)];
    match reader.read_exact(&mut payload).await {
        Ok(_) => {
            let (code, reason) = parse_close(&payload).expect("a close code");
            Flood::Closed(code, reason)
        }
        Err(_) => Flood::Reset,
    }
}

#[tokio::test]
async fn unfinished_messages_share_one_budget_and_memory_comes_back_after_close() {
    // The attack as it was made: 150 connections, each 15 fragments of 1 MiB without the
    // final frame, against the default budget (256 MiB) and the default 16 MiB message cap.
    const CONNECTIONS: usize = 150;
    const FRAGMENTS: usize = 15;
    const FRAGMENT: usize = 1 << 20;
    let echo = echo_server(false).await;
    let path = config(
        "budget-messages",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n[[route]]\npath = \"/\"\nbridge = \"tcp://{echo}\"\n"
        ),
    );
    let mut wsgate = process::spawn(&["serve", "-c", &path]).await;
    let pid = wsgate.child.id().unwrap();
    let before = process::rss_kib(pid);
    let addr = wsgate.addr;
    let floods = (0..CONNECTIONS).map(|_| tokio::spawn(flood(addr, FRAGMENTS, FRAGMENT)));
    let mut outcomes = Vec::new();
    for flood in floods {
        outcomes.push(
            tokio::time::timeout(STEP * 3, flood)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let peak = process::rss_kib(pid);
    let held = outcomes
        .iter()
        .filter(|o| matches!(o, Flood::Held(_)))
        .count();
    let closed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Flood::Closed(code, reason) => Some((*code, reason.as_str())),
            _ => None,
        })
        .collect();
    // Each holds 31 MiB: its 1 MiB read buffer and twice the 15 MiB gathered. 256 MiB holds
    // 8 of them (a few more may have been refused on the way while others grew).
    assert!(
        held <= 8,
        "{held} connections hold 15 MiB each: over the budget"
    );
    assert!(held >= 6, "only {held} connections were let hold 15 MiB");
    // The close echoes the code (tokio-websockets answers a close with its code only).
    assert!(closed.iter().all(|c| c.0 == 1013), "closes: {closed:?}");
    assert_eq!(
        closed.len(),
        CONNECTIONS - held,
        "every refused connection reads its close (no reset): {outcomes:?}"
    );
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 256 + 96,
        "RSS grew by {growth_mib} MiB with a 256 MiB message budget"
    );
    let refused = CONNECTIONS - held;
    let mut logged = 0;
    while logged < refused {
        let line = wsgate.wait_for_log("websocket closed").await;
        if line.contains("close_code=1013") {
            // The budget's refusal, not the client's close, is what the access log counts.
            assert!(line.contains("outcome=message_budget_full"), "{line}");
            logged += 1;
        }
    }
    drop(outcomes);
    let after = process::rss_settles_at_most(pid, before + 32 * 1024).await;
    assert!(
        after <= before + 32 * 1024,
        "RSS {after} KiB after every connection closed, {before} KiB before"
    );
}

#[tokio::test]
async fn a_full_descriptor_table_refuses_visitors_early_and_still_takes_agents() {
    // The attack: idle WebSockets until the descriptor limit (256). Visitors get 96 slots
    // ((256 - 64 reserve) / 2 descriptors each); the agent endpoint works from the reserve.
    let echo = echo_server(false).await;
    let path = config(
        "budget-descriptors",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"agent-token\"]\n\
             [[route]]\npath = \"/\"\nbridge = \"tcp://{echo}\"\n"
        ),
    );
    let (child, stderr) = spawn_with_nofile(256, &["serve", "-c", &path]);
    let mut wsgate = process::ready(child, stderr).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        let ws = RawWs::handshake(wsgate.addr, "/", &[]).await;
        match ws.response.status {
            101 => open.push(ws),
            503 => refused += 1,
            other => panic!("status {other} for a visitor"),
        }
    }
    assert_eq!(open.len(), 96, "visitors admitted");
    assert_eq!(refused, 150 - 96);
    wsgate.wait_for_log("connection limit reached").await;
    // A refused agent on the reserve does not keep its slot: its 401 closes the connection.
    let bad = RawWs::handshake(
        wsgate.addr,
        "/_wsgate/agent",
        &[("Authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(bad.response.status, 401);
    assert_eq!(bad.response.header("connection"), Some("close"));
    // An already-open connection still carries bytes.
    let first = &mut open[0];
    first.send_frame(opcode::BINARY, b"still here").await;
    assert_eq!(
        first.read_frame().await,
        (opcode::BINARY, b"still here".to_vec())
    );
    // An agent still connects, from the reserve.
    let agent_url = format!("ws://{}/_wsgate/agent", wsgate.addr);
    let (_agent, mut agent_log) = process::start(&[
        "agent",
        "--server",
        &agent_url,
        "--token",
        "agent-token",
        "--name",
        "late",
        &format!("tcp://{echo}?mode=private&value=echo&secret=s3cret&name=echo"),
    ]);
    // Everything the gateway logs until the agent is in: the 54 refusals were logged once
    // (above), not once each.
    let mut warnings = 0;
    loop {
        let line = tokio::time::timeout(STEP, wsgate.stderr.recv())
            .await
            .expect("the agent connected")
            .expect("the gateway runs");
        warnings += usize::from(line.contains("connection limit reached"));
        if line.contains("agent connected") {
            break;
        }
    }
    drop(agent_log.recv());
    assert_eq!(warnings, 0, "one warning per interval");
    // Closing visitors frees their slots.
    open.truncate(10);
    let mut again = None;
    for _ in 0..100 {
        let ws = RawWs::handshake(wsgate.addr, "/", &[]).await;
        if ws.response.status == 101 {
            again = Some(ws);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(again.is_some(), "a visitor got in once others had left");
}

/// Starts `wsgate ARGS` with its descriptor limit (soft and hard) set to `limit`.
fn spawn_with_nofile(
    limit: u32,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let nofile = format!("--nofile={limit}:{limit}");
    let mut full = vec![nofile.as_str(), "--", process::BIN];
    full.extend_from_slice(args);
    process::start_program("prlimit", &full)
}

/// A raw agent on `gateway` with `token`: its session, after a welcome as `name`. Streams
/// the gateway opens to it go to `on_inbound`.
async fn raw_agent(
    gateway: SocketAddr,
    token: &str,
    name: &str,
    on_inbound: impl FnMut(wsgate::session::TunnelStream) + Send + 'static,
) -> (
    wsgate::session::SessionHandle,
    wsgate::session::OpenedStream,
) {
    let host = gateway.to_string();
    let version = wsgate::wire::VERSION;
    let (raw, welcome) =
        support::raw_agent::hello(gateway, &host, token, name, version, on_inbound).await;
    assert!(matches!(welcome, wsgate::wire::Control::Welcome { .. }));
    (raw.session, raw.control)
}

#[tokio::test]
async fn a_token_holder_cannot_pin_tunnel_memory_and_a_session_granting_no_credit_ends() {
    // The attack as it was made: two agents on one token, one opening hundreds of forward
    // streams to the other, which accepts them and never grants window credit.
    use wsgate::wire::{self, Control, Expose, Forward, Opened, Request, Service};
    let path = config(
        "budget-tunnel",
        "listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"pin-token\"]\n\
         [limits]\ntunnel_memory_per_token = \"32MiB\"\ncredit_timeout = \"2s\"\n\
         sessions_per_token = 2\n",
    );
    let mut wsgate = process::spawn(&["serve", "-c", &path]).await;
    let pid = wsgate.child.id().unwrap();
    let before = process::rss_kib(pid);
    // The sink: answers every stream the gateway opens, then never reads it.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let (_sink, mut sink_control) =
        raw_agent(wsgate.addr, "pin-token", "sink", move |mut stream| {
            let keep = keep.clone();
            tokio::spawn(async move {
                let _open: Option<wire::Open> = wsgate::session::messages::read_frame(&mut stream)
                    .await
                    .unwrap_or(None);
                let _ = wsgate::session::messages::write_frame(&mut stream, &Opened::Ok).await;
                keep.lock().unwrap().push(stream);
            });
        })
        .await;
    let secret = wsgate::secret::Secret::new("s3cret");
    let register = Control::Register {
        services: vec![Service {
            name: "sink".into(),
            local: "tcp://127.0.0.1:9".into(),
            expose: Expose::Private(secret.clone()),
        }],
        egress: None,
    };
    wsgate::session::messages::write_frame(&mut sink_control, &register)
        .await
        .unwrap();
    let registered: Option<Control> = wsgate::session::messages::read_frame(&mut sink_control)
        .await
        .unwrap();
    assert!(
        matches!(registered, Some(Control::Registered { .. })),
        "{registered:?}"
    );
    // The sink heartbeats without pause, each ping as soon as the last pong is in (at most
    // MAX_HEARTBEATS): its control stream proves it is there, not that it takes data.
    const MAX_HEARTBEATS: u64 = 1_000_000;
    let heartbeats = tokio::spawn(async move {
        for n in 0..MAX_HEARTBEATS {
            if wsgate::session::messages::write_frame(&mut sink_control, &Control::Ping(n))
                .await
                .is_err()
            {
                return n;
            }
            match wsgate::session::messages::read_frame::<_, Control>(&mut sink_control).await {
                Ok(Some(Control::Pong(_))) => {}
                _ => return n,
            }
        }
        MAX_HEARTBEATS
    });
    let (opener, _opener_control) = raw_agent(wsgate.addr, "pin-token", "opener", |_| {}).await;
    // A third session on the token is refused: two is its cap.
    let third = RawWs::handshake(
        wsgate.addr,
        "/_wsgate/agent",
        &[("Authorization", "Bearer pin-token")],
    )
    .await;
    assert_eq!(third.response.status, 429);
    // 300 forwards, each pushing 1 MiB the sink never takes.
    let mut opened = 0;
    let mut refused = 0;
    let mut writers = Vec::new();
    for _ in 0..300 {
        let Ok(mut stream) = opener.open().await else {
            refused += 1;
            continue;
        };
        let forward = Request::Forward(Forward {
            service: "sink".into(),
            secret: secret.clone(),
        });
        let asked = async {
            wsgate::session::messages::write_frame(&mut stream, &forward)
                .await
                .ok()?;
            wsgate::session::messages::read_frame::<_, Opened>(&mut stream)
                .await
                .ok()?
        };
        match tokio::time::timeout(STEP, asked)
            .await
            .expect("an answer or a reset")
        {
            Some(Opened::Ok) => {
                opened += 1;
                writers.push(tokio::spawn(async move {
                    let chunk = vec![b'p'; 64 << 10];
                    for _ in 0..16 {
                        if stream.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                    stream
                }));
            }
            _ => refused += 1,
        }
    }
    // 32 MiB per token: two sessions' 8 MiB headroom, then 256 KiB per stream on either side.
    assert!(
        opened <= 32,
        "{opened} forwards open: past the token's budget"
    );
    assert!(
        opened > 0 && refused >= 300 - 32,
        "opened {opened}, refused {refused}"
    );
    let peak = process::rss_kib(pid);
    let growth_mib = peak.saturating_sub(before) / 1024;
    assert!(
        growth_mib < 32 + 48,
        "RSS grew by {growth_mib} MiB with a 32 MiB budget"
    );
    // The sink grants no credit while the gateway waits to write: its session ends, though
    // it kept heartbeating.
    wsgate.wait_for_log("agent granted no window credit").await;
    let beats = tokio::time::timeout(STEP, heartbeats)
        .await
        .unwrap()
        .unwrap();
    assert!(
        beats > 5 && beats < MAX_HEARTBEATS,
        "heartbeats until the session ended: {beats}"
    );
    // The opener's writers stay blocked (the gateway grants them nothing more): stop them.
    for writer in writers {
        writer.abort();
    }
    drop(held);
    let after = process::rss_settles_at_most(pid, before + 16 * 1024).await;
    assert!(
        after <= before + 16 * 1024,
        "RSS {after} KiB after the sessions ended, {before} KiB before"
    );
}

#[tokio::test]
async fn message_mode_proxy_routes_share_the_message_budget() {
    // The same attack on a message-mode proxy route (a real Python `websockets` upstream):
    // with an 8 MiB budget, three connections hold 1 MiB each in two fragments (charged 2.5
    // MiB: the read buffer and twice what is gathered); the rest are closed with 1013.
    use support::upstream::{Peer, WsUpstream};
    let upstream = WsUpstream::start(Peer::Python).await;
    let path = config(
        "budget-message-mode",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n[limits]\nmessage_memory = \"8MiB\"\n\
             [[route]]\npath = \"/\"\nproxy = \"{}\"\nmode = \"message\"\n\
             max_message_size = \"2MiB\"\n",
            upstream.ws_url("/")
        ),
    );
    let mut wsgate = process::spawn(&["serve", "-c", &path]).await;
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(flood(wsgate.addr, 2, 512 << 10).await);
    }
    let held = outcomes
        .iter()
        .filter(|o| matches!(o, Flood::Held(_)))
        .count();
    let closed = outcomes
        .iter()
        .filter(|o| matches!(o, Flood::Closed(1013, _)))
        .count();
    assert_eq!((held, closed), (3, 3), "{outcomes:?}");
    for _ in 0..closed {
        let line = wsgate.wait_for_log("outcome=message_budget_full").await;
        assert!(line.contains("close_code=1013"), "{line}");
    }
}
