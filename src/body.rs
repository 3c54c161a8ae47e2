//! Response bodies and the small responses every layer gives: the one body type, a body from
//! bytes, a short text answer, a refusal's answer from the table; and `%xx` decoding.

use std::io;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

use crate::refusal::Refusal;

/// Every response body: streamed, sendable, failing only with I/O errors.
pub type Body = BoxBody<Bytes, io::Error>;

/// A short `text/plain` response.
pub(crate) fn text_response(status: StatusCode, reason: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{reason}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer for `refusal`: its status and reason from the table. The kind rides in the
/// response's extensions, where the access log reads the outcome.
pub fn refused(refusal: Refusal) -> Response<Body> {
    refused_because(refusal, refusal.reason())
}

/// As [`refused`], with a more precise reason: a typed error's message (which escapes
/// anything a client sent) or fixed text.
pub(crate) fn refused_because(refusal: Refusal, reason: impl std::fmt::Display) -> Response<Body> {
    let mut response = text_response(refusal.status(), &reason.to_string());
    response.extensions_mut().insert(refusal);
    response
}

/// A body from bytes in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Decodes `%xx` escapes; malformed escapes are kept as written. (`+` stays `+`: it means a
/// space only in form bodies.)
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte as u8);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(percent_decode("a%20b%2e%2E"), "a b..");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz+"), "%zz+");
    }
}
