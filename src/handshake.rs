//! The server side of the WebSocket opening handshake (RFC 6455 §4.2): checks and the 101.

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};

use crate::{body::Body, refusal::Refusal};

/// The GUID every `Sec-WebSocket-Accept` is derived with (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid client handshake: what the 101 needs.
#[derive(Debug)]
pub struct WebSocketRequest {
    /// `Sec-WebSocket-Key` as sent.
    key: HeaderValue,
    /// Subprotocols offered, in the client's order of preference.
    pub protocols: Vec<String>,
}

/// Why a request is not an acceptable WebSocket handshake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// No `Upgrade: websocket` at all: a plain HTTP request on a WebSocket route.
    #[error("this route speaks WebSocket only: send an Upgrade: websocket request")]
    NotWebSocket,
    /// An upgrade that is not a GET.
    #[error("a WebSocket handshake must be a GET request")]
    NotGet,
    /// Version other than 13.
    #[error("unsupported WebSocket version: only 13 is supported")]
    BadVersion,
    /// Missing or malformed `Sec-WebSocket-Key`.
    #[error("missing or invalid Sec-WebSocket-Key")]
    BadKey,
    /// None of the offered subprotocols is one this route speaks.
    #[error("no supported subprotocol offered: this route speaks {0}")]
    NoProtocol(&'static str),
}

impl HandshakeError {
    /// 426 tells the client to upgrade (RFC 7231 §6.5.15), 400 for a broken handshake.
    pub fn refusal(&self) -> Refusal {
        match self {
            HandshakeError::NotWebSocket | HandshakeError::BadVersion => Refusal::UpgradeRequired,
            HandshakeError::NotGet => Refusal::MethodNotAllowed,
            HandshakeError::BadKey | HandshakeError::NoProtocol(_) => Refusal::BadHandshake,
        }
    }

    /// The refusal, with this error's message and the headers that tell the client how to
    /// retry.
    pub fn response(&self) -> Response<Body> {
        let mut response = crate::body::refused_because(self.refusal(), self);
        self.add_headers(response.headers_mut());
        response
    }

    /// Headers that tell the client how to retry.
    pub(crate) fn add_headers(&self, headers: &mut HeaderMap) {
        match self {
            HandshakeError::NotWebSocket => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            }
            HandshakeError::BadVersion => {
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            HandshakeError::NotGet => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            HandshakeError::BadKey | HandshakeError::NoProtocol(_) => {}
        }
    }
}

/// Whether any comma-separated token of header `name` equals `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Whether the request asks for a WebSocket upgrade at all (used for routing).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    has_token(req.headers(), header::UPGRADE, "websocket")
}

/// Checks a client handshake.
pub fn check<B>(req: &Request<B>) -> Result<WebSocketRequest, HandshakeError> {
    let headers = req.headers();
    if !is_upgrade(req)
        || !has_token(headers, header::CONNECTION, "upgrade")
        || req.version() < Version::HTTP_11
    {
        return Err(HandshakeError::NotWebSocket);
    }
    if req.method() != Method::GET {
        return Err(HandshakeError::NotGet);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeError::BadVersion);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HandshakeError::BadKey)?;
    match STANDARD.decode(key.as_bytes()) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect();
    Ok(WebSocketRequest {
        key: key.clone(),
        protocols,
    })
}

/// `Sec-WebSocket-Accept` for a key.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    STANDARD.encode(sha1.digest().bytes())
}

impl WebSocketRequest {
    /// The `Sec-WebSocket-Accept` a valid answer to this handshake carries.
    pub(crate) fn expected_accept(&self) -> String {
        accept_key(self.key.as_bytes())
    }

    /// The `101 Switching Protocols` answer, naming `protocol` if one was chosen.
    pub(crate) fn switching_protocols(&self, protocol: Option<&'static str>) -> Response<Body> {
        let accept = self.expected_accept();
        let mut response = Response::new(Body::default());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        if let Some(protocol) = protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        // RFC 6455 §1.3.
        let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn request(edit: impl FnOnce(&mut http::request::Builder)) -> Request<()> {
        let mut builder = Request::get("/")
            .header("upgrade", "websocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        edit(&mut builder);
        builder.body(()).unwrap()
    }

    #[test]
    fn accepts_a_valid_handshake_with_protocols() {
        let req = request(|b| {
            b.headers_mut()
                .unwrap()
                .insert("sec-websocket-protocol", "binary, base64".parse().unwrap());
        });
        assert_eq!(check(&req).unwrap().protocols, ["binary", "base64"]);
    }

    #[test]
    fn rejects_plain_requests_and_bad_versions() {
        let plain = Request::get("/").body(()).unwrap();
        assert_eq!(check(&plain).unwrap_err(), HandshakeError::NotWebSocket);
        let old = request(|b| {
            b.headers_mut()
                .unwrap()
                .insert("sec-websocket-version", "8".parse().unwrap());
        });
        assert_eq!(check(&old).unwrap_err(), HandshakeError::BadVersion);
        let no_key = request(|b| {
            b.headers_mut()
                .unwrap()
                .insert("sec-websocket-key", "short".parse().unwrap());
        });
        assert_eq!(check(&no_key).unwrap_err(), HandshakeError::BadKey);
    }
}
