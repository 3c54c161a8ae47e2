//! Test builders: a gateway started in-process on 127.0.0.1:0, real TCP servers, real
//! WebSocket clients. No fixed ports and no sleeps: a bound listener's address is the
//! readiness signal.
#![allow(dead_code)]

pub mod certs;
pub mod http_client;
pub mod http_upstream;
pub mod json;
pub mod net;
pub mod process;
pub mod raw_agent;
pub mod socks;
pub mod upstream;

use std::{net::SocketAddr, path::Path, time::Duration};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue};
use tokio::task::JoinHandle;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};
use wsgate::{
    config::{self, Config},
    gateway::{self, ServeEnd},
    shutdown::Shutdown,
};

/// Every test step that waits on the network is bounded by this; a hang fails the test.
pub const STEP: Duration = Duration::from_secs(20);

/// A WebSocket client connection.
pub type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A gateway running in this process.
pub struct Gateway {
    /// The first bound address.
    pub addr: SocketAddr,
    /// Every bound address.
    pub addrs: Vec<SocketAddr>,
    /// Its shutdown signal and tracker.
    pub shutdown: Shutdown,
    serving: JoinHandle<ServeEnd>,
}

impl Gateway {
    /// Starts a gateway from TOML text. `listen` defaults to 127.0.0.1:0; relative paths are
    /// relative to `base`.
    pub async fn start_in(toml: &str, base: &Path) -> Gateway {
        let text = if toml.contains("listen") {
            toml.to_string()
        } else {
            format!("listen = [\"127.0.0.1:0\"]\n{toml}")
        };
        let config =
            config::validate::gateway("test.toml", &text, base).unwrap_or_else(|e| panic!("{e}"));
        Self::start_config(config)
    }

    /// Starts a gateway from TOML text with paths relative to the working directory.
    pub async fn start(toml: &str) -> Gateway {
        Self::start_in(toml, Path::new(".")).await
    }

    /// Starts a gateway from a validated config.
    pub fn start_config(config: Config) -> Gateway {
        let shutdown = Shutdown::new();
        let bound = gateway::bind(config, &shutdown).expect("bind");
        let addrs = bound.local_addrs();
        let serving = tokio::spawn(bound.serve());
        Gateway {
            addr: addrs[0],
            addrs,
            shutdown,
            serving,
        }
    }

    /// `ws://addr{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Signals shutdown and waits for the drain; returns whether everything drained in time.
    pub async fn stop(self, grace: Duration) -> bool {
        self.shutdown.trigger();
        let _ = self.serving.await;
        self.shutdown.drain(grace).await
    }
}

/// Connects a WebSocket client, offering `protocols` (comma-separated, may be empty).
pub async fn connect(url: &str, protocols: &str) -> Result<Client, tokio_websockets::Error> {
    connect_with_response(url, protocols)
        .await
        .map(|(client, _)| client)
}

/// Like [`connect`], also returning the server's 101 response.
pub async fn connect_with_response(
    url: &str,
    protocols: &str,
) -> Result<(Client, tokio_websockets::upgrade::Response), tokio_websockets::Error> {
    let mut builder = ClientBuilder::new().uri(url).expect("valid uri");
    if !protocols.is_empty() {
        builder = builder
            .add_header(
                HeaderName::from_static("sec-websocket-protocol"),
                HeaderValue::from_str(protocols).unwrap(),
            )
            .expect("header allowed");
    }
    tokio::time::timeout(STEP, builder.connect())
        .await
        .expect("connect timed out")
}

/// Reads data messages until `len` bytes have arrived; panics on close or timeout.
pub async fn read_bytes<S>(client: &mut S, len: usize) -> Vec<u8>
where
    S: futures_util::Stream<Item = Result<Message, tokio_websockets::Error>> + Unpin,
{
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let message = tokio::time::timeout(STEP, client.next())
            .await
            .expect("read timed out")
            .expect("stream ended early")
            .expect("read error");
        assert!(
            !message.is_close(),
            "closed after {} of {len} bytes: {:?}",
            out.len(),
            message.as_close()
        );
        if message.is_ping() || message.is_pong() {
            continue;
        }
        out.extend_from_slice(&message.into_payload());
    }
    out
}

/// Reads until the close frame and returns its code and reason.
pub async fn read_close(client: &mut Client) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(STEP, client.next())
            .await
            .expect("no close within the step timeout")
            .expect("stream ended without a close frame")
            .expect("read error");
        if let Some((code, reason)) = message.as_close() {
            return (code.into(), reason.to_string());
        }
    }
}

/// Sends one binary message.
pub async fn send_binary(client: &mut Client, bytes: &[u8]) {
    client
        .send(Message::binary(bytes.to_vec()))
        .await
        .expect("send");
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The client's local TCP port (what the gateway sees as the peer port).
#[allow(irrefutable_let_patterns)]
pub fn local_port(client: &Client) -> u16 {
    let MaybeTlsStream::Plain(stream) = client.get_ref() else {
        panic!("plain TCP client expected");
    };
    stream.local_addr().unwrap().port()
}

/// A fresh directory under the system temp dir, unique per call (tests run in parallel).
pub fn tempdir(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wsgate-test-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Reads the next data or close message (skipping pings and pongs).
pub async fn next_message(client: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(STEP, client.next())
            .await
            .expect("read timed out")
            .expect("stream ended")
            .expect("read error");
        if !message.is_ping() && !message.is_pong() {
            return message;
        }
    }
}

/// Sends `data` through an echoing route in binary messages of ever-changing sizes (1 byte to
/// 100 KiB) while reading the echo, and returns what came back.
pub async fn echo_in_varied_messages(client: Client, data: &[u8]) -> Vec<u8> {
    let (mut sink, mut stream) = client.split();
    let sent = data.to_vec();
    let writer = tokio::spawn(async move {
        let mut at = 0;
        let mut size = 1usize;
        while at < sent.len() {
            size = (size * 7 + 13) % (100 * 1024) + 1;
            let end = (at + size).min(sent.len());
            sink.send(Message::binary(sent[at..end].to_vec()))
                .await
                .unwrap();
            at = end;
        }
        sink
    });
    let received = read_bytes(&mut stream, data.len()).await;
    let _sink = writer.await.unwrap();
    received
}
