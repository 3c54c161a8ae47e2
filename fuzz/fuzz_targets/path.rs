//! Path normalisation as every request meets it (`router::normalize_path`, and the readings an
//! upstream may make of the result, `router::lenient_readings`), with the prefix helpers routes
//! are built and matched with. Input: a path, then after the first newline a route prefix.
//! Properties: normalising twice changes nothing; a normal path keeps its leading `/` and holds
//! no dot segment (plain or `%2e`-encoded); every lenient reading is itself normal; a prefix
//! match leaves a rest that rebuilds the path and starts on a segment boundary; normalised
//! prefixes are fixed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::matching::{lenient_readings, normalize_path, normalize_prefix, strip_prefix};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, prefix) = text.split_once('\n').unwrap_or((text, "/"));
    normalize(path);
    prefix_match(prefix, path);
    let _ = wsgate::body::percent_decode(path);
});

fn normalize(path: &str) {
    let Ok(once) = normalize_path(path) else {
        return;
    };
    let twice = normalize_path(&once).expect("a normal path normalises");
    assert_eq!(twice, once, "normalising {path:?} twice changed it");
    if let Ok(readings) = lenient_readings(&once) {
        for reading in readings {
            let again = normalize_path(&reading).expect("a reading is a normal path");
            assert_eq!(
                again, reading,
                "the reading {reading:?} of {once:?} is not normal"
            );
        }
    }
    if path.starts_with('/') {
        assert!(
            once.starts_with('/'),
            "{path:?} lost its leading / as {once:?}"
        );
    }
    let dot = |s: &str| {
        matches!(
            s.to_ascii_lowercase().replace("%2e", ".").as_str(),
            "." | ".."
        )
    };
    assert!(
        !once.split('/').any(dot),
        "{path:?} normalised to {once:?}, which keeps a dot segment"
    );
}

fn prefix_match(prefix: &str, path: &str) {
    let Ok(prefix) = normalize_prefix(prefix) else {
        return;
    };
    assert_eq!(normalize_prefix(&prefix).as_deref(), Ok(prefix.as_str()));
    assert!(prefix == "/" || !prefix.ends_with('/'));
    // Request paths start with `/` (hyper gives `*` for `OPTIONS *`: issue 10 item 4).
    let Some(rest) = strip_prefix(&prefix, path).filter(|_| path.starts_with('/')) else {
        return;
    };
    assert!(
        rest.is_empty() || rest.starts_with('/'),
        "{rest:?} after {prefix:?}"
    );
    if prefix != "/" {
        assert_eq!(format!("{prefix}{rest}"), path);
    }
}
