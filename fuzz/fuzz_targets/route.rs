//! Route matching (`Router::find`) over a table built from text: one route a line,
//! `HOST PATH KIND` (`-` for no host, KIND `files` or `bridge`), the last line the request,
//! `HOST PATH ws|http`. Properties: a match never falls outside its route's prefix or host;
//! no matching route outranks the one chosen; host patterns print back to themselves and match
//! without regard to case.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::{
    connector::{Connector, DialOptions, Target},
    handler::{BridgeRoute, FilesRoute, Handler, bridge::BridgeTarget},
    matching::{HostPattern, normalize_prefix, strip_prefix},
    router::{Route, Router},
};

/// Routes per table at most: enough for every precedence rule to meet the others.
const MAX_ROUTES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.lines().collect();
    let Some(request) = lines.pop() else {
        return;
    };
    let routes: Vec<Route> = lines
        .iter()
        .take(MAX_ROUTES)
        .filter_map(|l| route(l))
        .collect();
    let mut words = request.split(' ');
    let (Some(host), Some(path)) = (words.next(), words.next()) else {
        return;
    };
    let host = (host != "-").then_some(host);
    let websocket = words.next() == Some("ws");
    check(Router::new(routes), host, path, websocket);
});

/// One route line, or `None` if the config would refuse it.
fn route(line: &str) -> Option<Route> {
    let mut words = line.split(' ');
    let (host, path, kind) = (words.next()?, words.next()?, words.next()?);
    let host = match host {
        "-" => None,
        pattern => Some(host_pattern(pattern)?),
    };
    let handler = match kind {
        "bridge" => {
            let target = Target::Tcp {
                host: "127.0.0.1".into(),
                port: 9,
            };
            let connector = Connector::direct(target, DialOptions::default());
            Handler::Bridge(BridgeRoute::new(BridgeTarget::Fixed(connector), 1024))
        }
        _ => Handler::Files(FilesRoute::new("/nonexistent".into())),
    };
    Some(Route {
        name: line.to_string(),
        host,
        path: normalize_prefix(path).ok()?,
        handler,
    })
}

/// A host pattern as the config parses it, checked to print back to itself.
fn host_pattern(text: &str) -> Option<HostPattern> {
    let pattern = HostPattern::parse(text).ok()?;
    assert_eq!(
        HostPattern::parse(&pattern.to_string()),
        Ok(pattern.clone())
    );
    Some(pattern)
}

fn check(router: Router, host: Option<&str>, path: &str, websocket: bool) {
    let bare = host.map(strip_port);
    let matches = |route: &Route| {
        let host_ok = match (&route.host, bare) {
            (None, _) => true,
            (Some(pattern), Some(host)) => {
                let yes = pattern.matches(host);
                assert_eq!(yes, pattern.matches(&host.to_ascii_uppercase()), "{host:?}");
                yes
            }
            (Some(_), None) => false,
        };
        host_ok && strip_prefix(&route.path, path).is_some()
    };
    let Some(found) = router.find(host, path, websocket) else {
        assert!(
            !router.routes().iter().any(|r| matches(r)),
            "a route matched: none found"
        );
        return;
    };
    assert!(
        matches(&found.route),
        "{} chosen for {host:?} {path:?}",
        found.route.name
    );
    assert_eq!(strip_prefix(&found.route.path, path), Some(found.rest));
    // The choice serves this kind of request if any match does, and nothing that matches and
    // serves it as well ranks above the choice.
    let serves = |r: &Route| r.handler.serves(websocket);
    let routes = router.routes();
    if !serves(&found.route) {
        assert!(
            !routes.iter().any(|r| matches(r) && serves(r)),
            "a serving route was passed over"
        );
    }
    let better = routes
        .iter()
        .find(|r| matches(r) && serves(r) == serves(&found.route) && rank(r) > rank(&found.route));
    assert!(
        better.is_none(),
        "{:?} outranks {:?}",
        better.map(|r| &r.name),
        found.route.name
    );
}

/// Precedence as router.rs documents it: host (exact over wildcard, longer wildcard over
/// shorter) over none, then the longer prefix.
fn rank(route: &Route) -> (usize, usize) {
    let host = match &route.host {
        None => 0,
        Some(HostPattern::Exact(_)) => usize::MAX,
        Some(HostPattern::Wildcard(suffix)) => suffix.len() + 1,
    };
    (host, route.path.len())
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}
