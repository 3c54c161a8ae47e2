//! Path normalisation: a table of spellings, and properties over many generated paths.

use crate::matching::path::*;

struct Case {
    path: &'static str,
    expected: Result<&'static str, PathError>,
}

const fn ok(path: &'static str, normal: &'static str) -> Case {
    Case {
        path,
        expected: Ok(normal),
    }
}

const fn refused(path: &'static str, error: PathError) -> Case {
    Case {
        path,
        expected: Err(error),
    }
}

#[test]
fn spellings_and_their_normal_form() {
    use PathError::*;
    let cases = [
        ok("/", "/"),
        ok("/a/b", "/a/b"),
        ok("/a/", "/a/"),
        // Empty segments merge; a trailing slash stays.
        ok("//", "/"),
        ok("///a", "/a"),
        ok("//admin/x", "/admin/x"),
        ok("/a//b", "/a/b"),
        ok("/a/b//", "/a/b/"),
        // Unreserved escapes are decoded, in either case; others stay as written.
        ok("/%61dmin/x", "/admin/x"),
        ok("/%41%7a%30%2D%2e%5F%7E", "/Az0-._~"),
        ok("/a%2Fb", "/a%2Fb"),
        ok("/a%2fb", "/a%2fb"),
        ok("/%25", "/%25"),
        ok("/%2541", "/%2541"),
        ok("/a%3Bb", "/a%3Bb"),
        ok("/%C3%A9", "/%C3%A9"),
        // Dot segments, also encoded.
        ok("/a/./b", "/a/b"),
        ok("/a/.", "/a/"),
        ok("/a/..", "/"),
        ok("/a/b/../c", "/a/c"),
        ok("/./", "/"),
        ok("/a/%2E%2e/", "/"),
        ok("/a//../b", "/b"),
        ok("/a..", "/a.."),
        ok("/a/...", "/a/..."),
        ok("/a/...;x", "/a/...;x"),
        ok("/a;b/c", "/a;b/c"),
        ok("/.a/..b", "/.a/..b"),
        refused("/..", AboveRoot),
        refused("/a/../..", AboveRoot),
        refused("/%2e%2e/x", AboveRoot),
        refused("/a/..%2f", HiddenDotSegment),
        refused("/a/..%5C", HiddenDotSegment),
        refused("/a/.%2F", HiddenDotSegment),
        refused("/a/%2e%2e%2fx", HiddenDotSegment),
        refused("/a/x\\..", HiddenDotSegment),
        refused("/api/..;/admin", DotSegmentParameters),
        refused("/.;x", DotSegmentParameters),
        refused("/a/.;/b", DotSegmentParameters),
        refused("/a/%2e%2e;/b", DotSegmentParameters),
        refused("/a/..%3b/b", DotSegmentParameters),
        refused("/a/..%3B/b", DotSegmentParameters),
        refused("/100%", BadEscape),
        refused("/%zz", BadEscape),
        refused("/%4", BadEscape),
        refused("/%%41", BadEscape),
        refused("", NotAbsolute),
        refused("*", NotAbsolute),
        refused("a/b", NotAbsolute),
    ];
    for case in cases {
        let normal = normalize_path(case.path);
        assert_eq!(
            normal.as_deref().map_err(|e| *e),
            case.expected,
            "{:?}",
            case.path
        );
    }
}

#[test]
fn a_normal_path_is_borrowed_not_copied() {
    for path in ["/", "/a/b/", "/a%2Fb", "/a;b"] {
        assert!(
            matches!(normalize_path(path), Ok(Cow::Borrowed(_))),
            "{path}"
        );
    }
}

/// Pieces paths are built from: separators, dots and the escapes that spell them, parameters,
/// malformed escapes.
const PIECES: [&str; 21] = [
    "/", "/", "/", "a", "b", ".", "..", "%2e", "%2E", "%61", "%2f", "%2F", "%5c", "\\", ";", "%3b",
    "%", "%4", "~", "%7e", "%25",
];

/// A path of up to 12 pieces after a leading `/`.
pub(crate) fn generated_path(rng: &mut fastrand::Rng) -> String {
    let mut path = String::from("/");
    for _ in 0..rng.usize(0..=12) {
        path.push_str(PIECES[rng.usize(..PIECES.len())]);
    }
    path
}

/// Whether a normal path is clean: no empty segment but the last, and no `.` or `..` segment
/// in an independent reading as the most lenient upstream would read it (every escape decoded,
/// `\` as `/`, parameters dropped).
pub(crate) fn clean(path: &str) -> bool {
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let merged = segments
        .iter()
        .enumerate()
        .all(|(index, segment)| index == last || !segment.is_empty());
    let decoded = crate::body::percent_decode(path).replace('\\', "/");
    let dotless = decoded.split('/').all(|segment| {
        let name = segment.split(';').next().unwrap_or_default();
        name != "." && name != ".."
    });
    merged && dotless
}

#[test]
fn normalising_twice_changes_nothing_and_leaves_no_dot_segment() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0a7b);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let path = generated_path(&mut rng);
        let Ok(normal) = normalize_path(&path) else {
            refused += 1;
            continue;
        };
        accepted += 1;
        let again = normalize_path(&normal);
        assert!(
            matches!(again, Ok(Cow::Borrowed(p)) if p == normal),
            "{path:?} → {normal:?} → {again:?}"
        );
        assert!(clean(&normal), "{path:?} → {normal:?} has a dot segment");
    }
    // Both outcomes are exercised, or the generator is wrong.
    assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
}

#[test]
fn lenient_readings_of_parameters_and_escaped_separators() {
    use PathError::*;
    let cases: [(&str, Result<&[&str], PathError>); 16] = [
        ("/", Ok(&[])),
        ("/a/b/", Ok(&[])),
        ("/a%20b/%25/%C3%A9", Ok(&[])),
        ("/admin;x/secret", Ok(&["/admin/secret"])),
        ("/admin%2Fsecret", Ok(&["/admin/secret"])),
        ("/admin%5csecret", Ok(&["/admin/secret"])),
        ("/admin\\secret", Ok(&["/admin/secret"])),
        ("/admin%3Bx/secret", Ok(&["/admin/secret"])),
        ("/static/a;v=1.css", Ok(&["/static/a"])),
        (
            "/api/v4/projects/group%2Fproject",
            Ok(&["/api/v4/projects/group/project"]),
        ),
        // Each order of dropping parameters and splitting reads this one differently.
        ("/a;x%2Fb/c", Ok(&["/a/c", "/a;x/b/c", "/a/b/c"])),
        // Readings are normal: empty segments merge, a trailing `/` stays.
        ("/a%2F%2Fb%2f", Ok(&["/a/b/"])),
        ("/;x", Ok(&["/"])),
        // Not normal: dot segments appear in a reading.
        ("/a/..;x", Err(DotSegmentParameters)),
        ("/a/..%2Fb", Err(HiddenDotSegment)),
        ("a;b", Err(NotAbsolute)),
    ];
    for (path, expected) in cases {
        let readings = lenient_readings(path);
        let readings: Result<Vec<&str>, PathError> = readings
            .as_ref()
            .map(|all| all.iter().map(String::as_str).collect())
            .map_err(|error| *error);
        assert_eq!(readings, expected.map(<[&str]>::to_vec), "{path:?}");
    }
}

/// `text` with each of `escapes` (any case: each has one letter) replaced by `with`.
fn replace_escapes(text: &str, escapes: &[&str], with: &str) -> String {
    let mut out = text.to_string();
    for escape in escapes {
        for spelling in [escape.to_ascii_lowercase(), escape.to_ascii_uppercase()] {
            out = out.replace(&spelling, with);
        }
    }
    out
}

/// A model of how upstreams read a normal path, written apart from [`lenient_readings`]:
/// whole-path string rewrites, each order of dropping parameters (`;`, `%3B`) and reading
/// `%2F`, `%5C`, `\` as `/`, then empty segments merged. Includes the path as it is.
pub(crate) fn upstream_readings(path: &str) -> Vec<String> {
    let drop_parameters = |path: &str| -> String {
        let unified = replace_escapes(path, &["%3b"], ";");
        let segments: Vec<&str> = unified
            .split('/')
            .map(|segment| segment.split(';').next().unwrap_or_default())
            .collect();
        segments.join("/")
    };
    let split = |path: &str| replace_escapes(path, &["%2f", "%5c"], "/").replace('\\', "/");
    let merge = |path: String| {
        let segments: Vec<&str> = path[1..].split('/').collect();
        let last = segments.len() - 1;
        let kept: Vec<&str> = segments
            .iter()
            .enumerate()
            .filter(|(index, segment)| *index == last || !segment.is_empty())
            .map(|(_, segment)| *segment)
            .collect();
        format!("/{}", kept.join("/"))
    };
    [
        path.to_string(),
        drop_parameters(path),
        split(path),
        split(&drop_parameters(path)),
        drop_parameters(&split(path)),
    ]
    .into_iter()
    .map(merge)
    .collect()
}

#[test]
fn lenient_readings_are_the_upstreams_readings_and_never_fail_on_a_normal_path() {
    let mut rng = fastrand::Rng::with_seed(0x1e41_e475);
    let (mut plain, mut ambiguous) = (0, 0);
    for _ in 0..20_000 {
        let path = generated_path(&mut rng);
        let Ok(normal) = normalize_path(&path) else {
            continue;
        };
        let readings = lenient_readings(&normal)
            .unwrap_or_else(|error| panic!("{path:?} → {normal:?}: {error}"));
        let mut expected: Vec<String> = upstream_readings(&normal)
            .into_iter()
            .filter(|reading| reading != &normal)
            .collect();
        expected.sort();
        expected.dedup();
        let mut actual = readings.clone();
        actual.sort();
        assert_eq!(actual, expected, "{path:?} → {normal:?}");
        assert_eq!(actual.len(), readings.len(), "{normal:?}: duplicates");
        for reading in &readings {
            assert!(
                matches!(normalize_path(reading), Ok(Cow::Borrowed(_))) && clean(reading),
                "{normal:?} → {reading:?} is not normal"
            );
        }
        match readings.is_empty() {
            true => plain += 1,
            false => ambiguous += 1,
        }
    }
    assert!(plain > 1000 && ambiguous > 1000, "{plain} / {ambiguous}");
}
