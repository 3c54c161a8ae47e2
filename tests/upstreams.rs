//! The upstreams the proxy tests run against, checked directly (no gateway in between), so a
//! proxy test that fails points at the proxy: the Python `websockets` and Node `ws` servers,
//! the in-process hyper HTTP server, and the JSON helper they report headers with.

mod support;

use std::collections::BTreeMap;

use futures_util::SinkExt;
use support::{
    http_client::HttpConn,
    http_upstream::{self, HttpUpstream},
    json,
    upstream::{Peer, RawWs, WsUpstream, opcode, parse_close},
    *,
};
use tokio_websockets::{CloseCode, Message};

async fn echo_keeps_text_text_and_binary_binary(peer: Peer) {
    let upstream = WsUpstream::start(peer).await;
    let mut client = connect(&upstream.ws_url("/anything?q=1"), "")
        .await
        .unwrap();
    client.send(Message::text("héllo")).await.unwrap();
    let message = next_message(&mut client).await;
    assert_eq!(message.as_text(), Some("héllo"), "{peer:?}");
    send_binary(&mut client, &[0, 1, 2, 255]).await;
    let message = next_message(&mut client).await;
    assert!(message.is_binary(), "{peer:?}");
    assert_eq!(&*message.into_payload(), &[0, 1, 2, 255]);
    // Above the libraries' 1 MiB defaults, so the 64 MiB limit is really set.
    let big = random_bytes(3 << 20, 7);
    send_binary(&mut client, &big).await;
    let message = next_message(&mut client).await;
    assert!(message.is_binary(), "{peer:?}");
    assert!(&*message.into_payload() == big.as_slice(), "{peer:?}");
}

async fn closes_echo_the_code_and_reason_and_close_path_closes(peer: Peer) {
    let upstream = WsUpstream::start(peer).await;
    let mut client = connect(&upstream.ws_url("/"), "").await.unwrap();
    let code = CloseCode::try_from(4321).unwrap();
    client
        .send(Message::close(Some(code), "client reason"))
        .await
        .unwrap();
    assert_eq!(
        read_close(&mut client).await,
        (4321, "client reason".into()),
        "{peer:?}"
    );

    let mut client = connect(&upstream.ws_url("/close/4001"), "").await.unwrap();
    assert_eq!(
        read_close(&mut client).await,
        (4001, "bye from upstream".into()),
        "{peer:?}"
    );
}

async fn headers_name_and_forbidden_paths(peer: Peer) {
    let upstream = WsUpstream::builder(peer).name("upstream-a").start().await;
    let extra = [("X-Rep", "one"), ("X-Single", "s"), ("x-rep", "two")];
    let mut raw = RawWs::handshake(upstream.addr, "/headers?x=1&y=2", &extra).await;
    assert_eq!(raw.response.status, 101, "{peer:?}");
    let (op, payload) = raw.read_frame().await;
    assert_eq!(op, opcode::TEXT, "{peer:?}");
    let headers = json::parse_string_map(&String::from_utf8(payload).unwrap());
    assert_eq!(headers["path"], "/headers?x=1&y=2", "{peer:?}");
    assert_eq!(headers["x-rep"], "one, two", "{peer:?}");
    assert_eq!(headers["x-single"], "s", "{peer:?}");
    assert_eq!(headers["host"], upstream.addr.to_string(), "{peer:?}");
    assert_eq!(headers["upgrade"], "websocket", "{peer:?}");
    // After the report it echoes like every path.
    raw.send_frame(opcode::TEXT, b"after").await;
    assert_eq!(raw.read_frame().await, (opcode::TEXT, b"after".to_vec()));
    raw.send_close(1000, "").await;
    let (op, payload) = raw.read_frame().await;
    assert_eq!(
        (op, parse_close(&payload)),
        (opcode::CLOSE, Some((1000, "".into())))
    );

    let mut client = connect(&upstream.ws_url("/name"), "").await.unwrap();
    let message = next_message(&mut client).await;
    assert_eq!(message.as_text(), Some("upstream-a"), "{peer:?}");

    let refused = RawWs::handshake(upstream.addr, "/forbidden", &[]).await;
    assert_eq!(refused.response.status, 403, "{peer:?}");
    assert_eq!(
        refused.response.text(),
        "forbidden by upstream\n",
        "{peer:?}"
    );
    assert!(
        refused
            .response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{peer:?}"
    );
}

async fn permessage_deflate_is_accepted_when_offered(peer: Peer) {
    let upstream = WsUpstream::start(peer).await;
    let offer = [(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits",
    )];
    let raw = RawWs::handshake(upstream.addr, "/", &offer).await;
    assert_eq!(raw.response.status, 101, "{peer:?}");
    let accepted = raw.response.header("sec-websocket-extensions");
    assert!(
        accepted.is_some_and(|v| v.starts_with("permessage-deflate")),
        "{peer:?} answered {accepted:?}"
    );

    let raw = RawWs::handshake(upstream.addr, "/", &[]).await;
    assert_eq!(raw.response.status, 101, "{peer:?}");
    assert_eq!(
        raw.response.header("sec-websocket-extensions"),
        None,
        "{peer:?}"
    );
}

async fn subprotocol_is_the_clients_first_supported_one(peer: Peer) {
    let upstream = WsUpstream::builder(peer)
        .subprotocols(&["a", "b"])
        .start()
        .await;
    let (_client, response) = connect_with_response(&upstream.ws_url("/"), "zz, b, a")
        .await
        .unwrap();
    let chosen = response.headers().get("sec-websocket-protocol");
    assert_eq!(chosen.map(|v| v.to_str().unwrap()), Some("b"), "{peer:?}");

    let raw = RawWs::handshake(upstream.addr, "/", &[("Sec-WebSocket-Protocol", "zz")]).await;
    assert_eq!(raw.response.status, 101, "{peer:?}");
    assert_eq!(
        raw.response.header("sec-websocket-protocol"),
        None,
        "{peer:?}"
    );
}

for_each_peer!(
    echo_keeps_text_text_and_binary_binary,
    closes_echo_the_code_and_reason_and_close_path_closes,
    headers_name_and_forbidden_paths,
    permessage_deflate_is_accepted_when_offered,
    subprotocol_is_the_clients_first_supported_one,
);

#[tokio::test]
async fn http_headers_name_status_and_not_found() {
    let upstream = HttpUpstream::start("http-a").await;
    let mut conn = HttpConn::connect(upstream.addr).await;
    let extra = [
        ("X-Rep", "one"),
        ("X-Rep", "two"),
        ("X-Quote", "say \"hi\""),
    ];
    let response = conn.request("GET", "/headers?a=b", &extra, b"").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let headers = json::parse_string_map(&response.text());
    assert_eq!(headers["path"], "/headers?a=b");
    assert_eq!(headers["method"], "GET");
    assert_eq!(headers["x-rep"], "one, two");
    assert_eq!(headers["x-quote"], "say \"hi\"");
    assert_eq!(headers["host"], upstream.addr.to_string());

    let response = conn.get("/name").await;
    assert_eq!((response.status, response.text()), (200, "http-a".into()));

    let response = conn.get("/status/418").await;
    assert_eq!(
        (response.status, response.text()),
        (418, "status 418\n".into())
    );
    let response = conn.get("/status/204").await;
    assert_eq!((response.status, response.body.len()), (204, 0));
    let response = conn.get("/status/503").await;
    assert_eq!(response.status, 503);

    let response = conn.get("/nope").await;
    assert_eq!(response.status, 404);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn http_keep_alive_is_counted_by_connections() {
    let upstream = HttpUpstream::start("a").await;
    let mut first = HttpConn::connect(upstream.addr).await;
    for _ in 0..20 {
        assert_eq!(first.get("/name").await.status, 200);
    }
    let mut second = HttpConn::connect(upstream.addr).await;
    assert_eq!(second.get("/name").await.status, 200);
    assert_eq!(upstream.requests(), 21);
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn http_echo_streams_each_chunk_back_before_the_body_ends() {
    let upstream = HttpUpstream::start("a").await;
    let mut conn = HttpConn::connect(upstream.addr).await;
    conn.send_head("POST", "/echo", &[], None).await;
    conn.send_chunk(b"hello ").await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    // Each piece comes back while the request body is still open: nothing is buffered whole.
    assert_eq!(conn.read_chunk().await.unwrap(), b"hello ");
    conn.send_chunk(b"world").await;
    assert_eq!(conn.read_chunk().await.unwrap(), b"world");
    conn.send_chunk(b"").await;
    assert_eq!(conn.read_chunk().await, None);
    assert_eq!(upstream.echoed_bytes(), 11);

    // A Content-Length body, small enough to sit in socket buffers while we write it all.
    let body = random_bytes(100_000, 3);
    let response = conn.request("POST", "/echo", &[], &body).await;
    assert_eq!(response.status, 200);
    assert!(response.body == body);
    assert_eq!(upstream.echoed_bytes(), 100_011);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn http_stream_sends_the_pattern_in_chunks() {
    let upstream = HttpUpstream::start("a").await;
    let mut conn = HttpConn::connect(upstream.addr).await;
    conn.send_head("GET", "/stream?bytes=1000000", &[], Some(0))
        .await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let mut body = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = conn.read_chunk().await {
        body.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(body == http_upstream::pattern(0, 1_000_000));
    assert!(chunks > 1, "one chunk: the body was not produced lazily");

    let response = conn.get("/stream?bytes=0").await;
    assert_eq!((response.status, response.body.len()), (200, 0));
    assert_eq!(conn.get("/stream").await.status, 400);
}

#[test]
fn json_string_maps_round_trip_and_read_python_and_node_output() {
    let map: BTreeMap<String, String> = [
        ("plain", "value"),
        (
            "escapes",
            "quote \" backslash \\ newline \n tab \t bell \u{7}",
        ),
        ("unicode", "héllo 🦀"),
        ("empty", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(json::parse_string_map(&json::encode_string_map(&map)), map);
    // Python's json.dumps: spaces after separators, non-ASCII as \u escapes (with surrogates).
    let python = r#"{"a": "h\u00e9llo \ud83e\udd80", "b\/c": "x\"y"}"#;
    let parsed = json::parse_string_map(python);
    assert_eq!(parsed["a"], "héllo 🦀");
    assert_eq!(parsed["b/c"], "x\"y");
    assert!(json::parse_string_map("{}").is_empty());
}
