//! The tunnel's control and stream-header messages: JSON objects, each framed by a 4-byte
//! big-endian length (docs/tunnel.md, "Wire protocol"). Pure encoding and decoding: the
//! reading and writing of frames is `session::messages`.

pub mod names;

use std::io;

use serde::{Deserialize, Serialize};

use crate::refusal::Refusal;

/// The protocol version this build speaks. A peer speaking another is refused with both
/// versions named.
pub const VERSION: u32 = 2;

/// The largest frame either side accepts: a control message is small; anything larger is a
/// confused or hostile peer.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Messages on the control stream, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Agent → gateway, first: who it is and what it speaks.
    Hello {
        /// Protocol version.
        version: u32,
        /// The agent's name (logs, duplicate detection).
        agent: String,
    },
    /// Gateway → agent: accepted.
    Welcome {
        /// Protocol version.
        version: u32,
        /// Seconds between heartbeats the gateway expects.
        heartbeat_secs: u64,
    },
    /// Either way: refused, and why; the session ends.
    Rejected {
        /// A sentence for the operator.
        reason: String,
    },
    /// Agent → gateway: services to expose.
    Register {
        /// The services.
        services: Vec<Service>,
        /// The secret other agents give (`via`) to connect out from this agent's network;
        /// none: this agent is no exit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        egress: Option<crate::secret::Secret>,
    },
    /// Gateway → agent: one service is exposed at `url`.
    Registered {
        /// The service's name.
        name: String,
        /// Where visitors reach it.
        url: String,
    },
    /// Gateway → agent: one service was refused.
    Refused {
        /// The service's name.
        name: String,
        /// Why, naming the holder when another agent has the path, host or name.
        why: String,
    },
    /// Heartbeat.
    Ping(u64),
    /// Heartbeat answer.
    Pong(u64),
}

/// A service an agent exposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique among the agent's services.
    pub name: String,
    /// What the agent dials: `http://…`, `https://…` or `tcp://…`.
    pub local: String,
    /// How visitors reach it.
    pub expose: Expose,
}

/// Where a service is exposed on the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expose {
    /// Under a path prefix.
    Path(String),
    /// On a host name.
    Host(String),
    /// On a TCP port of the gateway (`tcp://` services, ports the gateway allows).
    Port(u16),
    /// Nowhere public: only other agents presenting the secret reach it (`[[forward]]`).
    Private(crate::secret::Secret),
}

/// The first frame on a stream an agent opens: what the stream is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Another agent's private service.
    Forward(Forward),
    /// A TCP connection out of the gateway (or of the agent named in `via`).
    Connect(Connect),
    /// UDP datagrams out of the gateway (or `via`), each framed on the stream
    /// (`egress::datagram`).
    Datagrams(Datagrams),
}

/// Reaching another agent's private service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The private service's name.
    pub service: String,
    /// Its secret.
    pub secret: crate::secret::Secret,
}

/// A TCP connection out through the egress: `host` is a name (resolved where it is dialled,
/// as socks5h does) or an IP address (IPv6 without brackets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// Name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Exit through this agent instead of the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

/// UDP datagrams out through the egress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datagrams {
    /// Exit through this agent instead of the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

/// An agent to exit from, and the secret its `[egress]` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Via {
    /// The exit agent's name.
    pub agent: String,
    /// Its egress secret.
    pub secret: crate::secret::Secret,
}

/// The first frame on a stream the gateway opens to an agent: what to dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Open {
    /// One of the agent's services, by name.
    Service(String),
    /// A TCP connection out of the agent's network (another agent's `via`).
    Connect {
        /// Name or address.
        host: String,
        /// Port.
        port: u16,
        /// The agent asking, for the exit's logs.
        agent: String,
    },
    /// UDP datagrams out of the agent's network (another agent's `via`).
    Datagrams {
        /// The agent asking, for the exit's logs.
        agent: String,
    },
}

/// The answer to an [`Open`] or a [`Request`]: connected, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Opened {
    /// Connected; raw bytes (or framed datagrams) follow both ways.
    Ok,
    /// Not connected.
    Failed {
        /// What kind of failure (a SOCKS5 reply code, an HTTP status).
        failure: Failure,
        /// A sentence for the operator.
        reason: String,
    },
}

impl Opened {
    /// A failure of no more specific kind.
    pub fn general(reason: impl Into<String>) -> Self {
        Opened::Failed {
            failure: Failure::General,
            reason: reason.into(),
        }
    }
}

/// Why a connection could not be made; each kind is a SOCKS5 reply and an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The egress policy (or the token, or the secret) does not allow it.
    NotAllowed,
    /// No route to the network (or the exit agent is not connected).
    NetworkUnreachable,
    /// The name does not resolve, or no route to the host.
    HostUnreachable,
    /// The destination refused the connection.
    Refused,
    /// The destination did not answer in time.
    TimedOut,
    /// Anything else.
    General,
}

impl Failure {
    /// The refusal a client of the agent's proxies gets for it (SOCKS5 reply, HTTP status).
    pub fn refusal(self) -> Refusal {
        match self {
            Failure::NotAllowed => Refusal::EgressNotAllowed,
            Failure::NetworkUnreachable => Refusal::EgressNetworkUnreachable,
            Failure::HostUnreachable => Refusal::EgressHostUnreachable,
            Failure::Refused => Refusal::EgressRefused,
            Failure::TimedOut => Refusal::EgressTimedOut,
            Failure::General => Refusal::EgressFailed,
        }
    }

    /// The kind of an I/O error from dialling.
    pub fn of(error: &io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::TimedOut => Failure::TimedOut,
            io::ErrorKind::HostUnreachable => Failure::HostUnreachable,
            io::ErrorKind::NetworkUnreachable => Failure::NetworkUnreachable,
            _ => Failure::General,
        }
    }
}

/// One message as a frame: its JSON after a 4-byte big-endian length.
pub fn encode<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(message).map_err(io::Error::other)?;
    if json.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// One message from a frame's body (the bytes after its length).
pub fn decode<T: for<'de> Deserialize<'de>>(json: &[u8]) -> io::Result<T> {
    serde_json::from_slice(json).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_is_readable() {
        let hello = Control::Hello {
            version: 1,
            agent: "a".into(),
        };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"hello":{"version":1,"agent":"a"}}"#
        );
    }

    mod properties {
        //! encode→decode is the identity for every message either side sends.
        use proptest::{option, prelude::*};

        use super::*;
        use crate::secret::Secret;

        fn secret() -> impl Strategy<Value = Secret> {
            any::<String>().prop_map(Secret::new)
        }

        fn via() -> impl Strategy<Value = Option<Via>> {
            option::of(
                (any::<String>(), secret()).prop_map(|(agent, secret)| Via { agent, secret }),
            )
        }

        fn service() -> impl Strategy<Value = Service> {
            let expose = prop_oneof![
                any::<String>().prop_map(Expose::Path),
                any::<String>().prop_map(Expose::Host),
                any::<u16>().prop_map(Expose::Port),
                secret().prop_map(Expose::Private),
            ];
            (any::<String>(), any::<String>(), expose).prop_map(|(name, local, expose)| Service {
                name,
                local,
                expose,
            })
        }

        fn control() -> impl Strategy<Value = Control> {
            let text = any::<String>;
            prop_oneof![
                (any::<u32>(), text())
                    .prop_map(|(version, agent)| Control::Hello { version, agent }),
                (any::<u32>(), any::<u64>()).prop_map(|(version, heartbeat_secs)| {
                    Control::Welcome {
                        version,
                        heartbeat_secs,
                    }
                }),
                text().prop_map(|reason| Control::Rejected { reason }),
                (prop::collection::vec(service(), 0..4), option::of(secret()))
                    .prop_map(|(services, egress)| Control::Register { services, egress }),
                (text(), text()).prop_map(|(name, url)| Control::Registered { name, url }),
                (text(), text()).prop_map(|(name, why)| Control::Refused { name, why }),
                any::<u64>().prop_map(Control::Ping),
                any::<u64>().prop_map(Control::Pong),
            ]
        }

        fn request() -> impl Strategy<Value = Request> {
            prop_oneof![
                (any::<String>(), secret())
                    .prop_map(|(service, secret)| Request::Forward(Forward { service, secret })),
                (any::<String>(), any::<u16>(), via())
                    .prop_map(|(host, port, via)| Request::Connect(Connect { host, port, via })),
                via().prop_map(|via| Request::Datagrams(Datagrams { via })),
            ]
        }

        fn open() -> impl Strategy<Value = Open> {
            prop_oneof![
                any::<String>().prop_map(Open::Service),
                (any::<String>(), any::<u16>(), any::<String>())
                    .prop_map(|(host, port, agent)| Open::Connect { host, port, agent }),
                any::<String>().prop_map(|agent| Open::Datagrams { agent }),
            ]
        }

        fn opened() -> impl Strategy<Value = Opened> {
            let failure = prop::sample::select(vec![
                Failure::NotAllowed,
                Failure::NetworkUnreachable,
                Failure::HostUnreachable,
                Failure::Refused,
                Failure::TimedOut,
                Failure::General,
            ]);
            prop_oneof![
                Just(Opened::Ok),
                (failure, any::<String>())
                    .prop_map(|(failure, reason)| Opened::Failed { failure, reason }),
            ]
        }

        /// Encodes `message` as a frame and decodes it back.
        fn round_trip<T>(message: &T) -> T
        where
            T: Serialize + for<'de> Deserialize<'de>,
        {
            let frame = encode(message).unwrap();
            let length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(length, frame.len() - 4, "the length prefix counts the body");
            decode(&frame[4..]).unwrap()
        }

        proptest! {
            #[test]
            fn control_messages_round_trip(message in control()) {
                prop_assert_eq!(round_trip(&message), message);
            }

            #[test]
            fn stream_requests_round_trip(message in request()) {
                prop_assert_eq!(round_trip(&message), message);
            }

            #[test]
            fn opens_round_trip(message in open()) {
                prop_assert_eq!(round_trip(&message), message);
            }

            #[test]
            fn answers_round_trip(message in opened()) {
                prop_assert_eq!(round_trip(&message), message);
            }
        }
    }
}
