//! Third-party peers against the real binary: Python `websockets` and Node `ws` clients through
//! the bridge, noVNC's own files served by `--web`, and headless Chromium running noVNC through
//! the bridge to a real VNC server. `scripts/install-test-deps` installs them all; a missing one
//! fails its test with that hint, never a silent skip.

mod support;

use std::{
    collections::{BTreeSet, VecDeque},
    net::SocketAddr,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Output, Stdio},
};

use support::{net::*, process};
use tokio::{net::TcpListener, process::Command};

/// Where Debian's `novnc` package puts noVNC.
const NOVNC: &str = "/usr/share/novnc";

/// Runs a peer program to completion (killed if it outlives three steps).
async fn peer_output(program: &str, args: &[&str]) -> Output {
    let run = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(support::STEP * 3, run)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish"))
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): run scripts/install-test-deps"))
}

/// Runs a peer program; returns its stdout, failing the test on a non-zero exit.
async fn run_peer(program: &str, args: &[&str]) -> String {
    let output = peer_output(program, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {stdout}\n{stderr}"
    );
    stdout
}

/// `wsgate websockify` in front of an echo server that re-chunks what it sends back.
async fn echo_bridge() -> process::Wsgate {
    let echo = echo_server(true).await;
    process::spawn(&["websockify", "127.0.0.1:0", &echo.to_string()]).await
}

/// `wsgate websockify --web /usr/share/novnc` in front of `target`.
async fn novnc_gateway(target: SocketAddr) -> process::Wsgate {
    assert!(
        Path::new(NOVNC).join("vnc.html").exists(),
        "noVNC missing from {NOVNC}: run scripts/install-test-deps"
    );
    process::spawn(&[
        "websockify",
        "--web",
        NOVNC,
        "127.0.0.1:0",
        &target.to_string(),
    ])
    .await
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

/// The `Content-Type` a browser needs for a file, by extension: module scripts and stylesheets
/// with any other type are refused outright.
fn expected_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    Some(match extension {
        "html" => "text/html",
        "js" => "text/javascript",
        "css" => "text/css",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "ttf" => "font/ttf",
        "woff" => "font/woff",
        _ => return None,
    })
}

/// The URL paths a file makes the browser fetch: `src=`/`href=` in HTML, `url(...)` in CSS and
/// relative `import`s in JavaScript, resolved against `referrer`. Bare module names and
/// absolute URLs are not ours to serve.
fn references(referrer: &str, text: &str) -> Vec<String> {
    let markers: &[&str] = match referrer.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => &["src=\"", "href=\""],
        Some("css") => &["url(\"", "url('"],
        Some("js") => &["from \"", "from '", "import \"", "import '"],
        _ => &[],
    };
    let mut found = Vec::new();
    for marker in markers {
        let quote = marker.chars().last().expect("markers end with a quote");
        for rest in text.split(marker).skip(1) {
            let reference = rest.split(quote).next().unwrap_or_default();
            let relative = !reference.contains(':') && !reference.starts_with(['#', '/']);
            let module_path = !referrer.ends_with(".js") || reference.starts_with('.');
            if !reference.is_empty() && relative && module_path {
                found.push(resolve(referrer, reference));
            }
        }
    }
    found
}

/// `reference` relative to the directory of `referrer` (both URL paths), without `.`/`..`.
fn resolve(referrer: &str, reference: &str) -> String {
    let reference = reference.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<&str> = referrer.split('/').collect();
    segments.pop();
    for segment in reference.split('/') {
        match segment {
            "" | "." => {}
            ".." if segments.len() > 1 => {
                segments.pop();
            }
            ".." => {}
            name => segments.push(name),
        }
    }
    segments.join("/")
}

#[tokio::test]
async fn novnc_page_and_everything_it_loads_come_from_web() {
    let echo = echo_server(false).await;
    let wsgate = novnc_gateway(echo).await;
    let mut queue = VecDeque::from(["/vnc.html".to_string()]);
    let mut seen = BTreeSet::from(["/vnc.html".to_string()]);
    while let Some(path) = queue.pop_front() {
        let response = raw_request(wsgate.addr, &format!("GET {path} HTTP/1.1\nHost: x")).await;
        assert_eq!(response.status, 200, "{path}");
        let content_type = response.header("content-type").unwrap_or_default();
        if let Some(expected) = expected_type(&path) {
            assert!(content_type.starts_with(expected), "{path}: {content_type}");
        }
        let on_disk = std::fs::read(format!("{NOVNC}{path}")).unwrap();
        assert!(
            response.body == on_disk,
            "{path}: body differs from the file"
        );
        for next in references(&path, &response.text()) {
            if seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    // The page's entry module, the RFB client and its WebSocket layer, and the stylesheet:
    // if the crawl missed these, it proved nothing.
    for path in [
        "/app/ui.js",
        "/core/rfb.js",
        "/core/websock.js",
        "/app/styles/base.css",
    ] {
        assert!(seen.contains(path), "{path} not reached from vnc.html");
    }
    assert!(
        seen.len() > 60,
        "only {} files reached: {seen:#?}",
        seen.len()
    );
}

#[tokio::test]
async fn novnc_directory_symlink_and_head() {
    let echo = echo_server(false).await;
    let wsgate = novnc_gateway(echo).await;
    let page = raw_request(wsgate.addr, "GET /vnc.html HTTP/1.1\nHost: x").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<title>noVNC</title>"));

    // HEAD: same headers, no body.
    let head = raw_request(wsgate.addr, "HEAD /vnc.html HTTP/1.1\nHost: x").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), page.header("content-type"));
    assert_eq!(head.header("content-length"), page.header("content-length"));

    // vnc_auto.html is a symlink to vnc.html inside the tree: followed.
    let auto = raw_request(wsgate.addr, "GET /vnc_auto.html HTTP/1.1\nHost: x").await;
    assert_eq!(auto.status, 200);
    assert_eq!(auto.body, page.body);

    // The tree has no index.html and there are no listings: 404, not a directory dump.
    let root = raw_request(wsgate.addr, "GET / HTTP/1.1\nHost: x").await;
    assert_eq!(root.status, 404);
    let app = raw_request(wsgate.addr, "GET /app HTTP/1.1\nHost: x").await;
    assert_eq!(app.status, 301);
    assert_eq!(app.header("location"), Some("/app/"));
}

/// A real VNC server on a loopback port: the first connection gets its own `Xtigervnc -inetd`
/// with the socket as stdin/stdout. `-displayfd` lets it pick a free X display, so parallel
/// runs never collide and no fixed port is needed. Its log goes to `xvnc.log` in the returned
/// directory.
async fn xvnc_server() -> (SocketAddr, PathBuf) {
    let version = peer_output("Xtigervnc", &["-version"]).await;
    assert!(
        String::from_utf8_lossy(&version.stderr).contains("TigerVNC"),
        "Xtigervnc is not TigerVNC: run scripts/install-test-deps"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = support::tempdir("xvnc");
    let log = std::fs::File::create(dir.join("xvnc.log")).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        let output = stream.try_clone().unwrap();
        let mut xvnc = Command::new("Xtigervnc")
            .args(["-inetd", "-displayfd", "2", "-nolisten", "tcp"])
            .args(["-SecurityTypes", "None", "-geometry", "320x200"])
            .stdin(Stdio::from(OwnedFd::from(stream)))
            .stdout(Stdio::from(OwnedFd::from(output)))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn Xtigervnc");
        let _ = xvnc.wait().await;
    });
    (addr, dir)
}

/// The numeric `name=` field of a log line.
fn log_field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[tokio::test]
async fn chromium_runs_novnc_through_the_bridge_to_a_vnc_server() {
    let (vnc, xvnc_dir) = xvnc_server().await;
    let mut wsgate = novnc_gateway(vnc).await;
    let url = format!(
        "http://{addr}/vnc.html?autoconnect=true&reconnect=false&host={ip}&port={port}&path=websockify",
        addr = wsgate.addr,
        ip = wsgate.addr.ip(),
        port = wsgate.addr.port(),
    );
    let output = peer_output("python3", &["tests/peers/novnc_browser.py", &url]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.starts_with("ok state=connected"),
        "noVNC did not connect: {stdout}\n{}\nXvnc log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(xvnc_dir.join("xvnc.log")).unwrap_or_default()
    );
    assert!(stdout.contains("Connected (unencrypted)"), "{stdout}");

    // The browser is gone: the bridge logs its connection, with bytes both ways.
    let line = wsgate.wait_for_log("websocket closed").await;
    assert!(line.contains("route=websockify"), "{line}");
    assert!(log_field(&line, "bytes_up") > 0, "{line}");
    assert!(log_field(&line, "bytes_down") > 0, "{line}");
    let _ = std::fs::remove_dir_all(xvnc_dir);
}
