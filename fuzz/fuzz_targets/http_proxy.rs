//! The agent's HTTP proxy's reading of a request once hyper has parsed it: the target's host
//! and port, `Proxy-Authorization: Basic`, and the origin-form request sent on. Input: three
//! lines — the request target, the Proxy-Authorization value, `user:password` the proxy wants.
//! Properties: the host never carries userinfo or brackets; only the right credentials pass;
//! what is sent on is origin form, with a Host free of userinfo and no proxy credentials.
#![no_main]

use base64::Engine;
use http::{HeaderValue, Request, Uri, header};
use libfuzzer_sys::fuzz_target;
use wsgate::fuzzing::{http_proxy_authority, http_proxy_authorized, http_proxy_origin_form};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (Some(target), auth, wanted) = (lines.next(), lines.next(), lines.next()) else {
        return;
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    authority(&uri);
    let mut req = Request::new(());
    *req.uri_mut() = uri;
    if let Some(value) = auth.and_then(|a| HeaderValue::from_bytes(a).ok()) {
        req.headers_mut().insert(header::PROXY_AUTHORIZATION, value);
    }
    let wanted = wanted
        .and_then(|w| std::str::from_utf8(w).ok())
        .unwrap_or("user:pass");
    authorized(&req, wanted);
    origin_form(req);
});

fn authority(uri: &Uri) {
    for default in [None, Some(80)] {
        let Some((host, port)) = http_proxy_authority(uri, default) else {
            continue;
        };
        let authority = uri
            .authority()
            .expect("a host and port come from the authority");
        assert_eq!(Some(port), authority.port_u16().or(default));
        assert!(!host.contains('@'), "userinfo in the host {host:?}");
        assert!(!host.starts_with('['), "brackets kept in {host:?}");
    }
}

fn authorized<B>(req: &Request<B>, wanted: &str) {
    let (user, password) = wanted.split_once(':').unwrap_or((wanted, ""));
    if !http_proxy_authorized(req, user, password) {
        return;
    }
    // Let through: the header must carry exactly these credentials.
    let value = req.headers()[header::PROXY_AUTHORIZATION].to_str().unwrap();
    let b64 = value.strip_prefix("Basic ").unwrap().trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let text = String::from_utf8(decoded).unwrap();
    assert_eq!(text.split_once(':'), Some((user, password)));
}

fn origin_form(req: Request<()>) {
    let had_authority = req.uri().authority().cloned();
    let sent = http_proxy_origin_form(req);
    assert!(sent.uri().scheme().is_none() && sent.uri().authority().is_none());
    let path = sent.uri().path();
    assert!(
        path.starts_with('/') || path == "*",
        "not origin form: {path:?}"
    );
    assert!(sent.headers().get(header::PROXY_AUTHORIZATION).is_none());
    if let Some(host) = sent.headers().get(header::HOST) {
        let host = host.to_str().expect("the Host sent is text");
        assert!(!host.contains('@'), "userinfo sent on in Host: {host:?}");
        let authority = had_authority.expect("a Host comes from the URI's authority");
        assert!(
            host.starts_with(authority.host()),
            "Host {host:?} for {authority}"
        );
    }
}
