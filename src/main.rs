//! The `wsgate` binary: parse the command line, set up logs, run, map errors to exit codes.
#![allow(clippy::print_stderr)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{AgentArgs, Cli, Command};
use wsgate::{
    agent,
    config::{self, Config, ConfigError, agent::plan},
    gateway::{self, ServeEnd},
    pipe, router,
    shutdown::{self, Shutdown},
};

/// jemalloc, not glibc's malloc: memory freed when connections close goes back to the kernel.
/// glibc returns only the top of each arena, and its dynamic mmap threshold moves multi-MiB
/// message buffers into the arenas, so after 150 connections each gathering a 16 MiB message
/// had closed, up to 2.3 GB stayed resident. jemalloc purges freed pages after a decay time,
/// from a background thread (`.cargo/config.toml` bakes in its settings at build time).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `EX_USAGE` from sysexits.h: bad config or command line.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    let websockify = raw.get(1).map(String::as_str) == Some("websockify");
    if let Err(error) = raw
        .get(2..)
        .filter(|_| websockify)
        .map_or(Ok(()), config::websockify::reject_unsupported)
    {
        return usage_error(&error);
    }
    let cli = Cli::parse();
    let verbose = matches!(&cli.command, Command::Websockify(args) if args.verbose);
    init_tracing(verbose);
    if let Command::Agent(args) = &cli.command {
        return run_agent(args);
    }
    if let Command::Pipe(args) = &cli.command {
        return run_pipe(&args.url);
    }
    let loaded = match &cli.command {
        Command::Serve(args) => args
            .config
            .as_deref()
            .map_or_else(|| Ok(config::embedded_default()), config::load),
        Command::Check(args) => config::load(&args.config),
        Command::Websockify(args) => config::websockify::config(&args.options()),
        Command::Agent(_) | Command::Pipe(_) => unreachable!("handled above"),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(error) => return usage_error(&error),
    };
    if let Command::Check(_) = cli.command {
        let assembled = gateway::assemble::routes(&config.routes).and_then(|routes| {
            let agents = config.agents.clone().map(gateway::assemble::agent_tokens);
            Ok((routes, agents.transpose()?))
        });
        let (routes, agents) = match assembled {
            Ok(assembled) => assembled,
            Err(error) => return usage_error(&error),
        };
        eprintln!("{}: ok\n{}", config.source, router::table(&routes));
        if let Some(agents) = &agents {
            eprintln!(
                "agents connect at {} ({} token(s); their services are added as routes at run time)",
                agents.path,
                agents.tokens.len()
            );
        }
        return ExitCode::SUCCESS;
    }
    // The embedded default generated its agent token: show how to use it.
    let embedded = matches!(&cli.command, Command::Serve(args) if args.config.is_none());
    let agent_hint = config
        .agents
        .as_ref()
        .filter(|_| embedded)
        .map(|agents| (agents.path.clone(), agents.tokens[0].expose().to_string()));
    let runtime =
        tokio::runtime::Runtime::new().expect("a tokio runtime starts on any supported OS");
    runtime.block_on(serve(config, agent_hint))
}

/// `wsgate agent`: checks the command line, then runs until a gateway refuses the agent or a
/// signal asks it to stop (then it drains, within `--shutdown-grace`).
fn run_agent(args: &AgentArgs) -> ExitCode {
    let planned = match &args.config {
        Some(path) => config::agent::load(path),
        None => agent_plan(args).map_err(ConfigError::usage),
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(error) => return usage_error(&error),
    };
    let runtime =
        tokio::runtime::Runtime::new().expect("a tokio runtime starts on any supported OS");
    // The command line's grace overrides agent.toml's.
    let grace = args
        .shutdown_grace
        .map_or(plan.shutdown_grace, |grace| grace.0);
    let result = runtime.block_on(async {
        let shutdown = Shutdown::new();
        let signalled = shutdown.clone();
        tokio::spawn(async move {
            if shutdown::signal().await.is_ok() {
                signalled.trigger();
            }
        });
        agent::run(plan, &shutdown, grace).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `wsgate pipe URL`.
fn run_pipe(url: &str) -> ExitCode {
    let url = match url.parse::<http::Uri>() {
        Ok(url) if matches!(url.scheme_str(), Some("ws" | "wss")) => url,
        _ => {
            let error = format!("expected a ws:// or wss:// URL, found {url:?}");
            return usage_error(&ConfigError::usage(error));
        }
    };
    let runtime =
        tokio::runtime::Runtime::new().expect("a tokio runtime starts on any supported OS");
    let result = runtime.block_on(pipe::run(&url));
    // The read of standard input may still be blocked in its thread: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn agent_plan(args: &AgentArgs) -> Result<plan::AgentPlan, String> {
    if args.servers.is_empty() {
        return Err("give --server URL (or -c agent.toml)".into());
    }
    let token = args
        .token
        .clone()
        .ok_or("give --token (or WSGATE_AGENT_TOKEN, or -c agent.toml)")?;
    config::agent::check_token(&token).map_err(|reason| format!("--token: {reason}"))?;
    let servers = args
        .servers
        .iter()
        .map(|s| match s.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("ws" | "wss")) => Ok(uri),
            _ => Err(format!(
                "expected a ws:// or wss:// gateway URL, found {s:?}"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let services = args
        .services
        .iter()
        .map(|s| plan::parse_service(s))
        .collect::<Result<Vec<_>, _>>()?;
    let forwards = args
        .forwards
        .iter()
        .map(|f| plan::parse_forward(f))
        .collect::<Result<Vec<_>, _>>()?;
    if services.is_empty()
        && forwards.is_empty()
        && args.socks5.is_none()
        && args.http_proxy.is_none()
    {
        return Err(
            "give at least one SERVICE to expose, a --forward, --socks5 or --http-proxy".into(),
        );
    }
    let name = match &args.name {
        Some(name) => {
            wsgate::wire::names::check("agent", name).map_err(|e| format!("--name: {e}"))?;
            name.clone()
        }
        None => config::agent::default_name(),
    };
    Ok(plan::AgentPlan {
        servers,
        token: wsgate::secret::Secret::new(token),
        name,
        services,
        forwards,
        socks5: args.socks5.map(plan::ProxyPlan::on),
        http_proxy: args.http_proxy.map(plan::ProxyPlan::on),
        exit: None,
        shutdown_grace: plan::DEFAULT_SHUTDOWN_GRACE,
    })
}

fn usage_error(error: &ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EX_USAGE)
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(config: Config, agent_hint: Option<(String, String)>) -> ExitCode {
    let shutdown = Shutdown::new();
    let source = config.source.clone();
    let bound = match gateway::bind(config, &shutdown) {
        Ok(bound) => bound,
        Err(gateway::BindError::Route(error)) => return usage_error(&error),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if bound.is_tls() { "https" } else { "http" };
    eprintln!("wsgate {} ({source})", env!("CARGO_PKG_VERSION"));
    eprintln!(
        "{}",
        router::table(bound.routes().iter().map(|route| &**route))
    );
    match (&agent_hint, bound.agent_path(), bound.local_addrs().first()) {
        (Some((path, token)), _, Some(addr)) => eprintln!(
            "agents connect with a token generated for this run:\n  wsgate agent --server \
             ws://{addr}{path} --token {token} 'http://127.0.0.1:3000/?mode=path&value=app'"
        ),
        (_, Some(path), _) => eprintln!("agents connect at {path}"),
        _ => {}
    }
    for addr in bound.local_addrs() {
        tracing::info!(%addr, "listening on {scheme}://{addr}");
    }
    let grace = bound.shutdown_grace;
    let end = tokio::select! {
        end = bound.serve() => end,
        _ = shutdown::signal() => ServeEnd::Shutdown,
    };
    match end {
        ServeEnd::Shutdown => {
            tracing::info!(grace = ?grace, "shutdown started");
            shutdown.trigger();
            if shutdown.drain(grace).await {
                tracing::info!("shutdown finished");
            } else {
                tracing::warn!("grace period over: closing the remaining connections");
            }
        }
        ServeEnd::Lifetime => {
            shutdown.tracker.close();
            tokio::select! {
                () = shutdown.tracker.wait() => {}
                _ = shutdown::signal() => {}
            }
        }
    }
    ExitCode::SUCCESS
}
