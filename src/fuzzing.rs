//! Entry points for the fuzz targets in `fuzz/` (docs/fuzzing.md): the decoders that are
//! private to their modules, wrapped so that a target can feed them bytes. Not an API: hidden
//! from the docs, nothing in wsgate calls it, and it may change with any release.

use std::{collections::HashMap, future::Future, io, net::SocketAddr};

use futures_util::FutureExt;
use http::{Request, Uri};

use crate::{
    config::agent::plan::{Credentials, ProxyPlan},
    connector::Target,
    egress::{address::Address, datagram::Datagram},
    secret::Secret,
};

/// A config error's place is inside `source` (line and column from 1), and the error prints:
/// the property both config targets check.
pub fn assert_located(error: &crate::config::ConfigError, source: &str) {
    if let Some(at) = &error.location {
        assert!(
            at.line >= 1 && at.line <= source.split('\n').count(),
            "{error:?}"
        );
        assert!(at.column >= 1, "{error:?}");
    }
    let _ = error.to_string();
}

/// Runs a future whose I/O is all in memory to its end. Panics if it would wait: a decoder
/// reading from a byte slice that waits is waiting for input that can never come.
pub fn now<F: Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("a decoder reading from memory never waits")
}

/// What the agent's SOCKS5 handshake made of a client's bytes.
#[derive(Debug)]
pub struct Socks5Outcome {
    /// How many input bytes it read.
    pub consumed: usize,
    /// What it wrote back (method choice, authentication status).
    pub written: Vec<u8>,
    /// `Err` when the client broke the protocol or its bytes ended; else the command and the
    /// address, or the reply code that refuses the request.
    pub request: io::Result<Result<(u8, Address), u8>>,
}

/// The agent's SOCKS5 handshake (method selection, RFC 1929 authentication when
/// `credentials` are set, the request) over `input`.
pub fn socks5_handshake(input: &[u8], credentials: Option<(&str, &str)>) -> Socks5Outcome {
    let mut plan = ProxyPlan::on(SocketAddr::from(([127, 0, 0, 1], 1080)));
    plan.credentials = credentials.map(|(username, password)| Credentials {
        username: username.to_string(),
        password: Secret::new(password),
    });
    let mut reader = input;
    let mut written = Vec::new();
    let request = {
        let mut client = tokio::io::join(&mut reader, &mut written);
        now(crate::agent::socks5::handshake(&mut client, &plan))
    };
    Socks5Outcome {
        consumed: input.len() - reader.len(),
        written,
        request: request.map(|r| r.map_err(|refusal| refusal.socks_reply())),
    }
}

/// A SOCKS5 client's UDP request header (RFC 1928 §7): the destination and the payload.
pub fn socks5_udp_header(packet: &[u8]) -> Option<(Address, &[u8])> {
    crate::agent::socks5::parse_udp_header(packet)
}

/// A datagram back to a SOCKS5 client, with the header naming its source.
pub fn socks5_udp_packet(answer: &Datagram) -> Vec<u8> {
    crate::agent::socks5::udp_packet(answer)
}

/// The HTTP proxy's reading of a request target: host (IPv6 without brackets) and port.
pub fn http_proxy_authority(uri: &Uri, default: Option<u16>) -> Option<(String, u16)> {
    crate::agent::http_proxy::authority(uri, default)
}

/// Whether the HTTP proxy lets `req` through when it asks for `username` and `password`.
pub fn http_proxy_authorized<B>(req: &Request<B>, username: &str, password: &str) -> bool {
    let mut plan = ProxyPlan::on(SocketAddr::from(([127, 0, 0, 1], 3128)));
    plan.credentials = Some(Credentials {
        username: username.to_string(),
        password: Secret::new(password),
    });
    crate::agent::http_proxy::authorized(req, &plan)
}

/// The request the HTTP proxy sends on for an absolute-URI request.
pub fn http_proxy_origin_form<B>(req: Request<B>) -> Request<B> {
    crate::agent::http_proxy::origin_form(req)
}

/// The table a websockify token file's text gives.
pub fn token_file(text: &str) -> HashMap<String, Target> {
    let mut table = HashMap::new();
    crate::handler::bridge::tokens::parse_into(text, &mut table);
    table
}
