//! `remote_port`: a gateway TCP port whose connections go to an agent's `tcp://` service. The
//! registry decides who may hold which port; this opens the listeners for the ports granted,
//! hands one over when the same agent's new session takes it, and closes them when released.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    budget::descriptors::Descriptors, connector::AgentConnector, front::listener::accept_each,
    log_escape::Escaped, refusal::Refusal, shutdown::Shutdown, tunnel::events::SinkError,
};

/// Who a forwarded port belongs to now.
#[derive(Debug, Clone)]
struct Owner {
    /// The agent's session id in the hub.
    id: u64,
    connector: AgentConnector,
}

/// One listening port.
#[derive(Debug)]
struct Forward {
    owner: Mutex<Owner>,
    stop: CancellationToken,
}

/// The ports agents hold on the gateway.
#[derive(Debug)]
pub(crate) struct Ports {
    bind: IpAddr,
    open: Mutex<HashMap<u16, Arc<Forward>>>,
    /// The gateway's descriptor budget: visitors on these ports count against it too.
    descriptors: Arc<Descriptors>,
    /// The gateway's shutdown: it closes every port, and waits for the visitors' tasks.
    shutdown: Shutdown,
}

impl Ports {
    /// Ports on `bind`, their visitors admitted by `descriptors`, closed and drained by
    /// `shutdown`.
    pub fn new(bind: IpAddr, descriptors: Arc<Descriptors>, shutdown: Shutdown) -> Self {
        Ports {
            bind,
            open: Mutex::new(HashMap::new()),
            descriptors,
            shutdown,
        }
    }

    /// Listens on granted `port` for session `id`'s service, or hands the open listener over
    /// to it.
    pub fn open(&self, port: u16, id: u64, connector: AgentConnector) -> Result<(), SinkError> {
        let owner = Owner { id, connector };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(forward) = open.get(&port) {
            *forward.owner.lock().unwrap_or_else(|e| e.into_inner()) = owner;
            return Ok(());
        }
        let addr = SocketAddr::new(self.bind, port);
        let listener = bind(addr).map_err(|source| SinkError::Listen { addr, source })?;
        let forward = Arc::new(Forward {
            owner: Mutex::new(owner),
            // Released with its agent, or closed at shutdown.
            stop: self.shutdown.token.child_token(),
        });
        let descriptors = self.descriptors.clone();
        let tracker = self.shutdown.tracker.clone();
        self.shutdown
            .tracker
            .spawn(accept_loop(listener, forward.clone(), descriptors, tracker));
        open.insert(port, forward);
        Ok(())
    }

    /// Closes the ports session `id` still owns.
    pub(crate) fn release(&self, id: u64) {
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
    crate::front::listener::bind(addr)
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

/// One visitor: a stream to the agent's service, then bytes both ways with half-close; one
/// access line with its outcome from the refusal table, as every other connection gets.
async fn splice(mut visitor: TcpStream, peer: SocketAddr, connector: AgentConnector) {
    let _ = visitor.set_nodelay(true);
    crate::connector::keep_alive(&visitor);
    let ((up, down), refusal) = match connector.connect_stream().await {
        Ok(mut upstream) => match upstream.splice(&mut visitor).await {
            Ok(copied) => (copied, None),
            Err(_) => ((0, 0), Some(Refusal::ConnectionBroken)),
        },
        Err(error) => {
            let error_text = Escaped(&error);
            tracing::warn!(error = %error_text, client.addr = %peer, "remote port: agent unreachable");
            ((0, 0), Some(error.refusal()))
        }
    };
    tracing::info!(
        target: "wsgate::access",
        route = "remote_port",
        client.addr = %peer,
        upstream.addr = %Escaped(&connector),
        bytes_up = up,
        bytes_down = down,
        outcome = %refusal.map_or("ok", Refusal::name),
        "remote port connection closed"
    );
}
