//! A request checked and put in canonical form before routing: exactly one valid host (the
//! absolute URI's authority over `Host`, RFC 9112 §3.2.2), and the normal form of its path.
//! Routes match, and handlers and upstreams receive, this canonical request.

use http::{HeaderValue, Method, Request, Response, Version, header};

use crate::{
    body::{Body, full},
    matching::{Authority, HostError, PathError, normalize_path},
};

/// What the gateway answers for the server as a whole (`OPTIONS *`, RFC 9110 §9.3.7) and for
/// `CONNECT`: what proxy routes forward (every method but `CONNECT`, which is a forward
/// proxy's), which includes what static files (`GET`, `HEAD`) and WebSocket handshakes (`GET`)
/// take.
pub(crate) const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/// Why a request is refused before routing; every one is the client's fault (400).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Two `Host` fields: which one would a server behind us believe? (RFC 9112 §3.2)
    #[error("more than one Host header")]
    DuplicateHost,
    /// HTTP/1.1 requires `Host` (RFC 9112 §3.2); HTTP/1.0 does not.
    #[error("an HTTP/1.1 request needs a Host header")]
    MissingHost,
    /// The `Host` value or the absolute URI's authority is malformed.
    #[error("malformed host: {0}")]
    Host(#[from] HostError),
    /// The path cannot be normalised.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The target `*` with another method than `OPTIONS` (RFC 9112 §3.2.4).
    #[error("the request target * is only for OPTIONS")]
    Asterisk,
}

/// What a checked request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A path (origin or absolute form): routed.
    Path,
    /// `OPTIONS *`: the gateway itself answers, see [`server_options`].
    Server,
    /// `CONNECT host:port`: the gateway is not a forward proxy; see [`connect_refused`].
    Connect,
}

/// Checks `req` and rewrites it in place into canonical form: `Host` set to the canonical
/// host, an absolute target made origin-form, the path normalised (the query kept as sent).
pub fn prepare<B>(req: &mut Request<B>) -> Result<Target, RequestError> {
    canonical_host(req)?;
    let uri = req.uri();
    if uri.scheme().is_none() && uri.authority().is_none() && uri.path() == "*" {
        return match req.method() {
            &Method::OPTIONS => Ok(Target::Server),
            _ => Err(RequestError::Asterisk),
        };
    }
    if uri.scheme().is_none() && uri.authority().is_some() && req.method() == Method::CONNECT {
        return Ok(Target::Connect);
    }
    canonical_path(req)?;
    Ok(Target::Path)
}

/// Refuses duplicate, missing (HTTP/1.1) and malformed hosts, and sets `Host` to the canonical
/// form of the absolute URI's authority if there is one, else of `Host` itself.
fn canonical_host<B>(req: &mut Request<B>) -> Result<(), RequestError> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let sent = values.next();
    if values.next().is_some() {
        return Err(RequestError::DuplicateHost);
    }
    let sent = match sent {
        Some(value) => Some(value.to_str().map_err(|_| HostError::Name)?),
        None if req.version() >= Version::HTTP_11 => return Err(RequestError::MissingHost),
        None => None,
    };
    let sent_host = sent.map(Authority::parse).transpose()?;
    let absolute = req.uri().scheme().and(req.uri().authority());
    let absolute_form = absolute.is_some();
    let canonical = match (absolute, sent_host) {
        (Some(authority), _) => Authority::parse(authority.as_str())?.to_string(),
        (None, Some(host)) => host.to_string(),
        (None, None) => return Ok(()),
    };
    if sent != Some(canonical.as_str()) {
        let value = HeaderValue::from_str(&canonical).expect("a checked host is a header value");
        req.headers_mut().insert(header::HOST, value);
    }
    if absolute_form {
        // The authority now lives in `Host` alone: the target becomes origin-form, so no
        // later step can read a second, different host.
        let origin = req.uri().path_and_query().cloned();
        *req.uri_mut() = origin.map_or_else(|| http::Uri::from_static("/"), http::Uri::from);
    }
    Ok(())
}

/// Rewrites the path into its normal form (the query is kept).
fn canonical_path<B>(req: &mut Request<B>) -> Result<(), RequestError> {
    let normal = match normalize_path(req.uri().path())? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(normal) => normal,
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    // Unreserved characters and `/` are valid wherever their escapes were.
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .expect("a normal path is a valid URI"),
    );
    *req.uri_mut() = http::Uri::from_parts(parts).expect("only the path changed");
    Ok(())
}

/// `OPTIONS *`: 200 with the methods the gateway takes. Answered here rather than forwarded,
/// because no route owns `*` and rewriting it into a path (`/base*`) would ask an upstream
/// about a resource nobody named; Apache httpd answers it the same way.
pub(crate) fn server_options() -> Response<Body> {
    let mut response = Response::new(full(""));
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    response
}

/// `CONNECT host:port`: 405 with the methods the gateway takes.
pub(crate) fn connect_refused() -> Response<Body> {
    let mut response = crate::body::refused(crate::refusal::Refusal::ConnectNotSupported);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, version: Version, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).expect("a valid test request")
    }

    /// `prepare`'s outcome, then the request's `Host` values and its URI as routed.
    fn prepared(mut req: Request<()>) -> (Result<Target, String>, Vec<String>, String) {
        let target = prepare(&mut req).map_err(|error| error.to_string());
        let hosts = req
            .headers()
            .get_all(header::HOST)
            .iter()
            .map(|value| value.to_str().unwrap_or("?").to_string())
            .collect();
        (target, hosts, req.uri().to_string())
    }

    #[test]
    fn requests_are_put_in_canonical_form() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        let path = Ok(Target::Path);
        let cases = [
            (
                ("GET", "/a//b/./%63?q=%61", HTTP_11, &["a"][..]),
                (path.clone(), &["a"][..], "/a/b/c?q=%61"),
            ),
            (
                ("GET", "/x", HTTP_11, &["app.test.:080"]),
                (path.clone(), &["app.test:80"], "/x"),
            ),
            (
                ("GET", "http://b.test/x", HTTP_11, &["a"]),
                (path.clone(), &["b.test"], "/x"),
            ),
            (
                ("GET", "http://b.test./x", HTTP_10, &[]),
                (path.clone(), &["b.test"], "/x"),
            ),
            (("GET", "/x", HTTP_10, &[]), (path.clone(), &[], "/x")),
            (
                ("OPTIONS", "*", HTTP_11, &["a"]),
                (Ok(Target::Server), &["a"], "*"),
            ),
            (
                ("CONNECT", "a:443", HTTP_11, &["a:443"]),
                (Ok(Target::Connect), &["a:443"], "a:443"),
            ),
        ];
        for ((method, target, version, hosts), (outcome, canonical, uri)) in cases {
            let expected = (
                outcome,
                canonical.iter().map(|h| h.to_string()).collect(),
                uri.to_string(),
            );
            let actual = prepared(request(method, target, version, hosts));
            assert_eq!(actual, expected, "{method} {target} {hosts:?}");
        }
    }

    #[test]
    fn bad_requests_name_their_reason() {
        let cases = [
            (
                ("GET", "/x", Version::HTTP_11, &["a", "b"][..]),
                "more than one Host header",
            ),
            (
                ("GET", "/x", Version::HTTP_11, &[]),
                "an HTTP/1.1 request needs a Host header",
            ),
            (
                ("GET", "/x", Version::HTTP_11, &["a:99999"]),
                "malformed host: the port is not a number from 0 to 65535",
            ),
            (
                ("GET", "http://u@a/x", Version::HTTP_11, &["a"]),
                "malformed host: the host carries user info (user@)",
            ),
            (
                ("GET", "/api/..;/x", Version::HTTP_11, &["a"]),
                "path parameters on a dot segment",
            ),
            (
                ("GET", "*", Version::HTTP_11, &["a"]),
                "the request target * is only for OPTIONS",
            ),
            (
                ("GET", "a:443", Version::HTTP_11, &["a"]),
                "the request target is not a path starting with /",
            ),
        ];
        for ((method, target, version, hosts), reason) in cases {
            let (outcome, _, _) = prepared(request(method, target, version, hosts));
            assert_eq!(
                outcome,
                Err(reason.to_string()),
                "{method} {target} {hosts:?}"
            );
        }
    }
}
