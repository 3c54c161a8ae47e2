//! Static files: MIME types, index.html, HEAD, Last-Modified / If-Modified-Since, and no way
//! out of the directory.

mod support;

use std::path::PathBuf;

use support::{net::*, *};

/// A site: `root/` served, `secret.txt` beside it (must never be reachable), a symlink inside
/// pointing at it, a subdirectory with its own index.
fn site() -> (PathBuf, PathBuf) {
    let top = tempdir("files");
    let root = top.join("root");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("app/ui.js"), "export const x = 1;").unwrap();
    std::fs::write(root.join("app/style.css"), "body{}").unwrap();
    std::fs::write(root.join("docs/index.html"), "docs").unwrap();
    std::fs::write(root.join("data.bin"), [0u8, 1, 2]).unwrap();
    std::fs::write(top.join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(top.join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(root.join("app/ui.js"), root.join("inside.js")).unwrap();
    (top, root)
}

async fn files_gateway() -> Gateway {
    let (_top, root) = site();
    Gateway::start(&format!(
        "[[route]]\npath = \"/\"\nstatic = \"{}\"\n",
        root.display()
    ))
    .await
}

async fn get(gateway: &Gateway, path: &str) -> RawResponse {
    raw_request(gateway.addr, &format!("GET {path} HTTP/1.1\nHost: x")).await
}

#[tokio::test]
async fn files_have_their_mime_types() {
    let gateway = files_gateway().await;
    let cases = [
        ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>"),
        (
            "/app/ui.js",
            "text/javascript; charset=utf-8",
            "export const x = 1;",
        ),
        ("/app/style.css", "text/css; charset=utf-8", "body{}"),
        (
            "/inside.js",
            "text/javascript; charset=utf-8",
            "export const x = 1;",
        ),
    ];
    for (path, mime, body) in cases {
        let response = get(&gateway, path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some(mime), "{path}");
        assert_eq!(response.text(), body, "{path}");
    }
    assert_eq!(
        get(&gateway, "/data.bin").await.header("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn directories_serve_their_index_and_redirect_without_a_slash() {
    let gateway = files_gateway().await;
    assert_eq!(get(&gateway, "/").await.text(), "<h1>home</h1>");
    assert_eq!(get(&gateway, "/docs/").await.text(), "docs");
    let redirect = get(&gateway, "/docs?x=1").await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/docs/?x=1"));
    assert_eq!(
        get(&gateway, "/app/").await.status,
        404,
        "no listing without an index"
    );
}

#[tokio::test]
async fn head_has_the_length_and_no_body() {
    let gateway = files_gateway().await;
    let response = raw_request(gateway.addr, "HEAD /app/ui.js HTTP/1.1\nHost: x").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("19"));
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn if_modified_since_answers_304() {
    let gateway = files_gateway().await;
    let first = get(&gateway, "/index.html").await;
    let modified = first
        .header("last-modified")
        .expect("Last-Modified is set")
        .to_string();
    let again = raw_request(
        gateway.addr,
        &format!("GET /index.html HTTP/1.1\nHost: x\nIf-Modified-Since: {modified}"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let old = raw_request(
        gateway.addr,
        "GET /index.html HTTP/1.1\nHost: x\nIf-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT",
    )
    .await;
    assert_eq!(old.status, 200);
}

#[tokio::test]
async fn traversal_attempts_never_leave_the_directory() {
    let gateway = files_gateway().await;
    let attempts = [
        "/../secret.txt",
        "/app/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/app/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/escape.txt",
        "/%00/../secret.txt",
    ];
    for path in attempts {
        let response = get(&gateway, path).await;
        assert!(
            !response.text().contains("TOP SECRET"),
            "{path} leaked the secret"
        );
        // 400 when the path climbs above / (refused before routing), else 404.
        assert!(
            matches!(response.status, 400 | 404),
            "{path}: {}",
            response.status
        );
    }
    assert_eq!(get(&gateway, "/../secret.txt").await.status, 400);
    assert_eq!(get(&gateway, "/escape.txt").await.status, 404);
}

#[tokio::test]
async fn only_get_and_head_are_allowed() {
    let gateway = files_gateway().await;
    let response = raw_request(
        gateway.addr,
        "POST /index.html HTTP/1.1\nHost: x\nContent-Length: 0",
    )
    .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn one_path_serves_files_and_bridges_websockets_like_websockify_web() {
    let (_top, root) = site();
    let echo = echo_server(false).await;
    let toml = format!(
        "[[route]]\npath = \"/\"\nstatic = \"{}\"\n[[route]]\npath = \"/\"\nbridge = \"tcp://{echo}\"\n",
        root.display()
    );
    let gateway = Gateway::start(&toml).await;
    assert_eq!(get(&gateway, "/").await.text(), "<h1>home</h1>");
    let mut client = connect(&gateway.ws_url("/websockify"), "binary")
        .await
        .unwrap();
    send_binary(&mut client, b"vnc").await;
    assert_eq!(read_bytes(&mut client, 3).await, b"vnc");
}
