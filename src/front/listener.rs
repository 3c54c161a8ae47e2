//! Listeners: bind, THE accept loop every listener runs (gateway, remote ports, the agent's
//! proxies and forwards), and the gateway's task per connection that runs the TLS and HTTP
//! handshakes under a timeout.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Socket, Type};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    budget::descriptors::Slot,
    connector::{ClientAddrs, keep_alive},
    front::service::Service,
    io::closing::Closing,
    shutdown::Shutdown,
};

/// A TLS handshake or request head slower than this is dropped: long enough for a slow mobile
/// link, short enough that idle half-open sockets cannot pile up (slowloris).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The same for a connection admitted into the descriptor reserve: it holds a slot kept for
/// agents, and an agent's upgrade request comes at once.
const RESERVE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause after an accept error (EMFILE and the like) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// TLS on a listener.
#[derive(Clone)]
pub struct TlsMode {
    /// The rustls acceptor.
    pub acceptor: TlsAcceptor,
    /// Also accept plain HTTP, told apart by the first byte (websockify without `--ssl-only`).
    pub allow_plain: bool,
}

/// Binds a listener. IPv6 sockets are v6-only so `0.0.0.0:P` and `[::]:P` can both be bound.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // 1024: the usual somaxconn; bursts of browser reconnects must not be refused.
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// The one accept loop: accepts on `listener` until `stop` is cancelled, hands each connection
/// to `serve`, and runs the future it returns as a task on `tracker`, so shutdown can wait for
/// it. `serve` returns `None` to close a connection at once (over a budget, say). An accept
/// error (EMFILE and the like) pauses the loop instead of letting it spin; `name` says which
/// listener in the log. Returning drops the listener: its port refuses from then on.
pub(crate) async fn accept_each<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    tracker: TaskTracker,
    stop: CancellationToken,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Option<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Some(task) = serve(stream, peer) {
                    tracker.spawn(task);
                }
            }
            Err(error) => {
                tracing::warn!(%error, listener = name, "accept failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// The gateway's listeners: [`accept_each`] until `stop` (a child of the shutdown token, so
/// it ends the loop without touching open connections); each connection that gets a
/// descriptor slot is served in its own tracked task.
pub async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    tls: Option<TlsMode>,
    shutdown: Shutdown,
    stop: CancellationToken,
) {
    let tracker = shutdown.tracker.clone();
    accept_each(listener, "gateway", tracker, stop, move |stream, peer| {
        // Without a slot the connection is dropped: the descriptor comes back at once.
        let slot = service.budgets.descriptors.admit()?;
        let span = tracing::info_span!("conn", client.addr = %peer);
        let task = serve_connection(
            stream,
            peer,
            service.clone(),
            tls.clone(),
            shutdown.clone(),
            Arc::new(slot),
        );
        Some(task.instrument(span))
    })
    .await;
}

/// One client connection: optional TLS, then HTTP/1.1 with upgrades.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: Arc<Service>,
    tls: Option<TlsMode>,
    shutdown: Shutdown,
    slot: Arc<Slot>,
) {
    let _ = stream.set_nodelay(true);
    keep_alive(&stream);
    let stream = Closing::new(stream, peer);
    let Ok(local) = stream.get_ref().local_addr() else {
        return;
    };
    let mut client = ClientAddrs {
        peer,
        local,
        tls: false,
    };
    let Some(tls) = tls else {
        return serve_http(stream, client, service, shutdown, slot).await;
    };
    if tls.allow_plain && !starts_with_tls(stream.get_ref(), handshake_timeout(&slot)).await {
        return serve_http(stream, client, service, shutdown, slot).await;
    }
    client.tls = true;
    let limit = handshake_timeout(&slot);
    match tokio::time::timeout(limit, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(stream, client, service, shutdown, slot).await,
        Ok(Err(error)) => tracing::debug!(%error, "tls handshake failed"),
        Err(_) => tracing::debug!("tls handshake timed out"),
    }
}

/// How long the connection's TLS handshake and each request head may take.
fn handshake_timeout(slot: &Slot) -> Duration {
    if slot.in_reserve() {
        RESERVE_HANDSHAKE_TIMEOUT
    } else {
        HANDSHAKE_TIMEOUT
    }
}

/// Whether the first byte is a TLS handshake record (0x16), waiting at most `limit` for it.
async fn starts_with_tls(stream: &TcpStream, limit: Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0x16
    )
}

/// HTTP/1.1 on an established (maybe TLS) stream, until it ends or shutdown stops keep-alive.
/// Every request carries the connection's descriptor slot, so an upgrade keeps it.
async fn serve_http<I>(
    io: I,
    client: ClientAddrs,
    service: Arc<Service>,
    shutdown: Shutdown,
    slot: Arc<Slot>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = handshake_timeout(&slot);
    let handler = service_fn(move |req| {
        service
            .clone()
            .handle(client, req, slot.clone())
            .in_current_span()
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), handler)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.token.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "http connection ended with an error");
    }
}
