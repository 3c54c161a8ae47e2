//! The gateway: assemble the routes and bind every listener from a [`Config`], then serve
//! until shutdown.

mod agents;
pub mod assemble;
mod ports;

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinSet, time::Instant};
use tokio_rustls::TlsAcceptor;

use crate::{
    budget::{Budgets, descriptors},
    config::{Config, ConfigError, route::RouteSpec},
    front::{
        listener::{self, TlsMode},
        service::Service,
    },
    router::{Route, Router},
    shutdown::Shutdown,
    tls::{self, TlsError},
    tunnel::{
        hub::AgentHub,
        registry::memory::{ConfiguredRoute, Memory},
    },
};
use agents::AgentRoutes;
use ports::Ports;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A listen address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The certificate or key is unusable.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// A route could not be assembled (a CA file that does not load, say).
    #[error("{0}")]
    Route(#[from] ConfigError),
}

/// How [`Bound::serve`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// The shutdown signal was given: drain with the grace period.
    Shutdown,
    /// A lifetime limit (`exit_after`, `exit_when_idle`) was reached: open connections may
    /// finish on their own.
    Lifetime,
}

/// A gateway whose listeners are bound: addresses are known, nothing is accepted yet.
pub struct Bound {
    listeners: Vec<TcpListener>,
    service: Arc<Service>,
    tls: Option<TlsMode>,
    shutdown: Shutdown,
    /// Exit after this long with no open connection.
    exit_when_idle: Option<Duration>,
    /// Stop accepting after this long.
    exit_after: Option<Duration>,
    /// How long shutdown waits for connections.
    pub shutdown_grace: Duration,
}

/// Assembles the routes (and reads the agents' token file) and binds every listener (routes
/// and TLS come first, so a bad certificate fails before any port is taken).
pub fn bind(config: Config, shutdown: &Shutdown) -> Result<Bound, BindError> {
    let routes = assemble::routes(&config.routes)?;
    let agent_settings = config.agents.map(assemble::agent_tokens).transpose()?;
    let (tls, certificate_names) = match &config.tls {
        Some(settings) => {
            let server = tls::server(&settings.cert, &settings.key)?;
            let mode = TlsMode {
                acceptor: TlsAcceptor::from(server.config),
                allow_plain: settings.allow_plain,
            };
            (Some(mode), server.host_names)
        }
        None => (None, Vec::new()),
    };
    let listeners = config
        .listen
        .iter()
        .map(|&addr| listener::bind(addr).map_err(|source| BindError::Listen { addr, source }))
        .collect::<Result<Vec<_>, _>>()?;
    let budgets = Budgets::new(&config.limits, descriptors::raise_limit());
    let router = Arc::new(Router::new(routes));
    let agents = agent_settings.map(|settings| {
        let configured = config.routes.iter().map(configured_route).collect();
        let registry = Arc::new(Memory::new(&settings, certificate_names, configured));
        let ports = Ports::new(
            settings.remote_bind,
            budgets.descriptors.clone(),
            shutdown.clone(),
        );
        let sink = Arc::new(AgentRoutes::new(router.clone(), ports));
        let tunnel = budgets.tunnel.clone();
        Arc::new(AgentHub::new(
            settings,
            registry,
            sink,
            &config.limits,
            tunnel,
        ))
    });
    let service = Arc::new(Service {
        router,
        agents,
        shutdown: shutdown.token.clone(),
        tracker: shutdown.tracker.clone(),
        budgets,
    });
    Ok(Bound {
        listeners,
        service,
        tls,
        shutdown: shutdown.clone(),
        exit_when_idle: config.exit_when_idle,
        exit_after: config.exit_after,
        shutdown_grace: config.shutdown_grace,
    })
}

impl Bound {
    /// The bound addresses (with the real ports when `:0` was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The routes in precedence order.
    pub fn routes(&self) -> Arc<Vec<Arc<Route>>> {
        self.service.router.routes()
    }

    /// The agent endpoint's path, when agents may connect.
    pub fn agent_path(&self) -> Option<&str> {
        self.service.agents.as_ref().map(|hub| hub.path())
    }

    /// Whether the listeners speak TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Accepts on every listener until shutdown or a lifetime limit.
    pub async fn serve(self) -> ServeEnd {
        let stop_accepting = self.shutdown.token.child_token();
        let mut loops = JoinSet::new();
        for listener in self.listeners {
            let accept = listener::accept_loop(
                listener,
                self.service.clone(),
                self.tls.clone(),
                self.shutdown.clone(),
                stop_accepting.clone(),
            );
            loops.spawn(accept);
        }
        let lifetime = watch_lifetime(self.exit_when_idle, self.exit_after, &self.shutdown);
        let end = tokio::select! {
            () = lifetime => ServeEnd::Lifetime,
            () = self.shutdown.token.cancelled() => ServeEnd::Shutdown,
        };
        stop_accepting.cancel();
        while loops.join_next().await.is_some() {}
        end
    }
}

/// What agents' claims keep off: a configured route's name and match.
fn configured_route(spec: &RouteSpec) -> ConfiguredRoute {
    ConfiguredRoute {
        name: spec.name.clone(),
        host: spec.host.clone(),
        path: spec.path.clone(),
    }
}

/// Resolves when a lifetime limit is reached; never without limits.
async fn watch_lifetime(
    exit_when_idle: Option<Duration>,
    exit_after: Option<Duration>,
    shutdown: &Shutdown,
) {
    if exit_when_idle.is_none() && exit_after.is_none() {
        return std::future::pending().await;
    }
    // A quarter second: these limits are in whole seconds, so checking four times a second
    // is precise enough and costs nothing.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let started = Instant::now();
    let mut idle_since = started;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if !shutdown.tracker.is_empty() {
            idle_since = now;
        }
        if exit_after.is_some_and(|limit| now - started >= limit) {
            tracing::info!("lifetime limit reached: no longer accepting");
            return;
        }
        if exit_when_idle.is_some_and(|limit| now - idle_since >= limit) {
            tracing::info!("idle limit reached: exiting");
            return;
        }
    }
}
