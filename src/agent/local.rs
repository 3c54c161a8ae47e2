//! The agent's local listeners: its forwards, SOCKS5 and HTTP proxies. All are bound before
//! anything runs (a busy address is a local bind error, named), then each runs the one accept
//! loop (`front::listener::accept_each`) with its connections on the agent's shutdown tracker,
//! so SIGTERM stops accepting and waits for them.

use std::net::SocketAddr;

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::{
    agent::{AgentError, SESSION_WAIT, egress, http_proxy, live::Live, socks5},
    config::agent::plan::{AgentPlan, ForwardPlan, ProxyPlan},
    front::listener::accept_each,
    log_escape::Escaped,
    shutdown::Shutdown,
    wire,
};

/// What a local listener is for.
enum Local {
    Forward(ForwardPlan),
    Socks5(ProxyPlan),
    Http(ProxyPlan),
}

impl Local {
    /// Where it listens.
    fn listen(&self) -> SocketAddr {
        match self {
            Local::Forward(forward) => forward.listen,
            Local::Socks5(plan) | Local::Http(plan) => plan.listen,
        }
    }

    /// What it is, for errors and logs.
    fn what(&self) -> &'static str {
        match self {
            Local::Forward(_) => "forward",
            Local::Socks5(_) => "SOCKS5 proxy",
            Local::Http(_) => "HTTP proxy",
        }
    }
}

/// Binds every local listener of `plan`, then serves each until `shutdown`: the accept loops'
/// tasks, which end (their listeners closed) once shutdown is triggered.
pub(super) async fn start(
    plan: &AgentPlan,
    live: &Live,
    shutdown: &Shutdown,
) -> Result<Vec<JoinHandle<()>>, AgentError> {
    let forwards = plan.forwards.iter().cloned().map(Local::Forward);
    let proxies = [
        plan.socks5.clone().map(Local::Socks5),
        plan.http_proxy.clone().map(Local::Http),
    ];
    let mut bound = Vec::new();
    for local in forwards.chain(proxies.into_iter().flatten()) {
        let addr = local.listen();
        match TcpListener::bind(addr).await {
            Ok(listener) => bound.push((local, listener)),
            Err(source) => {
                let what = local.what();
                return Err(AgentError::LocalBind { addr, what, source });
            }
        }
    }
    let serving = bound
        .into_iter()
        .map(|(local, listener)| serve(local, listener, live.clone(), shutdown.clone()));
    Ok(serving.collect())
}

/// Runs one listener's accept loop in a task of its own.
fn serve(local: Local, listener: TcpListener, live: Live, shutdown: Shutdown) -> JoinHandle<()> {
    match local {
        Local::Forward(forward) => {
            let (tracker, stop) = (shutdown.tracker, shutdown.token);
            let accepting = accept_each(listener, "forward", tracker, stop, move |stream, _| {
                Some(forward_one(stream, forward.clone(), live.clone()))
            });
            tokio::spawn(accepting)
        }
        Local::Socks5(plan) => {
            let egress = announce(&listener, &plan, "SOCKS5", live);
            tokio::spawn(socks5::serve(listener, plan, egress, shutdown))
        }
        Local::Http(plan) => {
            let egress = announce(&listener, &plan, "HTTP", live);
            tokio::spawn(http_proxy::serve(listener, plan, egress, shutdown))
        }
    }
}

/// Logs where a proxy listens and where its connections leave; its egress.
fn announce(listener: &TcpListener, plan: &ProxyPlan, proxy: &str, live: Live) -> egress::Egress {
    let listen = listener.local_addr().unwrap_or(plan.listen);
    if !listen.ip().is_loopback() && plan.credentials.is_none() {
        tracing::warn!(%listen, "the {proxy} proxy takes anyone who reaches it: set a username and password");
    }
    let exit = plan
        .via
        .as_ref()
        .map_or_else(|| "gateway".to_string(), |v| format!("agent {}", v.agent));
    tracing::info!(%listen, %exit, "{proxy} proxy listening");
    egress::Egress {
        live,
        via: plan.via.clone(),
    }
}

/// One local connection to a forward: a stream to the private service (waiting for a
/// gateway session if none is up yet), then bytes both ways.
async fn forward_one(mut local: TcpStream, forward: ForwardPlan, live: Live) {
    let Some(session) = live.wait(SESSION_WAIT).await else {
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
    match crate::session::messages::ask(&mut stream, &header).await {
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
