//! The direct connector: dial TCP (keepalive on) or a Unix socket from the gateway, under a
//! connect timeout, and write the PROXY header first if the route asks for one.

use std::io;

use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UnixStream, lookup_host},
    time::timeout,
};

use super::{ClientAddrs, ConnectError, DialOptions, Stream, Target, keep_alive};

/// Dials one fixed target.
#[derive(Debug, Clone)]
pub struct DirectConnector {
    /// Where to dial.
    pub target: Target,
    /// Timeout and PROXY header.
    pub options: DialOptions,
}

impl DirectConnector {
    /// Dials the target and, if configured, writes the PROXY header first.
    pub async fn connect(&self, client: ClientAddrs) -> Result<Stream, ConnectError> {
        let after = self.options.connect_timeout;
        let mut upstream =
            timeout(after, self.dial())
                .await
                .map_err(|_| ConnectError::Timeout {
                    target: self.target.to_string(),
                    after,
                })??;
        if let Some(version) = self.options.proxy_protocol {
            let header = version.header(client.peer, client.local);
            upstream
                .write_all(&header)
                .await
                .map_err(|source| self.refused(source))?;
        }
        Ok(upstream)
    }

    async fn dial(&self) -> Result<Stream, ConnectError> {
        match &self.target {
            Target::Tcp { host, port } => self.dial_tcp(host, *port).await,
            Target::Unix(path) => UnixStream::connect(path)
                .await
                .map(Stream::Unix)
                .map_err(|source| self.refused(source)),
        }
    }

    /// Tries each resolved address in turn, as browsers and curl do, keeping the last error.
    async fn dial_tcp(&self, host: &str, port: u16) -> Result<Stream, ConnectError> {
        let addrs = lookup_host((host, port))
            .await
            .map_err(|source| ConnectError::Resolve {
                target: self.target.to_string(),
                source,
            })?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no addresses");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Interactive traffic (VNC, SSH keystrokes) must not wait for Nagle.
                    stream
                        .set_nodelay(true)
                        .map_err(|source| self.refused(source))?;
                    // A vanished upstream is found in minutes, not never (see KEEPALIVE_IDLE).
                    keep_alive(&stream);
                    return Ok(Stream::Tcp(stream));
                }
                Err(error) => last_error = error,
            }
        }
        Err(self.refused(last_error))
    }

    fn refused(&self, source: io::Error) -> ConnectError {
        ConnectError::Refused {
            target: self.target.to_string(),
            source,
        }
    }
}
