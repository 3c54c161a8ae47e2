//! The agent connector: a target is a service of a connected agent, reached by opening a
//! stream on the agent's tunnel session and naming the service in its first frame.

use std::{fmt, time::Duration};

use tokio::time::timeout;

use super::{ConnectError, Stream};
use crate::{
    session::{OpenError, OpenedStream, SessionHandle},
    wire::Open,
};

/// One service of one agent.
#[derive(Debug, Clone)]
pub struct AgentConnector {
    /// The agent's name.
    pub agent: String,
    /// The service's name.
    pub service: String,
    /// The agent's session.
    pub session: SessionHandle,
    /// How long the agent may take to reach its local service.
    pub connect_timeout: Duration,
}

impl AgentConnector {
    /// Opens a stream to the service, once the agent says it has reached it.
    pub async fn connect(&self) -> Result<Stream, ConnectError> {
        let stream = self.connect_stream().await?;
        Ok(Stream::Tunnel(Box::new(stream)))
    }

    /// As [`Self::connect`], the tunnel stream itself (to splice it frame by frame).
    pub(crate) async fn connect_stream(&self) -> Result<OpenedStream, ConnectError> {
        match timeout(self.connect_timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                target: self.to_string(),
                after: self.connect_timeout,
            }),
        }
    }

    async fn open(&self) -> Result<OpenedStream, ConnectError> {
        let failed = |reason: String| ConnectError::Agent {
            target: self.to_string(),
            reason,
        };
        let mut stream = self.session.open().await.map_err(|e| match e {
            OpenError::Budget => ConnectError::Busy {
                target: self.to_string(),
                reason: e.to_string(),
            },
            OpenError::Session(e) => failed(format!("agent session: {e}")),
        })?;
        let open = Open::Service(self.service.clone());
        crate::session::messages::ask(&mut stream, &open)
            .await
            .map_err(|(_, reason)| failed(reason))?;
        Ok(stream)
    }
}

impl fmt::Display for AgentConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "agent:{}/{}", self.agent, self.service)
    }
}
