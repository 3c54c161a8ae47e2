//! The agent's HTTP proxy: `CONNECT host:port` tunnels and absolute-URI `http://` requests,
//! both leaving through the egress, with optional `Proxy-Authorization: Basic`. A destination
//! the egress does not allow is a 403, one that cannot be reached a 502, a timeout a 504.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use base64::Engine;
use http::{HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    agent::egress::Egress,
    body::{Body, refused, refused_because},
    config::agent::plan::ProxyPlan,
    egress::dial::Refusal as EgressRefusal,
    front::listener::accept_each,
    hop::strip_hop_by_hop,
    refusal::Refusal,
    shutdown::Shutdown,
};

/// How long the destination may take to send its response head.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client may take to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Via` this proxy adds to what it forwards (RFC 9110 §7.6.3).
const VIA: &str = "1.1 wsgate";

/// What every client connection of the proxy shares.
struct Shared {
    plan: ProxyPlan,
    egress: Egress,
    /// Shutdown's tracker: CONNECT tunnels outlive their HTTP connection's task.
    tracker: TaskTracker,
}

/// Accepts proxy clients until shutdown; each client is a task shutdown waits for.
pub(super) async fn serve(
    listener: TcpListener,
    plan: ProxyPlan,
    egress: Egress,
    shutdown: Shutdown,
) {
    let tracker = shutdown.tracker.clone();
    let shared = Arc::new(Shared {
        plan,
        egress,
        tracker: tracker.clone(),
    });
    let stop = shutdown.token.clone();
    accept_each(listener, "http proxy", tracker, stop, |client, peer| {
        let _ = client.set_nodelay(true);
        Some(serve_client(
            client,
            peer,
            shared.clone(),
            shutdown.token.clone(),
        ))
    })
    .await;
}

/// One client connection: HTTP/1.1 with upgrades, until it ends or shutdown stops keep-alive.
async fn serve_client(
    client: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(req, &shared).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(client), service)
        .with_upgrades();
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "http proxy client ended");
    }
}

/// One request: authenticate, then tunnel (CONNECT) or forward (absolute URI).
async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let egress = &shared.egress;
    if !authorized(&req, &shared.plan) {
        let mut response = refused(Refusal::ProxyAuthRequired);
        let challenge = HeaderValue::from_static("Basic realm=\"wsgate\"");
        response
            .headers_mut()
            .insert(header::PROXY_AUTHENTICATE, challenge);
        return response;
    }
    if req.method() == Method::CONNECT {
        return tunnel(req, egress, &shared.tracker).await;
    }
    match req.uri().scheme_str() {
        Some("http") => forward(req, egress).await,
        Some(_) => refused_because(
            Refusal::BadRequest,
            "only http:// URIs are forwarded; use CONNECT for https",
        ),
        None => refused_because(
            Refusal::BadRequest,
            "this is a proxy: expected CONNECT or an absolute http:// URI",
        ),
    }
}

/// Whether the request carries the proxy's credentials (always, when it has none).
pub(crate) fn authorized<B>(req: &Request<B>, plan: &ProxyPlan) -> bool {
    let Some(credentials) = &plan.credentials else {
        return true;
    };
    let decoded = req
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok());
    decoded
        .as_deref()
        .and_then(|pair| pair.split_once(':'))
        .is_some_and(|(user, password)| credentials.matches(user, password))
}

/// CONNECT: once the egress has connected, answer 200 and join the upgraded connection to the
/// stream.
async fn tunnel(req: Request<Incoming>, egress: &Egress, tracker: &TaskTracker) -> Response<Body> {
    let Some((host, port)) = authority(req.uri(), None) else {
        return refused_because(Refusal::BadRequest, "CONNECT needs host:port");
    };
    let mut stream = match egress.connect(host, port).await {
        Ok(stream) => stream,
        Err(refusal) => return egress_refused(&refusal),
    };
    tracker.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let _ = stream.splice(&mut client).await;
            }
            Err(error) => tracing::debug!(%error, "http proxy: CONNECT upgrade failed"),
        }
    });
    Response::new(crate::body::full(""))
}

/// An absolute-URI request: sent in origin form over a fresh connection through the egress,
/// and the response streamed back.
async fn forward(req: Request<Incoming>, egress: &Egress) -> Response<Body> {
    let Some((host, port)) = authority(req.uri(), Some(80)) else {
        return refused_because(Refusal::BadRequest, "the URI has no host");
    };
    let stream = match egress.connect(host, port).await {
        Ok(stream) => stream,
        Err(refusal) => return egress_refused(&refusal),
    };
    let handshake = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await;
    let (mut sender, connection) = match handshake {
        Ok(pair) => pair,
        Err(error) => return refused_because(Refusal::UpstreamFailed, error),
    };
    tokio::spawn(connection);
    let upstream_req = origin_form(req);
    let sent = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(upstream_req)).await;
    match sent {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .append(header::VIA, HeaderValue::from_static(VIA));
            Response::from_parts(parts, body.map_err(std::io::Error::other).boxed())
        }
        Ok(Err(error)) => refused_because(Refusal::UpstreamFailed, error),
        Err(_) => refused(Refusal::UpstreamResponseTimeout),
    }
}

/// The request as the destination should see it: origin-form target, `Host` set (never with
/// the URI's userinfo), hop-by-hop and proxy headers gone, `Via` added.
pub(crate) fn origin_form<B>(req: Request<B>) -> Request<B> {
    let (mut parts, body) = req.into_parts();
    let authority = parts.uri.authority().map(|a| match a.port() {
        Some(port) => format!("{}:{port}", a.host()),
        None => a.host().to_string(),
    });
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    strip_hop_by_hop(&mut parts.headers);
    if let Some(authority) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
        parts.headers.insert(header::HOST, authority);
    }
    parts
        .headers
        .append(header::VIA, HeaderValue::from_static(VIA));
    Request::from_parts(parts, body)
}

/// The URI's host (IPv6 without brackets) and port (`default` when it names none).
pub(crate) fn authority(uri: &Uri, default: Option<u16>) -> Option<(String, u16)> {
    let authority = uri.authority()?;
    let port = authority.port_u16().or(default)?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host.to_string(), port))
}

/// The egress's refusal, with its kind's status and what the exit said.
fn egress_refused(refusal: &EgressRefusal) -> Response<Body> {
    refused_because(refusal.failure.refusal(), &refusal.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_give_host_and_port() {
        let cases = [
            ("example.com:443", None, Some(("example.com", 443))),
            ("[::1]:8080", None, Some(("::1", 8080))),
            ("http://example.com/x", Some(80), Some(("example.com", 80))),
            ("example.com", None, None),
        ];
        for (uri, default, expected) in cases {
            let uri: Uri = uri.parse().unwrap();
            let got = authority(&uri, default);
            let got = got.as_ref().map(|(h, p)| (h.as_str(), *p));
            assert_eq!(got, expected, "{uri}");
        }
    }
}
