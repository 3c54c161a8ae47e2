//! Every example config validates (as `wsgate check` would), so the examples cannot rot, and
//! no example serves its own config files.

mod support;

use std::path::Path;

#[test]
fn the_agent_examples_are_valid() {
    for file in ["examples/agent/agent.toml", "examples/agent/laptop.toml"] {
        if let Err(error) = wsgate::config::agent::load(Path::new(file)) {
            panic!("{error}");
        }
    }
}

#[test]
fn every_example_config_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("gateway.toml");
        if !file.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let base = prepare(&dir, &text);
        if let Err(error) =
            wsgate::config::validate::gateway(&file.display().to_string(), &text, &base)
        {
            panic!("{error}");
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} examples found");
}

/// The TLS example names `cert.pem`/`key.pem` beside it; those are made fresh in a temporary
/// directory rather than committed.
fn prepare(dir: &Path, text: &str) -> std::path::PathBuf {
    if !text.contains("[tls]") {
        return dir.to_path_buf();
    }
    let temp = support::tempdir("example-tls");
    let pki = support::certs::make(&temp);
    assert_eq!(pki.cert_path, temp.join("cert.pem"));
    assert_eq!(pki.key_path, temp.join("key.pem"));
    temp
}

/// The `[[route]]`s of an example that serve files: their path prefix (default `/`) and
/// directory (relative to the example's).
fn static_routes(dir: &Path, text: &str) -> Vec<(String, std::path::PathBuf)> {
    let parsed: toml::Table = toml::from_str(text).unwrap();
    let routes = parsed.get("route").and_then(|r| r.as_array()).cloned();
    routes
        .unwrap_or_default()
        .iter()
        .filter_map(|route| {
            let served = dir.join(route.get("static")?.as_str()?);
            let path = route.get("path").and_then(|p| p.as_str()).unwrap_or("/");
            Some((path.trim_end_matches('/').to_string(), served))
        })
        .collect()
}

/// The URL paths a static route at `prefix` serving `served` could give `file` by: the file's
/// path inside the directory if it is inside, and its bare name.
fn paths_to(prefix: &str, served: &Path, file: &Path) -> Vec<String> {
    let (served, file) = (served.canonicalize(), file.canonicalize().unwrap());
    let inside = served.ok().and_then(|s| {
        let relative = file.strip_prefix(s).ok()?;
        Some(relative.to_str()?.to_string())
    });
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    inside
        .into_iter()
        .chain([name])
        .map(|p| format!("{prefix}/{p}"))
        .collect()
}

#[tokio::test]
async fn no_example_serves_its_own_config_files() {
    let mut checked = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("gateway.toml");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let routes = static_routes(&dir, &text);
        if routes.is_empty() {
            continue;
        }
        // Its own listen addresses are fixed ports: a free one instead.
        let text: String = text
            .lines()
            .filter(|line| !line.starts_with("listen"))
            .map(|line| format!("{line}\n"))
            .collect();
        let gateway = support::Gateway::start_in(&text, &dir).await;
        let configs = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path());
        for config in configs.filter(|path| path.is_file()) {
            for (prefix, served) in &routes {
                for path in paths_to(prefix, served, &config) {
                    let head = format!("GET {path} HTTP/1.1\nHost: 127.0.0.1");
                    let response = support::net::raw_request(gateway.addr, &head).await;
                    assert_eq!(response.status, 404, "{} served {path}", dir.display());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 2, "only {checked} config files fetched");
}
