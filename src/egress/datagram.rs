//! UDP datagrams carried on a tunnel stream: each is a 4-byte big-endian length, then the
//! peer's address as SOCKS5 writes it ([`Address`]), then the payload. Toward the exit the
//! address is the destination; back from it, the source.

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    time::{Instant, sleep_until},
};

use super::address::{Address, Host};

/// The largest payload carried: UDP's over IPv4.
pub(crate) const MAX_PAYLOAD: usize = 65_507;

/// The largest frame: a payload and the longest address (a 255-byte name).
const MAX_FRAME: usize = MAX_PAYLOAD + 1 + 1 + 255 + 2;

/// One datagram and its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Destination (toward the exit) or source (back from it).
    pub address: Address,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Writes one datagram and flushes it.
pub async fn write<W>(writer: &mut W, address: &Address, payload: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if payload.len() > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "datagram too large",
        ));
    }
    // A name the frame cannot carry whole would reach the peer as a broken frame.
    if let Host::Name(name) = &address.host
        && !(1..=255).contains(&name.len())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a datagram's address name must be 1 to 255 bytes",
        ));
    }
    let mut frame = Vec::with_capacity(4 + 20 + payload.len());
    frame.extend_from_slice(&[0; 4]);
    address.encode(&mut frame);
    frame.extend_from_slice(payload);
    let length = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// Reads one datagram; `Ok(None)` at a clean end of the stream.
pub async fn read<R>(reader: &mut R) -> io::Result<Option<Datagram>>
where
    R: AsyncRead + Unpin,
{
    let Some(mut frame) = crate::io::read_prefixed(reader, MAX_FRAME).await? else {
        return Ok(None);
    };
    match Address::decode(&frame) {
        Ok(Some((address, used))) => Ok(Some(Datagram {
            address,
            payload: frame.split_off(used),
        })),
        Ok(None) => Err(invalid("a datagram frame ends inside its address".into())),
        Err(error) => Err(invalid(format!("a datagram's address: {error:?}"))),
    }
}

/// When a UDP association last moved a datagram: it ends once that is longer ago than its
/// idle timeout. Only datagrams forwarded count, so strangers spraying its port (dropped)
/// cannot keep it alive.
#[derive(Debug)]
pub(crate) struct IdleClock {
    last: Mutex<Instant>,
}

impl IdleClock {
    /// A clock that starts now.
    pub fn new() -> Arc<IdleClock> {
        Arc::new(IdleClock {
            last: Mutex::new(Instant::now()),
        })
    }

    /// A datagram moved.
    pub(crate) fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Returns once `idle` has passed with no datagram moved.
    pub async fn expired(&self, idle: Duration) {
        loop {
            let deadline = *self.last.lock().unwrap_or_else(|e| e.into_inner()) + idle;
            if Instant::now() >= deadline {
                return;
            }
            sleep_until(deadline).await;
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_round_trip_and_end_cleanly() {
        let to = Address {
            host: Host::Name("dns.example".into()),
            port: 53,
        };
        let mut bytes = Vec::new();
        write(&mut bytes, &to, b"query").await.unwrap();
        write(&mut bytes, &to, b"").await.unwrap();
        let mut reader = bytes.as_slice();
        let first = read(&mut reader).await.unwrap().unwrap();
        assert_eq!(
            (first.address, first.payload),
            (to.clone(), b"query".to_vec())
        );
        assert!(read(&mut reader).await.unwrap().unwrap().payload.is_empty());
        assert!(read(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let mut reader: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        let error = read(&mut reader).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let to = Address::from(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        let error = write(&mut Vec::new(), &to, &vec![0; MAX_PAYLOAD + 1])
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    /// Found by `fuzz/` (target `datagram`, input `01 05`: the name `""`, port 0, no payload):
    /// `write` framed a name `read` refuses. Names it cannot carry whole are refused instead.
    #[tokio::test]
    async fn names_a_frame_cannot_carry_are_refused_when_written() {
        let name = |text: String| Address {
            host: Host::Name(text),
            port: 0,
        };
        for bad in [String::new(), "a".repeat(256), "é".repeat(128)] {
            let error = write(&mut Vec::new(), &name(bad.clone()), b"").await;
            let kind = error.map_err(|e| e.kind());
            assert_eq!(
                kind,
                Err(io::ErrorKind::InvalidInput),
                "{} bytes",
                bad.len()
            );
        }
        let longest = name("a".repeat(255));
        let mut bytes = Vec::new();
        write(&mut bytes, &longest, b"x").await.unwrap();
        let read = read(&mut bytes.as_slice()).await.unwrap().unwrap();
        assert_eq!((read.address, read.payload), (longest, b"x".to_vec()));
    }

    mod properties {
        //! encode→decode is the identity for every datagram `write` accepts.
        use futures_util::FutureExt;
        use proptest::prelude::*;

        use super::*;

        fn address() -> impl Strategy<Value = Address> {
            let host = prop_oneof![
                any::<std::net::Ipv4Addr>().prop_map(|ip| Host::Ip(ip.into())),
                any::<std::net::Ipv6Addr>().prop_map(|ip| Host::Ip(ip.into())),
                // Up to 63 characters of up to 4 bytes: every name length a frame carries, of
                // the characters a name may hold (no control character, no white space).
                "[^\\p{Cc}\\s]{1,63}".prop_map(Host::Name),
            ];
            (host, any::<u16>()).prop_map(|(host, port)| Address { host, port })
        }

        proptest! {
            #[test]
            fn datagrams_round_trip(
                to in address(),
                payload in prop::collection::vec(any::<u8>(), 0..2048),
            ) {
                let mut bytes = Vec::new();
                write(&mut bytes, &to, &payload).now_or_never().unwrap().unwrap();
                let mut reader = bytes.as_slice();
                let read = read(&mut reader).now_or_never().unwrap().unwrap().unwrap();
                prop_assert_eq!((read.address, read.payload), (to, payload));
                prop_assert!(reader.is_empty(), "bytes left after the frame");
            }

            #[test]
            fn addresses_round_trip_and_leave_what_follows(
                to in address(),
                rest in prop::collection::vec(any::<u8>(), 0..8),
            ) {
                let mut bytes = Vec::new();
                to.encode(&mut bytes);
                bytes.extend_from_slice(&rest);
                let (read, used) = Address::decode(&bytes).unwrap().unwrap();
                prop_assert_eq!((read, &bytes[used..]), (to, rest.as_slice()));
            }
        }
    }
}
