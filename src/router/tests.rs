//! The route table: precedence, routes joining and leaving, prefixes that never match outside
//! themselves, paths an upstream could read as another route's.

use super::*;
use crate::{
    handler::files::FilesRoute,
    matching::{normalize_path, normalize_prefix},
};

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
