//! The proxy's WebSocket side against real third-party upstreams (Python `websockets` and Node
//! `ws`), in both modes (`splice`, the default, and `message`): echo, large and fragmented
//! messages, extension and subprotocol negotiation, close codes both ways, refusals and
//! failures before the 101, host routing, header forwarding and balancing.
//!
//! Each scenario is a function of the peer; `for_each_peer!` (tests/support/upstream.rs) makes a `python` and a `node`
//! test of it (`echo_keeps_text_text_and_binary_binary::python`, …). Scenarios that do not
//! depend on the mode run both modes in one test, the mode named in every assertion.

mod support;

use std::collections::BTreeMap;

use futures_util::{SinkExt, StreamExt};
use support::{
    json::parse_string_map,
    net::{refused_port, unresponsive_listener, upgrade_request},
    upstream::{Peer, RawWs, WsUpstream, opcode},
    *,
};
use tokio_websockets::{CloseCode, Message};

/// How the gateway joins the two WebSockets after both handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The default: bytes copied without parsing frames.
    Splice,
    /// Both sides terminated, whole messages relayed.
    Message,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Splice, Mode::Message];

    /// The route prefix [`Proxied`] serves this mode under.
    fn prefix(self) -> &'static str {
        match self {
            Mode::Splice => "/splice",
            Mode::Message => "/message",
        }
    }

    /// The route keys that select the mode; message mode gets room for 16 MiB messages.
    fn keys(self) -> &'static str {
        match self {
            Mode::Splice => "",
            Mode::Message => "mode = \"message\"\nmax_message_size = \"32MiB\"",
        }
    }
}

/// One `[[route]]` table: `match_keys` (path, host), `proxy` (a TOML value), `extra` keys.
fn route(match_keys: &str, proxy: &str, extra: &str) -> String {
    format!("[[route]]\n{match_keys}\nproxy = {proxy}\n{extra}\n")
}

/// One upstream behind a gateway with a route per mode: `/splice/…` and `/message/…` both
/// reach the upstream's `/…`.
struct Proxied {
    upstream: WsUpstream,
    gateway: Gateway,
}

impl Proxied {
    async fn start(peer: Peer) -> Proxied {
        Self::around(WsUpstream::start(peer).await).await
    }

    async fn around(upstream: WsUpstream) -> Proxied {
        let proxy = format!("\"{}\"", upstream.ws_url("/"));
        let config: String = Mode::ALL
            .iter()
            .map(|mode| route(&path_key(mode.prefix()), &proxy, mode.keys()))
            .collect();
        let gateway = Gateway::start(&config).await;
        Proxied { upstream, gateway }
    }

    /// The gateway path that reaches the upstream's `path` in `mode`.
    fn path(mode: Mode, path: &str) -> String {
        format!("{}{path}", mode.prefix())
    }

    /// `ws://gateway/MODE{path}`.
    fn url(&self, mode: Mode, path: &str) -> String {
        self.gateway.ws_url(&Self::path(mode, path))
    }
}

fn path_key(path: &str) -> String {
    format!("path = \"{path}\"")
}

for_each_peer!(
    echo_keeps_text_text_and_binary_binary,
    sixteen_mib_binary_message_is_byte_exact,
    fragmented_messages_are_echoed_whole,
    permessage_deflate_is_negotiated_end_to_end_only_when_splicing,
    subprotocol_is_the_one_the_upstream_chose,
    client_close_code_and_reason_reach_the_upstream_and_its_answer_returns,
    upstream_close_code_and_reason_reach_the_client,
    upstream_refusal_is_relayed_with_its_status_and_body,
    host_routes_and_wildcards_pick_the_upstream,
    upgrade_headers_are_forwarded_rewritten_and_path_mapped,
    round_robin_spreads_evenly_and_skips_a_dead_upstream,
    every_ping_gets_exactly_one_pong,
);

/// Reads one whole message from raw frames: its opcode and the payload of all its fragments.
/// Pongs (answers to our pings) are skipped.
async fn read_raw_message(raw: &mut RawWs) -> (u8, Vec<u8>) {
    let mut message: Option<(u8, Vec<u8>)> = None;
    loop {
        let (fin, op, payload) = raw.read_fragment().await;
        if op == opcode::PONG {
            continue;
        }
        match &mut message {
            None => message = Some((op, payload)),
            Some((_, whole)) => {
                assert_eq!(op, opcode::CONTINUATION, "a new message inside a message");
                whole.extend_from_slice(&payload);
            }
        }
        if fin {
            return message.expect("set above");
        }
    }
}

/// The JSON report of the upstream's `/headers` (or `…/headers`) path, read from `raw`.
async fn headers_report(raw: &mut RawWs) -> BTreeMap<String, String> {
    let (op, payload) = read_raw_message(raw).await;
    assert_eq!(op, opcode::TEXT);
    parse_string_map(&String::from_utf8(payload).expect("UTF-8 report"))
}

async fn echo_keeps_text_text_and_binary_binary(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    for mode in Mode::ALL {
        let mut client = connect(&proxied.url(mode, "/echo?q=1"), "").await.unwrap();
        client.send(Message::text("héllo")).await.unwrap();
        let message = next_message(&mut client).await;
        assert_eq!(message.as_text(), Some("héllo"), "{peer:?} {mode:?}");

        send_binary(&mut client, &[0, 1, 2, 255]).await;
        let message = next_message(&mut client).await;
        assert!(message.is_binary(), "{peer:?} {mode:?}: {message:?}");
        assert_eq!(
            &*message.into_payload(),
            &[0, 1, 2, 255],
            "{peer:?} {mode:?}"
        );

        client.send(Message::text("")).await.unwrap();
        let message = next_message(&mut client).await;
        assert_eq!(message.as_text(), Some(""), "{peer:?} {mode:?}");
        // Binary bytes that are valid UTF-8 stay binary.
        send_binary(&mut client, b"text-like").await;
        let message = next_message(&mut client).await;
        assert!(message.is_binary(), "{peer:?} {mode:?}: {message:?}");
    }
}

async fn sixteen_mib_binary_message_is_byte_exact(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    let data = random_bytes(16 << 20, 11);
    for mode in Mode::ALL {
        let mut client = connect(&proxied.url(mode, "/"), "").await.unwrap();
        send_binary(&mut client, &data).await;
        let message = next_message(&mut client).await;
        assert!(message.is_binary(), "{peer:?} {mode:?}: {message:?}");
        let payload = message.into_payload();
        assert_eq!(payload.len(), data.len(), "{peer:?} {mode:?}");
        assert!(*payload == *data, "{peer:?} {mode:?}: echoed bytes differ");
    }
}

async fn fragmented_messages_are_echoed_whole(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    let text = "héllo, wörld".as_bytes();
    // 70 000 bytes each: the 64-bit length form, so no fragment fits in one TCP segment.
    let binary = random_bytes(3 * 70_000, 5);
    for mode in Mode::ALL {
        let path = Proxied::path(mode, "/");
        let mut raw = RawWs::handshake(proxied.gateway.addr, &path, &[]).await;
        assert_eq!(raw.response.status, 101, "{peer:?} {mode:?}");

        // Split inside the two-byte "é": UTF-8 is only whole across the message; a ping
        // between fragments is allowed (RFC 6455 §5.4).
        raw.send_fragment(opcode::TEXT, &text[..2], false).await;
        raw.send_fragment(opcode::PING, b"p", true).await;
        raw.send_fragment(opcode::CONTINUATION, &text[2..7], false)
            .await;
        raw.send_fragment(opcode::CONTINUATION, &text[7..], true)
            .await;
        let echoed = read_raw_message(&mut raw).await;
        assert_eq!(echoed, (opcode::TEXT, text.to_vec()), "{peer:?} {mode:?}");

        let (first, rest) = binary.split_at(70_000);
        let (second, third) = rest.split_at(70_000);
        raw.send_fragment(opcode::BINARY, first, false).await;
        raw.send_fragment(opcode::CONTINUATION, second, false).await;
        raw.send_fragment(opcode::CONTINUATION, third, true).await;
        let (op, payload) = read_raw_message(&mut raw).await;
        assert_eq!(op, opcode::BINARY, "{peer:?} {mode:?}");
        assert!(payload == binary, "{peer:?} {mode:?}: echoed bytes differ");
    }
}

async fn permessage_deflate_is_negotiated_end_to_end_only_when_splicing(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    let offer = [(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits",
    )];
    let direct = RawWs::handshake(proxied.upstream.addr, "/", &offer).await;
    let answer = direct.response.header("sec-websocket-extensions");
    assert!(
        answer.is_some_and(|v| v.starts_with("permessage-deflate")),
        "{peer:?} itself answered {answer:?}"
    );

    let path = Proxied::path(Mode::Splice, "/");
    let spliced = RawWs::handshake(proxied.gateway.addr, &path, &offer).await;
    assert_eq!(spliced.response.status, 101, "{peer:?}");
    assert_eq!(
        spliced.response.header("sec-websocket-extensions"),
        answer,
        "{peer:?}: splice mode relays the upstream's answer"
    );

    let path = Proxied::path(Mode::Message, "/");
    let mut relayed = RawWs::handshake(proxied.gateway.addr, &path, &offer).await;
    assert_eq!(relayed.response.status, 101, "{peer:?}");
    assert_eq!(
        relayed.response.header("sec-websocket-extensions"),
        None,
        "{peer:?}: message mode parses frames, so no extension"
    );
    // And the upstream did not compress either: the echo is the plain text.
    relayed.send_frame(opcode::TEXT, b"plain").await;
    assert_eq!(
        read_raw_message(&mut relayed).await,
        (opcode::TEXT, b"plain".to_vec()),
        "{peer:?}"
    );
}

async fn subprotocol_is_the_one_the_upstream_chose(peer: Peer) {
    let upstream = WsUpstream::builder(peer)
        .subprotocols(&["a", "b"])
        .start()
        .await;
    let proxied = Proxied::around(upstream).await;
    for mode in Mode::ALL {
        // The upstream picks the client's first that it supports; a gateway that picked for
        // itself would name `zz` in the last case.
        for (offer, chosen) in [("b, a", "b"), ("a, b", "a"), ("zz, a", "a")] {
            let (mut client, response) = connect_with_response(&proxied.url(mode, "/"), offer)
                .await
                .unwrap_or_else(|e| panic!("{peer:?} {mode:?} {offer}: {e}"));
            let header = response.headers().get("sec-websocket-protocol");
            assert_eq!(
                header.map(|v| v.to_str().unwrap()),
                Some(chosen),
                "{peer:?} {mode:?} offered {offer}"
            );
            client.send(Message::text(chosen)).await.unwrap();
            let message = next_message(&mut client).await;
            assert_eq!(message.as_text(), Some(chosen), "{peer:?} {mode:?}");
        }
        let path = Proxied::path(mode, "/");
        let offer = [("Sec-WebSocket-Protocol", "zz")];
        let raw = RawWs::handshake(proxied.gateway.addr, &path, &offer).await;
        assert_eq!(raw.response.status, 101, "{peer:?} {mode:?}");
        assert_eq!(
            raw.response.header("sec-websocket-protocol"),
            None,
            "{peer:?} {mode:?}: none in common, none chosen"
        );
    }
}

async fn client_close_code_and_reason_reach_the_upstream_and_its_answer_returns(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    for mode in Mode::ALL {
        let mut client = connect(&proxied.url(mode, "/"), "").await.unwrap();
        let code = CloseCode::try_from(4001).unwrap();
        client
            .send(Message::close(Some(code), "bye"))
            .await
            .unwrap();
        // Both upstreams answer a close with its own code and reason. Splicing relays that
        // answer; in message mode the gateway answers the client itself with the code (the
        // reason of an answer is not relayed: tokio-websockets sends it, code only).
        let reason = if mode == Mode::Splice { "bye" } else { "" };
        assert_eq!(
            read_close(&mut client).await,
            (4001, reason.to_string()),
            "{peer:?} {mode:?}"
        );
        drop(client);
        // What the upstream received, asked on a second connection; the upstream records it
        // once its side of the connection has ended, which may be a moment after our close.
        assert_eq!(
            last_close_seen(&proxied, mode).await,
            "4001 bye",
            "{peer:?} {mode:?}"
        );
    }
}

/// The upstream's `/last-close` answer once it has recorded a close (waited for, within
/// [`STEP`]).
async fn last_close_seen(proxied: &Proxied, mode: Mode) -> String {
    last_close_at(&proxied.url(mode, "/last-close")).await
}

async fn upstream_close_code_and_reason_reach_the_client(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    for mode in Mode::ALL {
        let mut client = connect(&proxied.url(mode, "/close/4002"), "")
            .await
            .unwrap();
        assert_eq!(
            read_close(&mut client).await,
            (4002, "bye from upstream".to_string()),
            "{peer:?} {mode:?}"
        );
    }
}

async fn upstream_refusal_is_relayed_with_its_status_and_body(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    for mode in Mode::ALL {
        let path = Proxied::path(mode, "/forbidden");
        let refused = RawWs::handshake(proxied.gateway.addr, &path, &[]).await;
        assert_eq!(refused.response.status, 403, "{peer:?} {mode:?}");
        assert_eq!(
            refused.response.text(),
            "forbidden by upstream\n",
            "{peer:?} {mode:?}"
        );
        let content_type = refused.response.header("content-type");
        assert!(
            content_type.is_some_and(|v| v.starts_with("text/plain")),
            "{peer:?} {mode:?}: {content_type:?}"
        );
    }
}

#[tokio::test]
async fn a_dead_upstream_is_a_502_before_any_101() {
    let refused = refused_port().await;
    let proxy = format!("\"ws://{refused}/\"");
    let config: String = Mode::ALL
        .iter()
        .map(|mode| route(&path_key(mode.prefix()), &proxy, mode.keys()))
        .collect();
    let gateway = Gateway::start(&config).await;
    for mode in Mode::ALL {
        let response = upgrade_request(gateway.addr, mode.prefix(), "").await;
        assert_eq!(response.status, 502, "{mode:?}");
        assert_eq!(response.text(), "upstream unreachable\n", "{mode:?}");
    }
}

#[tokio::test]
async fn a_connect_timeout_is_a_504_before_any_101() {
    let (hanging, _fillers, _socket) = unresponsive_listener();
    let proxy = format!("\"ws://{hanging}/\"");
    let config: String = Mode::ALL
        .iter()
        .map(|mode| {
            let keys = format!("{}\nconnect_timeout = \"200ms\"", mode.keys());
            route(&path_key(mode.prefix()), &proxy, &keys)
        })
        .collect();
    let gateway = Gateway::start(&config).await;
    for mode in Mode::ALL {
        let started = tokio::time::Instant::now();
        let response = upgrade_request(gateway.addr, mode.prefix(), "").await;
        assert_eq!(response.status, 504, "{mode:?}");
        assert_eq!(response.text(), "upstream connect timed out\n", "{mode:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{mode:?}: the 200ms connect timeout took {:?}",
            started.elapsed()
        );
    }
}

async fn host_routes_and_wildcards_pick_the_upstream(peer: Peer) {
    let (wild, api, default) = tokio::join!(
        WsUpstream::builder(peer).name("wild").start(),
        WsUpstream::builder(peer).name("api").start(),
        WsUpstream::builder(peer).name("default").start(),
    );
    let config = [
        ("host = \"*.example.com\"\npath = \"/\"", &wild),
        ("host = \"api.example.com\"\npath = \"/\"", &api),
        ("path = \"/\"", &default),
    ]
    .iter()
    .map(|(keys, upstream)| route(keys, &format!("\"{}\"", upstream.ws_url("")), ""))
    .collect::<String>();
    let gateway = Gateway::start(&config).await;
    let cases = [
        ("api.example.com", "api"),
        ("API.Example.COM:8080", "api"),
        ("chat.example.com", "wild"),
        ("a.b.example.com", "wild"),
        ("example.com", "default"),
        ("api.example.com.evil.org", "default"),
        ("127.0.0.1", "default"),
    ];
    for (host, expected) in cases {
        let mut raw = RawWs::handshake(gateway.addr, "/name", &[("Host", host)]).await;
        assert_eq!(raw.response.status, 101, "{peer:?} Host: {host}");
        let (op, payload) = read_raw_message(&mut raw).await;
        assert_eq!(
            (op, String::from_utf8_lossy(&payload).as_ref()),
            (opcode::TEXT, expected),
            "{peer:?} Host: {host}"
        );
    }
}

async fn upgrade_headers_are_forwarded_rewritten_and_path_mapped(peer: Peer) {
    let upstream = WsUpstream::start(peer).await;
    let client_headers = [
        ("Origin", "http://app.example"),
        ("Cookie", "session=abc"),
        ("Authorization", "Bearer t0ken"),
        ("Connection", "X-Hop"),
        ("X-Hop", "hop-by-hop"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
    ];
    for mode in Mode::ALL {
        let plain = route(
            &path_key("/plain"),
            &format!("\"{}\"", upstream.ws_url("/")),
            mode.keys(),
        );
        let chat_keys = format!(
            "{}\nset_headers = {{ \"X-Route\" = \"chat\" }}\nremove_headers = [\"Cookie\"]",
            mode.keys()
        );
        let chat = route(
            &path_key("/chat"),
            &format!("\"{}\"", upstream.ws_url("/ws")),
            &chat_keys,
        );
        let gateway = Gateway::start(&format!("{plain}{chat}")).await;
        let gateway_addr = gateway.addr.to_string();

        let mut raw = RawWs::handshake(gateway.addr, "/plain/headers", &client_headers).await;
        assert_eq!(raw.response.status, 101, "{peer:?} {mode:?}");
        let seen = headers_report(&mut raw).await;
        let context = format!("{peer:?} {mode:?}: {seen:?}");
        assert_eq!(seen["path"], "/headers", "{context}");
        assert_eq!(seen["origin"], "http://app.example", "{context}");
        assert_eq!(seen["cookie"], "session=abc", "{context}");
        assert_eq!(seen["authorization"], "Bearer t0ken", "{context}");
        assert_eq!(
            seen["sec-websocket-key"], "dGhlIHNhbXBsZSBub25jZQ==",
            "{context}"
        );
        assert_eq!(seen["sec-websocket-version"], "13", "{context}");
        assert_eq!(seen["upgrade"], "websocket", "{context}");
        assert_eq!(seen["connection"], "Upgrade", "{context}");
        assert_eq!(seen["host"], gateway_addr, "{context}: Host is preserved");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{context}");
        assert_eq!(seen["x-forwarded-proto"], "http", "{context}");
        assert_eq!(seen["x-forwarded-host"], gateway_addr, "{context}");
        let forwarded = &seen["forwarded"];
        assert!(
            forwarded.starts_with("for=127.0.0.1;proto=http"),
            "{context}"
        );
        for gone in ["x-hop", "proxy-authorization", "x-route"] {
            assert!(!seen.contains_key(gone), "{gone} arrived: {context}");
        }

        let mut headers = client_headers.to_vec();
        headers.extend([("X-Forwarded-For", "10.0.0.1"), ("X-Route", "client")]);
        let path = "/chat/x/headers?y=1";
        let mut raw = RawWs::handshake(gateway.addr, path, &headers).await;
        assert_eq!(raw.response.status, 101, "{peer:?} {mode:?}");
        let seen = headers_report(&mut raw).await;
        let context = format!("{peer:?} {mode:?}: {seen:?}");
        assert_eq!(seen["path"], "/ws/x/headers?y=1", "{context}");
        assert_eq!(seen["x-route"], "chat", "{context}: set replaces");
        assert!(!seen.contains_key("cookie"), "{context}: Cookie removed");
        assert_eq!(seen["origin"], "http://app.example", "{context}");
        assert_eq!(seen["authorization"], "Bearer t0ken", "{context}");
        assert_eq!(seen["x-forwarded-for"], "10.0.0.1, 127.0.0.1", "{context}");
        // After the report the connection echoes like any other.
        raw.send_frame(opcode::TEXT, b"after").await;
        let echoed = read_raw_message(&mut raw).await;
        assert_eq!(echoed, (opcode::TEXT, b"after".to_vec()), "{context}");
    }
}

/// RFC 7239 §4: a `Forwarded` value that is not a token (`host:port` has a `:`) must be a
/// quoted string.
#[tokio::test]
async fn forwarded_host_with_a_port_is_a_quoted_string() {
    let upstream = WsUpstream::start(Peer::Python).await;
    let proxy = format!("\"{}\"", upstream.ws_url("/"));
    let gateway = Gateway::start(&route(&path_key("/"), &proxy, "")).await;
    let mut raw = RawWs::handshake(gateway.addr, "/headers", &[]).await;
    assert_eq!(raw.response.status, 101);
    let seen = headers_report(&mut raw).await;
    assert_eq!(
        seen["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{}\"", gateway.addr)
    );
}

async fn round_robin_spreads_evenly_and_skips_a_dead_upstream(peer: Peer) {
    let (one, two) = tokio::join!(
        WsUpstream::builder(peer).name("one").start(),
        WsUpstream::builder(peer).name("two").start(),
    );
    let dead = refused_port().await;
    let list = format!(
        "[\"{}\", \"{}\", \"ws://{dead}\"]",
        one.ws_url(""),
        two.ws_url("")
    );
    let gateway = Gateway::start(&route(&path_key("/"), &list, "")).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..30 {
        let mut client = connect(&gateway.ws_url("/name"), "")
            .await
            .unwrap_or_else(|e| panic!("{peer:?}: the client saw the dead upstream: {e}"));
        let name = next_message(&mut client).await;
        let name = name.as_text().expect("a text message").to_string();
        *counts.entry(name).or_default() += 1;
    }
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["one", "two"],
        "{counts:?}"
    );
    for (name, count) in &counts {
        assert!(
            (12..=18).contains(count),
            "{peer:?}: {name} answered {count} of 30 handshakes: {counts:?}"
        );
    }
}

/// A ping is answered once, with its payload, in both modes: splicing passes the upstream's
/// pong through; message mode answers at the gateway and swallows the upstream's answer to the
/// relayed ping.
async fn every_ping_gets_exactly_one_pong(peer: Peer) {
    let proxied = Proxied::start(peer).await;
    for mode in Mode::ALL {
        let path = Proxied::path(mode, "/");
        let mut raw = RawWs::handshake(proxied.gateway.addr, &path, &[]).await;
        assert_eq!(raw.response.status, 101, "{peer:?} {mode:?}");
        for i in 0..3 {
            raw.send_frame(opcode::PING, format!("ping {i}").as_bytes())
                .await;
        }
        raw.send_frame(opcode::TEXT, b"after").await;
        let mut pongs = Vec::new();
        loop {
            match raw.read_frame().await {
                (opcode::PONG, payload) => pongs.push(String::from_utf8(payload).unwrap()),
                (opcode::TEXT, payload) => {
                    assert_eq!(payload, b"after", "{peer:?} {mode:?}");
                    break;
                }
                (op, payload) => panic!("{peer:?} {mode:?}: opcode {op} {payload:?}"),
            }
        }
        assert_eq!(pongs, ["ping 0", "ping 1", "ping 2"], "{peer:?} {mode:?}");
    }
}

/// Routes `/splice` and `/message` to `proxy`, in those modes, both with `idle_timeout = IDLE`.
fn idle_routes(proxy: &str, idle: &str) -> String {
    let idle = format!("idle_timeout = \"{idle}\"");
    let message = format!("mode = \"message\"\n{idle}");
    route(&path_key("/splice"), proxy, &idle) + &route(&path_key("/message"), proxy, &message)
}

/// `idle_timeout` is opt-in: message mode closes with 1000 "idle timeout"; splice mode, which
/// sees no frames, closes the TCP connection. A route without it keeps a quiet WebSocket open.
#[tokio::test]
async fn idle_timeout_closes_a_quiet_websocket_only_when_set() {
    let upstream = WsUpstream::start(Peer::Python).await;
    let proxy = format!("\"{}\"", upstream.ws_url("/"));
    let config = idle_routes(&proxy, "300ms") + &route(&path_key("/forever"), &proxy, "");
    let gateway = Gateway::start(&config).await;
    let mut message = connect(&gateway.ws_url("/message"), "").await.unwrap();
    assert_eq!(
        read_close(&mut message).await,
        (1000, "idle timeout".to_string())
    );
    let mut spliced = connect(&gateway.ws_url("/splice"), "").await.unwrap();
    let end = tokio::time::timeout(STEP, spliced.next())
        .await
        .expect("a spliced WebSocket past its idle timeout stays open");
    assert!(
        !matches!(end, Some(Ok(ref m)) if !m.is_close()),
        "expected the connection to end, got {end:?}"
    );
    // The route without a timeout still echoes after both timed-out ones were closed.
    let mut forever = connect(&gateway.ws_url("/forever"), "").await.unwrap();
    let mut message = connect(&gateway.ws_url("/message"), "").await.unwrap();
    read_close(&mut message).await;
    forever.send(Message::text("still here")).await.unwrap();
    let echoed = tokio::time::timeout(STEP, forever.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap().as_text(), Some("still here"));
}

/// The idle timeout counts traffic either way: a WebSocket the upstream keeps talking on is not
/// idle although the client never sends, in both modes.
#[tokio::test]
async fn a_receive_only_websocket_is_not_idle() {
    let upstream = WsUpstream::start(Peer::Python).await;
    let proxy = format!("\"{}\"", upstream.ws_url("/"));
    let gateway = Gateway::start(&idle_routes(&proxy, "500ms")).await;
    for mode in Mode::ALL {
        let url = gateway.ws_url(&format!("{}/ticks", mode.prefix()));
        let mut client = connect(&url, "").await.unwrap();
        for n in 0..20 {
            let tick = tokio::time::timeout(STEP, client.next()).await.unwrap();
            let tick = tick
                .unwrap()
                .unwrap_or_else(|e| panic!("{mode:?} tick {n}: {e}"));
            assert_eq!(
                tick.as_text(),
                Some(format!("tick {n}").as_str()),
                "{mode:?}"
            );
        }
        assert_eq!(
            read_close(&mut client).await.0,
            1000,
            "{mode:?}: the upstream's close"
        );
    }
}

/// In message mode `max_message_size` holds both ways: a client message over it is refused
/// with 1009, and the upstream is told with the same code.
#[tokio::test]
async fn message_mode_refuses_oversized_messages_with_1009() {
    let upstream = WsUpstream::start(Peer::Python).await;
    let proxy = format!("\"{}\"", upstream.ws_url("/"));
    let keys = "mode = \"message\"\nmax_message_size = \"1KiB\"";
    let gateway = Gateway::start(&route(&path_key("/m"), &proxy, keys)).await;
    let mut client = connect(&gateway.ws_url("/m"), "").await.unwrap();
    client.send(Message::binary(vec![7u8; 1024])).await.unwrap();
    let echoed = tokio::time::timeout(STEP, client.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap().as_payload().len(), 1024);
    client.send(Message::binary(vec![7u8; 1025])).await.unwrap();
    assert_eq!(read_close(&mut client).await.0, 1009);
    drop(client);
    let probe_route = format!("{}/last-close", gateway.ws_url("/m"));
    let seen = last_close_at(&probe_route).await;
    assert!(seen.starts_with("1009 "), "the upstream saw {seen:?}");
}

/// The upstream's `/last-close` answer at `url`: it answers once it has recorded a close.
async fn last_close_at(url: &str) -> String {
    let mut probe = connect(url, "").await.unwrap();
    let seen = tokio::time::timeout(STEP, probe.next())
        .await
        .expect("no answer from /last-close")
        .unwrap()
        .unwrap();
    seen.as_text().unwrap_or_default().to_string()
}
