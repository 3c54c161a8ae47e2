//! `wsgate pipe URL`: standard input and output joined to a WebSocket route that speaks bytes
//! (a bridge route, or an agent's `tcp://` service), so that
//! `ssh -o ProxyCommand='wsgate pipe wss://gw/ssh' user@host` reaches an SSH server through
//! the gateway.

use futures_util::{SinkExt, StreamExt};
use http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_websockets::Message;

use crate::client::{self, DialError};

/// Bytes read from standard input per message.
const CHUNK_BYTES: usize = 16 * 1024;

/// The largest message accepted from the route (its own limit is what matters).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Why the pipe ended badly.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The WebSocket could not be opened.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// Reading standard input, writing standard output, or the WebSocket failed.
    #[error("{0}")]
    Io(String),
}

/// Copies standard input to the route and the route to standard output until the route ends.
pub async fn run(url: &Uri) -> Result<(), PipeError> {
    let ws = client::connect(url, &[], Some("binary"), MAX_MESSAGE_BYTES).await?;
    let (mut sink, mut source) = ws.split();
    let upload = async {
        let mut stdin = tokio::io::stdin();
        loop {
            let mut chunk = vec![0u8; CHUNK_BYTES];
            let n = stdin
                .read(&mut chunk)
                .await
                .map_err(|e| PipeError::Io(e.to_string()))?;
            if n == 0 {
                // End of input. A WebSocket cannot half-close (a close frame would cut off the
                // route's last bytes), so nothing is sent: the route's end ends the pipe, as an
                // SSH server's does when the session is over.
                return Ok::<(), PipeError>(());
            }
            chunk.truncate(n);
            sink.send(Message::binary(chunk))
                .await
                .map_err(|e| PipeError::Io(e.to_string()))?;
        }
    };
    let download = async {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = source.next().await {
            let message = message.map_err(|e| PipeError::Io(e.to_string()))?;
            if message.is_binary() || message.is_text() {
                stdout
                    .write_all(message.as_payload())
                    .await
                    .map_err(|e| PipeError::Io(e.to_string()))?;
                stdout
                    .flush()
                    .await
                    .map_err(|e| PipeError::Io(e.to_string()))?;
            }
        }
        Ok::<(), PipeError>(())
    };
    tokio::pin!(upload, download);
    tokio::select! {
        result = &mut download => result,
        result = &mut upload => {
            result?;
            download.await
        }
    }
}
