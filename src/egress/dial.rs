//! Dialling through the egress policy: check the port and the name, resolve once, check every
//! address, then connect only to the addresses that passed. Connecting to the checked
//! `SocketAddr`s, never to the name again, is what defeats DNS rebinding (a name that answers
//! a public address to the check and a private one to the connect).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::{
    net::TcpStream,
    time::{Instant, timeout_at},
};

use super::policy::{Denied, NameVerdict, Policy};
use crate::wire::Failure;

/// How long a datagram target's name may take to resolve. UDP has no connect timeout to borrow;
/// 5 s is the resolver's own per-query default (`resolv.conf` `timeout:5`), so one lost query
/// may be retried once by a second server, no more.
const DATAGRAM_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a destination was not reached: the kind (a SOCKS5 reply, an HTTP status) and a
/// sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// What kind of failure.
    pub failure: Failure,
    /// Why, naming the rule, the name or the address.
    pub reason: String,
}

impl Refusal {
    fn new(failure: Failure, reason: impl Into<String>) -> Refusal {
        Refusal {
            failure,
            reason: reason.into(),
        }
    }
}

impl From<Denied> for Refusal {
    fn from(denied: Denied) -> Refusal {
        Refusal::new(Failure::NotAllowed, denied.0)
    }
}

/// Connects to `host:port` if the policy allows it. `host` is an IP address (IPv6 without
/// brackets) or a name, resolved here. `connect_timeout` bounds the whole: resolution and every
/// attempt. Addresses are tried in the resolver's order; the first connection wins. The stream
/// has `TCP_NODELAY` set. Cancel-safe: dropping the future drops any half-made connection.
pub async fn dial(
    policy: &Policy,
    host: &str,
    port: u16,
    connect_timeout: Duration,
) -> Result<TcpStream, Refusal> {
    let deadline = Instant::now() + connect_timeout;
    let targets = allowed_targets(policy, host, port, deadline).await?;
    connect_first(&targets, deadline, connect_timeout).await
}

/// Where datagrams for `host:port` go, if the policy allows it: the first allowed address.
/// Resolution is bounded by 5 s.
pub(crate) async fn resolve_datagram_target(
    policy: &Policy,
    host: &str,
    port: u16,
) -> Result<SocketAddr, Refusal> {
    let deadline = Instant::now() + DATAGRAM_RESOLVE_TIMEOUT;
    allowed_targets(policy, host, port, deadline)
        .await?
        .first()
        .copied()
        .ok_or_else(|| Refusal::new(Failure::HostUnreachable, format!("{host} has no address")))
}

/// The addresses `host:port` may be dialled at, in the resolver's order; never empty.
async fn allowed_targets(
    policy: &Policy,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Refusal> {
    policy.check_port(port)?;
    if let Some(addr) = ip_literal(host) {
        policy.check_addr(addr, false)?;
        return Ok(vec![SocketAddr::new(addr, port)]);
    }
    if !super::address::is_host_name(host) {
        // General failure (SOCKS5 0x01), as the agent's SOCKS5 server answers such a name;
        // the name is not repeated, so it reaches no log raw.
        let reason = "the destination is not a host name (control characters or spaces)";
        return Err(Refusal::new(Failure::General, reason));
    }
    let name_allowed = policy.check_name(host)? == NameVerdict::Allowed;
    let resolved = resolve(host, port, deadline).await?;
    let mut first_denial = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| match policy.check_addr(addr.ip(), name_allowed) {
            Ok(()) => true,
            Err(denied) => {
                first_denial.get_or_insert(denied);
                false
            }
        })
        .collect();
    match first_denial {
        Some(denied) if allowed.is_empty() => Err(denied.into()),
        _ => Ok(allowed),
    }
}

/// `host` as an address: `::1`, `127.0.0.1`, or leniently `[::1]`.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Lookups in flight at once, per process. Each holds one of tokio's blocking threads
/// (getaddrinfo) until the resolver gives up, however soon its caller stopped waiting: an agent
/// asking for names on a slow DNS server must not take them all.
const MAX_LOOKUPS: usize = 64;

static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LOOKUPS);

/// Resolves `host` once, before `deadline`; never empty.
async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Refusal> {
    let slot = match timeout_at(deadline, LOOKUPS.acquire()).await {
        Ok(slot) => slot.expect("the semaphore is never closed"),
        Err(_elapsed) => {
            let reason = format!("cannot resolve {host}: too many lookups in flight");
            return Err(Refusal::new(Failure::TimedOut, reason));
        }
    };
    let name = host.to_string();
    // Spawned: the slot is held until the lookup really ends (getaddrinfo cannot be
    // cancelled), not only until this caller stops waiting.
    let lookup = tokio::spawn(async move {
        let _slot = slot;
        tokio::net::lookup_host((name, port))
            .await
            .map(|addrs| addrs.collect::<Vec<SocketAddr>>())
    });
    let lookup = async { lookup.await.unwrap_or_else(|e| Err(io::Error::other(e))) };
    match timeout_at(deadline, lookup).await {
        Err(_elapsed) => Err(Refusal::new(
            Failure::TimedOut,
            format!("cannot resolve {host}: timed out"),
        )),
        Ok(Err(err)) => Err(Refusal::new(
            Failure::HostUnreachable,
            format!("cannot resolve {host}: {err}"),
        )),
        Ok(Ok(addrs)) => {
            if addrs.is_empty() {
                Err(Refusal::new(
                    Failure::HostUnreachable,
                    format!("cannot resolve {host}: no address"),
                ))
            } else {
                Ok(addrs)
            }
        }
    }
}

/// Connects to the first of `targets` that answers before `deadline` (`connect_timeout` after
/// the dial began); the failure of the last attempt otherwise.
async fn connect_first(
    targets: &[SocketAddr],
    deadline: Instant,
    connect_timeout: Duration,
) -> Result<TcpStream, Refusal> {
    let mut last_error = None;
    for &addr in targets {
        match timeout_at(deadline, connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(err)) => last_error = Some((addr, err)),
            Err(_elapsed) => {
                let reason = format!("cannot connect to {addr} within {connect_timeout:?}");
                return Err(Refusal::new(Failure::TimedOut, reason));
            }
        }
    }
    Err(match last_error {
        Some((addr, err)) => Refusal::new(
            Failure::of(&err),
            format!("cannot connect to {addr}: {err}"),
        ),
        None => Refusal::new(Failure::General, "no address to connect to"),
    })
}

/// One attempt at one address, with `TCP_NODELAY`: proxied protocols (SSH, VNC, TLS
/// handshakes) are interactive, and the client side already batches what it sends.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::egress::policy::{Fallback, PortRange, Rule};

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn allowing(allow: &[&str]) -> Policy {
        let allow: Vec<Rule> = allow.iter().map(|rule| rule.parse().unwrap()).collect();
        Policy::new(allow, Vec::new(), None, Vec::new(), Fallback::Public)
    }

    async fn listener() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    #[tokio::test]
    async fn allowed_address_connects_with_nodelay() {
        let (listener, port) = listener().await;
        let policy = allowing(&["127.0.0.0/8"]);
        let stream = dial(&policy, "127.0.0.1", port, TIMEOUT).await.unwrap();
        assert!(stream.nodelay().unwrap());
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), stream.local_addr().unwrap());
    }

    #[tokio::test]
    async fn default_policy_refuses_loopback() {
        let (_listener, port) = listener().await;
        let refusal = dial(&Policy::default(), "127.0.0.1", port, TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(refusal.failure, Failure::NotAllowed);
        assert_eq!(refusal.reason, "127.0.0.1 is a loopback address");
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let (listener, port) = listener().await;
        drop(listener);
        let refusal = dial(&allowing(&["127.0.0.0/8"]), "127.0.0.1", port, TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(refusal.failure, Failure::Refused, "{refusal}");
        assert!(refusal.reason.starts_with("cannot connect to 127.0.0.1:"));
    }

    #[tokio::test]
    async fn localhost_needs_a_loopback_rule() {
        let (listener, port) = listener().await;
        let refusal = dial(&Policy::default(), "localhost", port, TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(refusal.failure, Failure::NotAllowed, "{refusal}");
        assert!(refusal.reason.contains("loopback"), "{refusal}");

        // Allowing the name does not open loopback: its DNS could point anywhere.
        let refusal = dial(&allowing(&["localhost"]), "localhost", port, TIMEOUT).await;
        assert_eq!(refusal.unwrap_err().failure, Failure::NotAllowed);
        let policy = allowing(&["127.0.0.0/8", "::1"]);
        let stream = dial(&policy, "localhost", port, TIMEOUT).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), stream.local_addr().unwrap());
        let target = resolve_datagram_target(&policy, "localhost", port)
            .await
            .unwrap();
        assert!(target.ip().is_loopback() && target.port() == port);
        let refusal = resolve_datagram_target(&Policy::default(), "localhost", port)
            .await
            .unwrap_err();
        assert_eq!(refusal.failure, Failure::NotAllowed);
    }

    #[tokio::test]
    async fn unknown_name_is_unreachable() {
        let refusal = dial(&Policy::default(), "nonexistent.invalid", 80, TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(refusal.failure, Failure::HostUnreachable, "{refusal}");
        assert!(
            refusal
                .reason
                .starts_with("cannot resolve nonexistent.invalid")
        );
    }

    #[tokio::test]
    async fn a_name_with_control_characters_is_refused_before_any_lookup() {
        let policy = Policy::default();
        for host in ["x\nFAKE LOG", "a\u{1b}[31m", "two words", ""] {
            let refusal = dial(&policy, host, 80, TIMEOUT).await.unwrap_err();
            assert_eq!(refusal.failure, Failure::General, "{host:?}");
            assert!(
                !refusal.reason.contains(host) || host.is_empty(),
                "{refusal}"
            );
            let refusal = resolve_datagram_target(&policy, host, 53)
                .await
                .unwrap_err();
            assert_eq!(refusal.failure, Failure::General, "{host:?}");
        }
    }

    #[tokio::test]
    async fn denied_port_and_name_are_not_allowed() {
        let (_listener, port) = listener().await;
        let deny_ports: Vec<PortRange> = vec![port.to_string().parse().unwrap()];
        let deny: Vec<Rule> = vec!["localhost".parse().unwrap()];
        let policy = Policy::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            deny,
            None,
            deny_ports,
            Fallback::Public,
        );
        let refusal = dial(&policy, "127.0.0.1", port, TIMEOUT).await.unwrap_err();
        assert_eq!(refusal.failure, Failure::NotAllowed);
        assert_eq!(refusal.reason, format!("port {port} is denied"));
        let refusal = resolve_datagram_target(&policy, "LOCALHOST.", 53)
            .await
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::new(
                Failure::NotAllowed,
                "LOCALHOST matches the deny rule localhost"
            )
        );
    }
}
