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
//! ([`Authority`](crate::matching::Authority)), the path normalised
//! ([`normalize_path`](crate::matching::normalize_path)), which is also what handlers and
//! upstreams receive. A path an upstream may read otherwise (`/admin;x/secret`,
//! `/admin%2Fsecret`: [`lenient_readings`]) is refused when that reading would select another
//! route (`Router::find_unambiguous`).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{
    handler::Handler,
    log_escape::Escaped,
    matching::{HostPattern, PathError, lenient_readings, strip_prefix},
};

/// One route: a match (host, path) and a handler.
#[derive(Debug)]
pub struct Route {
    /// Name for logs and the banner.
    pub name: String,
    /// Host the request must carry, if any.
    pub host: Option<HostPattern>,
    /// Path prefix, normalised by [`normalize_prefix`](crate::matching::normalize_prefix).
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
    pub(crate) fn same_match(&self, other: &Route) -> bool {
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
pub(crate) enum RouteError {
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
    pub(crate) fn set_added(&self, added: Vec<Arc<Route>>) {
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
    pub(crate) fn find_unambiguous<'p>(
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
mod tests;
