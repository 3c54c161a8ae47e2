//! A UDP association on the exit side: datagrams an agent frames on a tunnel stream go out
//! from this process's UDP sockets (one IPv4, one IPv6), and answers from the destinations come
//! back framed on the same stream.
//!
//! The two directions are separate futures, so neither waits on the other: the reading side
//! always drains the stream (UDP send never waits long), and a stream that stops draining
//! only makes answers wait in the socket's buffer, where the kernel drops them as UDP may.
//! They run in one task, as `copy_bidirectional` does: with the stream's reader and writer
//! in two tasks, a two-way flood wedged the association for good (tests/egress.rs, the flood
//! test); in one task it does not. The association ends with the stream, or once no datagram
//! has moved either way for the idle timeout (datagrams dropped as not allowed, or from
//! strangers, do not count).

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf},
    net::UdpSocket,
};

use super::{
    address::Address,
    datagram::{self, IdleClock, MAX_PAYLOAD},
    dial,
};
use crate::{config::egress::EgressSettings, log_escape::Escaped, wire::Failure};

/// Destinations an association remembers, to accept their answers (a restricted cone, as
/// NATs do: nobody else can send into it).
const MAX_PEERS: usize = 4096;

/// Destinations an association remembers the checked address of.
const MAX_DESTINATIONS: usize = 256;

/// The association's sockets.
#[derive(Debug)]
pub struct Sockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Sockets {
    /// An IPv4 and an IPv6 socket on ephemeral ports; `None` when neither can be had.
    pub async fn bind() -> Option<Arc<Sockets>> {
        let v4 = UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
            .await
            .ok();
        let v6 = UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0))
            .await
            .ok();
        (v4.is_some() || v6.is_some()).then(|| Arc::new(Sockets { v4, v6 }))
    }

    fn of(&self, to: SocketAddr) -> Option<&UdpSocket> {
        if to.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }
}

/// Destinations datagrams went to: only they may answer.
type Peers = Arc<Mutex<HashSet<SocketAddr>>>;

/// Runs the association until the stream ends or it sits idle.
pub async fn serve<S>(stream: S, sockets: Arc<Sockets>, settings: EgressSettings, agent: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(stream);
    let clock = IdleClock::new();
    let peers = Peers::default();
    let idle = settings.udp_idle_timeout;
    let outward = Outward {
        sockets: sockets.clone(),
        settings,
        agent: agent.clone(),
        peers: peers.clone(),
        allowed: HashMap::new(),
        clock: clock.clone(),
    };
    tokio::select! {
        () = clock.expired(idle) => {
            tracing::info!(agent = %Escaped(&agent), "UDP association idle: closed");
        }
        () = outward.run(reader) => {}
        () = answers(writer, sockets, peers, clock.clone()) => {}
    }
}

/// The outward direction: datagrams from the stream to their destinations.
struct Outward {
    sockets: Arc<Sockets>,
    settings: EgressSettings,
    agent: String,
    peers: Peers,
    /// Destinations already resolved and allowed, so a busy association neither looks names
    /// up nor allocates per datagram.
    allowed: HashMap<Address, SocketAddr>,
    clock: Arc<IdleClock>,
}

impl Outward {
    async fn run<S: AsyncRead>(mut self, mut reader: ReadHalf<S>) {
        while let Ok(Some(out)) = datagram::read(&mut reader).await {
            let Some(to) = self.resolve(&out.address).await else {
                continue;
            };
            let Some(socket) = self.sockets.of(to) else {
                let agent = Escaped(&self.agent);
                tracing::debug!(%agent, %to, "no UDP socket of that family");
                continue;
            };
            {
                let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
                if peers.len() < MAX_PEERS {
                    peers.insert(to);
                }
            }
            match socket.send_to(&out.payload, to).await {
                Ok(_) => self.clock.touch(),
                Err(error) => {
                    let agent = Escaped(&self.agent);
                    tracing::debug!(%agent, %to, %error, "datagram not sent");
                }
            }
        }
    }

    /// The allowed address of a destination (IPv4-mapped IPv6 as IPv4); `None` (logged, and
    /// counted when denied) if there is none.
    async fn resolve(&mut self, address: &Address) -> Option<SocketAddr> {
        if let Some(&known) = self.allowed.get(address) {
            return Some(known);
        }
        let policy = &self.settings.policy;
        let host = address.host.to_string();
        match dial::resolve_datagram_target(policy, &host, address.port).await {
            Ok(to) => {
                let to = SocketAddr::new(to.ip().to_canonical(), to.port());
                if self.allowed.len() < MAX_DESTINATIONS {
                    self.allowed.insert(address.clone(), to);
                }
                Some(to)
            }
            Err(refusal) if refusal.failure == Failure::NotAllowed => {
                let denied_total = policy.count_denial();
                let (agent, reason) = (Escaped(&self.agent), Escaped(&refusal.reason));
                let destination = Escaped(address);
                tracing::warn!(%agent, %destination, %reason, denied_total, "egress datagram denied");
                None
            }
            Err(refusal) => {
                let (agent, reason) = (Escaped(&self.agent), Escaped(&refusal.reason));
                let destination = Escaped(address);
                tracing::debug!(%agent, %destination, %reason, "datagram dropped");
                None
            }
        }
    }
}

/// The way back: answers from the destinations, framed onto the stream.
async fn answers<S: AsyncWrite>(
    mut writer: WriteHalf<S>,
    sockets: Arc<Sockets>,
    peers: Peers,
    clock: Arc<IdleClock>,
) {
    let (mut buf4, mut buf6) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    loop {
        let (received, on_v6) = tokio::select! {
            received = recv(sockets.v4.as_ref(), &mut buf4) => (received, false),
            received = recv(sockets.v6.as_ref(), &mut buf6) => (received, true),
        };
        // An error is an ICMP answer to an earlier datagram: the next one may fare better.
        let Ok((n, from)) = received else { continue };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let known = peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&from);
        if !known || n > MAX_PAYLOAD {
            continue;
        }
        let payload = if on_v6 { &buf6[..n] } else { &buf4[..n] };
        if datagram::write(&mut writer, &Address::from(from), payload)
            .await
            .is_err()
        {
            return;
        }
        clock.touch();
    }
}

/// A datagram from `socket`, or never when there is no socket.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}
