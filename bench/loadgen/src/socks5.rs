//! A SOCKS5 client (RFC 1928), just enough to open a benchmark connection through a forward
//! proxy: no authentication, CONNECT only.
//!
//! The method negotiation and the request are sent one after the other, each after its reply,
//! as common clients (curl, browsers) do: the setup figures then count the proxy's real round
//! trips.

use std::net::IpAddr;

use anyhow::{Context, bail, ensure};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// Connects to the SOCKS5 proxy at `proxy` and asks it to CONNECT to `target` (`host:port`,
/// `[v6]:port`); returns the stream once the proxy has reported success.
pub async fn connect(proxy: &str, target: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("connect {proxy}"))?;
    stream.set_nodelay(true)?;
    handshake(&mut stream, target)
        .await
        .with_context(|| format!("socks5 {proxy}: connect {target}"))?;
    Ok(stream)
}

/// Negotiates "no authentication", sends CONNECT and reads the reply with its bound address.
async fn handshake(
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    target: &str,
) -> anyhow::Result<()> {
    io.write_all(&[VERSION, 1, NO_AUTHENTICATION]).await?;
    let mut choice = [0u8; 2];
    io.read_exact(&mut choice).await?;
    ensure!(
        choice == [VERSION, NO_AUTHENTICATION],
        "proxy did not accept \"no authentication\" (reply {choice:?})"
    );
    io.write_all(&connect_request(target)?).await?;
    // VER REP RSV ATYP, then the bound address and port, which nobody here needs.
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await?;
    ensure!(head[0] == VERSION, "reply version {}", head[0]);
    ensure!(head[1] == 0, "proxy refused: reply code {}", head[1]);
    let address_bytes = match head[3] {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => usize::from(io.read_u8().await?),
        other => bail!("reply address type {other}"),
    };
    let mut bound = [0u8; 255 + 2];
    io.read_exact(&mut bound[..address_bytes + 2]).await?;
    Ok(())
}

/// The CONNECT request for `host:port`: an IPv4 or IPv6 address as such, anything else as a
/// domain name for the proxy to resolve.
fn connect_request(target: &str) -> anyhow::Result<Vec<u8>> {
    let (host, port) = target
        .rsplit_once(':')
        .with_context(|| format!("expected host:port, got {target}"))?;
    let port: u16 = port.parse().with_context(|| format!("port in {target}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut request = vec![VERSION, CONNECT, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            request.push(ATYP_IPV4);
            request.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            request.push(ATYP_IPV6);
            request.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let len = u8::try_from(host.len())
                .ok()
                .filter(|&len| len > 0)
                .with_context(|| format!("host name of 1 to 255 bytes, got {host:?}"))?;
            request.push(ATYP_DOMAIN);
            request.push(len);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_each_address_type() {
        struct Case {
            target: &'static str,
            expected: &'static [u8],
        }
        let cases = [
            Case {
                target: "127.0.0.1:7",
                expected: &[5, 1, 0, 1, 127, 0, 0, 1, 0, 7],
            },
            Case {
                target: "[::1]:258",
                expected: &[
                    5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2,
                ],
            },
            Case {
                target: "ab.c:80",
                expected: &[5, 1, 0, 3, 4, b'a', b'b', b'.', b'c', 0, 80],
            },
        ];
        for case in cases {
            let request = connect_request(case.target).expect(case.target);
            assert_eq!(request, case.expected, "target {}", case.target);
        }
        for bad in ["no-port", "host:99999", ":80"] {
            assert!(connect_request(bad).is_err(), "target {bad} should fail");
        }
    }

    /// A proxy's side of the exchange over a tiny duplex buffer, so both ends see partial reads.
    #[tokio::test]
    async fn handshake_reads_a_domain_bound_address() {
        let (mut client, mut proxy) = tokio::io::duplex(8);
        let proxy_side = async move {
            let mut greeting = [0u8; 3];
            proxy.read_exact(&mut greeting).await?;
            assert_eq!(greeting, [5, 1, 0]);
            proxy.write_all(&[5, 0]).await?;
            let mut request = [0u8; 10];
            proxy.read_exact(&mut request).await?;
            assert_eq!(request, [5, 1, 0, 1, 10, 0, 0, 1, 0x1f, 0x90]);
            proxy
                .write_all(&[
                    5, 0, 0, 3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't',
                ])
                .await?;
            proxy.write_all(&[0x12, 0x34, b'!']).await?;
            anyhow::Ok(proxy)
        };
        let (handshake, proxy) = tokio::join!(handshake(&mut client, "10.0.0.1:8080"), proxy_side);
        handshake.expect("handshake succeeds");
        drop(proxy.expect("proxy side"));
        assert_eq!(client.read_u8().await.expect("data after the reply"), b'!');
    }

    #[tokio::test]
    async fn handshake_fails_on_a_refusal() {
        let (mut client, mut proxy) = tokio::io::duplex(64);
        proxy
            .write_all(&[5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .expect("reply fits the buffer");
        let err = handshake(&mut client, "127.0.0.1:1").await.unwrap_err();
        assert!(err.to_string().contains("reply code 5"), "{err}");
    }
}
