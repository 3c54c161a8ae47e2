//! `remote_port`: an agent's `tcp://` service on a gateway TCP port from the allowed range,
//! 64 MiB byte-exact both ways; a port outside the range is refused by name.

mod support;

use std::process::Stdio;

use support::{STEP, net::echo_server, process, tempdir};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

/// A port the kernel just had free (released again for the gateway to bind).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `wsgate agent` and returns it with the `service registered` / `service refused`
/// lines it printed for `expected` services.
async fn agent(
    gateway: std::net::SocketAddr,
    services: &[String],
    expected: usize,
) -> (Child, Vec<String>) {
    let mut args = vec![
        "agent".to_string(),
        "--server".into(),
        format!("ws://{gateway}/_wsgate/agent"),
        "--token".into(),
        "t0ken".into(),
        "--name".into(),
        "box".into(),
    ];
    args.extend(services.iter().cloned());
    let mut child = Command::new(process::BIN)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut answers = Vec::new();
    tokio::time::timeout(STEP, async {
        while answers.len() < expected {
            let line = lines.next_line().await.unwrap().expect("agent exited");
            if line.contains("service registered") || line.contains("service refused") {
                answers.push(line);
            }
        }
    })
    .await
    .expect("the agent did not register in time");
    (child, answers)
}

#[tokio::test]
async fn a_remote_port_carries_64_mib_each_way_and_the_range_is_enforced() {
    let echo = echo_server(true).await;
    let port = free_port();
    let dir = tempdir("tunnel-ports");
    let config = dir.join("gw.toml");
    std::fs::write(
        &config,
        format!("listen = [\"127.0.0.1:0\"]\n[agents]\ntokens = [\"t0ken\"]\nremote_ports = \"{port}-{port}\"\n"),
    )
    .unwrap();
    let gateway = process::spawn(&["serve", "-c", config.to_str().unwrap()]).await;
    let outside = if port == u16::MAX { port - 1 } else { port + 1 };
    let services = [
        format!("tcp://{echo}?mode=port&value={port}&name=echo"),
        format!("tcp://{echo}?mode=port&value={outside}&name=outside"),
    ];
    let (_agent, answers) = agent(gateway.addr, &services, 2).await;
    let registered = answers.iter().find(|l| l.contains("service=echo")).unwrap();
    assert!(
        registered.contains(&format!("url=tcp://127.0.0.1:{port}")),
        "{registered}"
    );
    let refused = answers
        .iter()
        .find(|l| l.contains("service=outside"))
        .unwrap();
    assert!(
        refused.contains("is outside the allowed range"),
        "{refused}"
    );

    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    tokio::time::timeout(STEP * 3, read.read_to_end(&mut back))
        .await
        .expect("the echo did not finish")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes differ through the remote port");
}
