//! `wsgate pipe URL`: standard input and output through a bridge route to a TCP service, the
//! way `ssh -o ProxyCommand='wsgate pipe …'` uses it.

mod support;

use std::process::Stdio;

use support::STEP;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
};

/// A service that reads exactly `len` bytes, sends them back, and closes (as an SSH server
/// ends its side when the session is over).
async fn read_then_answer(len: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut received = vec![0u8; len];
        stream.read_exact(&mut received).await.unwrap();
        stream.write_all(&received).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    addr
}

#[tokio::test]
async fn standard_input_and_output_go_through_the_route() {
    let len = 3_000_000;
    let target = read_then_answer(len).await;
    let wsgate = support::process::spawn(&["websockify", "127.0.0.1:0", &target.to_string()]).await;
    let input: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let mut pipe = Command::new(support::process::BIN)
        .args(["pipe", &format!("ws://{}/ssh", wsgate.addr)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = pipe.stdin.take().unwrap();
    let sent = input.clone();
    tokio::spawn(async move {
        stdin.write_all(&sent).await.unwrap();
        // stdin stays open, as ssh keeps it: the route's end ends the pipe.
        std::future::pending::<()>().await;
        drop(stdin);
    });
    let output = tokio::time::timeout(STEP, pipe.wait_with_output())
        .await
        .expect("the pipe did not end with the route")
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout == input, "{} bytes back", output.stdout.len());
}

#[tokio::test]
async fn a_refused_route_is_a_clear_error() {
    let wsgate = support::process::spawn(&["websockify", "127.0.0.1:0", "127.0.0.1:1"]).await;
    let output = Command::new(support::process::BIN)
        .args(["pipe", &format!("ws://{}/ssh", wsgate.addr)])
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(STEP, output).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("answered 502"), "{stderr}");
}
