//! One benchmark connection: raw TCP or a WebSocket client, split into a sender and a receiver
//! of bytes, so the modes do not care which; a TCP one directly or through a SOCKS5 proxy.

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use http::{HeaderName, HeaderValue};
use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

use crate::socks5;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for a connection and its handshake: far above any loopback handshake, so only
/// a stuck system under test hits it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending half.
pub enum Sender {
    Tcp(OwnedWriteHalf),
    Ws(SplitSink<Ws, Message>),
}

/// The receiving half.
pub enum Receiver {
    Tcp(OwnedReadHalf, Vec<u8>),
    Ws(SplitStream<Ws>),
}

/// Connects to `tcp://host:port` or `ws://host:port/path` (subprotocol `binary`), within
/// `CONNECT_TIMEOUT`; a `tcp://` URL through the SOCKS5 proxy `socks5` when one is given.
pub async fn connect(url: &str, socks5: Option<&str>) -> anyhow::Result<(Sender, Receiver)> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_now(url, socks5))
        .await
        .with_context(|| format!("connect {url}: timed out"))?
}

/// Connects to `tcp://host:port`, directly or through the SOCKS5 proxy `socks5`, within
/// `CONNECT_TIMEOUT`; the stream has `TCP_NODELAY` set.
pub async fn connect_tcp(url: &str, socks5: Option<&str>) -> anyhow::Result<TcpStream> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_tcp_now(url, socks5))
        .await
        .with_context(|| format!("connect {url}: timed out"))?
}

async fn connect_tcp_now(url: &str, socks5: Option<&str>) -> anyhow::Result<TcpStream> {
    let Some(addr) = url.strip_prefix("tcp://") else {
        bail!("expected tcp://, got {url}");
    };
    if let Some(proxy) = socks5 {
        return socks5::connect(proxy, addr).await;
    }
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connect_now(url: &str, socks5: Option<&str>) -> anyhow::Result<(Sender, Receiver)> {
    if url.starts_with("tcp://") {
        let (read, write) = connect_tcp_now(url, socks5).await?.into_split();
        return Ok((Sender::Tcp(write), Receiver::Tcp(read, vec![0; 64 * 1024])));
    }
    if !url.starts_with("ws://") {
        bail!("expected tcp:// or ws://, got {url}");
    }
    if socks5.is_some() {
        bail!("--socks5 takes tcp:// URLs only, got {url}");
    }
    let (ws, _) = ClientBuilder::new()
        .uri(url)?
        .add_header(
            HeaderName::from_static("sec-websocket-protocol"),
            HeaderValue::from_static("binary"),
        )?
        .connect()
        .await
        .with_context(|| format!("connect {url}"))?;
    #[allow(irrefutable_let_patterns)] // more variants exist with TLS features
    if let MaybeTlsStream::Plain(stream) = ws.get_ref() {
        stream.set_nodelay(true)?;
    }
    let (sink, stream) = ws.split();
    Ok((Sender::Ws(sink), Receiver::Ws(stream)))
}

impl Sender {
    /// Sends one message (WebSocket) or write (TCP).
    pub async fn send(&mut self, bytes: Bytes) -> anyhow::Result<()> {
        match self {
            Sender::Tcp(write) => write.write_all(&bytes).await?,
            Sender::Ws(sink) => sink.send(Message::binary(bytes)).await?,
        }
        Ok(())
    }
}

impl Receiver {
    /// Receives whatever arrives next; returns its length (0 at the end).
    pub async fn recv(&mut self) -> anyhow::Result<usize> {
        match self {
            Receiver::Tcp(read, buf) => Ok(read.read(buf).await?),
            Receiver::Ws(stream) => loop {
                match stream.next().await {
                    None => return Ok(0),
                    Some(message) => {
                        let message = message?;
                        if message.is_close() {
                            return Ok(0);
                        }
                        if message.is_binary() || message.is_text() {
                            return Ok(message.as_payload().len());
                        }
                    }
                }
            },
        }
    }

    /// Receives until `len` bytes have arrived.
    pub async fn recv_exact(&mut self, len: usize) -> anyhow::Result<()> {
        let mut got = 0;
        while got < len {
            let n = self.recv().await?;
            if n == 0 {
                bail!("connection ended after {got} of {len} bytes");
            }
            got += n;
        }
        Ok(())
    }
}
