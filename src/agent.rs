//! `wsgate agent`: dials the gateway's agent endpoint over one WebSocket, registers local
//! services, and serves the streams the gateway opens for visitors by dialling those services.
//! It keeps one session per gateway and reconnects with exponential backoff and jitter. On
//! shutdown it stops accepting and drains its open streams, bounded by a grace period.

use std::{sync::Arc, time::Duration};

use http::{HeaderValue, Uri, header};
use tokio::{io::AsyncWriteExt, net::TcpStream, time::timeout};
use tokio_util::task::TaskTracker;
use yamux::Mode;

mod egress;
// `pub(crate)` only so that `crate::fuzzing` reaches their parsers.
pub(crate) mod http_proxy;
mod live;
mod local;
pub(crate) mod socks5;

use live::Live;

use crate::{
    client::{self, DialError},
    config::agent::plan::AgentPlan,
    connector::Stream,
    io::ws::{MAX_MESSAGE_BYTES, WsIo},
    log_escape::Escaped,
    secret::Secret,
    session::{self, OpenedStream, StreamBudget, TunnelStream},
    shutdown::Shutdown,
    wire::{Control, Open, Opened, VERSION},
};

/// First wait before reconnecting; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest wait between reconnects: a gateway back from a restart is found within this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long dialling the gateway or a local service may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a local request (forward, SOCKS5, HTTP proxy) waits for a gateway session when
/// none is up: as long as a dial may take, so a reconnect in progress can finish.
const SESSION_WAIT: Duration = DIAL_TIMEOUT;

/// Why the agent stops for good (a bad token or a refusal does not fix itself by retrying).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The gateway refused the token.
    #[error("{server}: the gateway refused the token (401)")]
    BadToken {
        /// The gateway.
        server: String,
    },
    /// The gateway refused the agent (e.g. protocol version). The reason is the gateway's
    /// text: shown escaped.
    #[error("{server}: the gateway refused this agent: {}", Escaped(.reason))]
    Rejected {
        /// The gateway.
        server: String,
        /// Its reason.
        reason: String,
    },
    /// A local listen address (a forward's or a proxy's) cannot be bound: nothing to do with
    /// the gateway.
    #[error("cannot listen on {addr} for the agent's {what}: {source}")]
    LocalBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What listens there: `forward`, `SOCKS5 proxy`, `HTTP proxy`.
        what: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until a gateway refuses it for good (the error) or `shutdown` is
/// triggered: then the local listeners close, and open streams get up to `grace` to finish
/// while the gateway sessions stay up to carry them.
pub async fn run(plan: AgentPlan, shutdown: &Shutdown, grace: Duration) -> Result<(), AgentError> {
    let plan = Arc::new(plan);
    let live = Live::default();
    let listeners = local::start(&plan, &live, shutdown).await?;
    let mut sessions = tokio::task::JoinSet::new();
    for server in plan.servers.clone() {
        let tracker = shutdown.tracker.clone();
        sessions.spawn(maintain(server, plan.clone(), live.clone(), tracker));
    }
    tokio::select! {
        ended = sessions.join_next() => return Err(match ended {
            Some(Ok(error)) => error,
            _ => AgentError::Rejected {
                server: "-".into(),
                reason: "the agent's session task ended".into(),
            },
        }),
        () = shutdown.token.cancelled() => {}
    }
    // The accept loops end at once on the signal: past them, the local ports refuse.
    for listener in listeners {
        let _ = listener.await;
    }
    // The gateway sessions stay up while streams drain, so a visitor's stream the gateway
    // opens meanwhile is still served (and tracked): the grace period bounds those too.
    let open = shutdown.tracker.len();
    tracing::info!(grace = ?grace, open, "shutdown started: draining open streams");
    if shutdown.drain(grace).await {
        tracing::info!("shutdown finished");
    } else {
        let open = shutdown.tracker.len();
        tracing::warn!(open, "grace period over: closing the remaining streams");
    }
    Ok(())
}

/// Keeps a session to one gateway, reconnecting with backoff; returns only a fatal error.
async fn maintain(
    server: Uri,
    plan: Arc<AgentPlan>,
    live: Live,
    tracker: TaskTracker,
) -> AgentError {
    let mut backoff = BACKOFF_START;
    loop {
        let started = tokio::time::Instant::now();
        match session_once(&server, &plan, &live, &tracker).await {
            Err(Failure::Fatal(error)) => return error,
            Err(Failure::Retry(reason)) => {
                tracing::warn!(%server, reason = %Escaped(&reason), "gateway session failed");
            }
            Ok(()) => tracing::warn!(%server, "gateway session ended"),
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_START; // it had been up a while: a fresh failure
        }
        let wait = jitter(backoff);
        tracing::info!(%server, wait = ?wait, "reconnecting");
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `base` ± 20 %, so agents that lost the same gateway do not all return at once.
fn jitter(base: Duration) -> Duration {
    let spread = fastrand::f64() * 0.4 + 0.8;
    base.mul_f64(spread)
}

enum Failure {
    Fatal(AgentError),
    Retry(String),
}

/// One session: connect, hello, register, then heartbeats until it ends. The streams the
/// gateway opens are served on `tracker`, so shutdown waits for them too.
async fn session_once(
    server: &Uri,
    plan: &Arc<AgentPlan>,
    live: &Live,
    tracker: &TaskTracker,
) -> Result<(), Failure> {
    let retry = |reason: String| Failure::Retry(reason);
    let ws = connect(server, &plan.token).await?;
    let (serving, tracker) = (plan.clone(), tracker.clone());
    let (session, _task) = session::spawn(
        WsIo::new(ws),
        Mode::Client,
        StreamBudget::default(),
        move |stream| {
            tracker.spawn(serve_stream(stream, serving.clone()));
        },
    );
    let mut control = session.open().await.map_err(|e| retry(e.to_string()))?;
    let hello = Control::Hello {
        version: VERSION,
        agent: plan.name.clone(),
    };
    crate::session::messages::write_frame(&mut control, &hello)
        .await
        .map_err(|e| retry(e.to_string()))?;
    let heartbeat = match crate::session::messages::read_frame(&mut control).await {
        Ok(Some(Control::Welcome { heartbeat_secs, .. })) => {
            Duration::from_secs(heartbeat_secs.clamp(1, 3600))
        }
        Ok(Some(Control::Rejected { reason })) => {
            return Err(Failure::Fatal(AgentError::Rejected {
                server: server.to_string(),
                reason,
            }));
        }
        other => return Err(retry(format!("expected a welcome, got {other:?}"))),
    };
    let register = Control::Register {
        services: plan.services.iter().map(|s| s.service.clone()).collect(),
        egress: plan.exit.as_ref().map(|exit| exit.secret.clone()),
    };
    crate::session::messages::write_frame(&mut control, &register)
        .await
        .map_err(|e| retry(e.to_string()))?;
    live.add(&session);
    tracing::info!(%server, "gateway session up");
    heartbeats(control, heartbeat, server).await;
    session.close().await;
    Ok(())
}

/// Sends a ping every `every` and reads what the gateway says, until the control stream ends
/// or the gateway misses three heartbeats.
async fn heartbeats(control: OpenedStream, every: Duration, server: &Uri) {
    // Frames are read by a future of their own, beside the ticker's (a read cut short by the
    // ticker in a `select!` would lose the part of a frame already read), in this one task:
    // a tunnel stream's reader and writer stay in one task (see `egress::association`).
    let (mut reader, mut writer) = tokio::io::split(control);
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(16);
    let reading = async move {
        while let Ok(Some(frame)) =
            crate::session::messages::read_frame::<_, Control>(&mut reader).await
        {
            if frames_tx.send(frame).await.is_err() {
                break;
            }
        }
        // The talking side ends once it has taken every frame read.
        drop(frames_tx);
        std::future::pending::<()>().await
    };
    let talking = async {
        let mut ticker = tokio::time::interval(every);
        let (mut sent, mut answered) = (0u64, 0u64);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if sent > answered + 3 {
                        tracing::warn!(%server, "gateway stopped answering heartbeats");
                        return;
                    }
                    sent += 1;
                    if crate::session::messages::write_frame(&mut writer, &Control::Ping(sent)).await.is_err() {
                        return;
                    }
                }
                frame = frames.recv() => match frame {
                    Some(Control::Pong(n)) => answered = answered.max(n),
                    Some(other) => log_control(server, other),
                    None => return,
                },
            }
        }
    };
    tokio::select! {
        () = reading => {}
        () = talking => {}
    }
}

/// Logs what the gateway says on the control stream besides pongs.
fn log_control(server: &Uri, message: Control) {
    match message {
        Control::Registered { name, url } => {
            let (service, url) = (Escaped(&name), Escaped(&url));
            tracing::info!(%server, %service, %url, "service registered");
        }
        Control::Refused { name, why } => {
            let (service, why) = (Escaped(&name), Escaped(&why));
            tracing::error!(%server, %service, %why, "service refused");
        }
        other => tracing::debug!(message = ?other, "unexpected control message"),
    }
}

/// Opens the WebSocket to the gateway, with the token.
async fn connect(
    server: &Uri,
    token: &Secret,
) -> Result<tokio_websockets::WebSocketStream<Stream>, Failure> {
    let bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| Failure::Retry("the token is not a valid header value".into()))?;
    let headers = [(header::AUTHORIZATION, bearer)];
    match client::connect(server, &headers, None, 2 * MAX_MESSAGE_BYTES).await {
        Ok(ws) => Ok(ws),
        Err(DialError::Refused { status: 401, .. }) => Err(Failure::Fatal(AgentError::BadToken {
            server: server.to_string(),
        })),
        Err(error) => Err(Failure::Retry(error.to_string())),
    }
}

/// A stream the gateway opened: for a visitor of a service, or for another agent's `via`.
async fn serve_stream(mut stream: TunnelStream, plan: Arc<AgentPlan>) {
    match crate::session::messages::read_frame::<_, Open>(&mut stream).await {
        Ok(Some(Open::Service(service))) => serve_service(stream, &plan, &service).await,
        Ok(Some(Open::Connect { host, port, agent })) => {
            egress::exit_connect(stream, &plan, &host, port, &agent).await;
        }
        Ok(Some(Open::Datagrams { agent })) => egress::exit_datagrams(stream, &plan, &agent).await,
        _ => {}
    }
}

/// A visitor of service `service`: dial it and splice.
async fn serve_service(mut stream: TunnelStream, plan: &AgentPlan, service: &str) {
    let Some(local) = plan.services.iter().find(|s| s.service.name == service) else {
        let reason = format!("this agent has no service {service:?}");
        let _ = crate::session::messages::write_frame(&mut stream, &Opened::general(reason)).await;
        return;
    };
    let mut target = match timeout(DIAL_TIMEOUT, TcpStream::connect(&local.dial)).await {
        Ok(Ok(target)) => target,
        Ok(Err(error)) => {
            let reason = format!("{}: {error}", local.dial);
            let _ =
                crate::session::messages::write_frame(&mut stream, &Opened::general(reason)).await;
            return;
        }
        Err(_) => {
            let reason = format!("{}: connect timed out", local.dial);
            let _ =
                crate::session::messages::write_frame(&mut stream, &Opened::general(reason)).await;
            return;
        }
    };
    let _ = target.set_nodelay(true);
    if crate::session::messages::write_frame(&mut stream, &Opened::Ok)
        .await
        .is_err()
    {
        return;
    }
    let _ = stream.splice(&mut target).await;
    let _ = target.shutdown().await;
}
