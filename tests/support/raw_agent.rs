//! A raw agent speaking the agent protocol itself (token, WebSocket, yamux, control stream,
//! hello), for tests that play a hostile agent or send what `wsgate agent` would refuse to.

use std::net::SocketAddr;

use http::{HeaderValue, header::AUTHORIZATION};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_websockets::ClientBuilder;
use wsgate::{
    io::ws::WsIo,
    session::{self, OpenedStream, SessionHandle, TunnelStream},
    wire::Control,
};

use super::STEP;

/// A raw agent's session and its open control stream.
pub struct RawSession {
    /// Opens streams on the session (it lives while this or a clone does).
    pub session: SessionHandle,
    /// The control stream, after the hello.
    pub control: OpenedStream,
}

/// Connects to `gateway` (sending `Host: host`) with `token`, runs a yamux session whose
/// streams from the gateway go to `on_inbound`, and says hello as `name` in protocol
/// `version`: the session and the gateway's answer (a welcome or a rejection).
pub async fn hello(
    gateway: SocketAddr,
    host: &str,
    token: &str,
    name: &str,
    version: u32,
    on_inbound: impl FnMut(TunnelStream) + Send + 'static,
) -> (RawSession, Control) {
    let tcp = TcpStream::connect(gateway).await.unwrap();
    hello_on(tcp, host, token, name, version, on_inbound).await
}

/// [`hello`] over a connection already made (a TLS stream, for a `wss://` gateway).
pub async fn hello_on<S>(
    stream: S,
    host: &str,
    token: &str,
    name: &str,
    version: u32,
    on_inbound: impl FnMut(TunnelStream) + Send + 'static,
) -> (RawSession, Control)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let uri: http::Uri = format!("ws://{host}/_wsgate/agent").parse().unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let (ws, _) = ClientBuilder::from_uri(uri)
        .add_header(AUTHORIZATION, bearer)
        .unwrap()
        .connect_on(stream)
        .await
        .expect("the agent upgrade");
    let (session, _task) = session::spawn(
        WsIo::new(ws),
        yamux::Mode::Client,
        Default::default(),
        on_inbound,
    );
    let mut control = session.open().await.unwrap();
    let hello = Control::Hello {
        version,
        agent: name.into(),
    };
    wsgate::session::messages::write_frame(&mut control, &hello)
        .await
        .unwrap();
    let answer = tokio::time::timeout(STEP, wsgate::session::messages::read_frame(&mut control))
        .await
        .expect("no answer to the hello")
        .unwrap()
        .expect("an answer");
    (RawSession { session, control }, answer)
}
