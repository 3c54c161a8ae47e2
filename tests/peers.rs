//! Third-party peers against the real binary: Python `websockets` and Node `ws` clients through
//! the bridge, and noVNC's own files served by `--web`. `scripts/install-test-deps` installs
//! them; a missing one fails the test with the install hint.

mod support;

use support::{net::*, process};
use tokio::process::Command;

/// Runs a peer client to completion; returns its stdout, failing on a non-zero exit.
async fn run_peer(program: &str, args: &[&str]) -> String {
    let output = tokio::time::timeout(support::STEP * 3, Command::new(program).args(args).output())
        .await
        .expect("peer client did not finish")
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): run scripts/install-test-deps"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {stdout}\n{stderr}"
    );
    stdout
}

async fn echo_bridge() -> process::Wsgate {
    let echo = echo_server(true).await;
    process::spawn(&["websockify", "127.0.0.1:0", &echo.to_string()]).await
}

#[tokio::test]
async fn python_websockets_client_binary_and_base64() {
    let wsgate = echo_bridge().await;
    let url = format!("ws://{}/websockify", wsgate.addr);
    let binary = run_peer(
        "python3",
        &["tests/peers/ws_client.py", &url, "binary", "2000000"],
    )
    .await;
    assert_eq!(binary.trim(), "ok protocol=binary bytes=2000000");
    let base64 = run_peer(
        "python3",
        &["tests/peers/ws_client.py", &url, "base64", "500000"],
    )
    .await;
    assert_eq!(base64.trim(), "ok protocol=base64 bytes=500000");
}

#[tokio::test]
async fn node_ws_client() {
    let wsgate = echo_bridge().await;
    let url = format!("ws://{}/websockify", wsgate.addr);
    let out = run_peer("node", &["tests/peers/ws_client.mjs", &url, "2000000"]).await;
    assert_eq!(out.trim(), "ok protocol=binary bytes=2000000");
}

#[tokio::test]
async fn novnc_loads_from_web() {
    const NOVNC: &str = "/usr/share/novnc";
    assert!(
        std::path::Path::new(NOVNC).join("vnc.html").exists(),
        "noVNC missing: run scripts/install-test-deps"
    );
    let echo = echo_server(false).await;
    let wsgate = process::spawn(&[
        "websockify",
        "--web",
        NOVNC,
        "127.0.0.1:0",
        &echo.to_string(),
    ])
    .await;
    let page = raw_request(wsgate.addr, "GET /vnc.html HTTP/1.1\nHost: x").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("noVNC"));
    // Every module the page loads must come back as JavaScript, or the browser refuses it.
    let scripts: Vec<String> = page
        .text()
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|src| src.ends_with(".js"))
        .map(|src| format!("/{}", src.trim_start_matches("./")))
        .collect();
    assert!(!scripts.is_empty(), "vnc.html names no scripts");
    for script in scripts.iter().chain(["/core/rfb.js".to_string()].iter()) {
        let response = raw_request(wsgate.addr, &format!("GET {script} HTTP/1.1\nHost: x")).await;
        assert_eq!(response.status, 200, "{script}");
        assert_eq!(
            response.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{script}"
        );
    }
    let head = raw_request(wsgate.addr, "HEAD /vnc.html HTTP/1.1\nHost: x").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length").map(str::to_string),
        page.header("content-length").map(str::to_string)
    );
}
