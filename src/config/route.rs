//! A route as the config describes it: plain data with where it was written. Loading builds
//! these and checks them; the gateway's assembler turns them into live handlers
//! (`gateway::assemble`), for configured routes and for routes agents claim alike.

use std::{path::PathBuf, str::FromStr, time::Duration};

use http::{HeaderName, HeaderValue};

use super::{
    Location,
    target::{ProxyProtocol, Target, Verify},
    upstream_url::UpstreamUrl,
};
use crate::{io::pump::watchdog::Heartbeat, matching::HostPattern};

/// 16 MiB: larger than any sane VNC or terminal message, small enough that a hostile client
/// cannot make one connection hold much memory.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 << 20;

/// Past this a dial fails (504): long enough for a slow LAN host, short enough that a browser
/// has not given up yet.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// nginx's `proxy_read_timeout` for the response head: a slow upstream gets a minute.
pub(crate) const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// nginx's `fail_timeout`: how long a refused upstream is tried last.
pub(crate) const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

/// One route: what it matches, and what it does.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Name for logs and the banner.
    pub name: String,
    /// Host the request must carry, if any.
    pub host: Option<HostPattern>,
    /// Path prefix, canonical (`matching::normalize_prefix`).
    pub path: String,
    /// The handler and its settings.
    pub kind: RouteKind,
    /// Where the route is written, for errors found when it is assembled.
    pub at: Option<Location>,
}

/// The handlers a route can have.
#[derive(Debug, Clone)]
pub enum RouteKind {
    /// WebSocket to a raw byte stream.
    Bridge(BridgeSpec),
    /// HTTP and WebSocket to upstream servers.
    Proxy(ProxySpec),
    /// Files from a directory.
    Static(StaticSpec),
}

impl RouteKind {
    /// Whether this handler takes WebSocket upgrades.
    pub(crate) fn serves_websocket(&self) -> bool {
        matches!(self, RouteKind::Bridge(_) | RouteKind::Proxy(_))
    }

    /// Whether this handler takes plain HTTP requests.
    pub(crate) fn serves_http(&self) -> bool {
        matches!(self, RouteKind::Static(_) | RouteKind::Proxy(_))
    }

    /// Whether both handlers take some of the same requests: two such routes on the same match
    /// leave one of them unreachable for those requests.
    pub(crate) fn overlaps(&self, other: &RouteKind) -> bool {
        (self.serves_websocket() && other.serves_websocket())
            || (self.serves_http() && other.serves_http())
    }

    /// The largest message the route gathers, when it gathers messages.
    pub(crate) fn max_message_bytes(&self) -> Option<usize> {
        match self {
            RouteKind::Bridge(bridge) => Some(bridge.max_message_bytes),
            RouteKind::Proxy(proxy) if proxy.mode == Mode::Message => Some(proxy.max_message_bytes),
            _ => None,
        }
    }
}

/// Where a bridge's bytes go.
#[derive(Debug, Clone)]
pub enum BridgeTarget {
    /// A fixed target, a token source, or a token source falling back to a target.
    Direct {
        /// The fixed target; with tokens, for requests that carry none.
        target: Option<Target>,
        /// websockify token files: the target is looked up per request.
        tokens: Option<TokenFiles>,
    },
    /// A service of a connected agent (a route the agent claimed); the assembler is handed
    /// the session to reach it by.
    Agent,
}

/// websockify token files.
#[derive(Debug, Clone)]
pub struct TokenFiles {
    /// A file, or a directory whose files are all read.
    pub path: PathBuf,
    /// Re-read on every connection (`TokenFile`), or once (`ReadOnlyTokenFile`).
    pub reload: bool,
}

/// A bridge route's settings.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    /// Where the bytes go.
    pub target: BridgeTarget,
    /// How long a dial may take.
    pub connect_timeout: Duration,
    /// Announce the client's address to the target with a PROXY header.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Close after this long without data either way.
    pub idle_timeout: Option<Duration>,
    /// Ping the client and drop it when pings go unanswered.
    pub heartbeat: Option<Heartbeat>,
    /// Largest message accepted from the client.
    pub max_message_bytes: usize,
}

impl BridgeSpec {
    /// A bridge to `target` with every setting at its default.
    pub fn new(target: BridgeTarget) -> Self {
        BridgeSpec {
            target,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            proxy_protocol: None,
            idle_timeout: None,
            heartbeat: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES as usize,
        }
    }
}

/// One upstream of a proxy route, and where it is written.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// The URL.
    pub url: UpstreamUrl,
    /// Where it is written, for a TLS setup error found at assembly.
    pub at: Option<Location>,
}

/// A proxy route's settings.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    /// The upstreams, in order.
    pub upstreams: Vec<UpstreamSpec>,
    /// Reached through an agent's session rather than dialled.
    pub via_agent: bool,
    /// How long a dial may take.
    pub connect_timeout: Duration,
    /// How `wss://` and `https://` upstreams' certificates are checked.
    pub verify: Verify,
    /// Which upstream a request tries first.
    pub balance: Policy,
    /// How long a refused upstream is tried last.
    pub fail_timeout: Duration,
    /// Splice or relay messages.
    pub mode: Mode,
    /// Header changes toward the upstream.
    pub headers: HeaderPolicy,
    /// How long the upstream may take to send its response headers.
    pub response_timeout: Duration,
    /// Close a WebSocket after this long without traffic.
    pub idle_timeout: Option<Duration>,
    /// Largest message in message mode.
    pub max_message_bytes: usize,
}

impl ProxySpec {
    /// A proxy to `upstreams` with every setting at its default.
    pub fn new(upstreams: Vec<UpstreamSpec>) -> Self {
        ProxySpec {
            upstreams,
            via_agent: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            verify: Verify::SystemRoots,
            balance: Policy::RoundRobin,
            fail_timeout: DEFAULT_FAIL_TIMEOUT,
            mode: Mode::Splice,
            headers: HeaderPolicy {
                preserve_host: true,
                ..HeaderPolicy::default()
            },
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            idle_timeout: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES as usize,
        }
    }
}

/// A static route's directory.
#[derive(Debug, Clone)]
pub struct StaticSpec {
    /// The directory served.
    pub root: PathBuf,
}

/// Which upstream a request tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Each request starts one further along the list.
    RoundRobin,
    /// The upstream with the fewest open requests and WebSockets; ties go round-robin.
    LeastConnections,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "round_robin" => Ok(Policy::RoundRobin),
            "least_connections" => Ok(Policy::LeastConnections),
            _ => Err(format!(
                "expected \"round_robin\" or \"least_connections\", found {text:?}"
            )),
        }
    }
}

/// What happens to a WebSocket after both handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes are copied without parsing frames: the fast path.
    Splice,
    /// Both sides are terminated and whole messages relayed.
    Message,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "splice" => Ok(Mode::Splice),
            "message" => Ok(Mode::Message),
            _ => Err(format!(
                "expected \"splice\" or \"message\", found {text:?}"
            )),
        }
    }
}

/// A route's header settings toward its upstreams.
#[derive(Debug, Clone, Default)]
pub struct HeaderPolicy {
    /// Set (replacing any the client sent), after everything else.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Removed from what the client sent.
    pub remove: Vec<HeaderName>,
    /// Keep the client's `Host` (the default, as Caddy, Traefik and HAProxy do); when false the
    /// upstream's own authority is sent, as nginx does by default.
    pub preserve_host: bool,
}
