//! HTTP requests per second: keep-alive connections, each sending GET requests back to back
//! with one in flight. Each connection is its own hyper client connection
//! (`http1::handshake` over a `TcpStream`), not a pooled client, so N connections are exactly
//! N TCP connections to the system under test for the whole run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::conn;

/// Warm-up before counting, as in `throughput`.
const WARMUP: Duration = Duration::from_millis(500);

/// Pause after a failed reconnect: a system under test that refuses connections would
/// otherwise be hammered in a tight loop for the whole run.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Where the requests go: the address to connect to, and what to put in the request.
#[derive(Clone)]
struct Target {
    /// `tcp://host:port`, for `conn::connect_tcp`.
    tcp_url: String,
    /// The `Host` header: hyper's connection API sends only the headers it is given.
    host: HeaderValue,
    /// The request target, in origin form (`/path?query`).
    path: Uri,
}

/// Completed requests, shared by all connections.
#[derive(Default)]
struct Counts {
    /// 200 responses whose body was read to the end.
    ok: AtomicU64,
    /// Other statuses, failed requests and failed (re)connects.
    errors: AtomicU64,
}

/// Runs the measurement and prints `result rps=… conns=… requests=… errors=… seconds=…`;
/// `errors` covers the warm-up too, so none goes unreported. Fails when no request succeeded
/// in the measured window.
pub async fn run(url: &str, conns: usize, seconds: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        conns > 0 && seconds > 0.0,
        "conns and seconds must be positive"
    );
    let target = Target::parse(url)?;
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let sender = connect(&target)
            .await
            .with_context(|| format!("connection {i}"))?;
        tasks.push(tokio::spawn(drive(
            sender,
            target.clone(),
            counts.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(WARMUP).await;
    let start_ok = counts.ok.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let requests = counts.ok.load(Ordering::Relaxed) - start_ok;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    let errors = counts.errors.load(Ordering::Relaxed);
    println!(
        "result rps={:.0} conns={conns} requests={requests} errors={errors} seconds={elapsed:.2}",
        requests as f64 / elapsed
    );
    if requests == 0 {
        bail!("no request to {url} succeeded ({errors} errors)");
    }
    Ok(())
}

impl Target {
    /// Parses `http://host[:port]/path[?query]` (port 80 when none is given).
    fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("expected http://, got {url}");
        }
        let authority = uri.authority().context("URL without a host")?;
        let port = authority.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Self {
            tcp_url: format!("tcp://{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str())?,
            path: path.parse()?,
        })
    }

    /// A GET of the target, with its `Host`.
    fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        request
    }
}

/// Opens one keep-alive HTTP/1.1 connection; its driver runs in a task of its own, which ends
/// when the returned sender is dropped or the connection fails.
async fn connect(target: &Target) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = conn::connect_tcp(&target.tcp_url, None).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move { _ = connection.await });
    Ok(sender)
}

/// Sends requests back to back until `stop`; after a failure, reconnects (a fresh connection
/// is what a browser or client library would do too).
async fn drive(
    mut sender: SendRequest<Empty<Bytes>>,
    target: Target,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match exchange(&mut sender, &target).await {
            Ok(StatusCode::OK) => _ = counts.ok.fetch_add(1, Ordering::Relaxed),
            Ok(_) => _ = counts.errors.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                let Some(fresh) = reconnect(&target, &counts, &stop).await else {
                    return;
                };
                sender = fresh;
            }
        }
    }
}

/// One request and its whole response; the status.
async fn exchange(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &Target,
) -> anyhow::Result<StatusCode> {
    sender.ready().await?;
    let response = sender.send_request(target.request()).await?;
    let status = response.status();
    // Read to the end, so the connection is free for the next request.
    response.into_body().collect().await?;
    Ok(status)
}

/// Connects again, counting each failure and pausing between attempts; `None` once `stop` is
/// set (each attempt is bounded by `conn`'s connect timeout).
async fn reconnect(
    target: &Target,
    counts: &Counts,
    stop: &AtomicBool,
) -> Option<SendRequest<Empty<Bytes>>> {
    while !stop.load(Ordering::Relaxed) {
        match connect(target).await {
            Ok(sender) => return Some(sender),
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    None
}
