//! Third-party WebSocket upstreams for the proxy tests: `tests/peers/ws_upstream.py` (Python
//! `websockets`) and `tests/peers/ws_upstream.mjs` (Node `ws`) as child processes, ready when
//! they print `listening PORT`. Both echo every message and answer a few special paths
//! (`/close/CODE`, `/headers`, `/name`, `/forbidden`); the scripts' headers say how.
//!
//! Also a raw-TCP WebSocket handshake and frame codec, for what a client library hides: the
//! exact response headers (`Sec-WebSocket-Extensions`), repeated request headers, refusals.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, ChildStdin, Command},
    task::JoinHandle,
};

use super::{STEP, http_client, net::RawResponse};

/// Which third-party WebSocket server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Python `websockets` (`python3 tests/peers/ws_upstream.py`).
    Python,
    /// Node `ws` (`node tests/peers/ws_upstream.mjs`).
    Node,
}

impl Peer {
    /// Both peers, for tests that run against each.
    pub const ALL: [Peer; 2] = [Peer::Python, Peer::Node];

    fn command(self) -> (&'static str, &'static str) {
        match self {
            Peer::Python => (
                "python3",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/ws_upstream.py"),
            ),
            Peer::Node => (
                "node",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/ws_upstream.mjs"),
            ),
        }
    }
}

/// A running WebSocket upstream process.
pub struct WsUpstream {
    /// Where it listens (127.0.0.1, the port it printed).
    pub addr: SocketAddr,
    /// Which server it is.
    pub peer: Peer,
    /// The child; `kill_on_drop`, so dropping the upstream kills it.
    child: Child,
    /// Held open: the scripts exit when their stdin closes, so even a test process killed
    /// before it can drop this leaves no server behind.
    _stdin: ChildStdin,
    /// Everything it wrote to stderr so far, drained continuously so it never blocks.
    stderr: Arc<Mutex<String>>,
}

/// Options for [`WsUpstream`]; start with [`WsUpstream::builder`].
#[derive(Debug, Clone)]
pub struct WsUpstreamBuilder {
    peer: Peer,
    name: String,
    subprotocols: Vec<String>,
}

impl WsUpstreamBuilder {
    /// What `/name` answers (to tell upstreams apart, e.g. for round robin).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Subprotocols it supports; it picks the first the client offers that is in this list,
    /// and goes on without a subprotocol when none is.
    pub fn subprotocols(mut self, protocols: &[&str]) -> Self {
        self.subprotocols = protocols.iter().map(|p| p.to_string()).collect();
        self
    }

    /// Spawns the server and waits (at most [`STEP`]) for its `listening PORT` line.
    pub async fn start(self) -> WsUpstream {
        let (program, script) = self.peer.command();
        let mut command = Command::new(program);
        command.arg(script);
        if !self.name.is_empty() {
            command.args(["--name", &self.name]);
        }
        if !self.subprotocols.is_empty() {
            command.args(["--subprotocols", &self.subprotocols.join(",")]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} ({e}): run scripts/install-test-deps")
            });
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let draining = drain_stderr(&mut child, stderr.clone());
        let port = tokio::time::timeout(STEP, read_port(stdout)).await;
        let Ok(Some(port)) = port else {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(STEP, draining).await;
            let stderr = stderr.lock().unwrap();
            panic!("{program} {script} did not print `listening PORT`: {port:?}\n{stderr}");
        };
        WsUpstream {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            peer: self.peer,
            child,
            _stdin: stdin,
            stderr,
        }
    }
}

impl WsUpstream {
    /// Options: name, subprotocols.
    pub fn builder(peer: Peer) -> WsUpstreamBuilder {
        WsUpstreamBuilder {
            peer,
            name: String::new(),
            subprotocols: Vec::new(),
        }
    }

    /// Starts `peer` with no name and no subprotocols.
    pub async fn start(peer: Peer) -> WsUpstream {
        Self::builder(peer).start().await
    }

    /// `ws://addr{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// What it wrote to stderr so far (errors, tracebacks), for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The port from the first stdout line, `listening PORT`; `None` if stdout ends first or the
/// line is something else.
async fn read_port(stdout: tokio::process::ChildStdout) -> Option<u16> {
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next_line().await.ok()??;
    line.strip_prefix("listening ")?.trim().parse().ok()
}

fn drain_stderr(child: &mut Child, sink: Arc<Mutex<String>>) -> JoinHandle<()> {
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    })
}

/// A WebSocket connection driven by hand over raw TCP.
pub struct RawWs {
    /// The server's handshake response (for a refusal, with its `Content-Length` body).
    pub response: RawResponse,
    /// The connection; bytes after the response head stay in its buffer.
    pub io: BufReader<TcpStream>,
}

/// WebSocket frame opcodes.
pub mod opcode {
    /// Continuation frame: the second and later fragments of a message.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close frame.
    pub const CLOSE: u8 = 0x8;
    /// Ping frame.
    pub const PING: u8 = 0x9;
    /// Pong frame.
    pub const PONG: u8 = 0xa;
}

impl RawWs {
    /// Sends an upgrade request for `path` with `headers` (repeats allowed, sent in order)
    /// after the required ones, and reads the response head; the body too if not a 101.
    /// `Host` is `addr` unless `headers` has one (for host routing).
    pub async fn handshake(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawWs {
        let mut head = format!("GET {path} HTTP/1.1\r\n");
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        head.push_str(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut io = BufReader::new(stream);
        let mut response = http_client::read_head(&mut io).await;
        if response.status != 101 {
            let len = response
                .header("content-length")
                .map_or(0, |len| len.parse().expect("numeric Content-Length"));
            response.body = vec![0; len];
            tokio::time::timeout(STEP, io.read_exact(&mut response.body))
                .await
                .expect("body read timed out")
                .expect("body read");
        }
        RawWs { response, io }
    }

    /// Reads one frame (unmasked, as a server sends): opcode and payload. Ignores the RSV1
    /// (compressed) bit: do not offer permessage-deflate if you read data frames this way.
    pub async fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let (_fin, opcode, payload) = self.read_fragment().await;
        (opcode, payload)
    }

    /// Reads one frame like [`RawWs::read_frame`], with its FIN bit: whether it ends its
    /// message.
    pub async fn read_fragment(&mut self) -> (bool, u8, Vec<u8>) {
        tokio::time::timeout(STEP, async {
            let mut head = [0u8; 2];
            self.io.read_exact(&mut head).await?;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.io.read_u16().await?),
                127 => self.io.read_u64().await?,
                len => u64::from(len),
            };
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let mut payload = vec![0; usize::try_from(len).expect("frame fits in memory")];
            self.io.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>((head[0] & 0x80 != 0, head[0] & 0x0f, payload))
        })
        .await
        .expect("frame read timed out")
        .expect("frame read")
    }

    /// Sends one final frame, masked as a client must.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send_fragment(opcode, payload, true).await;
    }

    /// Sends one frame with FIN set or not, masked as a client must. A fragmented message is
    /// a TEXT or BINARY frame with `fin` false, then CONTINUATION frames, the last with `fin`
    /// true; control frames (ping) may come between them.
    pub async fn send_fragment(&mut self, opcode: u8, payload: &[u8], fin: bool) {
        let frame = client_frame(fin, opcode, payload, [0x37, 0xfa, 0x21, 0x3d]);
        tokio::time::timeout(STEP, self.io.get_mut().write_all(&frame))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Sends a close frame with `code` and `reason`.
    pub async fn send_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send_frame(opcode::CLOSE, &payload).await;
    }
}

/// One frame as a client sends it: FIN or not, `opcode`, `payload` masked with `mask`.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Splits a close frame's payload into code and reason (`None` for an empty payload).
pub fn parse_close(payload: &[u8]) -> Option<(u16, String)> {
    let (code, reason) = payload.split_first_chunk::<2>()?;
    Some((
        u16::from_be_bytes(*code),
        String::from_utf8_lossy(reason).into_owned(),
    ))
}

/// Makes a `python` and a `node` test of each `async fn scenario(peer: Peer)` of the test file,
/// in a module named after it (`scenario::python`, `scenario::node`): one scenario, both
/// third-party upstreams, without a wrapper function per peer.
#[macro_export]
macro_rules! for_each_peer {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use $crate::support::upstream::Peer;

            #[tokio::test]
            async fn python() {
                super::$scenario(Peer::Python).await;
            }

            #[tokio::test]
            async fn node() {
                super::$scenario(Peer::Node).await;
            }
        }
    )*};
}
