//! The HTTP origin the tunnel section exposes: answers every request with the same small body,
//! keep-alive on, so a figure through a tunnel measures the tunnel, not the origin.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The body of every response: 13 bytes, a typical tiny API answer, so that per-request costs
/// (parsing, routing, a stream through the tunnel) dominate and not byte copying.
pub const BODY: &[u8] = b"hello, world\n";

/// Serves every connection (HTTP/1.1, keep-alive) until it closes.
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        // A reset or a malformed request only ends that connection.
        tokio::spawn(async move {
            _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

/// 200 with `BODY` (hyper adds `content-length` and `date`).
async fn answer(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}
