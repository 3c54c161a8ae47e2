//! `wsgate websockify`: the real binary with websockify's command line.

mod support;

use futures_util::SinkExt;
use support::{net::*, process, *};
use tokio_websockets::{CloseCode, Message};

#[tokio::test]
async fn bridges_on_any_path_and_logs_one_access_line() {
    let echo = echo_server(false).await;
    let mut wsgate = process::spawn(&["websockify", "127.0.0.1:0", &echo.to_string()]).await;
    assert!(
        wsgate
            .banner
            .iter()
            .any(|l| l.contains(&format!("bridge tcp://{echo}"))),
        "{:#?}",
        wsgate.banner
    );
    let mut client = connect(&format!("ws://{}/websockify", wsgate.addr), "binary")
        .await
        .unwrap();
    send_binary(&mut client, b"12345").await;
    assert_eq!(read_bytes(&mut client, 5).await, b"12345");
    client
        .send(Message::close(Some(CloseCode::NORMAL_CLOSURE), "done"))
        .await
        .unwrap();
    let line = wsgate.wait_for_log("wsgate::access").await;
    for field in [
        "route=websockify",
        "bytes_up=5",
        "bytes_down=5",
        "close_code=1000",
        &format!("upstream.addr=tcp://{echo}"),
    ] {
        assert!(line.contains(field), "{field} missing in: {line}");
    }
}

#[tokio::test]
async fn unsupported_options_are_refused_by_name() {
    for option in [
        "--traffic",
        "--record=/tmp/x",
        "--daemon",
        "--ssl-target",
        "--host-token",
    ] {
        let (code, stderr) = process::run(&["websockify", option, "6080", "127.0.0.1:5900"]).await;
        assert_eq!(code, 64, "{option}: {stderr}");
        let name = option.split('=').next().unwrap();
        assert!(
            stderr.contains(&format!(
                "websockify option {name} is not supported by wsgate"
            )),
            "{stderr}"
        );
    }
    let (code, stderr) = process::run(&[
        "websockify",
        "--token-plugin",
        "TokenRedis",
        "--token-source",
        "x",
        "6080",
    ])
    .await;
    assert_eq!(code, 64);
    assert!(
        stderr.contains("token plugin TokenRedis is not supported"),
        "{stderr}"
    );
    let (code, stderr) = process::run(&[
        "websockify",
        "--ssl-only",
        "--cert",
        "/nonexistent.pem",
        "6080",
        "127.0.0.1:1",
    ])
    .await;
    assert_eq!(code, 64);
    assert!(
        stderr.contains("SSL only and /nonexistent.pem not found"),
        "{stderr}"
    );
    let (code, stderr) = process::run(&["websockify", "6080"]).await;
    assert_eq!(code, 64);
    assert!(stderr.contains("too few arguments"), "{stderr}");
}

#[tokio::test]
async fn a_token_plugin_and_a_target_together_is_not_an_error() {
    let fallback = greeting_server(b"fallback").await;
    let tokened = greeting_server(b"tokened").await;
    let dir = tempdir("ws-tokens");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("vm1: {tokened}\n")).unwrap();
    let wsgate = process::spawn(&[
        "websockify",
        "--token-plugin",
        "websockify.token_plugins.ReadOnlyTokenFile",
        "--token-source",
        tokens.to_str().unwrap(),
        "127.0.0.1:0",
        &fallback.to_string(),
    ])
    .await;
    let mut with_token = connect(
        &format!("ws://{}/websockify?token=vm1", wsgate.addr),
        "binary",
    )
    .await
    .unwrap();
    assert_eq!(read_bytes(&mut with_token, 7).await, b"tokened");
    let mut without = connect(&format!("ws://{}/", wsgate.addr), "binary")
        .await
        .unwrap();
    assert_eq!(read_bytes(&mut without, 8).await, b"fallback");
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_zero() {
    let echo = echo_server(false).await;
    let wsgate = process::spawn(&["websockify", "127.0.0.1:0", &echo.to_string()]).await;
    let mut client = connect(&format!("ws://{}/", wsgate.addr), "binary")
        .await
        .unwrap();
    send_binary(&mut client, b"x").await;
    assert_eq!(read_bytes(&mut client, 1).await, b"x");
    let exiting = tokio::spawn(wsgate.terminate());
    assert_eq!(
        read_close(&mut client).await,
        (1001, "gateway shutting down".to_string())
    );
    drop(client);
    assert_eq!(exiting.await.unwrap(), 0);
}

#[tokio::test]
async fn idle_timeout_exits_when_nobody_is_connected() {
    let echo = echo_server(false).await;
    let mut wsgate = process::spawn(&[
        "websockify",
        "--idle-timeout",
        "1",
        "127.0.0.1:0",
        &echo.to_string(),
    ])
    .await;
    let status = tokio::time::timeout(STEP, wsgate.child.wait())
        .await
        .expect("no exit after --idle-timeout")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn web_and_combined_pem_serve_files_over_tls_and_plain() {
    let dir = tempdir("ws-web");
    let pki = certs::make(&dir);
    let web = dir.join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("vnc.html"), "<title>noVNC</title>").unwrap();
    let echo = echo_server(false).await;
    let wsgate = process::spawn(&[
        "websockify",
        "--web",
        web.to_str().unwrap(),
        "--cert",
        pki.combined_path.to_str().unwrap(),
        "127.0.0.1:0",
        &echo.to_string(),
    ])
    .await;
    // Without --ssl-only, plain HTTP is served on the TLS port too, as websockify does.
    let page = raw_request(wsgate.addr, "GET /vnc.html HTTP/1.1\nHost: x").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), "<title>noVNC</title>");
    let tcp = tokio::net::TcpStream::connect(wsgate.addr).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(server_name, tcp)
        .await
        .unwrap();
    let (mut client, _) = tokio_websockets::ClientBuilder::new()
        .uri("wss://localhost/websockify")
        .unwrap()
        .connect_on(tls)
        .await
        .unwrap();
    client
        .send(Message::binary(&b"over tls"[..]))
        .await
        .unwrap();
    assert_eq!(read_bytes(&mut client, 8).await, b"over tls");
}
