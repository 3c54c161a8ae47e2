//! The bridge handler end to end: real TCP servers, real WebSocket clients, in-process gateway.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::{net::*, *};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_websockets::{CloseCode, Message};

fn bridge_route(path: &str, target: &str, extra: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nbridge = \"{target}\"\n{extra}\n")
}

async fn echo_gateway(extra: &str) -> Gateway {
    let echo = echo_server(true).await;
    Gateway::start(&bridge_route("/vnc", &format!("tcp://{echo}"), extra)).await
}

#[tokio::test]
async fn sixty_four_mib_each_way_is_byte_exact_through_a_rechunking_target() {
    let gateway = echo_gateway("").await;
    let client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    let data = random_bytes(64 << 20, 7);
    let received = echo_in_varied_messages(client, &data).await;
    assert_eq!(received.len(), data.len());
    assert!(received == data, "echoed bytes differ from the bytes sent");
}

#[tokio::test]
async fn text_frames_are_forwarded_as_their_bytes() {
    let gateway = echo_gateway("").await;
    let (mut client, response) = connect_with_response(&gateway.ws_url("/vnc"), "")
        .await
        .unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    client.send(Message::text("héllo")).await.unwrap();
    assert_eq!(read_bytes(&mut client, 6).await, "héllo".as_bytes());
}

#[tokio::test]
async fn base64_subprotocol_round_trip() {
    let gateway = echo_gateway("").await;
    let (mut client, response) = connect_with_response(&gateway.ws_url("/vnc"), "base64")
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "base64");
    client.send(Message::text("AP9oaQ==")).await.unwrap(); // 00 ff 'h' 'i'
    let mut decoded = Vec::new();
    while decoded.len() < 4 {
        let message = client.next().await.unwrap().unwrap();
        assert!(message.is_text(), "base64 mode answers in text frames");
        let text = message.as_text().unwrap().to_string();
        decoded.extend(base64_decode(&text));
    }
    assert_eq!(decoded, [0x00, 0xff, b'h', b'i']);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64 from the gateway")
}

#[tokio::test]
async fn invalid_base64_closes_with_1007() {
    let gateway = echo_gateway("").await;
    let mut client = connect(&gateway.ws_url("/vnc"), "base64").await.unwrap();
    client.send(Message::text("not base64!")).await.unwrap();
    assert_eq!(
        read_close(&mut client).await,
        (1007, "invalid base64".to_string())
    );
}

#[tokio::test]
async fn binary_is_preferred_when_both_are_offered() {
    let gateway = echo_gateway("").await;
    let (_client, response) = connect_with_response(&gateway.ws_url("/vnc"), "base64, binary")
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "binary");
}

#[tokio::test]
async fn refusals_have_the_right_status_and_a_reason() {
    let refused = refused_port().await;
    let gateway = Gateway::start(&bridge_route("/dead", &format!("tcp://{refused}"), "")).await;
    let addr = gateway.addr;

    let wrong_path = upgrade_request(addr, "/other", "").await;
    assert_eq!(wrong_path.status, 404);
    assert!(
        wrong_path.text().contains("no route"),
        "{}",
        wrong_path.text()
    );

    let plain = raw_request(addr, &format!("GET /dead HTTP/1.1\nHost: {addr}")).await;
    assert_eq!(plain.status, 426);
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    assert!(plain.text().contains("WebSocket"), "{}", plain.text());

    let old_version = raw_request(
        addr,
        &format!("GET /dead HTTP/1.1\nHost: {addr}\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 8\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
    )
    .await;
    assert_eq!(old_version.status, 426);
    assert_eq!(old_version.header("sec-websocket-version"), Some("13"));

    let unknown_protocol = upgrade_request(addr, "/dead", "Sec-WebSocket-Protocol: chat").await;
    assert_eq!(unknown_protocol.status, 400);
    assert!(
        unknown_protocol.text().contains("binary"),
        "{}",
        unknown_protocol.text()
    );

    let dead_upstream = upgrade_request(addr, "/dead", "").await;
    assert_eq!(dead_upstream.status, 502);
    assert!(
        dead_upstream.text().contains("upstream unreachable"),
        "{}",
        dead_upstream.text()
    );
}

#[tokio::test]
async fn missing_key_is_a_bad_request() {
    let gateway = echo_gateway("").await;
    let addr = gateway.addr;
    let head = format!(
        "GET /vnc HTTP/1.1\nHost: {addr}\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13"
    );
    assert_eq!(raw_request(addr, &head).await.status, 400);
}

#[tokio::test]
async fn connect_timeout_is_a_504() {
    let (addr, _fillers, _socket) = unresponsive_listener();
    let gateway = Gateway::start(&bridge_route(
        "/slow",
        &format!("tcp://{addr}"),
        "connect_timeout = \"300ms\"",
    ))
    .await;
    let response = upgrade_request(gateway.addr, "/slow", "").await;
    assert_eq!(response.status, 504);
    assert!(response.text().contains("timed out"), "{}", response.text());
}

#[tokio::test]
async fn target_eof_closes_with_1000_after_its_last_bytes() {
    let target = greeting_server(b"RFB 003.008\n").await;
    let gateway = Gateway::start(&bridge_route("/", &format!("tcp://{target}"), "")).await;
    let mut client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    assert_eq!(read_bytes(&mut client, 12).await, b"RFB 003.008\n");
    assert_eq!(read_close(&mut client).await.0, 1000);
}

#[tokio::test]
async fn target_reset_closes_with_1011() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"hi").await.unwrap();
        let mut byte = [0u8; 1];
        let _ = stream.read(&mut byte).await;
        // Linger 0: close sends RST, a failure rather than an orderly end.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let gateway = Gateway::start(&bridge_route("/", &format!("tcp://{target}"), "")).await;
    let mut client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    assert_eq!(read_bytes(&mut client, 2).await, b"hi");
    send_binary(&mut client, b"!").await;
    assert_eq!(read_close(&mut client).await.0, 1011);
}

#[tokio::test]
async fn client_close_half_closes_the_target_which_still_gets_every_byte() {
    let (target, mut recorded) = recording_server(Some(b"late reply".to_vec())).await;
    let gateway = Gateway::start(&bridge_route("/", &format!("tcp://{target}"), "")).await;
    let mut client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    let data = random_bytes(300_000, 3);
    for chunk in data.chunks(10_000) {
        send_binary(&mut client, chunk).await;
    }
    client
        .send(Message::close(Some(CloseCode::NORMAL_CLOSURE), "bye"))
        .await
        .unwrap();
    // The target only finishes reading when it sees EOF: our FIN after the client's close.
    let received = tokio::time::timeout(STEP, recorded.recv())
        .await
        .expect("target never saw EOF")
        .unwrap();
    assert!(
        received == data,
        "target got {} of {} bytes",
        received.len(),
        data.len()
    );
    let (code, _) = read_close(&mut client).await;
    assert_eq!(code, 1000, "the gateway echoes the client's close code");
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let gateway = echo_gateway("max_message_size = \"1KiB\"").await;
    let mut client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    send_binary(&mut client, &[1u8; 100]).await;
    assert_eq!(read_bytes(&mut client, 100).await, [1u8; 100]);
    send_binary(&mut client, &[2u8; 2048]).await;
    assert_eq!(read_close(&mut client).await.0, 1009);
}

#[tokio::test]
async fn pings_are_answered() {
    let gateway = echo_gateway("").await;
    let mut client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    client.send(Message::ping("are you there")).await.unwrap();
    let message = tokio::time::timeout(STEP, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(message.is_pong());
    assert_eq!(&*message.into_payload(), b"are you there");
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_make_the_gateway_buffer_the_flood() {
    let (target, mut flood) = flood_server().await;
    let gateway = Gateway::start(&bridge_route("/", &format!("tcp://{target}"), "")).await;
    let _client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    // Wait until the flood stalls: no write for a while.
    let last = flood.stalled().await.unwrap_or_else(|last| {
        panic!("the target never stopped writing: the gateway keeps reading ({last} bytes)")
    });
    // What the target got rid of sits in four kernel socket buffers (a few MiB each on
    // loopback) plus the gateway's one read chunk; 1 GiB would have gone if it buffered.
    assert!(
        last < 64 << 20,
        "the target wrote {last} bytes into a client that reads nothing"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_connections_each_get_their_own_bytes() {
    let gateway = echo_gateway("").await;
    let url = gateway.ws_url("/vnc");
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..1000u64 {
        let url = url.clone();
        tasks.spawn(async move {
            let mut client = connect(&url, "binary").await.unwrap();
            let data = random_bytes(1024, index + 1);
            send_binary(&mut client, &data).await;
            assert_eq!(
                read_bytes(&mut client, data.len()).await,
                data,
                "connection {index}"
            );
            client
        });
    }
    let mut open = Vec::new();
    while let Some(result) = tasks.join_next().await {
        open.push(result.unwrap());
    }
    assert_eq!(open.len(), 1000);
}

#[tokio::test]
async fn tokens_pick_the_target_from_the_query_or_the_path() {
    let alpha = greeting_server(b"alpha").await;
    let beta = greeting_server(b"beta").await;
    let dir = tempdir("tokens");
    std::fs::write(dir.join("a.cfg"), format!("# vnc hosts\nalpha: {alpha}\n")).unwrap();
    std::fs::write(dir.join("b.cfg"), format!("beta: {beta}\n")).unwrap();
    let gateway = Gateway::start(&format!(
        "[[route]]\npath = \"/\"\nbridge_tokens = \"{}\"\n",
        dir.display()
    ))
    .await;
    let mut by_query = connect(&gateway.ws_url("/websockify?token=alpha"), "binary")
        .await
        .unwrap();
    assert_eq!(read_bytes(&mut by_query, 5).await, b"alpha");
    let mut by_path = connect(&gateway.ws_url("/beta"), "binary").await.unwrap();
    assert_eq!(read_bytes(&mut by_path, 4).await, b"beta");
    let unknown = upgrade_request(gateway.addr, "/websockify?token=gamma", "").await;
    assert_eq!(unknown.status, 403);
    assert!(unknown.text().contains("unknown token"));
    // TokenFile re-reads on every connection: a token added now works at once.
    std::fs::write(dir.join("c.cfg"), format!("gamma: {alpha}\n")).unwrap();
    let mut added = connect(&gateway.ws_url("/?token=gamma"), "binary")
        .await
        .unwrap();
    assert_eq!(read_bytes(&mut added, 5).await, b"alpha");
}

#[tokio::test]
async fn proxy_protocol_v2_tells_the_target_who_the_client_is() {
    let (target, mut recorded) = recording_server(None).await;
    let gateway = Gateway::start(&bridge_route(
        "/",
        &format!("tcp://{target}"),
        "proxy_protocol = \"v2\"",
    ))
    .await;
    let mut client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    let client_port = local_port(&client);
    send_binary(&mut client, b"payload").await;
    client.send(Message::close(None, "")).await.unwrap();
    let received = tokio::time::timeout(STEP, recorded.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&received[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&received[12..14], &[0x21, 0x11]);
    assert_eq!(&received[16..20], &[127, 0, 0, 1], "source address");
    assert_eq!(
        u16::from_be_bytes([received[24], received[25]]),
        client_port,
        "source port"
    );
    assert_eq!(
        u16::from_be_bytes([received[26], received[27]]),
        gateway.addr.port(),
        "destination port"
    );
    assert_eq!(&received[28..], b"payload");
}

#[tokio::test]
async fn proxy_protocol_v1_is_a_text_line() {
    let (target, mut recorded) = recording_server(None).await;
    let gateway = Gateway::start(&bridge_route(
        "/",
        &format!("tcp://{target}"),
        "proxy_protocol = \"v1\"",
    ))
    .await;
    let mut client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    let client_port = local_port(&client);
    client.send(Message::close(None, "")).await.unwrap();
    let received = tokio::time::timeout(STEP, recorded.recv())
        .await
        .unwrap()
        .unwrap();
    let expected = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {}\r\n",
        gateway.addr.port()
    );
    assert_eq!(String::from_utf8(received).unwrap(), expected);
}

#[tokio::test]
async fn heartbeat_pings_a_live_client_and_drops_a_dead_one() {
    let (target, mut recorded) = recording_server(None).await;
    let gateway = Gateway::start(&bridge_route(
        "/",
        &format!("tcp://{target}"),
        "heartbeat = \"100ms\"\npong_timeout = \"300ms\"",
    ))
    .await;

    // A live client sees pings and stays connected across several of them.
    let mut live = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    for _ in 0..3 {
        let message = tokio::time::timeout(STEP, live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            message.is_ping(),
            "expected a heartbeat ping, got {message:?}"
        );
    }
    send_binary(&mut live, b"still here").await;

    // A dead client: handshake done, then it never reads or answers again.
    let mut dead = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        gateway.addr
    );
    dead.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    dead.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    // The gateway gives up on it and closes its target connection: the target sees EOF.
    let received = tokio::time::timeout(STEP, recorded.recv())
        .await
        .expect("dead client's target was never closed")
        .unwrap();
    assert!(received.is_empty());

    // The live client was not affected.
    live.send(Message::close(None, "")).await.unwrap();
    let live_received = tokio::time::timeout(STEP, recorded.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live_received, b"still here");
}

#[tokio::test]
async fn idle_timeout_closes_a_quiet_connection() {
    let gateway = echo_gateway("idle_timeout = \"300ms\"").await;
    let mut client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    send_binary(&mut client, b"x").await;
    assert_eq!(read_bytes(&mut client, 1).await, b"x");
    assert_eq!(
        read_close(&mut client).await,
        (1000, "idle timeout".to_string())
    );
}

#[tokio::test]
async fn shutdown_closes_open_websockets_with_1001() {
    let gateway = echo_gateway("").await;
    let mut client = connect(&gateway.ws_url("/vnc"), "binary").await.unwrap();
    send_binary(&mut client, b"x").await;
    assert_eq!(read_bytes(&mut client, 1).await, b"x");
    let stopping = tokio::spawn(gateway.stop(Duration::from_secs(10)));
    assert_eq!(read_close(&mut client).await.0, 1001);
    assert!(
        stopping.await.unwrap(),
        "connections drained within the grace period"
    );
}

#[tokio::test]
async fn unix_socket_targets_work() {
    let dir = tempdir("unix");
    let path = dir.join("echo.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    let gateway = Gateway::start(&bridge_route("/", &format!("unix:{}", path.display()), "")).await;
    let mut client = connect(&gateway.ws_url("/"), "binary").await.unwrap();
    send_binary(&mut client, b"over unix").await;
    assert_eq!(read_bytes(&mut client, 9).await, b"over unix");
}

#[tokio::test]
async fn listens_on_several_addresses_including_ipv6() {
    let echo = echo_server(false).await;
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let listen = if ipv6 {
        r#"listen = ["127.0.0.1:0", "[::1]:0"]"#
    } else {
        r#"listen = ["127.0.0.1:0", "127.0.0.2:0"]"#
    };
    let gateway = Gateway::start(&format!(
        "{listen}\n{}",
        bridge_route("/", &format!("tcp://{echo}"), "")
    ))
    .await;
    assert_eq!(gateway.addrs.len(), 2);
    for addr in &gateway.addrs {
        let mut client = connect(&format!("ws://{addr}/"), "binary").await.unwrap();
        send_binary(&mut client, b"hi").await;
        assert_eq!(read_bytes(&mut client, 2).await, b"hi", "via {addr}");
    }
}
