//! The TOML file as written: serde structs that mirror it and reject unknown keys.
//!
//! Nothing here is checked beyond its TOML type; `validate.rs` turns these into runtime types
//! and keeps the spans so that every error can name file:line:col.

use serde::Deserialize;
use toml::Spanned;

/// A value together with where it was written.
pub(crate) type Sp<T> = Spanned<T>;

/// The gateway config file (`wsgate serve -c FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayFile {
    /// Addresses to listen on, `"127.0.0.1:8080"`, `"[::1]:8080"`.
    pub listen: Option<Sp<Vec<Sp<String>>>>,
    /// TLS on every listener.
    pub tls: Option<Sp<TlsFile>>,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace: Option<Sp<String>>,
    /// Exit when no connection has been open for this long (websockify `--idle-timeout`).
    pub exit_when_idle: Option<Sp<String>>,
    /// Exit this long after start once no connection is open (websockify `--timeout`).
    pub exit_after: Option<Sp<String>>,
    /// The routes, in any order: matching picks the most specific.
    #[serde(default, rename = "route")]
    pub routes: Vec<Sp<RouteFile>>,
    /// The agent endpoint: agents behind NAT dial in here.
    pub agents: Option<Sp<AgentsFile>>,
    /// Where agents' SOCKS5 and HTTP proxy connections may go out from the gateway.
    pub egress: Option<Sp<EgressFile>>,
    /// The gateway-wide resource budgets.
    pub limits: Option<Sp<LimitsFile>>,
}

/// `[limits]`: budgets shared by every connection (docs/security.md says what each bounds).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    /// Memory for WebSocket messages being assembled, all connections together.
    pub message_memory: Option<Sp<String>>,
    /// Memory agents' tunnel streams may hold in this gateway, all sessions together.
    pub tunnel_memory: Option<Sp<String>>,
    /// The same, for the sessions of one token.
    pub tunnel_memory_per_token: Option<Sp<String>>,
    /// Agent sessions one token may hold at once.
    pub sessions_per_token: Option<Sp<u32>>,
    /// A write into an agent's stream that waits this long for credit resets the stream; an
    /// agent on which nothing moved meanwhile loses its session.
    pub credit_timeout: Option<Sp<String>>,
    /// Descriptors kept back from visitors for agents and open connections.
    pub descriptor_reserve: Option<Sp<u32>>,
}

/// `[agents]`: where agents connect and how they prove who they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentsFile {
    /// The endpoint's path; default `/_wsgate/agent`.
    pub path: Option<Sp<String>>,
    /// Tokens agents may present.
    pub tokens: Option<Sp<Vec<Sp<String>>>>,
    /// A file of tokens, one a line (`#` comments).
    pub token_file: Option<Sp<String>>,
    /// An agent silent this long (no heartbeat) is dropped with its routes.
    pub heartbeat_timeout: Option<Sp<String>>,
    /// Gateway TCP ports agents may open for `tcp://` services: `"20000-20100"`.
    pub remote_ports: Option<Sp<String>>,
    /// The address those ports listen on; default: the first `listen` address's IP.
    pub remote_bind: Option<Sp<String>>,
    /// Host patterns agents may claim hosts under (`"*.tunnel.example.com"`); none: agents
    /// claim no hosts.
    pub hosts: Option<Vec<Sp<String>>>,
    /// Path prefixes agents may claim paths under (`"/agents"`); needed beside a configured
    /// `/` route, whose space it carves out for agents.
    pub paths: Option<Vec<Sp<String>>>,
    /// Host names the gateway is reached by, which no host claim may take (for TLS ended
    /// in front of the gateway; with `[tls]` the certificate's names count too).
    pub gateway_names: Option<Vec<Sp<String>>>,
    /// Tokens with limits on what they may claim.
    #[serde(default, rename = "token")]
    pub limited: Vec<Sp<LimitedTokenFile>>,
}

/// `[[agents.token]]`: a token and what it may claim.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitedTokenFile {
    /// The token.
    pub token: Sp<String>,
    /// Service names it may register.
    pub names: Option<Vec<String>>,
    /// Path prefixes it may expose services under, each under `[agents] paths` when set.
    pub paths: Option<Vec<Sp<String>>>,
    /// Host patterns its hosts must fall under, each under an `[agents] hosts` pattern.
    pub hosts: Option<Vec<Sp<String>>>,
    /// Whether its agents may use the gateway's `[egress]` (default false).
    pub egress: Option<bool>,
}

/// `[tls]`: a PEM certificate chain and its private key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// PEM file with the certificate chain (it may also hold the key).
    pub cert: Sp<String>,
    /// PEM file with the private key; defaults to `cert`.
    pub key: Option<Sp<String>>,
    /// Also accept plain HTTP on the TLS listeners (websockify without `--ssl-only`).
    pub allow_plain: Option<bool>,
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    /// A name for logs; defaults to the path.
    pub name: Option<Sp<String>>,
    /// Path prefix, matched on segment boundaries.
    pub path: Option<Sp<String>>,
    /// Host name, exact or `*.example.com`.
    pub host: Option<Sp<String>>,
    /// Bridge handler target: `tcp://host:port` or `unix:/path`.
    pub bridge: Option<Sp<String>>,
    /// Bridge handler: a websockify token file or directory (`token: host:port` lines).
    pub bridge_tokens: Option<Sp<String>>,
    /// Static files handler: the directory to serve.
    #[serde(rename = "static")]
    pub static_dir: Option<Sp<String>>,
    /// How long dialling the target may take before the client gets 504.
    pub connect_timeout: Option<Sp<String>>,
    /// Close a bridged connection after this long without a byte either way.
    pub idle_timeout: Option<Sp<String>>,
    /// Send a ping this often; a client that does not answer is dropped.
    pub heartbeat: Option<Sp<String>>,
    /// How long to wait for any frame after a heartbeat ping; defaults to `heartbeat`.
    pub pong_timeout: Option<Sp<String>>,
    /// Send a PROXY protocol header (`"v1"` or `"v2"`) to the target.
    pub proxy_protocol: Option<Sp<String>>,
    /// Largest WebSocket message accepted from the client (close 1009 beyond it).
    pub max_message_size: Option<Sp<String>>,
    /// Proxy handler: one upstream URL, or a list of them.
    pub proxy: Option<Sp<toml::Value>>,
    /// Proxy: `"splice"` (default) or `"message"`.
    pub mode: Option<Sp<String>>,
    /// Proxy: `"round_robin"` (default) or `"least_connections"`.
    pub balance: Option<Sp<String>>,
    /// Proxy: how long an upstream that failed to connect is tried last.
    pub fail_timeout: Option<Sp<String>>,
    /// Proxy: how long the upstream may take to send its response headers.
    pub response_timeout: Option<Sp<String>>,
    /// Proxy: headers set on requests to the upstream.
    pub set_headers: Option<Sp<std::collections::BTreeMap<String, Sp<String>>>>,
    /// Proxy: headers removed from requests to the upstream.
    pub remove_headers: Option<Sp<Vec<Sp<String>>>>,
    /// Proxy: keep the client's `Host` header (default true).
    pub preserve_host: Option<Sp<bool>>,
    /// Proxy: PEM file of CA certificates that `wss://`/`https://` upstreams are checked
    /// against, instead of the system's roots.
    pub tls_ca: Option<Sp<String>>,
    /// Proxy: `false` accepts any upstream certificate (self-signed upstreams).
    pub tls_verify: Option<Sp<bool>>,
}

/// `[egress]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EgressFile {
    /// Destinations allowed: CIDRs, addresses, host names (`*.example.com`).
    #[serde(default)]
    pub allow: Vec<Sp<String>>,
    /// Destinations denied, whatever else allows them.
    #[serde(default)]
    pub deny: Vec<Sp<String>>,
    /// The only ports allowed (`"443"`, `"8000-8100"`); default: all.
    pub ports: Option<Vec<Sp<String>>>,
    /// Ports denied.
    #[serde(default)]
    pub deny_ports: Vec<Sp<String>>,
    /// What a destination no rule names gets: `"public"` (default: public addresses only) or
    /// `"deny"`.
    pub default: Option<Sp<String>>,
    /// How long dialling a destination may take.
    pub connect_timeout: Option<Sp<String>>,
    /// How long a UDP association may sit idle.
    pub udp_idle_timeout: Option<Sp<String>>,
    /// Addresses of this machine no interface lists (a 1:1 NAT's public address): refused
    /// like its own.
    #[serde(default)]
    pub own_addresses: Vec<Sp<String>>,
    /// Agents only: the secret other agents name with `via` to exit here.
    pub secret: Option<Sp<String>>,
}
