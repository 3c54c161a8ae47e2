//! `wsgate agent`: dials the gateway's agent endpoint over one WebSocket, registers local
//! services, and serves the streams the gateway opens for visitors by dialling those services.
//! It keeps one session per gateway and reconnects with exponential backoff and jitter.

use std::{sync::Arc, time::Duration};

use http::{HeaderValue, Uri, header};
use tokio::{io::AsyncWriteExt, net::TcpStream, time::timeout};
use yamux::Mode;

use crate::{
    client::{self, DialError},
    config::Secret,
    connector::tls::MaybeTls,
    tunnel::{
        session::{self, OpenedStream, SessionHandle, TunnelStream},
        wire::{self, Control, Expose, Open, Opened, Service, VERSION},
        ws_io::{MAX_MESSAGE_BYTES, WsIo},
    },
};

/// First wait before reconnecting; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest wait between reconnects: a gateway back from a restart is found within this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long dialling the gateway or a local service may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// What an agent runs.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    /// Gateway agent endpoints (`ws://` or `wss://`), one session each.
    pub servers: Vec<Uri>,
    /// The token the gateways accept.
    pub token: Secret,
    /// This agent's name.
    pub name: String,
    /// The services to expose.
    pub services: Vec<LocalService>,
    /// Local ports that reach other agents' private services.
    pub forwards: Vec<ForwardPlan>,
}

/// `--forward LISTEN=SERVICE?secret=S`: connections to a local port reach another agent's
/// private service through the gateway.
#[derive(Debug, Clone)]
pub struct ForwardPlan {
    /// Where the agent listens.
    pub listen: std::net::SocketAddr,
    /// The private service's name.
    pub service: String,
    /// Its secret.
    pub secret: Secret,
}

/// `text` with any `secret=` value hidden, for error messages.
///
/// ```
/// let error = wsgate::agent::parse_forward("nowhere=ssh?secret=hunter2").unwrap_err();
/// assert!(error.contains("secret=<redacted>") && !error.contains("hunter2"));
/// ```
fn redacted(text: &str) -> String {
    match text.split_once("secret=") {
        Some((before, after)) => {
            let rest = after.find('&').map_or("", |at| &after[at..]);
            format!("{before}secret=<redacted>{rest}")
        }
        None => text.to_string(),
    }
}

/// Parses `127.0.0.1:9909=ssh?secret=S`.
///
/// ```
/// let f = wsgate::agent::parse_forward("127.0.0.1:9909=ssh?secret=s3").unwrap();
/// assert_eq!((f.listen.port(), f.service.as_str(), f.secret.expose()), (9909, "ssh", "s3"));
/// ```
pub fn parse_forward(text: &str) -> Result<ForwardPlan, String> {
    let expected = || {
        format!(
            "expected LISTEN=SERVICE?secret=SECRET, found {:?}",
            redacted(text)
        )
    };
    let (listen, rest) = text.split_once('=').ok_or_else(expected)?;
    let (service, secret) = rest.split_once("?secret=").ok_or_else(expected)?;
    Ok(ForwardPlan {
        listen: listen.parse().map_err(|_| expected())?,
        service: service.to_string(),
        secret: Secret::new(secret),
    })
}

/// A service and where the agent dials it.
#[derive(Debug, Clone)]
pub struct LocalService {
    /// As registered.
    pub service: Service,
    /// `host:port` the agent dials for each visitor.
    pub dial: String,
}

/// Why the agent stops for good (a bad token or a refusal does not fix itself by retrying).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The gateway refused the token.
    #[error("{server}: the gateway refused the token (401)")]
    BadToken {
        /// The gateway.
        server: String,
    },
    /// The gateway refused the agent (e.g. protocol version).
    #[error("{server}: the gateway refused this agent: {reason}")]
    Rejected {
        /// The gateway.
        server: String,
        /// Its reason.
        reason: String,
    },
}

/// Parses a service given on the command line: `http://127.0.0.1:8080/?mode=path&value=api`,
/// `tcp://127.0.0.1:5900?mode=domain&value=vnc.example.com`, optionally `&name=NAME`.
///
/// ```
/// let s = wsgate::agent::parse_service("http://127.0.0.1:8080/?mode=path&value=api").unwrap();
/// assert_eq!((s.service.name.as_str(), s.dial.as_str()), ("api", "127.0.0.1:8080"));
/// assert_eq!(s.service.local, "http://127.0.0.1:8080/");
/// ```
pub fn parse_service(text: &str) -> Result<LocalService, String> {
    let shown = redacted(text);
    let (base, query) = text
        .split_once('?')
        .ok_or_else(|| format!("expected URL?mode=path|domain&value=…, found {shown:?}"))?;
    let mut mode = None;
    let mut value = None;
    let mut name = None;
    let mut secret = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("mode", v)) => mode = Some(v.to_string()),
            Some(("value", v)) => value = Some(v.to_string()),
            Some(("name", v)) => name = Some(v.to_string()),
            Some(("secret", v)) => secret = Some(Secret::new(v)),
            _ => return Err(format!("unknown parameter {pair:?} in {shown:?}")),
        }
    }
    let value = value.ok_or_else(|| format!("missing value= in {shown:?}"))?;
    let expose = match mode.as_deref() {
        Some("path") => Expose::Path(format!("/{}", value.trim_start_matches('/'))),
        Some("domain") => Expose::Host(value.clone()),
        Some("port") => Expose::Port(
            value
                .parse()
                .map_err(|_| format!("expected a port number in value= of {shown:?}"))?,
        ),
        Some("private") => Expose::Private(
            secret
                .clone()
                .ok_or_else(|| format!("mode=private needs secret= in {shown:?}"))?,
        ),
        _ => {
            return Err(format!(
                "expected mode=path, mode=domain, mode=port or mode=private in {shown:?}"
            ));
        }
    };
    let dial = local_dial(base)?;
    let name = name.unwrap_or_else(|| value.trim_matches('/').replace('/', "-"));
    Ok(LocalService {
        service: Service {
            name,
            local: base.to_string(),
            expose,
        },
        dial,
    })
}

/// Where the agent dials a service given as `http://host:port/…`, `https://…` or
/// `tcp://host:port`.
pub fn local_dial(local: &str) -> Result<String, String> {
    let (scheme, rest) = local
        .split_once("://")
        .ok_or_else(|| format!("expected http://, https:// or tcp://, found {local:?}"))?;
    let default_port = match scheme {
        "http" | "tcp" => 80,
        "https" => 443,
        _ => {
            return Err(format!(
                "expected an http://, https:// or tcp:// service, found {local:?}"
            ));
        }
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("expected host:port in {local:?}"));
    }
    Ok(if authority.contains(':') || authority.starts_with('[') {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    })
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

/// Keeps a session to one gateway, reconnecting with backoff; returns only a fatal error.
async fn maintain(server: Uri, plan: Arc<AgentPlan>, live: Live) -> AgentError {
    let mut backoff = BACKOFF_START;
    loop {
        let started = tokio::time::Instant::now();
        match session_once(&server, &plan, &live).await {
            Err(Failure::Fatal(error)) => return error,
            Err(Failure::Retry(reason)) => {
                tracing::warn!(%server, %reason, "gateway session failed");
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
async fn session_once(server: &Uri, plan: &AgentPlan, live: &Live) -> Result<(), Failure> {
    let retry = |reason: String| Failure::Retry(reason);
    let ws = connect(server, &plan.token).await?;
    let services = Arc::new(plan.services.clone());
    let (session, _task) = session::spawn(WsIo::new(ws), Mode::Client, move |stream| {
        tokio::spawn(serve_stream(stream, services.clone()));
    });
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
    };
    wire::write_frame(&mut control, &register)
        .await
        .map_err(|e| retry(e.to_string()))?;
    live.add(&session);
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
        tracing::warn!(service = %forward.service, "forward: no gateway session");
        return;
    };
    let Ok(mut stream) = session.open().await else {
        return;
    };
    let header = wire::Forward {
        service: forward.service.clone(),
        secret: forward.secret.clone(),
    };
    if wire::write_frame(&mut stream, &header).await.is_err() {
        return;
    }
    match wire::read_frame::<_, Opened>(&mut stream).await {
        Ok(Some(Opened::Ok)) => {
            let _ = local.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut local,
                &mut stream,
                crate::tunnel::COPY_BYTES,
                crate::tunnel::COPY_BYTES,
            )
            .await;
        }
        Ok(Some(Opened::Error(reason))) => {
            tracing::warn!(service = %forward.service, %reason, "forward refused");
        }
        _ => {}
    }
}

/// Sends a ping every `every` and reads what the gateway says, until the control stream ends
/// or the gateway misses three heartbeats.
async fn heartbeats(control: OpenedStream, every: Duration, server: &Uri) {
    // Frames are read in a task of their own: a read cut short by the ticker in a `select!`
    // would lose the part of a frame already read.
    let (mut reader, mut writer) = tokio::io::split(control);
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(16);
    let reading = tokio::spawn(async move {
        while let Ok(Some(frame)) = wire::read_frame::<_, Control>(&mut reader).await {
            if frames_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let mut ticker = tokio::time::interval(every);
    let mut sent = 0u64;
    let mut answered = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if sent > answered + 3 {
                    tracing::warn!(%server, "gateway stopped answering heartbeats");
                    break;
                }
                sent += 1;
                if wire::write_frame(&mut writer, &Control::Ping(sent)).await.is_err() {
                    break;
                }
            }
            frame = frames.recv() => match frame {
                Some(Control::Pong(n)) => answered = answered.max(n),
                Some(Control::Registered { name, url }) => {
                    tracing::info!(%server, service = %name, %url, "service registered");
                }
                Some(Control::Refused { name, why }) => {
                    tracing::error!(%server, service = %name, %why, "service refused");
                }
                Some(other) => tracing::debug!(message = ?other, "unexpected control message"),
                None => break,
            },
        }
    }
    reading.abort();
}

/// Opens the WebSocket to the gateway, with the token.
async fn connect(
    server: &Uri,
    token: &Secret,
) -> Result<tokio_websockets::WebSocketStream<MaybeTls>, Failure> {
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

/// A stream the gateway opened for a visitor: dial the named service and splice.
async fn serve_stream(mut stream: TunnelStream, services: Arc<Vec<LocalService>>) {
    let Ok(Some(Open { service })) = wire::read_frame::<_, Open>(&mut stream).await else {
        return;
    };
    let Some(local) = services.iter().find(|s| s.service.name == service) else {
        let reason = format!("this agent has no service {service:?}");
        let _ = wire::write_frame(&mut stream, &Opened::Error(reason)).await;
        return;
    };
    let mut target = match timeout(DIAL_TIMEOUT, TcpStream::connect(&local.dial)).await {
        Ok(Ok(target)) => target,
        Ok(Err(error)) => {
            let reason = format!("{}: {error}", local.dial);
            let _ = wire::write_frame(&mut stream, &Opened::Error(reason)).await;
            return;
        }
        Err(_) => {
            let reason = format!("{}: connect timed out", local.dial);
            let _ = wire::write_frame(&mut stream, &Opened::Error(reason)).await;
            return;
        }
    };
    let _ = target.set_nodelay(true);
    if wire::write_frame(&mut stream, &Opened::Ok).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut stream,
        &mut target,
        crate::tunnel::COPY_BYTES,
        crate::tunnel::COPY_BYTES,
    )
    .await;
    let _ = target.shutdown().await;
}
