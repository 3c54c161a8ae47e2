//! The gateway's side of the tunnel: the agent endpoint (token check, upgrade, one multiplexed
//! session per agent), the control conversation and forwards between agents. A registration's
//! claims are decided by the registry (`claims`); what is granted goes to the gateway as
//! events (`tunnel::events`), which makes routes and ports of it.

mod claims;
mod egress;

use claims::Claimant;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::timeout;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tokio_websockets::{Limits, ServerBuilder};
use yamux::Mode;

use crate::{
    body::{Body, refused, refused_because},
    budget::{Budget, descriptors::Slot},
    config::AgentSettings,
    handshake,
    log_escape::Escaped,
    refusal::Refusal,
};
use crate::{
    io::ws::{MAX_MESSAGE_BYTES, WsIo},
    session::{
        self, SessionHandle, StreamBudget, StreamCharge, TunnelStream, WINDOW_HEADROOM_BYTES,
    },
    tunnel::{
        events::{AGENT_CONNECT_TIMEOUT, Gone, ServiceSink},
        registry::Registry,
    },
    wire::{self, Control, VERSION, names},
};

/// How long a new agent may take to open its control stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The connected agents.
#[derive(Debug)]
pub struct AgentHub {
    settings: AgentSettings,
    /// Who holds which route, port and private service.
    registry: Arc<dyn Registry>,
    /// Where granted services and ended sessions are told: the gateway.
    sink: Arc<dyn ServiceSink>,
    agents: Mutex<HashMap<u64, Agent>>,
    next_id: AtomicU64,
    /// What sessions and their streams may hold, per token and in all.
    budgets: TunnelBudgets,
}

/// The tunnel's share of the gateway's `[limits]`.
#[derive(Debug)]
struct TunnelBudgets {
    /// Every session's streams, together.
    process: Arc<Budget>,
    /// Each token's sessions' streams (same index as the tokens).
    per_token: Vec<Arc<Budget>>,
    /// Sessions open now per token (same index).
    sessions: Vec<Arc<AtomicUsize>>,
    /// The most sessions a token may hold.
    sessions_per_token: usize,
    /// A session whose peer grants no credit this long, while writes wait, is ended.
    credit_timeout: Duration,
}

/// One session's hold on its token's session count; given back on drop.
struct SessionCount(Arc<AtomicUsize>);

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One connected agent.
#[derive(Debug)]
struct Agent {
    name: String,
    session: SessionHandle,
    /// The secret that lets other agents connect out from this agent's network (`via`).
    egress: Option<crate::secret::Secret>,
}

/// Why an agent was turned away at its hello, and the name it gave, for the log.
struct Refused {
    reason: String,
    agent: Option<String>,
}

impl From<String> for Refused {
    fn from(reason: String) -> Self {
        Refused {
            reason,
            agent: None,
        }
    }
}

impl AgentHub {
    /// A hub whose claims `registry` decides and whose granted services go to `sink`, its
    /// sessions within `limits` and the process's `tunnel` budget.
    pub fn new(
        settings: AgentSettings,
        registry: Arc<dyn Registry>,
        sink: Arc<dyn ServiceSink>,
        limits: &crate::budget::Limits,
        tunnel: Arc<Budget>,
    ) -> Self {
        let tokens = settings.tokens.len();
        let budgets = TunnelBudgets {
            process: tunnel,
            per_token: (0..tokens)
                .map(|_| Budget::new("token tunnel memory", limits.tunnel_memory_per_token))
                .collect(),
            sessions: (0..tokens).map(|_| Arc::default()).collect(),
            sessions_per_token: limits.sessions_per_token,
            credit_timeout: limits.credit_timeout,
        };
        AgentHub {
            settings,
            registry,
            sink,
            agents: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            budgets,
        }
    }

    /// The endpoint's path.
    pub fn path(&self) -> &str {
        &self.settings.path
    }

    /// Answers an agent's handshake: 401 for an unknown token, else the 101, and the session
    /// runs on the tracker until the agent leaves.
    pub fn handle(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
        slot: Arc<Slot>,
    ) -> Response<Body> {
        let Some(token) = self.token_index(&req) else {
            let mut response = refused(Refusal::AgentTokenUnknown);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        };
        let handshake = match handshake::check(&req) {
            Ok(handshake) => handshake,
            Err(error) => return error.response(),
        };
        let budget = StreamBudget::new(vec![
            self.budgets.per_token[token].clone(),
            self.budgets.process.clone(),
        ])
        .with_credit_timeout(self.budgets.credit_timeout);
        let admitted = match self.admit(token, &budget) {
            Ok(admitted) => admitted,
            Err(refusal) => return *refusal,
        };
        let reached_by = reached_by(&req);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let hub = self.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _held = (admitted, slot);
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    hub.run_agent(io, token, budget, reached_by, shutdown).await;
                }
                Err(error) => tracing::debug!(%error, "agent upgrade failed"),
            }
        });
        handshake.switching_protocols(None)
    }

    /// Counts a new session against its token's cap and charges its window headroom; the
    /// refusal (429 or 503) when either is full.
    fn admit(
        &self,
        token: usize,
        budget: &StreamBudget,
    ) -> Result<(SessionCount, StreamCharge), Box<Response<Body>>> {
        let sessions = &self.budgets.sessions[token];
        let cap = self.budgets.sessions_per_token;
        if sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_err()
        {
            tracing::info!(
                token,
                cap,
                "agent refused: its token holds the most sessions"
            );
            let reason = format!("this token already holds {cap} agent sessions");
            return Err(Box::new(refused_because(
                Refusal::AgentSessionsFull,
                reason,
            )));
        }
        let Some(headroom) = budget.charge(WINDOW_HEADROOM_BYTES) else {
            sessions.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(token, "agent refused: the tunnel memory budget is full");
            return Err(Box::new(refused(Refusal::TunnelBudgetFull)));
        };
        Ok((SessionCount(sessions.clone()), headroom))
    }

    /// The index of the configured token the request presents (`Authorization: Bearer`),
    /// compared exactly: no space before or after the token is taken off. (Trailing spaces
    /// and tabs never reach here: the HTTP parser drops them, as RFC 9110 §5.5 says.)
    fn token_index<B>(&self, req: &Request<B>) -> Option<usize> {
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        self.settings
            .tokens
            .iter()
            .position(|token| token.matches(offered))
    }

    /// One agent's session from its upgrade to its end; its routes leave with it.
    /// `reached_by` is the host its upgrade named: a name the gateway is reached by.
    async fn run_agent<S>(
        self: Arc<Self>,
        io: S,
        token: usize,
        budget: StreamBudget,
        reached_by: Option<String>,
        shutdown: CancellationToken,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let limits = Limits::default().max_payload_len(Some(2 * MAX_MESSAGE_BYTES));
        let ws = ServerBuilder::new().limits(limits).serve(io);
        let (first, control) = tokio::sync::oneshot::channel();
        let mut first = Some(first);
        let hub = self.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (session, task) = session::spawn(WsIo::new(ws), Mode::Server, budget, move |stream| {
            // The first stream is the control stream; later ones say what they are for.
            match first.take() {
                Some(first) => drop(first.send(stream.into_control())),
                None => drop(tokio::spawn(hub.clone().serve_request(stream, id, token))),
            }
        });
        match timeout(HELLO_TIMEOUT, control).await {
            Ok(Ok(control)) => tokio::select! {
                () = self.converse(id, token, reached_by, control, session.clone()) => {}
                // A peer that takes streams and never grants credit pins their buffers (and
                // the other side's): past the timeout its session ends and frees them.
                () = session.credit().starved() => tracing::info!(
                    timeout = ?self.budgets.credit_timeout,
                    "agent granted no window credit and sent nothing while writes waited: session ended"
                ),
                // Gateway shutdown ends agent sessions at once: agents reconnect elsewhere
                // (or here, once the gateway is back) instead of holding the drain.
                () = shutdown.cancelled() => tracing::info!("agent session closed for shutdown"),
            },
            _ => tracing::info!("agent opened no control stream in time"),
        }
        session.close().await;
        // A peer that stops reading would keep the close pending forever: past a bound the
        // session's task is stopped, which drops the connection and ends every stream.
        let abort = task.abort_handle();
        if timeout(Duration::from_secs(5), task).await.is_err() {
            abort.abort();
        }
        // The routes stay for one heartbeat timeout: visitors meanwhile get 502 (the agent is
        // away, not unknown), and the agent reconnecting takes them straight back. Untracked:
        // shutdown does not wait for it.
        let delay = self.settings.heartbeat_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            self.remove(id).await;
        });
    }

    /// Sessions held now by the token at `index`.
    pub fn sessions_of(&self, index: usize) -> usize {
        self.budgets.sessions[index].load(Ordering::Acquire)
    }

    /// The control conversation: hello, registrations, heartbeats. Returns when the agent
    /// leaves or falls silent.
    async fn converse(
        &self,
        id: u64,
        token: usize,
        reached_by: Option<String>,
        mut control: TunnelStream,
        session: SessionHandle,
    ) {
        let name = match self.hello(&mut control).await {
            Ok(name) => name,
            Err(Refused { reason, agent }) => {
                let agent = agent
                    .as_deref()
                    .map(|a| tracing::field::display(Escaped(a)));
                tracing::info!(agent, reason = %Escaped(&reason), "agent refused");
                let _ = crate::session::messages::write_frame(
                    &mut control,
                    &Control::Rejected { reason },
                )
                .await;
                return;
            }
        };
        let shown = Escaped(name.as_str());
        tracing::info!(agent = %shown, "agent connected");
        let claimant = Claimant {
            id,
            token,
            agent: &name,
            session: &session,
            reached_by: reached_by.as_deref(),
        };
        loop {
            let frame = timeout(
                self.settings.heartbeat_timeout,
                crate::session::messages::read_frame(&mut control),
            )
            .await;
            let reply = match frame {
                Err(_) => {
                    tracing::info!(agent = %shown, "agent silent past the heartbeat timeout: dropped");
                    return;
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    tracing::info!(agent = %shown, "agent left");
                    return;
                }
                Ok(Ok(Some(Control::Ping(n)))) => vec![Control::Pong(n)],
                Ok(Ok(Some(Control::Register { services, egress }))) => {
                    self.register(&claimant, services, egress).await
                }
                Ok(Ok(Some(other))) => {
                    // What a hostile agent sent, up to a 64 KiB frame: escaped and cut short.
                    let control = Escaped(format_args!("{other:?}"));
                    tracing::info!(agent = %shown, %control, "unexpected control message");
                    return;
                }
            };
            for message in reply {
                // The control stream is outside the credit watch: an agent that stops reading
                // it is dropped after a heartbeat timeout, as one that stops writing is.
                let write = crate::session::messages::write_frame(&mut control, &message);
                if !matches!(
                    timeout(self.settings.heartbeat_timeout, write).await,
                    Ok(Ok(()))
                ) {
                    tracing::info!(agent = %Escaped(&name), "agent stopped reading its control stream");
                    return;
                }
            }
        }
    }

    /// Reads the hello; the agent's name, or why it is refused. The name is checked before
    /// the welcome: an agent told no must hear it as its first answer.
    async fn hello(&self, control: &mut TunnelStream) -> Result<String, Refused> {
        match timeout(HELLO_TIMEOUT, crate::session::messages::read_frame(control)).await {
            Ok(Ok(Some(Control::Hello { version, agent }))) if version == VERSION => {
                if let Err(reason) = names::check("agent", &agent) {
                    return Err(Refused {
                        reason,
                        agent: Some(agent),
                    });
                }
                let welcome = Control::Welcome {
                    version: VERSION,
                    heartbeat_secs: (self.settings.heartbeat_timeout.as_secs() / 3).max(1),
                };
                crate::session::messages::write_frame(control, &welcome)
                    .await
                    .map_err(|e| Refused::from(e.to_string()))?;
                Ok(agent)
            }
            Ok(Ok(Some(Control::Hello { version, agent }))) => Err(Refused {
                reason: format!(
                    "protocol version {version} is not supported: this gateway speaks version {VERSION}"
                ),
                agent: Some(agent),
            }),
            _ => Err(Refused::from("expected a hello".to_string())),
        }
    }

    /// A stream agent `id` (holding token `token`) opened: a forward to another agent's
    /// private service, or a connection out.
    async fn serve_request(self: Arc<Self>, mut stream: TunnelStream, id: u64, token: usize) {
        let request = timeout(
            HELLO_TIMEOUT,
            crate::session::messages::read_frame::<_, wire::Request>(&mut stream),
        )
        .await;
        match request {
            Ok(Ok(Some(wire::Request::Forward(forward)))) => self.forward(stream, forward).await,
            Ok(Ok(Some(wire::Request::Connect(connect)))) => {
                self.connect_out(stream, id, token, connect).await;
            }
            Ok(Ok(Some(wire::Request::Datagrams(datagrams)))) => {
                self.datagrams_out(stream, id, token, datagrams).await;
            }
            Ok(Err(error)) => {
                tracing::info!(error = %Escaped(&error), "agent stream: bad request");
            }
            Ok(Ok(None)) | Err(_) => {}
        }
    }

    /// A stream an agent opened to another agent's private service: check the secret, open a
    /// stream to the owner, and join the two.
    async fn forward(&self, mut stream: TunnelStream, forward: wire::Forward) {
        let wire::Forward { service, secret } = forward;
        let holder = self
            .registry
            .lookup_private(&service, secret.expose())
            .await;
        let session = holder.ok().flatten().and_then(|holder| {
            let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
            let agent = agents.get(&holder.session)?;
            Some((agent.name.clone(), agent.session.clone()))
        });
        let Some((agent, session)) = session else {
            let reason = format!("no private service {service:?} with that secret");
            let _ =
                crate::session::messages::write_frame(&mut stream, &wire::Opened::general(reason))
                    .await;
            return;
        };
        match open_service(&session, &agent, &service).await {
            Ok(mut target) => {
                if crate::session::messages::write_frame(&mut stream, &wire::Opened::Ok)
                    .await
                    .is_ok()
                {
                    let _ = crate::io::splice(&mut stream, &mut target).await;
                }
            }
            Err(reason) => {
                let _ = crate::session::messages::write_frame(
                    &mut stream,
                    &wire::Opened::general(reason),
                )
                .await;
            }
        }
    }

    /// Forgets agent `id`: its claims are released and its routes and ports go (new visitors
    /// then get 404, or the configured route); only its ports when it was taken over meanwhile.
    async fn remove(&self, id: u64) {
        if let Err(error) = self.registry.release(id, None).await {
            tracing::warn!(%error, "agent's claims not released");
        }
        self.sink.gone(id, Gone::Ended);
        let removed = self
            .agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(agent) = removed {
            let name = Escaped(agent.name.as_str());
            tracing::info!(agent = %name, "agent's routes removed");
        }
    }
}

/// Opens a stream to `agent`'s service `service` on its session, once the agent says it has
/// reached it; why not, as the asking agent is told.
async fn open_service(
    session: &SessionHandle,
    agent: &str,
    service: &str,
) -> Result<session::OpenedStream, String> {
    let target = format!("agent:{agent}/{service}");
    let open = async {
        let mut stream = session.open().await.map_err(|e| match e {
            session::OpenError::Budget => format!("{target}: {e}"),
            session::OpenError::Session(e) => format!("{target}: agent session: {e}"),
        })?;
        let open = wire::Open::Service(service.to_string());
        crate::session::messages::ask(&mut stream, &open)
            .await
            .map_err(|(_, reason)| format!("{target}: {reason}"))?;
        Ok(stream)
    };
    match timeout(AGENT_CONNECT_TIMEOUT, open).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "connect {target}: timed out after {AGENT_CONNECT_TIMEOUT:?}"
        )),
    }
}

/// The host an agent's upgrade named, canonical: a name the gateway is reached by, which no
/// agent may claim. (The request was made canonical before routing: an absolute URI's
/// authority is in `Host` by now.)
fn reached_by<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(crate::matching::claim_rules::reached_host)
}
