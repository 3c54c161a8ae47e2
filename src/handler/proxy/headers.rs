//! Header rewriting between client and upstream: hop-by-hop headers stripped (`hop`),
//! `X-Forwarded-*` and `Forwarded` set, and the route's own additions and removals.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::hop::strip_hop_by_hop;

pub(crate) use crate::config::route::HeaderPolicy;

/// Who the client is, for the forwarding headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarding<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// Whether the client reached us over TLS.
    pub tls: bool,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
}

impl HeaderPolicy {
    /// Rewrites the client's request headers for the upstream named `authority`. For a
    /// WebSocket handshake the upgrade headers are put back after the hop-by-hop strip.
    pub(crate) fn to_upstream(
        &self,
        headers: &mut HeaderMap,
        forwarding: &Forwarding<'_>,
        authority: &str,
        websocket: bool,
    ) {
        let wants_trailers = headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        strip_hop_by_hop(headers);
        if wants_trailers {
            // The one TE value that says something about the message, not the connection.
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        add_forwarded(headers, forwarding);
        let keep_host = self.preserve_host && headers.contains_key(header::HOST);
        if let (false, Ok(value)) = (keep_host, HeaderValue::from_str(authority)) {
            headers.insert(header::HOST, value);
        }
        if websocket {
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Appends the client to `X-Forwarded-For` and `Forwarded`, and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (RFC 7239 for `Forwarded`).
fn add_forwarded(headers: &mut HeaderMap, forwarding: &Forwarding<'_>) {
    let ip = forwarding.client.ip();
    let proto = if forwarding.tls { "https" } else { "http" };
    let for_chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {ip}"),
        None => ip.to_string(),
    };
    let node = if ip.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip.to_string()
    };
    let mut element = format!("for={node};proto={proto}");
    match forwarding.host {
        Some(host) if is_token(host) => element.push_str(&format!(";host={host}")),
        // A port's `:` is not a token character: quoted-string (RFC 7239 §4).
        Some(host) if !host.contains(['"', '\\']) => element.push_str(&format!(";host=\"{host}\"")),
        _ => {}
    }
    let forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {element}"),
        None => element,
    };
    let mut set = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(HeaderName::from_static("x-forwarded-for"), for_chain);
    set(HeaderName::from_static("x-forwarded-proto"), proto.into());
    if let Some(host) = forwarding.host {
        set(HeaderName::from_static("x-forwarded-host"), host.into());
    }
    set(header::FORWARDED, forwarded);
}

/// Whether a host can be written as a `Forwarded` token without quoting.
fn is_token(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~!$&'*+^`|".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hop::tests::headers;

    #[test]
    fn trailers_survive_the_strip() {
        let mut response = headers(&[("trailer", "x-checksum"), ("connection", "close")]);
        strip_hop_by_hop(&mut response);
        assert_eq!(response["trailer"], "x-checksum");
        let mut request = headers(&[("te", "gzip, trailers"), ("connection", "TE")]);
        let forwarding = Forwarding {
            client: "127.0.0.1:5000".parse().unwrap(),
            tls: false,
            host: None,
        };
        HeaderPolicy::default().to_upstream(&mut request, &forwarding, "u", false);
        assert_eq!(
            request["te"], "trailers",
            "only the end-to-end TE value goes on"
        );
    }

    #[test]
    fn forwarding_headers_append_and_policy_applies_last() {
        let mut map = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "app.example.com"),
            ("cookie", "a=b"),
        ]);
        let policy = HeaderPolicy {
            set: vec![(
                HeaderName::from_static("x-route"),
                HeaderValue::from_static("chat"),
            )],
            remove: vec![header::COOKIE],
            preserve_host: false,
        };
        let forwarding = Forwarding {
            client: "[::1]:5000".parse().unwrap(),
            tls: true,
            host: Some("app.example.com"),
        };
        policy.to_upstream(&mut map, &forwarding, "127.0.0.1:3000", true);
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "app.example.com");
        assert_eq!(
            map["forwarded"],
            "for=\"[::1]\";proto=https;host=app.example.com"
        );
        assert_eq!(map["host"], "127.0.0.1:3000");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["x-route"], "chat");
        assert!(!map.contains_key("cookie"));
    }
}
