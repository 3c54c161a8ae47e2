//! `wsgate agent`: dials the gateway's agent endpoint over one WebSocket, registers local
//! services, and serves the streams the gateway opens for visitors by dialling those services.
//! It keeps one session per gateway and reconnects with exponential backoff and jitter.

use std::{sync::Arc, time::Duration};

use http::{HeaderValue, Uri, header};
use tokio::{io::AsyncWriteExt, net::TcpStream, time::timeout};
use yamux::Mode;

mod egress;
// `pub(crate)` only so that `crate::fuzzing` reaches their parsers.
pub(crate) mod http_proxy;
mod plan;
pub(crate) mod socks5;

pub use plan::{
    AgentPlan, Credentials, ExitPlan, ForwardPlan, LocalService, ProxyPlan, local_dial,
    parse_forward, parse_service,
};

use crate::{
    client::{self, DialError},
    config::Secret,
    connector::Stream,
    log_escape::Escaped,
    tunnel::{
        session::{self, OpenedStream, SessionHandle, StreamBudget, TunnelStream},
        wire::{self, Control, Open, Opened, VERSION},
        ws_io::{MAX_MESSAGE_BYTES, WsIo},
    },
};

/// First wait before reconnecting; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest wait between reconnects: a gateway back from a restart is found within this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long dialling the gateway or a local service may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Runs the agent until a gateway refuses it for good.
pub async fn run(plan: AgentPlan) -> AgentError {
    let plan = Arc::new(plan);
    let live = Live::default();
    let mut sessions = tokio::task::JoinSet::new();
    for forward in plan.forwards.clone() {
        match tokio::net::TcpListener::bind(forward.listen).await {
            Ok(listener) => drop(tokio::spawn(serve_forward(listener, forward, live.clone()))),
            Err(error) => {
                return AgentError::Rejected {
                    server: forward.listen.to_string(),
                    reason: format!("cannot listen for the forward: {error}"),
                };
            }
        }
    }
    let proxies = [
        (plan.socks5.clone(), Proxy::Socks5),
        (plan.http_proxy.clone(), Proxy::Http),
    ];
    for (proxy, kind) in proxies {
        if let Some(proxy) = proxy
            && let Err(error) = kind.start(proxy, live.clone()).await
        {
            return error;
        }
    }
    for server in plan.servers.clone() {
        sessions.spawn(maintain(server, plan.clone(), live.clone()));
    }
    match sessions.join_next().await {
        Some(Ok(error)) => error,
        _ => AgentError::Rejected {
            server: "-".into(),
            reason: "the agent's session task ended".into(),
        },
    }
}

/// The local forward proxies an agent can run.
#[derive(Debug, Clone, Copy)]
enum Proxy {
    Socks5,
    Http,
}

impl Proxy {
    /// Listens on the proxy's address and serves it in a task of its own.
    async fn start(self, plan: ProxyPlan, live: Live) -> Result<(), AgentError> {
        let listener = tokio::net::TcpListener::bind(plan.listen).await;
        let listener = listener.map_err(|error| AgentError::Rejected {
            server: plan.listen.to_string(),
            reason: format!("cannot listen for the {self:?} proxy: {error}"),
        })?;
        let egress = egress::Egress {
            live,
            via: plan.via.clone(),
        };
        let listen = listener.local_addr().unwrap_or(plan.listen);
        if !listen.ip().is_loopback() && plan.credentials.is_none() {
            tracing::warn!(%listen, "the {self:?} proxy takes anyone who reaches it: set a username and password");
        }
        let exit = plan
            .via
            .as_ref()
            .map_or_else(|| "gateway".to_string(), |v| format!("agent {}", v.agent));
        match self {
            Proxy::Socks5 => {
                tracing::info!(%listen, %exit, "SOCKS5 proxy listening");
                tokio::spawn(socks5::serve(listener, plan, egress));
            }
            Proxy::Http => {
                tracing::info!(%listen, %exit, "HTTP proxy listening");
                tokio::spawn(http_proxy::serve(listener, plan, egress));
            }
        }
        Ok(())
    }
}

/// Keeps a session to one gateway, reconnecting with backoff; returns only a fatal error.
async fn maintain(server: Uri, plan: Arc<AgentPlan>, live: Live) -> AgentError {
    let mut backoff = BACKOFF_START;
    loop {
        let started = tokio::time::Instant::now();
        match session_once(&server, &plan, &live).await {
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

/// One session: connect, hello, register, then heartbeats until it ends.
async fn session_once(server: &Uri, plan: &Arc<AgentPlan>, live: &Live) -> Result<(), Failure> {
    let retry = |reason: String| Failure::Retry(reason);
    let ws = connect(server, &plan.token).await?;
    let serving = plan.clone();
    let (session, _task) = session::spawn(
        WsIo::new(ws),
        Mode::Client,
        StreamBudget::default(),
        move |stream| {
            tokio::spawn(serve_stream(stream, serving.clone()));
        },
    );
    let mut control = session.open().await.map_err(|e| retry(e.to_string()))?;
    let hello = Control::Hello {
        version: VERSION,
        agent: plan.name.clone(),
    };
    wire::write_frame(&mut control, &hello)
        .await
        .map_err(|e| retry(e.to_string()))?;
    let heartbeat = match wire::read_frame(&mut control).await {
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
    wire::write_frame(&mut control, &register)
        .await
        .map_err(|e| retry(e.to_string()))?;
    live.add(&session);
    tracing::info!(%server, "gateway session up");
    heartbeats(control, heartbeat, server).await;
    session.close().await;
    Ok(())
}

/// The agent's live gateway sessions, for forwards to use.
#[derive(Debug, Clone, Default)]
struct Live(Arc<std::sync::Mutex<Vec<SessionHandle>>>);

impl Live {
    fn add(&self, session: &SessionHandle) {
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|s| !s.is_closed());
        sessions.push(session.clone());
    }

    fn any(&self) -> Option<SessionHandle> {
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.iter().find(|s| !s.is_closed()).cloned()
    }
}

/// Accepts local connections for a forward and joins each to the private service.
async fn serve_forward(listener: tokio::net::TcpListener, forward: ForwardPlan, live: Live) {
    loop {
        let local = match listener.accept().await {
            Ok((local, _)) => local,
            Err(error) => {
                // Out of descriptors, typically: back off instead of spinning.
                tracing::warn!(%error, "forward: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(forward_one(local, forward.clone(), live.clone()));
    }
}

async fn forward_one(mut local: TcpStream, forward: ForwardPlan, live: Live) {
    let Some(session) = live.any() else {
        let service = Escaped(&forward.service);
        tracing::warn!(%service, "forward: no gateway session");
        return;
    };
    let Ok(mut stream) = session.open().await else {
        return;
    };
    let header = wire::Request::Forward(wire::Forward {
        service: forward.service.clone(),
        secret: forward.secret.clone(),
    });
    match wire::ask(&mut stream, &header).await {
        Ok(()) => {
            let _ = local.set_nodelay(true);
            let _ = stream.splice(&mut local).await;
        }
        Err((_, reason)) => {
            let (service, reason) = (Escaped(&forward.service), Escaped(&reason));
            tracing::warn!(%service, %reason, "forward refused");
        }
    }
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
        while let Ok(Some(frame)) = wire::read_frame::<_, Control>(&mut reader).await {
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
                    if wire::write_frame(&mut writer, &Control::Ping(sent)).await.is_err() {
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
    match wire::read_frame::<_, Open>(&mut stream).await {
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
        let _ = wire::write_frame(&mut stream, &Opened::general(reason)).await;
        return;
    };
    let mut target = match timeout(DIAL_TIMEOUT, TcpStream::connect(&local.dial)).await {
        Ok(Ok(target)) => target,
        Ok(Err(error)) => {
            let reason = format!("{}: {error}", local.dial);
            let _ = wire::write_frame(&mut stream, &Opened::general(reason)).await;
            return;
        }
        Err(_) => {
            let reason = format!("{}: connect timed out", local.dial);
            let _ = wire::write_frame(&mut stream, &Opened::general(reason)).await;
            return;
        }
    };
    let _ = target.set_nodelay(true);
    if wire::write_frame(&mut stream, &Opened::Ok).await.is_err() {
        return;
    }
    let _ = stream.splice(&mut target).await;
    let _ = target.shutdown().await;
}
