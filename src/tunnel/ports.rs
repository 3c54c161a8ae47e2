//! `remote_port`: a gateway TCP port, from the range the gateway config allows, whose
//! connections go to an agent's `tcp://` service.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    ops::RangeInclusive,
    sync::{Arc, Mutex},
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    budget::descriptors::Descriptors, connector::AgentConnector, listener::accept_each,
    log_escape::Escaped, shutdown::Shutdown,
};

/// Who a forwarded port belongs to now.
#[derive(Debug, Clone)]
struct Owner {
    /// The agent's session id in the hub.
    id: u64,
    name: String,
    token: usize,
    connector: AgentConnector,
}

/// One listening port.
#[derive(Debug)]
struct Forward {
    owner: Mutex<Owner>,
    stop: CancellationToken,
}

/// The ports agents have opened on the gateway.
#[derive(Debug)]
pub struct Ports {
    bind: IpAddr,
    allowed: Option<RangeInclusive<u16>>,
    open: Mutex<HashMap<u16, Arc<Forward>>>,
    /// The gateway's descriptor budget: visitors on these ports count against it too.
    descriptors: Arc<Descriptors>,
    /// The gateway's shutdown: it closes every port, and waits for the visitors' tasks.
    shutdown: Shutdown,
}

impl Ports {
    /// Ports on `bind`, within `allowed` (none when the config allows none), their visitors
    /// admitted by `descriptors`, closed and drained by `shutdown`.
    pub fn new(
        bind: IpAddr,
        allowed: Option<RangeInclusive<u16>>,
        descriptors: Arc<Descriptors>,
        shutdown: Shutdown,
    ) -> Self {
        Ports {
            bind,
            allowed,
            open: Mutex::new(HashMap::new()),
            descriptors,
            shutdown,
        }
    }

    /// Opens `port` for agent `id`'s service, or hands it over when the same agent (name and
    /// token) held it in an earlier session. Returns the address visitors use.
    pub fn claim(
        &self,
        port: u16,
        id: u64,
        name: &str,
        token: usize,
        connector: AgentConnector,
    ) -> Result<String, String> {
        let Some(allowed) = &self.allowed else {
            return Err("this gateway opens no ports for agents ([agents] remote_ports)".into());
        };
        if !allowed.contains(&port) {
            return Err(format!(
                "port {port} is outside the allowed range {}-{}",
                allowed.start(),
                allowed.end()
            ));
        }
        let addr = SocketAddr::new(self.bind, port);
        let owner = Owner {
            id,
            name: name.to_string(),
            token,
            connector,
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(forward) = open.get(&port) {
            let mut current = forward.owner.lock().unwrap_or_else(|e| e.into_inner());
            if current.name != name || current.token != token {
                return Err(format!("port {port} is held by agent {:?}", current.name));
            }
            if current.id == id && current.connector.service != owner.connector.service {
                let held = &current.connector.service;
                return Err(format!(
                    "port {port} is already this agent's service {held:?}"
                ));
            }
            *current = owner;
            return Ok(format!("tcp://{addr}"));
        }
        let listener = bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let forward = Arc::new(Forward {
            owner: Mutex::new(owner),
            // Released with its agent, or closed at shutdown.
            stop: self.shutdown.token.child_token(),
        });
        let descriptors = self.descriptors.clone();
        let tracker = self.shutdown.tracker.clone();
        tokio::spawn(accept_loop(listener, forward.clone(), descriptors, tracker));
        open.insert(port, forward);
        Ok(format!("tcp://{addr}"))
    }

    /// Closes the ports agent `id` still owns.
    pub fn release(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, forward| {
            let owned = forward.owner.lock().unwrap_or_else(|e| e.into_inner()).id == id;
            if owned {
                forward.stop.cancel();
            }
            !owned
        });
    }
}

/// Binds as the gateway's own listeners do (address reuse: a port an agent had, with
/// connections still in TIME_WAIT, can be opened again when it returns).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    crate::listener::bind(addr)
}

/// Accepts visitors until the port is released or the gateway shuts down; each visitor's
/// splice is a task on the shutdown tracker.
async fn accept_loop(
    listener: TcpListener,
    forward: Arc<Forward>,
    descriptors: Arc<Descriptors>,
    tracker: TaskTracker,
) {
    let stop = forward.stop.clone();
    let port = listener.local_addr().map(|addr| addr.port()).unwrap_or(0);
    accept_each(listener, "remote port", tracker, stop, |visitor, peer| {
        // The reserve is for agents, and a raw TCP visitor can be told nothing: past the
        // visitors' share it is closed at once.
        let slot = descriptors.admit().filter(|slot| !slot.in_reserve())?;
        let connector = forward
            .owner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connector
            .clone();
        Some(async move {
            splice(visitor, peer, connector).await;
            drop(slot);
        })
    })
    .await;
    tracing::info!(port, "remote port closed");
}

/// One visitor: a stream to the agent's service, then bytes both ways with half-close.
async fn splice(mut visitor: TcpStream, peer: SocketAddr, connector: AgentConnector) {
    let _ = visitor.set_nodelay(true);
    crate::connector::keep_alive(&visitor);
    match connector.connect_stream().await {
        Ok(mut upstream) => {
            let copied = upstream.splice(&mut visitor).await;
            let (up, down) = copied.unwrap_or_default();
            tracing::info!(
                target: "wsgate::access",
                route = "remote_port",
                client.addr = %peer,
                upstream.addr = %Escaped(&connector),
                bytes_up = up,
                bytes_down = down,
                "remote port connection closed"
            );
        }
        Err(error) => {
            let error = Escaped(error);
            tracing::warn!(%error, client.addr = %peer, "remote port: agent unreachable");
        }
    }
}
