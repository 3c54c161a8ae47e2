//! Routes and how a request picks one: host pattern, path prefix on segment boundaries.
//!
//! Precedence, the same for every request:
//! 1. a route whose `host` matches beats a route without `host` (exact host beats `*.` wildcard,
//!    longer wildcard beats shorter);
//! 2. then the longest path prefix wins;
//! 3. a WebSocket upgrade prefers a route that speaks WebSocket, a plain request one that does
//!    not, so `/` can be both a bridge and a static directory, as with `websockify --web`.

use std::{fmt, sync::Arc};

use arc_swap::ArcSwap;

use crate::handler::Handler;

/// A host pattern: exact (`vnc.example.com`) or a wildcard (`*.example.com`), case-insensitive.
///
/// ```
/// use wsgate::router::HostPattern;
/// let wild = HostPattern::parse("*.Example.com").unwrap();
/// assert!(wild.matches("a.example.com"));
/// assert!(!wild.matches("example.com"));
/// assert!(HostPattern::parse("vnc.example.com").unwrap().matches("VNC.example.com"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// The whole host name, lowercase.
    Exact(String),
    /// The suffix after `*`, lowercase, starting with a dot.
    Wildcard(String),
}

impl HostPattern {
    /// Parses a pattern from the config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let valid = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        match lower.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') && valid(&suffix[1..]) => {
                Ok(HostPattern::Wildcard(suffix.to_string()))
            }
            None if valid(&lower) => Ok(HostPattern::Exact(lower)),
            _ => Err(format!(
                "expected a host name such as \"vnc.example.com\" or \"*.example.com\", found {text:?}"
            )),
        }
    }

    /// Whether a request's host (port already removed) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// Higher is more specific: exact beats any wildcard, a longer wildcard a shorter one.
    fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::Wildcard(suffix) => suffix.len(),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Normalises a configured path prefix: leading `/`, no trailing `/` (except the root).
pub fn normalize_prefix(path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(format!(
            "expected a path starting with \"/\" and no query, found {path:?}"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

/// Removes `.` and `..` segments (also written `%2e`), as RFC 3986 §5.2.4 does, so that the
/// path a route matched is the path its handler serves or forwards: `/app/../admin` is
/// `/admin`, never `/app` with `../admin` sent to an upstream. `None` when `..` climbs above
/// `/`, or hides behind an encoded separator (`..%2f`), which only an attacker writes.
///
/// ```
/// use wsgate::router::remove_dot_segments;
/// assert_eq!(remove_dot_segments("/a/./b/../c").as_deref(), Some("/a/c"));
/// assert_eq!(remove_dot_segments("/a/%2E%2e/").as_deref(), Some("/"));
/// assert_eq!(remove_dot_segments("/a/..").as_deref(), Some("/"));
/// assert_eq!(remove_dot_segments("/plain/path").as_deref(), Some("/plain/path"));
/// assert_eq!(remove_dot_segments("/../etc"), None);
/// assert_eq!(remove_dot_segments("/a/..%2f..%2fetc"), None);
/// ```
pub fn remove_dot_segments(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let lower = |s: &str| s.to_ascii_lowercase().replace("%2e", ".");
    let is_dot = |s: &str| lower(s) == ".";
    let is_dot_dot = |s: &str| lower(s) == "..";
    let hidden = |s: &str| {
        let s = lower(s)
            .replace("%2f", "/")
            .replace("%5c", "/")
            .replace('\\', "/");
        s.contains('/') && s.split('/').any(|piece| piece == "." || piece == "..")
    };
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    if segments.iter().any(|s| hidden(s)) {
        return None;
    }
    if !segments.iter().any(|s| is_dot(s) || is_dot_dot(s)) {
        return Some(std::borrow::Cow::Borrowed(path));
    }
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (index, segment) in segments.iter().enumerate() {
        if is_dot_dot(segment) {
            out.pop()?;
        } else if !is_dot(segment) {
            out.push(segment);
            continue;
        }
        if index == last {
            out.push(""); // `/a/b/..` is the directory `/a/`
        }
    }
    Some(std::borrow::Cow::Owned(format!("/{}", out.join("/"))))
}

/// The rest of `path` after `prefix` if the prefix matches on a segment boundary.
///
/// ```
/// use wsgate::router::strip_prefix;
/// assert_eq!(strip_prefix("/chat", "/chat/x"), Some("/x"));
/// assert_eq!(strip_prefix("/chat", "/chat"), Some(""));
/// assert_eq!(strip_prefix("/chat", "/chatter"), None);
/// assert_eq!(strip_prefix("/", "/any/thing"), Some("/any/thing"));
/// ```
pub fn strip_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// One route: a match (host, path) and a handler.
#[derive(Debug)]
pub struct Route {
    /// Name for logs and the banner.
    pub name: String,
    /// Host the request must carry, if any.
    pub host: Option<HostPattern>,
    /// Path prefix, normalised by [`normalize_prefix`].
    pub path: String,
    /// What to do with a matching request.
    pub handler: Handler,
}

impl Route {
    /// Sort key: most specific first.
    fn rank(&self) -> (usize, usize, bool) {
        let host = self
            .host
            .as_ref()
            .map_or(0, |h| h.specificity().saturating_add(1));
        (host, self.path.len(), self.handler.serves_websocket())
    }

    /// Whether this route and `other` match exactly the same requests.
    pub fn same_match(&self, other: &Route) -> bool {
        self.host == other.host && self.path == other.path
    }
}

/// A request's route and the path left after its prefix.
#[derive(Debug)]
pub struct Matched<'p> {
    /// The chosen route; shared, so a table swapped meanwhile does not pull it away.
    pub route: Arc<Route>,
    /// The request path after the route's prefix (`""` or starting with `/`).
    pub rest: &'p str,
}

/// The routes: those from the config, fixed, and those agents register while the gateway runs.
/// Both live in one table sorted by precedence, swapped whole when agent routes change, so a
/// lookup is a lock-free load and a linear scan that stops early.
#[derive(Debug)]
pub struct Router {
    configured: Vec<Arc<Route>>,
    table: ArcSwap<Vec<Arc<Route>>>,
}

impl Router {
    /// A table of the configured routes; they keep their relative order among equals.
    pub fn new(routes: Vec<Route>) -> Self {
        let configured: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        let table = ArcSwap::from_pointee(sorted(configured.clone()));
        Router { configured, table }
    }

    /// The routes now, in precedence order.
    pub fn routes(&self) -> Arc<Vec<Arc<Route>>> {
        self.table.load_full()
    }

    /// The routes from the config.
    pub fn configured(&self) -> &[Arc<Route>] {
        &self.configured
    }

    /// Replaces every route added at run time (agents' services) with `added`.
    pub fn set_added(&self, added: Vec<Arc<Route>>) {
        let all = self.configured.iter().cloned().chain(added).collect();
        self.table.store(Arc::new(sorted(all)));
    }

    /// Finds the route for a request. `host` may carry a port; it is ignored.
    pub fn find<'p>(
        &self,
        host: Option<&str>,
        path: &'p str,
        websocket: bool,
    ) -> Option<Matched<'p>> {
        let table = self.table.load();
        let host = host.map(strip_port);
        let mut fallback = None;
        for route in table.iter() {
            let host_ok = match (&route.host, host) {
                (None, _) => true,
                (Some(pattern), Some(host)) => pattern.matches(host),
                (Some(_), None) => false,
            };
            let Some(rest) = host_ok.then(|| strip_prefix(&route.path, path)).flatten() else {
                continue;
            };
            if route.handler.serves(websocket) {
                return Some(Matched {
                    route: route.clone(),
                    rest,
                });
            }
            fallback = fallback.or_else(|| {
                Some(Matched {
                    route: route.clone(),
                    rest,
                })
            });
        }
        fallback
    }
}

/// Routes sorted by precedence; equals keep their order.
fn sorted(mut routes: Vec<Arc<Route>>) -> Vec<Arc<Route>> {
    routes.sort_by_key(|route| std::cmp::Reverse(route.rank()));
    routes
}

/// The route table as text, one route a line in precedence order (banner and `wsgate check`).
pub fn table<'r>(routes: impl IntoIterator<Item = &'r Route>) -> String {
    let mut sorted: Vec<&Route> = routes.into_iter().collect();
    sorted.sort_by_key(|route| std::cmp::Reverse(route.rank()));
    let mut out = String::from("routes, first match wins:");
    for (index, route) in sorted.iter().enumerate() {
        let host = route
            .host
            .as_ref()
            .map_or_else(|| "*".to_string(), ToString::to_string);
        out.push_str(&format!(
            "\n  {:>2}. {host} {:<20} {:<12} {}",
            index + 1,
            route.path,
            route.name,
            route.handler.describe()
        ));
    }
    out
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::files::FilesRoute;

    fn route(name: &str, host: Option<&str>, path: &str) -> Route {
        Route {
            name: name.into(),
            host: host.map(|h| HostPattern::parse(h).unwrap()),
            path: normalize_prefix(path).unwrap(),
            handler: Handler::Files(FilesRoute::new("/nonexistent".into())),
        }
    }

    fn find(router: &Router, host: &str, path: &str) -> Option<String> {
        router
            .find(Some(host), path, false)
            .map(|m| m.route.name.clone())
    }

    #[test]
    fn longest_prefix_and_host_win() {
        let router = Router::new(vec![
            route("root", None, "/"),
            route("chat", None, "/chat"),
            route("chat-room", None, "/chat/room/"),
            route("wild", Some("*.example.com"), "/"),
            route("exact", Some("vnc.example.com"), "/"),
        ]);
        assert_eq!(find(&router, "a", "/chat/x"), Some("chat".into()));
        assert_eq!(find(&router, "a", "/chatter"), Some("root".into()));
        assert_eq!(find(&router, "a", "/chat/room/1"), Some("chat-room".into()));
        assert_eq!(
            find(&router, "x.example.com:8080", "/chat"),
            Some("wild".into())
        );
        assert_eq!(
            find(&router, "VNC.example.com", "/chat"),
            Some("exact".into())
        );
        assert_eq!(find(&router, "example.com", "/chat"), Some("chat".into()));
    }

    #[test]
    fn routes_added_at_run_time_join_the_precedence_and_leave() {
        let router = Router::new(vec![route("root", None, "/")]);
        router.set_added(vec![Arc::new(route("agent-api", None, "/api"))]);
        assert_eq!(find(&router, "a", "/api/x"), Some("agent-api".into()));
        assert_eq!(find(&router, "a", "/other"), Some("root".into()));
        router.set_added(Vec::new());
        assert_eq!(find(&router, "a", "/api/x"), Some("root".into()));
    }

    #[test]
    fn no_route_without_root() {
        let router = Router::new(vec![route("chat", None, "/chat")]);
        assert_eq!(find(&router, "a", "/other"), None);
    }

    #[test]
    fn prefixes_normalise() {
        assert_eq!(normalize_prefix("/a/").unwrap(), "/a");
        assert_eq!(normalize_prefix("///").unwrap(), "/");
        assert!(normalize_prefix("a").is_err());
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    mod properties {
        //! Normalising a path twice changes nothing; a match never falls outside its prefix.
        use proptest::prelude::*;

        use super::*;

        /// Paths made of the segments that matter (dots plain and encoded, empty, separators
        /// hidden in escapes) and of anything else.
        fn path() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                Just(""),
                Just("."),
                Just(".."),
                Just("%2e"),
                Just("%2E%2e"),
                Just("..%2f"),
                Just("a"),
                Just("ab"),
                Just("admin"),
            ]
            .prop_map(str::to_string);
            let segments = prop::collection::vec(prop_oneof![4 => segment, 1 => ".*"], 0..8);
            segments.prop_map(|s| format!("/{}", s.join("/")))
        }

        proptest! {
            #[test]
            fn normalising_twice_changes_nothing(path in path()) {
                if let Some(once) = remove_dot_segments(&path) {
                    let twice = remove_dot_segments(&once);
                    prop_assert_eq!(twice.as_deref(), Some(&*once));
                }
            }

            #[test]
            fn a_prefix_never_matches_outside_itself(prefix in path(), path in path()) {
                let Ok(prefix) = normalize_prefix(&prefix) else {
                    return Ok(());
                };
                if let Some(rest) = strip_prefix(&prefix, &path) {
                    prop_assert!(rest.is_empty() || rest.starts_with('/'));
                    if prefix != "/" {
                        prop_assert_eq!(format!("{prefix}{rest}"), path);
                    }
                }
            }

            #[test]
            fn the_router_never_matches_outside_a_route_prefix(
                prefixes in prop::collection::vec(path(), 1..6),
                path in path(),
            ) {
                let routes = prefixes.iter().filter(|p| normalize_prefix(p).is_ok());
                let router = Router::new(routes.map(|p| route(p, None, p)).collect());
                if let Some(found) = router.find(Some("h"), &path, false) {
                    let rest = strip_prefix(&found.route.path, &path);
                    prop_assert_eq!(rest, Some(found.rest));
                    let longest = router.routes().iter()
                        .filter(|r| strip_prefix(&r.path, &path).is_some())
                        .map(|r| r.path.len())
                        .max();
                    prop_assert_eq!(longest, Some(found.route.path.len()));
                }
            }
        }
    }
}
