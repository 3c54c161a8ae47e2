//! The agent's SOCKS5 server as a client's bytes reach it: method selection, RFC 1929
//! username/password, the request; and UDP request headers. Properties: the handshake never
//! reads past what it needs nor waits on bytes it has; an accepted request's address is the
//! bytes the client wrote; a UDP header parsed rebuilds the packet exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::{
    egress::datagram::Datagram,
    fuzzing::{socks5_handshake, socks5_udp_header, socks5_udp_packet},
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let credentials = (flags & 1 == 1).then_some(("user", "pass"));
    handshake(input, credentials);
    udp_header(input);
});

fn handshake(input: &[u8], credentials: Option<(&str, &str)>) {
    let outcome = socks5_handshake(input, credentials);
    assert!(outcome.consumed <= input.len());
    let Ok(Ok((_command, address))) = outcome.request else {
        return;
    };
    // Accepted: the method chosen was ours, the password (if asked) was right, and the request
    // ended with the address exactly as written.
    let method = if credentials.is_some() { 2 } else { 0 };
    assert_eq!(outcome.written[..2], [5, method]);
    if credentials.is_some() {
        assert_eq!(outcome.written[2..], [1, 0]);
    }
    let mut encoded = Vec::new();
    address.encode(&mut encoded);
    assert!(
        input[..outcome.consumed].ends_with(&encoded),
        "the address {address} is not what the client wrote"
    );
}

fn udp_header(packet: &[u8]) {
    let Some((address, payload)) = socks5_udp_header(packet) else {
        return;
    };
    let rebuilt = socks5_udp_packet(&Datagram {
        address,
        payload: payload.to_vec(),
    });
    assert_eq!(
        rebuilt, packet,
        "a UDP header read did not rebuild the packet"
    );
}
