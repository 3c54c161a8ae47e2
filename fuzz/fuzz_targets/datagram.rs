//! UDP datagrams framed on a tunnel stream (`egress::datagram`), as the exit and the agent read
//! them from each other; and datagrams as they are written. Properties: a frame read writes
//! back to the very bytes it came from, and what `write` accepts `read` gives back unchanged.
#![no_main]

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wsgate::{
    egress::{
        address::{Address, Host},
        datagram,
    },
    fuzzing::now,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        read_back(rest);
    } else if let Ok((address, payload)) = written(rest) {
        write_then_read(&address, &payload);
    }
});

/// Frames as a peer sent them: each one read re-encodes to exactly its bytes.
fn read_back(stream: &[u8]) {
    let mut reader = stream;
    loop {
        let before = reader;
        let Ok(Some(read)) = now(datagram::read(&mut reader)) else {
            return;
        };
        let frame = &before[..before.len() - reader.len()];
        let mut encoded = Vec::new();
        now(datagram::write(&mut encoded, &read.address, &read.payload))
            .expect("a datagram read can be written");
        assert_eq!(
            encoded, frame,
            "a datagram read did not write back the same"
        );
    }
}

/// An address and a payload from the fuzzer's bytes.
fn written(bytes: &[u8]) -> arbitrary::Result<(Address, Vec<u8>)> {
    let mut u = Unstructured::new(bytes);
    let host = match u.int_in_range(0..=2)? {
        0 => Host::Ip(IpAddr::V4(u.arbitrary()?)),
        1 => Host::Ip(IpAddr::V6(u.arbitrary()?)),
        _ => Host::Name(String::arbitrary(&mut u)?),
    };
    let address = Address {
        host,
        port: u.arbitrary()?,
    };
    Ok((address, u.arbitrary()?))
}

/// What `write` takes, `read` gives back.
fn write_then_read(address: &Address, payload: &[u8]) {
    let mut frame = Vec::new();
    if now(datagram::write(&mut frame, address, payload)).is_err() {
        return;
    }
    let mut reader = frame.as_slice();
    let read = now(datagram::read(&mut reader))
        .expect("a datagram written reads")
        .expect("a datagram written is there");
    assert_eq!((&read.address, read.payload.as_slice()), (address, payload));
    assert!(reader.is_empty(), "the frame had bytes left over");
}
