//! The proxy's plain-HTTP side against a real hyper upstream: keep-alive reuse, streamed
//! bodies both ways, header forwarding, path mapping, failures as 502/504, balancing and
//! failover, and `wsgate check`'s route table.

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use support::{
    Gateway, STEP,
    http_client::HttpConn,
    http_upstream::{HttpUpstream, pattern},
    json::parse_string_map,
    net::{raw_request, recording_server, refused_port, unresponsive_listener},
    process,
};

/// A gateway with one route `/app` → `upstream` (plus `extra` route keys).
async fn gateway_to(upstream: &str, extra: &str) -> Gateway {
    gateway_to_list(&format!("\"{upstream}\""), extra).await
}

/// A gateway with one route `/app` → `proxy` (a TOML value: a string or a list).
async fn gateway_to_list(proxy: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[[route]]\npath = \"/app\"\nproxy = {proxy}\n{extra}\n"
    ))
    .await
}

/// The upstream's `/headers` answer as a map.
fn headers_seen(body: &[u8]) -> BTreeMap<String, String> {
    parse_string_map(&String::from_utf8_lossy(body))
}

#[tokio::test]
async fn keep_alive_reuses_upstream_connections() {
    let upstream = HttpUpstream::start("a").await;
    let gateway = gateway_to(&upstream.url("/"), "").await;
    let mut client = HttpConn::connect(gateway.addr).await;
    for _ in 0..50 {
        let response = client.get("/app/name").await;
        assert_eq!((response.status, response.text().as_str()), (200, "a"));
    }
    assert_eq!(upstream.requests(), 50);
    // Sequential requests need one upstream connection; allow one re-dial for a race with
    // the pool.
    assert!(
        upstream.connections() <= 2,
        "{} connections",
        upstream.connections()
    );
}

#[tokio::test]
async fn a_large_download_streams_through_without_buffering() {
    let upstream = HttpUpstream::start("a").await;
    let config = tempfile(&format!(
        "listen = [\"127.0.0.1:0\"]\n[[route]]\npath = \"/\"\nproxy = \"{}\"\n",
        upstream.url("/")
    ));
    let wsgate = process::spawn(&["serve", "-c", &config.path]).await;
    let pid = wsgate.child.id().unwrap();
    let before = process::rss_kib(pid);
    let total: u64 = 256 << 20;
    let mut client = HttpConn::connect(wsgate.addr).await;
    client
        .send_head("GET", &format!("/stream?bytes={total}"), &[], Some(0))
        .await;
    let head = client.read_head().await;
    assert_eq!(head.status, 200);
    let (mut received, mut peak) = (0u64, 0u64);
    while let Some(chunk) = client.read_chunk().await {
        assert_eq!(chunk, pattern(received, chunk.len()), "at byte {received}");
        received += chunk.len() as u64;
        if received % (16 << 20) < chunk.len() as u64 {
            peak = peak.max(process::rss_kib(pid));
        }
    }
    assert_eq!(received, total);
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "RSS grew {growth} KiB for a 256 MiB body"
    );
}

#[tokio::test]
async fn a_chunked_upload_streams_both_ways() {
    let upstream = HttpUpstream::start("a").await;
    let gateway = gateway_to(&upstream.url("/"), "").await;
    let mut client = HttpConn::connect(gateway.addr).await;
    client.send_head("POST", "/app/echo", &[], None).await;
    // The upstream echoes each chunk as it arrives: the first chunk must come back before the
    // upload ends, which only happens if no side buffers the whole body.
    let first = pattern(0, 64 * 1024);
    client.send_chunk(&first).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 200);
    let mut echoed = Vec::new();
    while echoed.len() < first.len() {
        echoed.extend(client.read_chunk().await.expect("echo of the first chunk"));
    }
    assert_eq!(echoed, first);
    let mut sent = first.len() as u64;
    for _ in 0..63 {
        let chunk = pattern(sent, 256 * 1024);
        client.send_chunk(&chunk).await;
        sent += chunk.len() as u64;
    }
    client.send_chunk(b"").await;
    let mut rest = Vec::new();
    while let Some(chunk) = client.read_chunk().await {
        rest.extend(chunk);
    }
    assert_eq!(rest.len() as u64, sent - first.len() as u64);
    assert!(
        rest == pattern(first.len() as u64, rest.len()),
        "echo differs"
    );
    assert_eq!(upstream.echoed_bytes(), sent);
}

#[tokio::test]
async fn headers_are_forwarded_rewritten_and_stripped() {
    let upstream = HttpUpstream::start("a").await;
    let extra = "set_headers = { \"X-Route\" = \"app\" }\nremove_headers = [\"X-Drop\"]";
    let gateway = gateway_to(&upstream.url("/"), extra).await;
    let mut client = HttpConn::connect(gateway.addr).await;
    let response = client
        .request(
            "GET",
            "/app/headers?q=1",
            &[
                ("Cookie", "session=abc"),
                ("Authorization", "Bearer t"),
                ("X-Forwarded-For", "10.1.2.3"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "hop"),
                ("Keep-Alive", "timeout=5"),
                ("X-Drop", "1"),
            ],
            b"",
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = headers_seen(&response.body);
    assert_eq!(seen["path"], "/headers?q=1");
    assert_eq!(seen["cookie"], "session=abc");
    assert_eq!(seen["authorization"], "Bearer t");
    assert_eq!(seen["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], gateway.addr.to_string());
    assert_eq!(
        seen["forwarded"],
        format!("for=127.0.0.1;proto=http;host=\"{}\"", gateway.addr)
    );
    assert_eq!(seen["host"], gateway.addr.to_string(), "Host is preserved");
    assert_eq!(seen["x-route"], "app");
    for gone in ["x-secret", "keep-alive", "x-drop", "connection"] {
        assert!(
            !seen.contains_key(gone),
            "{gone} reached the upstream: {seen:?}"
        );
    }
}

#[tokio::test]
async fn preserve_host_false_sends_the_upstream_authority() {
    let upstream = HttpUpstream::start("a").await;
    let gateway = gateway_to(&upstream.url("/"), "preserve_host = false").await;
    let response = HttpConn::connect(gateway.addr)
        .await
        .get("/app/headers")
        .await;
    assert_eq!(
        headers_seen(&response.body)["host"],
        upstream.addr.to_string()
    );
}

#[tokio::test]
async fn statuses_and_bodies_are_relayed() {
    let upstream = HttpUpstream::start("a").await;
    let gateway = gateway_to(&upstream.url("/"), "").await;
    let mut client = HttpConn::connect(gateway.addr).await;
    for status in [201u16, 204, 304, 403, 404, 500, 503] {
        let response = client.get(&format!("/app/status/{status}")).await;
        assert_eq!(response.status, status);
    }
    let head = client.request("HEAD", "/app/headers", &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        client.get("/app/name").await.text(),
        "a",
        "HEAD kept the framing"
    );
}

#[tokio::test]
async fn a_dead_upstream_is_502_and_a_silent_one_504() {
    let refused = refused_port().await;
    let gateway = gateway_to(&format!("http://{refused}"), "").await;
    let response = raw_request(gateway.addr, "GET /app/x HTTP/1.1\nHost: a").await;
    assert_eq!(response.status, 502);
    assert_eq!(response.text(), "upstream unreachable\n");

    let (hanging, _fillers, _socket) = unresponsive_listener();
    let gateway = gateway_to(&format!("http://{hanging}"), "connect_timeout = \"200ms\"").await;
    let response = raw_request(gateway.addr, "GET /app/x HTTP/1.1\nHost: a").await;
    assert_eq!(response.status, 504);
    assert_eq!(response.text(), "upstream connect timed out\n");

    // Accepts and reads but never answers.
    let (silent, _requests) = recording_server(None).await;
    let gateway = gateway_to(&format!("http://{silent}"), "response_timeout = \"300ms\"").await;
    let response = raw_request(gateway.addr, "GET /app/x HTTP/1.1\nHost: a").await;
    assert_eq!(response.status, 504);
    assert_eq!(response.text(), "upstream response timed out\n");
}

#[tokio::test]
async fn round_robin_spreads_and_skips_a_dead_upstream() {
    let (a, b) = (
        HttpUpstream::start("a").await,
        HttpUpstream::start("b").await,
    );
    let dead = refused_port().await;
    let list = format!(
        "[\"{}\", \"http://{dead}\", \"{}\"]",
        a.url("/"),
        b.url("/")
    );
    let gateway = gateway_to_list(&list, "").await;
    let mut counts = BTreeMap::new();
    for _ in 0..40 {
        let response = raw_request(gateway.addr, "GET /app/name HTTP/1.1\nHost: x").await;
        assert_eq!(
            response.status, 200,
            "the client never sees the dead upstream"
        );
        *counts.entry(response.text()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 2, "{counts:?}");
    for (name, count) in &counts {
        assert!(
            (14..=26).contains(count),
            "{name} got {count} of 40: {counts:?}"
        );
    }
}

#[tokio::test]
async fn least_connections_avoids_the_busy_upstream() {
    let (a, b) = (
        HttpUpstream::start("a").await,
        HttpUpstream::start("b").await,
    );
    let list = format!("[\"{}\", \"{}\"]", a.url("/"), b.url("/"));
    let gateway = gateway_to_list(&list, "balance = \"least_connections\"").await;
    // Hold a streaming download open on whichever upstream takes it first.
    let mut busy = HttpConn::connect(gateway.addr).await;
    busy.send_head("GET", "/app/stream?bytes=1073741824", &[], Some(0))
        .await;
    assert_eq!(busy.read_head().await.status, 200);
    let busy_name = if a.requests() == 1 { "a" } else { "b" };
    for _ in 0..10 {
        let response = raw_request(gateway.addr, "GET /app/name HTTP/1.1\nHost: x").await;
        assert_ne!(response.text(), busy_name);
    }
}

#[tokio::test]
async fn check_prints_the_precedence_and_refuses_unreachable_routes() {
    let good = tempfile(
        "[[route]]\npath = \"/\"\nproxy = \"http://127.0.0.1:1\"\n\
         [[route]]\npath = \"/chat\"\nproxy = \"ws://127.0.0.1:2/ws\"\n\
         [[route]]\nhost = \"*.example.com\"\npath = \"/chat\"\nproxy = \"ws://127.0.0.1:3\"\n\
         [[route]]\nhost = \"api.example.com\"\nproxy = \"http://127.0.0.1:4\"\n",
    );
    let (code, out) = tokio::time::timeout(STEP, process::run(&["check", "-c", &good.path]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    let order: Vec<&str> = out
        .lines()
        .filter(|line| line.contains("proxy "))
        .map(|line| line.split("proxy ").nth(1).unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "http://127.0.0.1:4",
            "ws://127.0.0.1:3",
            "ws://127.0.0.1:2/ws",
            "http://127.0.0.1:1"
        ],
        "{out}"
    );
    let shadowed = tempfile(
        "[[route]]\npath = \"/x/\"\nproxy = \"http://127.0.0.1:1\"\n\
         [[route]]\npath = \"/x\"\nstatic = \".\"\n",
    );
    let (code, out) = process::run(&["check", "-c", &shadowed.path]).await;
    assert_ne!(code, 0);
    assert!(
        out.contains(":4:1: this route can never match: route \"/x\" has the same host and path"),
        "{out}"
    );
}

/// A config file that is deleted when dropped.
struct TempFile {
    path: String,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile(text: &str) -> TempFile {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "wsgate-proxy-http-{}-{}.toml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    TempFile {
        path: path.display().to_string(),
    }
}

#[tokio::test]
async fn dot_segments_never_reach_the_upstream_outside_the_base_path() {
    let upstream = HttpUpstream::start("a").await;
    let gateway = gateway_to(&upstream.url("/"), "").await;
    let mut client = HttpConn::connect(gateway.addr).await;
    // Resolved before routing: this is /app/headers, so the upstream sees /headers.
    let response = client.get("/app/x/../headers").await;
    assert_eq!(response.status, 200);
    assert_eq!(headers_seen(&response.body)["path"], "/headers");
    // Out of the route altogether: no route for /headers.
    assert_eq!(client.get("/app/../headers").await.status, 404);
    for climbing in [
        "/app/../../etc/passwd",
        "/app/%2e%2e/%2E%2E/x",
        "/app/..%2f..%2fx",
    ] {
        let response =
            raw_request(gateway.addr, &format!("GET {climbing} HTTP/1.1\nHost: a")).await;
        assert_eq!(response.status, 400, "{climbing}");
    }
    assert_eq!(
        upstream.requests(),
        1,
        "only the resolved request reached the upstream"
    );
}

#[tokio::test]
async fn the_response_timeout_starts_after_the_upload() {
    let upstream = HttpUpstream::start("a").await;
    let gateway = gateway_to(&upstream.url("/"), "response_timeout = \"300ms\"").await;
    let mut client = HttpConn::connect(gateway.addr).await;
    client.send_head("POST", "/app/count", &[], Some(30)).await;
    // The upload takes longer than the response timeout (twice over: two requests to a
    // silent upstream under the same timeout end in 504 meanwhile); the upstream answers at
    // its end.
    client.write_all(&[b'x'; 10]).await;
    for _ in 0..2 {
        response_timeout_passes("300ms").await;
    }
    client.write_all(&[b'x'; 20]).await;
    let response = client.read_response("POST").await;
    assert_eq!((response.status, response.text().as_str()), (200, "30"));
}

/// Resolves once a request to an upstream that never answers has timed out with `timeout`:
/// proof from the gateway's own clock that that much time has passed, without a sleep.
async fn response_timeout_passes(timeout: &str) {
    let (silent, _received) = recording_server(None).await;
    let keys = format!("response_timeout = \"{timeout}\"");
    let gateway = gateway_to(&format!("http://{silent}/"), &keys).await;
    let response = raw_request(gateway.addr, "GET /app/ HTTP/1.1\nHost: a").await;
    assert_eq!(response.status, 504, "{}", response.text());
}

/// An upstream that answers the first request on each connection, then closes the connection
/// when the second one arrives, as a server whose keep-alive timeout just expired does.
async fn closes_on_reuse_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                read_request_head(&mut stream).await;
                let body = format!("connection {n}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
                read_request_head(&mut stream).await;
                // Dropped here: the second request gets no answer at all.
            });
        }
    });
    (addr, connections)
}

async fn read_request_head(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) {
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            return;
        }
    }
}

#[tokio::test]
async fn a_get_on_a_connection_the_upstream_just_closed_is_sent_again() {
    let (upstream, connections) = closes_on_reuse_server().await;
    let gateway = gateway_to(&format!("http://{upstream}"), "").await;
    let mut client = HttpConn::connect(gateway.addr).await;
    for n in 1..=3 {
        let response = client.get("/app/x").await;
        assert_eq!(response.status, 200, "request {n}: {}", response.text());
        assert_eq!(response.text(), format!("connection {n}"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}
