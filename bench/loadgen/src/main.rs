//! Load generator for the wsgate benchmarks: TCP and WebSocket echo targets, throughput,
//! ping-pong latency, connection setup and idle connections, over raw TCP or WebSocket
//! (direct, or through a bridge, a reverse proxy or a SOCKS5 forward proxy); and an HTTP
//! origin with keep-alive requests per second against it (direct or through a tunnel).
//!
//! Every mode prints one machine-readable `result key=value ...` line on stdout.
#![forbid(unsafe_code)]

mod conn;
mod echo;
mod http_load;
mod http_server;
mod idle;
mod latency;
mod setup;
mod socks5;
mod throughput;
mod ws_echo;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Load generator for wsgate benchmarks.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// A TCP echo server; prints `listening ADDR` when ready.
    Echo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// A WebSocket echo server (the proxy's upstream); prints `listening ADDR` when ready.
    WsEcho {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// An HTTP/1.1 server answering every request with 200 and a 13-byte body, keep-alive on;
    /// prints `listening ADDR` when ready.
    HttpServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Bytes per second echoed over N connections.
    Throughput {
        /// `tcp://host:port` (direct) or `ws://host:port/path` (WebSocket: echo, bridge or proxy).
        /// Repeated, the connections are spread over the URLs in turn (connection i goes to the
        /// (i mod count)-th), and the result is their sum over one shared measurement window.
        #[arg(long, required = true)]
        url: Vec<String>,
        #[command(flatten)]
        via: Via,
        /// Concurrent connections.
        #[arg(long, default_value_t = 1)]
        conns: usize,
        /// Measured seconds (after a half-second warm-up).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Bytes per message / write.
        #[arg(long, default_value_t = 16384)]
        msg_bytes: usize,
    },
    /// Round-trip time of small messages on one connection.
    Latency {
        /// `tcp://…` or `ws://…`.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        via: Via,
        /// Measured round trips (after 200 warm-up ones).
        #[arg(long, default_value_t = 5000)]
        count: usize,
        /// Bytes per message.
        #[arg(long, default_value_t = 32)]
        msg_bytes: usize,
    },
    /// Time to first byte of new connections, one after another: connect, write one byte,
    /// read its echo, close.
    Setup {
        /// `tcp://host:port`.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        via: Via,
        /// Measured connections (after 50 warm-up ones).
        #[arg(long, default_value_t = 5000)]
        count: usize,
    },
    /// HTTP requests per second: N keep-alive connections, each sending GET requests back to
    /// back (one in flight); completed 200 responses count, anything else is an error.
    Http {
        /// `http://host:port/path`.
        #[arg(long)]
        url: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 1)]
        conns: usize,
        /// Measured seconds (after a half-second warm-up).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Opens N connections, proves each with one echo, prints `result ready conns=N`, holds
    /// them until stdin closes (or `--hold-seconds` pass).
    Idle {
        /// `tcp://…` or `ws://…`.
        #[arg(long)]
        url: String,
        /// Connections to hold.
        #[arg(long, default_value_t = 5000)]
        conns: usize,
        /// Upper bound on the hold, so a forgotten run ends by itself.
        #[arg(long, default_value_t = 600.0)]
        hold_seconds: f64,
    },
}

/// How `tcp://` connections reach their target.
#[derive(Debug, clap::Args)]
struct Via {
    /// A SOCKS5 proxy (`HOST:PORT`, no authentication) that every `tcp://` connection goes
    /// through: CONNECT to the URL's host and port (an address, or a name the proxy resolves).
    #[arg(long, value_name = "HOST:PORT")]
    socks5: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread: the bench pins the load to one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.mode {
            Mode::Echo { listen } => echo::run(&listen).await,
            Mode::WsEcho { listen } => ws_echo::run(&listen).await,
            Mode::HttpServer { listen } => http_server::run(&listen).await,
            Mode::Throughput {
                url,
                via,
                conns,
                seconds,
                msg_bytes,
            } => throughput::run(&url, via.socks5.as_deref(), conns, seconds, msg_bytes).await,
            Mode::Latency {
                url,
                via,
                count,
                msg_bytes,
            } => latency::run(&url, via.socks5.as_deref(), count, msg_bytes).await,
            Mode::Http {
                url,
                conns,
                seconds,
            } => http_load::run(&url, conns, seconds).await,
            Mode::Setup { url, via, count } => setup::run(&url, via.socks5.as_deref(), count).await,
            Mode::Idle {
                url,
                conns,
                hold_seconds,
            } => idle::run(&url, conns, Duration::from_secs_f64(hold_seconds)).await,
        }
    })
}
