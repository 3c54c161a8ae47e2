//! The exit side of egress (the gateway, or an agent named in `via`): dial what an agent asked
//! for under the policy, answer it, then carry the bytes (TCP) or the datagrams (UDP).

use std::{
    collections::{HashMap, HashSet},
    future::pending,
    net::SocketAddr,
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::UdpSocket,
    sync::mpsc,
    time::{Instant, sleep},
};

use super::{
    address::{Address, Host},
    datagram::{self, Datagram},
    dial::{self, Refusal},
};
use crate::{
    config::egress::EgressSettings,
    tunnel::wire::{self, Failure, Opened},
};

/// Destinations an association remembers, to accept their answers (a restricted cone, as
/// NATs do: nobody else can send into it).
const MAX_PEERS: usize = 4096;

/// Names an association remembers the address of, so a DNS lookup is not made per datagram.
const MAX_NAMES: usize = 256;

/// Serves a TCP connection out to `host:port`: dials it, answers the stream, and carries
/// bytes both ways until both sides end. One access-log line at the end.
pub async fn connect<S>(
    mut stream: S,
    settings: &EgressSettings,
    host: &str,
    port: u16,
    agent: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let destination = Address {
        host: Host::parse(host),
        port,
    };
    let started = Instant::now();
    let dialled = dial::dial(&settings.policy, host, port, settings.connect_timeout).await;
    let mut target = match dialled {
        Ok(target) => target,
        Err(refusal) => return refuse(&mut stream, settings, agent, &destination, refusal).await,
    };
    if wire::write_frame(&mut stream, &Opened::Ok).await.is_err() {
        return;
    }
    let copied = tokio::io::copy_bidirectional_with_sizes(
        &mut stream,
        &mut target,
        crate::tunnel::COPY_BYTES,
        crate::tunnel::COPY_BYTES,
    )
    .await;
    let (up, down) = copied.as_ref().map_or((0, 0), |&(up, down)| (up, down));
    tracing::info!(
        target: "wsgate::access",
        kind = "egress",
        %agent,
        %destination,
        bytes_up = up,
        bytes_down = down,
        duration_ms = started.elapsed().as_millis() as u64,
        end = if copied.is_ok() { "done" } else { "error" },
    );
}

/// Answers a refused connection: logged, and counted when the policy denied it.
pub async fn refuse<S>(
    stream: &mut S,
    settings: &EgressSettings,
    agent: &str,
    destination: &Address,
    refusal: Refusal,
) where
    S: AsyncWrite + Unpin,
{
    if refusal.failure == Failure::NotAllowed {
        let denied_total = settings.policy.count_denial();
        tracing::warn!(%agent, %destination, reason = %refusal.reason, denied_total, "egress denied");
    } else {
        tracing::info!(%agent, %destination, reason = %refusal.reason, "egress failed");
    }
    let answer = Opened::Failed {
        failure: refusal.failure,
        reason: refusal.reason,
    };
    let _ = wire::write_frame(stream, &answer).await;
}

/// Serves a UDP association: datagrams framed on the stream go out from sockets of this
/// process, and answers from the destinations come back, until the stream ends or nothing
/// moves for the idle timeout.
pub async fn datagrams<S>(mut stream: S, settings: &EgressSettings, agent: &str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let v4 = UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .await
        .ok();
    let v6 = UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0))
        .await
        .ok();
    if v4.is_none() && v6.is_none() {
        let refusal = Refusal {
            failure: Failure::General,
            reason: "cannot open a UDP socket".into(),
        };
        let nowhere = Address::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        return refuse(&mut stream, settings, agent, &nowhere, refusal).await;
    }
    if wire::write_frame(&mut stream, &Opened::Ok).await.is_err() {
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Frames are read in a task of their own: a read cut short by `select!` would lose the
    // part of a frame already read.
    let (frames_tx, mut frames) = mpsc::channel::<Datagram>(64);
    let reading = tokio::spawn(async move {
        while let Ok(Some(datagram)) = datagram::read(&mut reader).await {
            if frames_tx.send(datagram).await.is_err() {
                return;
            }
        }
    });
    let mut association = Association {
        settings,
        agent,
        peers: HashSet::new(),
        names: HashMap::new(),
    };
    let (mut buf4, mut buf6) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    loop {
        let event = tokio::select! {
            frame = frames.recv() => match frame {
                Some(out) => Event::Out(out),
                None => break,
            },
            received = recv(v4.as_ref(), &mut buf4) => Event::In(received, false),
            received = recv(v6.as_ref(), &mut buf6) => Event::In(received, true),
            () = sleep(settings.udp_idle_timeout) => {
                tracing::info!(%agent, "UDP association idle: closed");
                break;
            }
        };
        let (received, from_v6) = match event {
            Event::Out(out) => {
                association.send(&out, v4.as_ref(), v6.as_ref()).await;
                continue;
            }
            Event::In(received, from_v6) => (received, from_v6),
        };
        // An error is an ICMP answer to an earlier datagram: the next one may fare better.
        let Ok((n, from)) = received else { continue };
        let payload = if from_v6 { &buf6[..n] } else { &buf4[..n] };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        if association.peers.contains(&from)
            && datagram::write(&mut writer, &Address::from(from), payload)
                .await
                .is_err()
        {
            break;
        }
    }
    reading.abort();
}

/// What woke an association up.
enum Event {
    /// A datagram from the agent, to send out.
    Out(Datagram),
    /// A datagram from outside (on the IPv6 socket if true).
    In(std::io::Result<(usize, SocketAddr)>, bool),
}

/// What an association remembers.
struct Association<'a> {
    settings: &'a EgressSettings,
    agent: &'a str,
    /// Destinations datagrams went to: only they may answer.
    peers: HashSet<SocketAddr>,
    /// Names already resolved (and allowed).
    names: HashMap<(String, u16), SocketAddr>,
}

impl Association<'_> {
    /// Sends one datagram out, if the policy allows its destination.
    async fn send(&mut self, out: &Datagram, v4: Option<&UdpSocket>, v6: Option<&UdpSocket>) {
        let Some(to) = self.resolve(&out.address).await else {
            return;
        };
        let socket = if to.is_ipv4() { v4 } else { v6 };
        let Some(socket) = socket else {
            tracing::debug!(agent = %self.agent, %to, "no UDP socket of that family");
            return;
        };
        if self.peers.len() < MAX_PEERS {
            self.peers.insert(to);
        }
        if let Err(error) = socket.send_to(&out.payload, to).await {
            tracing::debug!(agent = %self.agent, %to, %error, "datagram not sent");
        }
    }

    /// The allowed address of a destination; `None` (logged, and counted when denied) if
    /// there is none.
    async fn resolve(&mut self, address: &Address) -> Option<SocketAddr> {
        let key = (address.host.to_string(), address.port);
        if let Some(&known) = self.names.get(&key) {
            return Some(known);
        }
        let policy = &self.settings.policy;
        match dial::resolve_datagram_target(policy, &key.0, key.1).await {
            Ok(to) => {
                if matches!(address.host, Host::Name(_)) && self.names.len() < MAX_NAMES {
                    self.names.insert(key, to);
                }
                Some(to)
            }
            Err(refusal) if refusal.failure == Failure::NotAllowed => {
                let denied_total = policy.count_denial();
                let (agent, reason) = (self.agent, &refusal.reason);
                tracing::warn!(%agent, destination = %address, %reason, denied_total, "egress datagram denied");
                None
            }
            Err(refusal) => {
                tracing::debug!(agent = %self.agent, destination = %address, reason = %refusal.reason, "datagram dropped");
                None
            }
        }
    }
}

/// A datagram from `socket`, or never when there is no socket.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => pending().await,
    }
}
