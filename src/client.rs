//! Dialling a WebSocket as a client (the agent to its gateway, `wsgate pipe` to a route): TCP
//! with keepalive, TLS for `wss://` against the system's roots, then the handshake.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use tokio::{net::TcpStream, time::timeout};
use tokio_websockets::{ClientBuilder, Limits, WebSocketStream};

use crate::connector::{
    Stream,
    tls::{TlsDial, Verify},
};

/// How long dialling and the handshake may each take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The server answered the handshake with this status instead of 101.
    #[error("{url}: the server answered {status} instead of switching to WebSocket")]
    Refused {
        /// What was dialled.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Anything else: resolving, connecting, TLS, a broken handshake, a timeout.
    #[error("{url}: {reason}")]
    Failed {
        /// What was dialled.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`), sending `headers` and offering
/// `protocol`, with messages up to `max_message` bytes accepted.
pub async fn connect(
    url: &Uri,
    headers: &[(HeaderName, HeaderValue)],
    protocol: Option<&str>,
    max_message: usize,
) -> Result<WebSocketStream<Stream>, DialError> {
    let failed = |reason: String| DialError::Failed {
        url: url.to_string(),
        reason,
    };
    let host = url
        .host()
        .unwrap_or("localhost")
        .trim_matches(['[', ']'])
        .to_string();
    let tls = url.scheme_str() == Some("wss");
    let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = timeout(DIAL_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| failed("connect timed out".into()))?
        .map_err(|e| failed(format!("connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    crate::connector::keep_alive(&tcp);
    let stream = if tls {
        let dial = TlsDial::new(&host, &Verify::SystemRoots).map_err(|e| failed(e.to_string()))?;
        dial.handshake(Stream::Tcp(tcp))
            .await
            .map_err(|e| failed(format!("TLS: {e}")))?
    } else {
        Stream::Tcp(tcp)
    };
    let limits = Limits::default().max_payload_len(Some(max_message));
    let mut builder = ClientBuilder::from_uri(url.clone()).limits(limits);
    for (name, value) in headers {
        builder = builder
            .add_header(name.clone(), value.clone())
            .map_err(|e| failed(e.to_string()))?;
    }
    if let Some(protocol) = protocol {
        let value = HeaderValue::from_str(protocol).map_err(|e| failed(e.to_string()))?;
        builder = builder
            .add_header(http::header::SEC_WEBSOCKET_PROTOCOL, value)
            .map_err(|e| failed(e.to_string()))?;
    }
    match timeout(DIAL_TIMEOUT, builder.connect_on(stream)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_websockets::Error::Upgrade(
            tokio_websockets::upgrade::Error::DidNotSwitchProtocols(status),
        ))) => Err(DialError::Refused {
            url: url.to_string(),
            status,
        }),
        Ok(Err(error)) => Err(failed(format!("handshake: {error}"))),
        Err(_) => Err(failed("handshake timed out".into())),
    }
}
