//! Command-line types only (clap derive); doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// wsgate: a WebSocket gateway. Bridges WebSocket to TCP (a websockify drop-in), serves files.
#[derive(Debug, Parser)]
#[command(name = "wsgate", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (on the embedded default config when no file is given).
    Serve(ServeArgs),
    /// Run a websockify-compatible bridge: `[source_addr:]source_port [target_addr:target_port]`.
    Websockify(Box<WebsockifyArgs>),
    /// Validate a config file and print its route table.
    Check(CheckArgs),
    /// Run an agent: dial a gateway and expose local services through it.
    Agent(AgentArgs),
    /// Join standard input and output to a bridge route: `ssh -o ProxyCommand='wsgate pipe URL'`.
    Pipe(PipeArgs),
}

/// `wsgate pipe`.
#[derive(Debug, Args)]
pub struct PipeArgs {
    /// The route, `ws://gw.example.com/ssh` or `wss://…`.
    pub url: String,
}

/// `wsgate agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent config file (TOML: `server`, `token`, `[[expose]]`, `[[forward]]`, `[socks5]`,
    /// `[http_proxy]`, `[egress]`); instead of
    /// the options below.
    #[arg(
        short,
        long,
        conflicts_with_all = ["servers", "token", "services", "forwards", "socks5", "http_proxy"]
    )]
    pub config: Option<PathBuf>,
    /// A gateway's agent endpoint, e.g. `wss://gw.example.com/_wsgate/agent`; repeat it to
    /// register on several gateways at once.
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// The token the gateway accepts.
    #[arg(long, env = "WSGATE_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// This agent's name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Services to expose: `http://127.0.0.1:8080/?mode=path&value=api` or
    /// `tcp://127.0.0.1:5900?mode=domain&value=vnc.example.com` (add `&name=NAME` to name one).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Reach another agent's private service on a local port: `127.0.0.1:9909=ssh?secret=S`.
    #[arg(long = "forward", value_name = "LISTEN=SERVICE?secret=S")]
    pub forwards: Vec<String>,
    /// Run a SOCKS5 proxy here (`127.0.0.1:1080`) whose connections leave from the gateway
    /// (its `[egress]` must allow this agent's token).
    #[arg(long, value_name = "LISTEN")]
    pub socks5: Option<std::net::SocketAddr>,
    /// Run an HTTP proxy here (`127.0.0.1:8118`: CONNECT and absolute URIs), likewise.
    #[arg(long, value_name = "LISTEN")]
    pub http_proxy: Option<std::net::SocketAddr>,
    /// On SIGTERM or Ctrl-C, how long open streams (forwards, proxy connections, visitors)
    /// may take to finish before the agent exits [default: agent.toml's `shutdown_grace`,
    /// else 30s].
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<wsgate::units::HumanDuration>,
}

/// `wsgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(short, long, env = "WSGATE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `wsgate check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file (TOML).
    #[arg(short, long)]
    pub config: PathBuf,
}

/// `wsgate websockify`: websockify's options, same names and meaning.
#[derive(Debug, Args)]
pub struct WebsockifyArgs {
    /// Serve files from DIR on plain HTTP requests (noVNC's vnc.html).
    #[arg(long, value_name = "DIR")]
    pub web: Option<PathBuf>,
    /// SSL certificate file (may also hold the key); used when it exists [default: self.pem].
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// SSL key file, if separate from the certificate.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Refuse plain (non-TLS) connections.
    #[arg(long)]
    pub ssl_only: bool,
    /// Token plugin: TokenFile or ReadOnlyTokenFile.
    #[arg(long, value_name = "CLASS")]
    pub token_plugin: Option<String>,
    /// Token file or directory for the token plugin (lines `token: host:port`).
    #[arg(long, value_name = "ARG")]
    pub token_source: Option<String>,
    /// Same as --token-plugin TokenFile --token-source FILE (deprecated in websockify).
    #[arg(long, value_name = "FILE")]
    pub target_config: Option<PathBuf>,
    /// Exit after this many seconds with no active connection.
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// Stop accepting after this many seconds, then exit when the open connections end.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Ping clients every INTERVAL seconds; drop those that stop answering.
    #[arg(long, value_name = "INTERVAL")]
    pub heartbeat: Option<u64>,
    /// Connect to this Unix socket instead of a TCP target.
    #[arg(long, value_name = "FILE")]
    pub unix_target: Option<PathBuf>,
    /// Directory listings are never served; accepted for compatibility.
    #[arg(long)]
    pub file_only: bool,
    /// Log every connection's details (debug level).
    #[arg(short, long)]
    pub verbose: bool,
    /// `[source_addr:]source_port`.
    #[arg(value_name = "[SOURCE_ADDR:]SOURCE_PORT")]
    pub listen: String,
    /// `target_addr:target_port` (optional with --token-plugin or --unix-target).
    #[arg(value_name = "TARGET_ADDR:TARGET_PORT")]
    pub target: Option<String>,
}

impl WebsockifyArgs {
    /// The options as the config layer takes them.
    pub fn options(&self) -> wsgate::config::websockify::WebsockifyOptions {
        wsgate::config::websockify::WebsockifyOptions {
            web: self.web.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            ssl_only: self.ssl_only,
            token_plugin: self.token_plugin.clone(),
            token_source: self.token_source.clone(),
            target_config: self.target_config.clone(),
            idle_timeout: self.idle_timeout,
            timeout: self.timeout,
            heartbeat: self.heartbeat,
            unix_target: self.unix_target.clone(),
            listen: self.listen.clone(),
            target: self.target.clone(),
        }
    }
}
