//! The agent's SOCKS5 server (RFC 1928, with RFC 1929 username/password): CONNECT and UDP
//! ASSOCIATE; names are resolved where the connection leaves (socks5h). BIND is refused.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf},
    net::{TcpListener, TcpStream, UdpSocket},
};

use crate::{
    agent::egress::Egress,
    config::agent::plan::ProxyPlan,
    egress::{
        address::{Address, AddressError},
        datagram::{self, Datagram, IdleClock, MAX_PAYLOAD},
        dial::Refusal as EgressRefusal,
    },
    front::listener::accept_each,
    log_escape::Escaped,
    refusal::Refusal,
    session::OpenedStream,
    shutdown::Shutdown,
};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASS: u8 = 2;
const NO_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;
const UDP_ASSOCIATE: u8 = 3;

/// How long a client may take to say what it wants.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The reply to a request that succeeded (RFC 1928 §6); every other reply is a refusal's, from
/// the table.
const SUCCEEDED: u8 = 0;

/// Accepts SOCKS5 clients until shutdown; each client is a task shutdown waits for.
pub(super) async fn serve(
    listener: TcpListener,
    plan: ProxyPlan,
    egress: Egress,
    shutdown: Shutdown,
) {
    let plan = Arc::new(plan);
    let (tracker, stop) = (shutdown.tracker, shutdown.token);
    accept_each(listener, "socks5", tracker, stop, |client, peer| {
        let (plan, egress) = (plan.clone(), egress.clone());
        Some(async move {
            if let Err(error) = serve_client(client, &plan, &egress).await {
                tracing::debug!(%peer, %error, "socks5 client ended");
            }
        })
    })
    .await;
}

/// One client: handshake, then its CONNECT or UDP ASSOCIATE.
async fn serve_client(mut client: TcpStream, plan: &ProxyPlan, egress: &Egress) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let request = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut client, plan)).await;
    let Ok(request) = request else {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "handshake timed out",
        ));
    };
    let (command, address) = match request? {
        Ok(request) => request,
        Err(refusal) => {
            // The request itself was bad (a name with control characters, say): it is not
            // repeated here, so nothing of it reaches the log.
            let reply = refusal.socks_reply();
            tracing::info!(reply, outcome = refusal.name(), "socks5: request refused");
            return send_reply(&mut client, reply, None).await;
        }
    };
    match command {
        CONNECT => connect(client, address, egress).await,
        UDP_ASSOCIATE => associate(client, plan, egress).await,
        _ => {
            let reply = Refusal::SocksCommandUnsupported.socks_reply();
            send_reply(&mut client, reply, None).await
        }
    }
}

/// Method selection, authentication and the request: the command and its address, or the
/// refusal whose reply refuses it.
pub(crate) async fn handshake<S>(
    client: &mut S,
    plan: &ProxyPlan,
) -> io::Result<Result<(u8, Address), Refusal>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let [version, count] = read_array(client).await?;
    if version != VERSION {
        return Err(invalid("not SOCKS version 5"));
    }
    let mut methods = vec![0u8; usize::from(count)];
    client.read_exact(&mut methods).await?;
    let wanted = if plan.credentials.is_some() {
        USER_PASS
    } else {
        NO_AUTH
    };
    if !methods.contains(&wanted) {
        client.write_all(&[VERSION, NO_METHOD]).await?;
        return Err(invalid("no acceptable authentication method"));
    }
    client.write_all(&[VERSION, wanted]).await?;
    if let Some(credentials) = &plan.credentials {
        let (username, password) = read_credentials(client).await?;
        let good = credentials.matches(&username, &password);
        client.write_all(&[1, u8::from(!good)]).await?;
        if !good {
            return Err(invalid("wrong username or password"));
        }
    }
    let [version, command, _reserved] = read_array(client).await?;
    if version != VERSION {
        return Err(invalid("not SOCKS version 5"));
    }
    match read_address(client).await? {
        Ok(address) => Ok(Ok((command, address))),
        Err(AddressError::UnknownType(_)) => Ok(Err(Refusal::SocksAddressUnsupported)),
        // A malformed name, or an empty one.
        Err(AddressError::BadName) => Ok(Err(Refusal::BadRequest)),
    }
}

/// RFC 1929's username and password.
async fn read_credentials<S: AsyncRead + Unpin>(client: &mut S) -> io::Result<(String, String)> {
    let [version, length] = read_array(client).await?;
    if version != 1 {
        return Err(invalid("not username/password authentication version 1"));
    }
    let mut username = vec![0u8; usize::from(length)];
    client.read_exact(&mut username).await?;
    let [length] = read_array(client).await?;
    let mut password = vec![0u8; usize::from(length)];
    client.read_exact(&mut password).await?;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    Ok((text(username), text(password)))
}

/// An address as a request writes it, read exactly (nothing past it).
async fn read_address<S: AsyncRead + Unpin>(
    client: &mut S,
) -> io::Result<Result<Address, AddressError>> {
    let [kind] = read_array(client).await?;
    let rest = match kind {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let [length] = read_array(client).await?;
            let mut bytes = vec![3, length];
            bytes.resize(2 + usize::from(length) + 2, 0);
            client.read_exact(&mut bytes[2..]).await?;
            return Ok(Address::decode(&bytes).map(|read| read.expect("complete").0));
        }
        other => return Ok(Err(AddressError::UnknownType(other))),
    };
    let mut bytes = vec![kind; 1 + rest];
    client.read_exact(&mut bytes[1..]).await?;
    Ok(Address::decode(&bytes).map(|read| read.expect("complete").0))
}

/// CONNECT: the egress dials, the client gets the reply, then bytes flow both ways.
async fn connect(mut client: TcpStream, address: Address, egress: &Egress) -> io::Result<()> {
    let opened = egress.connect(address.host.to_string(), address.port).await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(refusal) => return refuse(&mut client, &address, refusal).await,
    };
    send_reply(&mut client, SUCCEEDED, None).await?;
    stream.splice(&mut client).await.map(drop)
}

/// Tells the client why not.
async fn refuse(
    client: &mut TcpStream,
    address: &Address,
    refusal: EgressRefusal,
) -> io::Result<()> {
    let (destination, reason) = (Escaped(address), Escaped(&refusal.reason));
    let kind = refusal.failure.refusal();
    tracing::info!(%destination, %reason, outcome = kind.name(), "socks5: refused");
    send_reply(client, kind.socks_reply(), None).await
}

/// UDP ASSOCIATE: a UDP socket for the client beside the listener, its datagrams carried on a
/// tunnel stream to the exit, until the client's TCP connection ends or nothing moves for the
/// idle timeout.
async fn associate(mut client: TcpStream, plan: &ProxyPlan, egress: &Egress) -> io::Result<()> {
    let local = client.local_addr()?;
    let udp = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await?;
    let stream = match egress.datagrams().await {
        Ok(stream) => stream,
        Err(refusal) => {
            let here = Address::from(local);
            return refuse(&mut client, &here, refusal).await;
        }
    };
    send_reply(&mut client, SUCCEEDED, Some(udp.local_addr()?)).await?;
    let owner = client.peer_addr()?.ip();
    relay_datagrams(client, udp, stream, owner, plan.udp_idle_timeout).await;
    Ok(())
}

/// Moves datagrams between the client's UDP socket and the tunnel stream, each direction a
/// future of its own in one task (neither may wait on the other, and the stream's halves must
/// stay in one task: see `egress::association`), until the client's TCP connection ends, the
/// exit ends the stream, or nothing moves for `idle`.
async fn relay_datagrams(
    mut client: TcpStream,
    udp: UdpSocket,
    stream: OpenedStream,
    owner: IpAddr,
    idle: Duration,
) {
    let (reader, writer) = tokio::io::split(stream);
    let peer = Mutex::new(None);
    let clock = IdleClock::new();
    let control_ends = async {
        let mut byte = [0u8; 1];
        // The association lives as long as its TCP connection.
        while let Ok(1..) = client.read(&mut byte).await {}
    };
    tokio::select! {
        () = clock.expired(idle) => tracing::info!(idle = ?idle, "socks5: UDP association idle: closed"),
        () = control_ends => {}
        () = from_client(&udp, writer, owner, &peer, &clock) => {}
        () = to_client(reader, &udp, &peer, &clock) => {}
    }
}

/// The client's UDP address, once it has sent from it.
type Peer = Mutex<Option<SocketAddr>>;

/// The client's datagrams, framed onto the stream. Only the client that asked may use the
/// association, from one port.
async fn from_client(
    udp: &UdpSocket,
    mut writer: WriteHalf<OpenedStream>,
    owner: IpAddr,
    peer: &Peer,
    clock: &IdleClock,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            continue;
        };
        {
            let mut peer = peer.lock().unwrap_or_else(|e| e.into_inner());
            if from.ip() != owner || peer.is_some_and(|p| p != from) {
                continue;
            }
            *peer = Some(from);
        }
        let Some((address, payload)) = parse_udp_header(&buf[..n]) else {
            continue;
        };
        if payload.len() > MAX_PAYLOAD {
            continue;
        }
        if datagram::write(&mut writer, &address, payload)
            .await
            .is_err()
        {
            return;
        }
        clock.touch();
    }
}

/// Datagrams from the exit, to the client with the header naming their source.
async fn to_client(
    mut reader: ReadHalf<OpenedStream>,
    udp: &UdpSocket,
    peer: &Peer,
    clock: &IdleClock,
) {
    while let Ok(Some(answer)) = datagram::read(&mut reader).await {
        let client = *peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = client
            && udp.send_to(&udp_packet(&answer), client).await.is_ok()
        {
            clock.touch();
        }
    }
}

/// A client's UDP request (RFC 1928 §7): the destination and the payload. Fragments (FRAG ≠ 0)
/// are dropped, as most servers do.
pub(crate) fn parse_udp_header(packet: &[u8]) -> Option<(Address, &[u8])> {
    let [0, 0, 0, rest @ ..] = packet else {
        return None;
    };
    let (address, used) = Address::decode(rest).ok()??;
    Some((address, &rest[used..]))
}

/// A datagram from the exit, with the UDP request header naming its source.
pub(crate) fn udp_packet(answer: &Datagram) -> Vec<u8> {
    let mut packet = vec![0, 0, 0];
    answer.address.encode(&mut packet);
    packet.extend_from_slice(&answer.payload);
    packet
}

/// Sends a reply; the bound address is 0.0.0.0:0 unless given.
async fn send_reply<S>(client: &mut S, reply: u8, bound: Option<SocketAddr>) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut bytes = vec![VERSION, reply, 0];
    Address::from(bound).encode(&mut bytes);
    client.write_all(&bytes).await
}

async fn read_array<const N: usize, S: AsyncRead + Unpin>(client: &mut S) -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    client.read_exact(&mut bytes).await?;
    Ok(bytes)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Failure;

    #[test]
    fn udp_headers_parse_and_fragments_are_dropped() {
        let to = Address::from(SocketAddr::from(([192, 0, 2, 1], 53)));
        let mut packet = vec![0, 0, 0];
        to.encode(&mut packet);
        packet.extend_from_slice(b"q");
        assert_eq!(parse_udp_header(&packet), Some((to.clone(), &b"q"[..])));
        packet[2] = 1;
        assert_eq!(parse_udp_header(&packet), None);
        let answer = Datagram {
            address: to,
            payload: b"a".to_vec(),
        };
        let built = udp_packet(&answer);
        assert_eq!(parse_udp_header(&built).unwrap().1, b"a");
    }

    #[test]
    fn failures_map_to_reply_codes() {
        let codes: Vec<u8> = [
            Failure::General,
            Failure::NotAllowed,
            Failure::NetworkUnreachable,
            Failure::HostUnreachable,
            Failure::Refused,
            Failure::TimedOut,
        ]
        .into_iter()
        .map(|f| f.refusal().socks_reply())
        .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
    }
}
