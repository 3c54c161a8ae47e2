//! Routes and how a request picks one: host pattern, path prefix on segment boundaries.
//!
//! Precedence, the same for every request:
//! 1. a route whose `host` matches beats a route without `host` (exact host beats `*.` wildcard,
//!    longer wildcard beats shorter);
//! 2. then the longest path prefix wins;
//! 3. a WebSocket upgrade prefers a route that speaks WebSocket, a plain request one that does
//!    not, so `/` can be both a bridge and a static directory, as with `websockify --web`.
//!
//! Requests are matched in canonical form: the host checked and without a trailing dot
//! ([`Authority`]), the path normalised ([`normalize_path`]), which is also what handlers and
//! upstreams receive. A path an upstream may read otherwise (`/admin;x/secret`,
//! `/admin%2Fsecret`: [`lenient_readings`]) is refused when that reading would select another
//! route ([`Router::find_unambiguous`]).

use crate::matching::HostPattern;
use crate::matching::PathError;
use crate::matching::lenient_readings;
use crate::matching::strip_prefix;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{handler::Handler, log_escape::Escaped};

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

/// Why a request's path cannot be routed safely (400: the client sent it).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A reading of the path cannot be made (see [`lenient_readings`]).
    #[error(transparent)]
    Path(#[from] PathError),
    /// An upstream may read the path as one that selects another route: forwarding it would
    /// let the request skip the route the gateway would choose for that reading.
    #[error(
        "ambiguous path: {} would route differently when read by an upstream",
        Escaped(.path.as_str())
    )]
    Ambiguous {
        /// The path as routed.
        path: String,
    },
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
        find_in(&self.table.load(), host, path, websocket)
    }

    /// Finds the route for a request whose path is normal, as [`find`](Self::find) does, and
    /// refuses it when any of the path's [`lenient_readings`] would select another route (or
    /// a route where the path has none), for the same host and kind of request, in the same
    /// table: the upstream could read it as a path that route guards.
    pub fn find_unambiguous<'p>(
        &self,
        host: Option<&str>,
        path: &'p str,
        websocket: bool,
    ) -> Result<Option<Matched<'p>>, RouteError> {
        let table = self.table.load();
        let matched = find_in(&table, host, path, websocket);
        for reading in lenient_readings(path)? {
            let other = find_in(&table, host, &reading, websocket);
            let same = match (&matched, &other) {
                (Some(a), Some(b)) => Arc::ptr_eq(&a.route, &b.route),
                (None, None) => true,
                _ => false,
            };
            if !same {
                return Err(RouteError::Ambiguous { path: path.into() });
            }
        }
        Ok(matched)
    }
}

/// The route in `table` for a request: the first that matches and serves its kind, else the
/// first that matches.
fn find_in<'p>(
    table: &[Arc<Route>],
    host: Option<&str>,
    path: &'p str,
    websocket: bool,
) -> Option<Matched<'p>> {
    let host = host.map(strip_port);
    let mut fallback = None;
    for route in table {
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
    use crate::matching::normalize_path;
    use crate::matching::normalize_prefix;

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

    /// Whether `path` is `prefix` or under it, on a segment boundary.
    fn within(prefix: &str, path: &str) -> bool {
        prefix == "/" || path == prefix || path.starts_with(&format!("{prefix}/"))
    }

    #[test]
    fn a_route_never_matches_outside_its_prefix() {
        let prefixes = ["/", "/a", "/a/b", "/b/a", "/ab"];
        let router = Router::new(prefixes.iter().map(|p| route(p, None, p)).collect());
        let upstream: crate::handler::proxy::UpstreamUrl = "http://u/v1".parse().unwrap();
        let mut rng = fastrand::Rng::with_seed(0x0a7b_5eed);
        for _ in 0..20_000 {
            let raw = crate::matching::path::tests::generated_path(&mut rng);
            let Ok(normal) = normalize_path(&raw) else {
                continue;
            };
            let matched = router.find(None, &normal, false).expect("/ matches all");
            let longest = prefixes
                .iter()
                .filter(|prefix| within(prefix, &normal))
                .max_by_key(|prefix| prefix.len());
            assert_eq!(
                Some(&matched.route.path.as_str()),
                longest,
                "{raw:?} → {normal:?}"
            );
            let sent = upstream.map_path(&normal, matched.rest, None);
            assert!(
                within("/v1", &sent) && crate::matching::path::tests::clean(&sent),
                "{raw:?} → {normal:?} → upstream {sent:?}"
            );
        }
    }

    #[test]
    fn a_path_an_upstream_reads_as_another_routes_is_refused() {
        let router = Router::new(vec![
            route("root", None, "/"),
            route("admin", None, "/admin"),
            route("api", None, "/api"),
            route("static", None, "/static"),
        ]);
        let routed = |path: &str| match router.find_unambiguous(None, path, false) {
            Ok(matched) => Ok(matched.map(|m| m.route.name.clone())),
            Err(error) => Err(error.to_string()),
        };
        let ambiguous = |path: &str| {
            Err(format!(
                "ambiguous path: {path} would route differently when read by an upstream"
            ))
        };
        let cases = [
            ("/admin;x/secret", ambiguous("/admin;x/secret")),
            ("/admin%2Fsecret", ambiguous("/admin%2Fsecret")),
            ("/admin%2fsecret", ambiguous("/admin%2fsecret")),
            ("/admin%5Csecret", ambiguous("/admin%5Csecret")),
            ("/admin%5csecret", ambiguous("/admin%5csecret")),
            ("/admin\\secret", ambiguous(r"/admin\\secret")),
            ("/admin;x", ambiguous("/admin;x")),
            (
                "/x%2F..%2Fadmin",
                Err(PathError::HiddenDotSegment.to_string()),
            ),
            ("/api/v4/projects/group%2Fproject", Ok(Some("api".into()))),
            ("/static/a;v=1.css", Ok(Some("static".into()))),
            ("/admin/a;b%2Fc", Ok(Some("admin".into()))),
            ("/other;x/y%2Fz", Ok(Some("root".into()))),
        ];
        for (path, expected) in cases {
            assert_eq!(routed(path), expected, "{path:?}");
        }
        let only_api = Router::new(vec![route("api", None, "/api")]);
        let found = only_api.find_unambiguous(None, "/api;v=1", false);
        assert!(
            matches!(found, Err(RouteError::Ambiguous { .. })),
            "{found:?}"
        );
        let found = only_api.find_unambiguous(None, "/other;x", false);
        assert!(matches!(found, Ok(None)), "{found:?}");
    }

    #[test]
    fn a_path_is_routed_only_where_every_upstream_reading_routes_it() {
        let prefixes = ["/", "/a", "/a/b", "/b/a", "/ab", "/b"];
        let router = Router::new(prefixes.iter().map(|p| route(p, None, p)).collect());
        let longest = |path: &str| {
            prefixes
                .iter()
                .filter(|prefix| within(prefix, path))
                .max_by_key(|prefix| prefix.len())
                .map(|prefix| prefix.to_string())
        };
        let mut rng = fastrand::Rng::with_seed(0x0a3b_2f5c);
        let (mut same, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let raw = crate::matching::path::tests::generated_path(&mut rng);
            let Ok(normal) = normalize_path(&raw) else {
                continue;
            };
            let readings = crate::matching::path::tests::upstream_readings(&normal);
            let routes: Vec<Option<String>> = readings.iter().map(|r| longest(r)).collect();
            let agree = routes.iter().all(|route| route == &routes[0]);
            match router.find_unambiguous(None, &normal, false) {
                Ok(matched) => {
                    assert!(
                        agree,
                        "{raw:?} → {normal:?} routed though {readings:?} → {routes:?}"
                    );
                    let name = matched.map(|m| m.route.name.clone());
                    assert_eq!(name, longest(&normal), "{raw:?} → {normal:?}");
                    same += usize::from(readings.iter().any(|r| r != &normal));
                }
                Err(RouteError::Ambiguous { path }) => {
                    assert_eq!(path, *normal);
                    assert!(
                        !agree,
                        "{raw:?} → {normal:?} refused though {readings:?} agree"
                    );
                    refused += 1;
                }
                Err(error) => panic!("{raw:?} → {normal:?}: {error}"),
            }
        }
        // Both outcomes are exercised for paths that upstreams read otherwise.
        assert!(same > 1000 && refused > 500, "{same} / {refused}");
    }

    #[test]
    fn prefixes_are_canonical_or_refused() {
        let cases: [(&str, Result<&str, &str>); 16] = [
            ("/a/", Ok("/a")),
            ("/a//", Ok("/a")),
            ("///", Ok("/")),
            ("/", Ok("/")),
            ("/a%2Fb", Ok("/a%2Fb")),
            ("/a;b/~c", Ok("/a;b/~c")),
            ("a", Err("expected a path starting with \"/\"")),
            ("/a?x", Err("expected a path starting with \"/\"")),
            ("/a//b", Err("write \"/a/b\"")),
            ("//admin", Err("write \"/admin\"")),
            ("/%61dmin", Err("write \"/admin\"")),
            ("/a/./b", Err("write \"/a/b\"")),
            ("/a/b/..", Err("write \"/a\"")),
            ("/%7Eu", Err("write \"/~u\"")),
            ("/..", Err("the path climbs above /")),
            ("/api/..;/admin", Err("path parameters on a dot segment")),
        ];
        for (prefix, expected) in cases {
            match (normalize_prefix(prefix), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{prefix:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{prefix:?}: {got}"),
                (got, want) => panic!("{prefix:?}: got {got:?}, expected {want:?}"),
            }
        }
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn host_patterns_are_canonical() {
        let cases = [
            ("App.Test", Some("app.test")),
            ("app.test.", Some("app.test")),
            ("*.Example.com.", Some("*.example.com")),
            ("a-1.test", Some("a-1.test")),
            ("app.test..", None),
            ("a..b", None),
            (".a", None),
            ("*.", None),
            ("*", None),
            ("", None),
            (".", None),
            ("a.*.b", None),
            ("a b", None),
        ];
        for (text, expected) in cases {
            let got = HostPattern::parse(text).ok().map(|p| p.to_string());
            assert_eq!(got.as_deref(), expected, "{text:?}");
        }
        // A configured `app.test.` answers the request that says `app.test.` (made `app.test`
        // by the request's canonical form) and `app.test`.
        let router = Router::new(vec![route("dot", Some("app.test."), "/")]);
        assert_eq!(find(&router, "app.test", "/x"), Some("dot".into()));
        assert_eq!(find(&router, "APP.test:80", "/x"), Some("dot".into()));
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
                if let Ok(once) = normalize_path(&path) {
                    let twice = normalize_path(&once).map(|p| p.into_owned());
                    prop_assert_eq!(twice, Ok(once.into_owned()));
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
