//! A plain-HTTP upstream in this process (a hyper server) for the proxy's HTTP tests: it
//! reports the headers it got, streams bodies both ways without buffering them, and counts
//! TCP connections so keep-alive reuse can be asserted.
//!
//! | request | answer |
//! |---|---|
//! | `/headers` (any method) | 200, JSON of the request headers + `"path"` + `"method"` |
//! | `GET /name` | 200, the configured name |
//! | `POST /echo` | 200, the request body streamed back chunk by chunk as it arrives |
//! | `GET /stream?bytes=N` | 200, N bytes of [`pattern`], chunked, made lazily |
//! | `GET /status/CODE` | CODE, body `status CODE\n` |
//! | anything else | 404 |

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{
    body::{Frame, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle, task::JoinSet};

use super::json;

/// Response bodies: boxed, so fixed and streamed bodies share one type.
type Body = UnsyncBoxBody<Bytes, BoxError>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Size of each chunk `/stream` produces.
const STREAM_CHUNK_BYTES: u64 = 16 * 1024;

/// What the upstream has seen, for assertions.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// TCP connections accepted: many requests over few connections shows keep-alive reuse.
    pub connections: AtomicUsize,
    /// Requests received, on all connections.
    pub requests: AtomicUsize,
    /// Bytes `/echo` has sent back (equal to what it received once a request ends).
    pub echoed_bytes: AtomicU64,
}

/// A running HTTP upstream; stops (with every connection) on drop.
pub struct HttpUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters, shared with the server.
    pub stats: Arc<HttpStats>,
    serving: JoinHandle<()>,
}

/// What each request handler needs.
struct State {
    name: String,
    stats: Arc<HttpStats>,
}

impl HttpUpstream {
    /// Binds 127.0.0.1:0 and serves in a spawned task; `/name` answers `name`.
    pub async fn start(name: &str) -> HttpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(HttpStats::default());
        let state = Arc::new(State {
            name: name.to_string(),
            stats: stats.clone(),
        });
        let serving = tokio::spawn(accept_loop(listener, state));
        HttpUpstream {
            addr,
            stats,
            serving,
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Bytes `/echo` has sent back so far.
    pub fn echoed_bytes(&self) -> u64 {
        self.stats.echoed_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's JoinSet, so they end with it.
        self.serving.abort();
    }
}

/// The `/stream` body: byte `i` is `i % 251` (a prime, so a chunk that is lost, repeated or
/// reordered shifts the pattern and shows up). `offset` is the position of the first byte.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|i| (i % 251) as u8)
        .collect()
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        state.stats.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let state = state.clone();
            async move {
                if request.method() == Method::POST && request.uri().path() == "/count" {
                    return Ok::<_, Infallible>(count(request, &state).await);
                }
                Ok(respond(request, &state))
            }
        });
        connections.spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn respond(request: Request<Incoming>, state: &State) -> Response<Body> {
    state.stats.requests.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match (&method, path.as_str()) {
        (_, "/headers") => headers_json(&request),
        (&Method::GET, "/name") => text(StatusCode::OK, state.name.clone()),
        (&Method::POST, "/echo") => echo(request.into_body(), state.stats.clone()),
        (&Method::GET, "/stream") => stream_pattern(request.uri().query().unwrap_or_default()),
        (&Method::GET, _) if path.starts_with("/status/") => status(&path["/status/".len()..]),
        _ => text(StatusCode::NOT_FOUND, format!("no such path {path}\n")),
    }
}

/// `POST /count`: reads the whole body, then answers with its length (an upstream that only
/// answers once the upload is complete).
async fn count(request: Request<Incoming>, state: &State) -> Response<Body> {
    state.stats.requests.fetch_add(1, Ordering::SeqCst);
    match request.into_body().collect().await {
        Ok(body) => text(StatusCode::OK, body.to_bytes().len().to_string()),
        Err(error) => text(StatusCode::BAD_REQUEST, error.to_string()),
    }
}

/// The request headers as JSON (lowercase names, repeats joined with ", "), plus the path with
/// its query and the method.
fn headers_json(request: &Request<Incoming>) -> Response<Body> {
    let mut map = header_map(request.headers());
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    map.insert("path".to_string(), path);
    map.insert("method".to_string(), request.method().to_string());
    let mut response = text(StatusCode::OK, json::encode_string_map(&map));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Header names (lowercase, as `http` stores them) to values, repeats joined with ", ".
pub fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .keys()
        .map(|name| {
            let values: Vec<String> = headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (name.as_str().to_string(), values.join(", "))
        })
        .collect()
}

/// Streams the request body back frame by frame, counting the bytes.
fn echo(body: Incoming, stats: Arc<HttpStats>) -> Response<Body> {
    let frames = body.into_data_stream().map(move |chunk| {
        let data = chunk?;
        stats
            .echoed_bytes
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        Ok(Frame::data(data))
    });
    // A stream body has no known length, so hyper sends it chunked, each frame as it comes.
    Response::new(StreamBody::new(frames).boxed_unsync())
}

/// `bytes=N` bytes of [`pattern`], made one chunk at a time as hyper asks for them.
fn stream_pattern(query: &str) -> Response<Body> {
    let total = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("bytes="))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(total) = total else {
        return text(StatusCode::BAD_REQUEST, "expected ?bytes=N\n".to_string());
    };
    let chunks = stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let len = STREAM_CHUNK_BYTES.min(total - sent);
        let data = Bytes::from(pattern(sent, len as usize));
        Some((Ok::<_, BoxError>(Frame::data(data)), sent + len))
    });
    Response::new(StreamBody::new(chunks).boxed_unsync())
}

fn status(code: &str) -> Response<Body> {
    match code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok()) {
        Some(code) if code.as_u16() >= 200 => {
            let bodiless = code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED;
            let body = if bodiless {
                String::new()
            } else {
                format!("status {}\n", code.as_u16())
            };
            text(code, body)
        }
        _ => text(StatusCode::BAD_REQUEST, format!("bad status {code:?}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
