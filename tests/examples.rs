//! Every example config validates (as `wsgate check` would), so the examples cannot rot.

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
