//! A SOCKS5 client written for the tests (RFC 1928/1929): reply codes are what the egress tests
//! assert, and third-party clients only show them as messages.

use std::net::{IpAddr, SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::STEP;

/// Where to connect: an address, or a name the proxy resolves.
#[derive(Debug, Clone)]
pub enum Target {
    /// An address.
    Addr(SocketAddr),
    /// A name and a port.
    Name(String, u16),
}

impl Target {
    /// The target as SOCKS5 writes it.
    fn encode(&self, out: &mut Vec<u8>) {
        let port = match self {
            Target::Addr(SocketAddr::V4(a)) => {
                out.push(1);
                out.extend_from_slice(&a.ip().octets());
                a.port()
            }
            Target::Addr(SocketAddr::V6(a)) => {
                out.push(4);
                out.extend_from_slice(&a.ip().octets());
                a.port()
            }
            Target::Name(name, port) => {
                out.push(3);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                *port
            }
        };
        out.extend_from_slice(&port.to_be_bytes());
    }
}

/// The reply to a request: its code, the bound address, and the connection (to use when the
/// code is 0).
pub struct Reply {
    /// 0 on success, else RFC 1928's failure code.
    pub code: u8,
    /// BND.ADDR and BND.PORT.
    pub bound: SocketAddr,
    /// The control connection.
    pub stream: TcpStream,
}

/// Sends CONNECT (command 1) or UDP ASSOCIATE (3) for `target` through `proxy`, with
/// `credentials` if given, and reads the reply.
pub async fn request(
    proxy: SocketAddr,
    command: u8,
    target: &Target,
    credentials: Option<(&str, &str)>,
) -> std::io::Result<Reply> {
    tokio::time::timeout(STEP, async {
        let mut stream = TcpStream::connect(proxy).await?;
        let method = if credentials.is_some() { 2 } else { 0 };
        stream.write_all(&[5, 1, method]).await?;
        let mut chosen = [0u8; 2];
        stream.read_exact(&mut chosen).await?;
        if chosen != [5, method] {
            return Err(std::io::Error::other(format!("method refused: {chosen:?}")));
        }
        if let Some((user, password)) = credentials {
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(password.len() as u8);
            auth.extend_from_slice(password.as_bytes());
            stream.write_all(&auth).await?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await?;
            if status[1] != 0 {
                return Err(std::io::Error::other("authentication failed"));
            }
        }
        let mut bytes = vec![5, command, 0];
        target.encode(&mut bytes);
        stream.write_all(&bytes).await?;
        let mut head = [0u8; 4];
        stream.read_exact(&mut head).await?;
        let ip: IpAddr = match head[3] {
            1 => {
                let mut ip = [0u8; 4];
                stream.read_exact(&mut ip).await?;
                ip.into()
            }
            4 => {
                let mut ip = [0u8; 16];
                stream.read_exact(&mut ip).await?;
                ip.into()
            }
            other => return Err(std::io::Error::other(format!("bound address type {other}"))),
        };
        let port = stream.read_u16().await?;
        Ok(Reply {
            code: head[1],
            bound: SocketAddr::new(ip, port),
            stream,
        })
    })
    .await
    .unwrap_or_else(|_| Err(std::io::Error::other("the proxy did not answer in time")))
}

/// CONNECT through `proxy`: the reply code, and the stream when it is 0.
pub async fn connect(proxy: SocketAddr, target: &Target) -> (u8, Option<TcpStream>) {
    let reply = request(proxy, 1, target, None).await.unwrap();
    let stream = (reply.code == 0).then_some(reply.stream);
    (reply.code, stream)
}

/// A UDP request datagram for `target` (RFC 1928 §7).
pub fn udp_request(target: &Target, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0];
    target.encode(&mut bytes);
    bytes.extend_from_slice(payload);
    bytes
}

/// The source and payload of a UDP reply datagram (IPv4 or IPv6 sources only).
pub fn udp_reply(packet: &[u8]) -> (SocketAddr, Vec<u8>) {
    assert_eq!(&packet[..3], &[0, 0, 0], "reserved bytes and fragment");
    let (ip, rest): (IpAddr, &[u8]) = match packet[3] {
        1 => (
            <[u8; 4]>::try_from(&packet[4..8]).unwrap().into(),
            &packet[8..],
        ),
        4 => (
            <[u8; 16]>::try_from(&packet[4..20]).unwrap().into(),
            &packet[20..],
        ),
        other => panic!("source address type {other}"),
    };
    let port = u16::from_be_bytes([rest[0], rest[1]]);
    (SocketAddr::new(ip, port), rest[2..].to_vec())
}
