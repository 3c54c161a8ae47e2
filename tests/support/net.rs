//! Real TCP peers for the bridge to reach, and raw HTTP requests for status checks.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use std::time::Duration;

use super::STEP;

/// A TCP echo server. With `rechunk`, it writes back in varying chunk sizes (1 byte to
/// 20 KiB), so message boundaries on the WebSocket side differ from the client's.
pub async fn echo_server(rechunk: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo(stream, rechunk));
        }
    });
    addr
}

async fn echo(mut stream: TcpStream, rechunk: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut step = 0usize;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut at = 0;
        while at < n {
            step = step.wrapping_mul(31).wrapping_add(7);
            let chunk = if rechunk { 1 + step % 20_000 } else { n };
            let end = (at + chunk).min(n);
            if stream.write_all(&buf[at..end]).await.is_err() {
                return;
            }
            at = end;
        }
    }
    let _ = stream.shutdown().await;
}

/// A server that records what each connection sent until EOF, then reports it.
/// With `reply`, it writes `reply` after reading to EOF (half-close test), then closes.
pub async fn recording_server(reply: Option<Vec<u8>>) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let _ = stream.read_to_end(&mut received).await;
                if let Some(reply) = reply {
                    let _ = stream.write_all(&reply).await;
                }
                let _ = stream.shutdown().await;
                let _ = tx.send(received).await;
            });
        }
    });
    (addr, rx)
}

/// A server that writes `greeting` on accept and then closes.
pub async fn greeting_server(greeting: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(greeting).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

/// A server that writes as fast as it can; [`Flood`] follows what the kernel accepted.
pub async fn flood_server() -> (SocketAddr, Flood) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (counter, written) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let chunk = vec![0x5au8; 64 * 1024];
                // Bounded: 1 GiB at most, far beyond any buffer the gateway may hold.
                for _ in 0..16_384 {
                    match stream.write(&chunk).await {
                        Ok(n) => counter.send_modify(|total| *total += n as u64),
                        Err(_) => return,
                    };
                }
            });
        }
    });
    (addr, Flood { written })
}

/// What a [`flood_server`] has written: every write is an event the test can wait on.
pub struct Flood {
    written: tokio::sync::watch::Receiver<u64>,
}

impl Flood {
    /// How long without a write counts as stalled: a reader that still reads empties a
    /// socket buffer far sooner.
    const QUIET: Duration = Duration::from_millis(500);

    /// Once the flood has started, waits (within [`STEP`]) for a write-free [`Self::QUIET`]
    /// spell: the bytes written by then, or `Err` with the count if writes never stopped.
    pub async fn stalled(&mut self) -> Result<u64, u64> {
        let deadline = tokio::time::Instant::now() + STEP;
        let started = tokio::time::timeout(STEP, self.written.changed()).await;
        assert!(matches!(started, Ok(Ok(()))), "the flood never started");
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Self::QUIET, self.written.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return Ok(*self.written.borrow()),
            }
        }
        Err(*self.written.borrow())
    }
}

/// A port that refuses connections: bound, then closed.
pub async fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A raw HTTP/1.1 response: status code, headers (lowercase names) and body.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body bytes as received.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a raw request (`Connection: close` is added) and reads the whole response.
pub async fn raw_request(addr: SocketAddr, head: &str) -> RawResponse {
    let stream = TcpStream::connect(addr).await.unwrap();
    raw_request_on(stream, head).await
}

/// [`raw_request`] over a connection already made (a TLS stream, say).
pub async fn raw_request_on<S>(mut stream: S, head: &str) -> RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!(
        "{}\r\nConnection: close\r\n\r\n",
        head.trim_end().replace('\n', "\r\n")
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut bytes))
        .await
        .expect("response timed out")
        .unwrap();
    parse_response(&bytes)
}

/// Sends a WebSocket handshake with extra header lines and reads the response head (for
/// refusals the body too, since the server closes).
pub async fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> RawResponse {
    let head = format!(
        "GET {path} HTTP/1.1\nHost: {addr}\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n{extra}"
    );
    raw_request(addr, &head).await
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a dial hangs.
pub fn unresponsive_listener() -> (
    std::net::SocketAddr,
    Vec<std::net::TcpStream>,
    socket2::Socket,
) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    (addr, fillers, socket)
}

/// An HTTP/1.1 upstream that keeps every request head it receives, byte for byte, and answers
/// each with `200` and the body `ok` on the same connection. Only for requests without a body.
pub struct HeadRecorder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The heads received so far, in order, each up to and including its blank line.
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl HeadRecorder {
    /// Binds 127.0.0.1:0 and serves in spawned tasks (which end with the test's runtime).
    pub async fn start() -> HeadRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = heads.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(record_heads(stream, recorded.clone()));
            }
        });
        HeadRecorder { addr, heads }
    }

    /// The heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads heads until the connection ends, answering each.
async fn record_heads(stream: TcpStream, heads: Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::AsyncBufReadExt;
    let mut stream = tokio::io::BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            match stream.read_line(&mut head).await {
                Ok(0) | Err(_) => return,
                Ok(_) if head.ends_with("\r\n\r\n") || head == "\r\n" => break,
                Ok(_) => {}
            }
        }
        heads.lock().unwrap().push(head);
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if stream.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}
