//! The exit side of egress (the gateway, or an agent named in `via`): dial what an agent asked
//! for under the policy, answer it, then carry the bytes (TCP) or the datagrams (UDP).

use std::net::SocketAddr;

use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::Instant,
};

use super::{
    address::{Address, Host},
    association,
    dial::{self, Refusal},
};
use crate::{
    config::egress::EgressSettings,
    log_escape::Escaped,
    session::TunnelStream,
    wire::{Failure, Opened},
};

/// Serves a TCP connection out to `host:port`: dials it, answers the stream, and carries
/// bytes both ways until both sides end. One access-log line at the end.
pub async fn connect(
    mut stream: TunnelStream,
    settings: &EgressSettings,
    host: &str,
    port: u16,
    agent: &str,
) {
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
    if crate::session::messages::write_frame(&mut stream, &Opened::Ok)
        .await
        .is_err()
    {
        return;
    }
    let copied = stream.splice(&mut target).await;
    let (up, down) = copied.as_ref().map_or((0, 0), |&(up, down)| (up, down));
    let (agent, destination) = (Escaped(agent), Escaped(&destination));
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
    let (shown, destination) = (Escaped(agent), Escaped(destination));
    let reason = Escaped(&refusal.reason);
    if refusal.failure == Failure::NotAllowed {
        let denied_total = settings.policy.count_denial();
        tracing::warn!(agent = %shown, %destination, %reason, denied_total, "egress denied");
    } else {
        tracing::info!(agent = %shown, %destination, %reason, "egress failed");
    }
    // The client learns that the policy said no, not why: the reason names what the exit's
    // resolver answered and which rule matched, which is the exit network's business.
    let reason = match refusal.failure {
        Failure::NotAllowed => "not allowed by the egress policy".to_string(),
        _ => refusal.reason,
    };
    let answer = Opened::Failed {
        failure: refusal.failure,
        reason,
    };
    let _ = crate::session::messages::write_frame(stream, &answer).await;
}

/// Serves a UDP association (`association`): datagrams framed on the stream go out from
/// sockets of this process, and answers from the destinations come back.
pub async fn datagrams<S>(mut stream: S, settings: &EgressSettings, agent: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(sockets) = association::Sockets::bind().await else {
        let refusal = Refusal {
            failure: Failure::General,
            reason: "cannot open a UDP socket".into(),
        };
        let nowhere = Address::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        return refuse(&mut stream, settings, agent, &nowhere, refusal).await;
    };
    if crate::session::messages::write_frame(&mut stream, &Opened::Ok)
        .await
        .is_ok()
    {
        association::serve(stream, sockets, settings.clone(), agent.to_string()).await;
    }
}
