//! Forward proxies on the agent whose egress is the gateway (or another agent): SOCKS5
//! (CONNECT, UDP ASSOCIATE) and HTTP (CONNECT, absolute URIs), and the gateway's egress policy.
//! Real processes throughout: the gateway and agents are the `wsgate` binary, the clients are
//! curl, PySocks and a SOCKS5 client written for the tests (for the reply codes).

mod support;

use std::net::SocketAddr;

use support::{
    STEP,
    http_upstream::{HttpUpstream, pattern},
    net::{echo_server, raw_request, refused_port, unresponsive_listener},
    process, random_bytes,
    socks::{self, Target},
    tempdir,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, UdpSocket},
    process::{Child, Command},
    sync::mpsc,
};

/// Starts the real gateway: token `t0ken` may use egress, token `plain` may not; `egress` is
/// the body of its `[egress]` section (`None`: no section).
async fn gateway(name: &str, egress: Option<&str>) -> process::Wsgate {
    let mut text = String::from(
        "listen = [\"127.0.0.1:0\"]\n[agents]\n\
         [[agents.token]]\ntoken = \"t0ken\"\negress = true\n\
         [[agents.token]]\ntoken = \"plain\"\n",
    );
    if let Some(egress) = egress {
        text.push_str(&format!("[egress]\n{egress}\n"));
    }
    let config = tempdir(name).join("gw.toml");
    std::fs::write(&config, text).unwrap();
    process::spawn(&["serve", "-c", config.to_str().unwrap()]).await
}

/// A running `wsgate agent` and the proxies it listens with.
struct Agent {
    _child: Child,
    socks5: Option<SocketAddr>,
    http: Option<SocketAddr>,
}

/// Runs `wsgate agent ARGS` until its gateway session is up.
async fn agent(args: &[String]) -> Agent {
    let mut argv = vec!["agent".to_string()];
    argv.extend_from_slice(args);
    let (child, mut lines) = process::start(&argv);
    let (mut socks5, mut http) = (None, None);
    tokio::time::timeout(STEP, async {
        loop {
            let line = lines.recv().await.expect("agent exited");
            if line.contains("SOCKS5 proxy listening") {
                socks5 = listen_addr(&line);
            } else if line.contains("HTTP proxy listening") {
                http = listen_addr(&line);
            } else if line.contains("gateway session up") {
                return;
            }
        }
    })
    .await
    .expect("the agent's session did not come up in time");
    Agent {
        _child: child,
        socks5,
        http,
    }
}

/// The `listen=ADDR` of a log line.
fn listen_addr(line: &str) -> Option<SocketAddr> {
    let value = line.split("listen=").nth(1)?.split_whitespace().next()?;
    value.parse().ok()
}

/// An agent on the command line, with `token`, and the proxies `extra` asks for.
async fn cli_agent(gateway: SocketAddr, token: &str, extra: &[&str]) -> Agent {
    let mut args: Vec<String> = ["--server", &format!("ws://{gateway}/_wsgate/agent")]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.extend(["--token", token, "--name", "laptop"].map(String::from));
    args.extend(extra.iter().map(ToString::to_string));
    agent(&args).await
}

/// An agent from a config file: `server`, `token = "t0ken"` and `name` are added to `body`.
async fn file_agent(dir: &str, gateway: SocketAddr, name: &str, body: &str) -> Agent {
    let text = format!(
        "server = \"ws://{gateway}/_wsgate/agent\"\ntoken = \"t0ken\"\nname = \"{name}\"\n{body}"
    );
    let path = tempdir(dir).join("agent.toml");
    std::fs::write(&path, text).unwrap();
    agent(&["-c".into(), path.to_str().unwrap().into()]).await
}

/// Runs a command to its end (bounded); its exit code and stdout.
async fn output(program: &str, args: &[&str]) -> (i32, String) {
    let run = Command::new(program).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(STEP, run)
        .await
        .expect("timed out")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

/// Sends `data` through an open connection to an echo server and returns what came back.
async fn echo_through(stream: &mut tokio::net::TcpStream, data: &[u8]) -> Vec<u8> {
    let (mut reader, mut writer) = stream.split();
    let mut back = vec![0u8; data.len()];
    let (wrote, read) = tokio::time::timeout(STEP, async {
        tokio::join!(writer.write_all(data), reader.read_exact(&mut back))
    })
    .await
    .expect("echo timed out");
    wrote.unwrap();
    read.unwrap();
    back
}

#[tokio::test]
async fn curl_reaches_a_local_server_through_socks5h_and_the_http_proxy() {
    let upstream = HttpUpstream::start("origin").await;
    let port = upstream.addr.port();
    let gw = gateway(
        "egress-curl",
        Some("allow = [\"127.0.0.0/8\", \"localhost\"]"),
    )
    .await;
    let agent = cli_agent(
        gw.addr,
        "t0ken",
        &["--socks5", "127.0.0.1:0", "--http-proxy", "127.0.0.1:0"],
    )
    .await;
    let socks = format!("{}", agent.socks5.unwrap());
    let http = format!("http://{}", agent.http.unwrap());
    // socks5h: curl passes the name, the gateway resolves it.
    let url = format!("http://localhost:{port}/name");
    let (code, body) = output("curl", &["-sS", "--socks5-hostname", &socks, &url]).await;
    assert_eq!((code, body.as_str()), (0, "origin"));
    // An absolute URI through the HTTP proxy: sent on in origin form, proxy headers dropped.
    let url = format!("http://127.0.0.1:{port}/headers?x=1");
    let (code, body) = output(
        "curl",
        &[
            "-sS",
            "-x",
            &http,
            "-H",
            "Proxy-Connection: keep-alive",
            &url,
        ],
    )
    .await;
    assert_eq!(code, 0, "{body}");
    assert!(body.contains("\"path\":\"/headers?x=1\""), "{body}");
    assert!(
        body.contains(&format!("\"host\":\"127.0.0.1:{port}\"")),
        "{body}"
    );
    assert!(!body.contains("proxy-connection"), "{body}");
    // A streamed 4 MiB body, byte-exact.
    let file = tempdir("egress-curl-download").join("body");
    let url = format!("http://127.0.0.1:{port}/stream?bytes={}", 4 << 20);
    let (code, _) = output(
        "curl",
        &["-sS", "-x", &http, "-o", file.to_str().unwrap(), &url],
    )
    .await;
    assert_eq!(code, 0);
    assert!(std::fs::read(&file).unwrap() == pattern(0, 4 << 20));
}

#[tokio::test]
async fn curl_connects_to_an_https_server_through_the_http_proxy() {
    let dir = tempdir("egress-https");
    let pki = support::certs::make(&dir);
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "over tls\n").unwrap();
    let config = dir.join("origin.toml");
    let origin_toml = format!(
        "listen = [\"127.0.0.1:0\"]\n[tls]\ncert = {:?}\nkey = {:?}\n[[route]]\npath = \"/\"\nstatic = {:?}\n",
        pki.cert_path, pki.key_path, site
    );
    std::fs::write(&config, origin_toml).unwrap();
    let origin = process::spawn(&["serve", "-c", config.to_str().unwrap()]).await;
    let gw = gateway(
        "egress-https-gw",
        Some("allow = [\"127.0.0.0/8\", \"::1\"]"),
    )
    .await;
    let agent = cli_agent(gw.addr, "t0ken", &["--http-proxy", "127.0.0.1:0"]).await;
    let http = format!("http://{}", agent.http.unwrap());
    let url = format!("https://localhost:{}/hello.txt", origin.addr.port());
    let ca = pki.ca_path.to_str().unwrap();
    let (code, body) = output("curl", &["-sS", "--cacert", ca, "-x", &http, &url]).await;
    assert_eq!((code, body.as_str()), (0, "over tls\n"));
}

#[tokio::test]
async fn pysocks_over_ipv6_with_username_and_password() {
    let echo = TcpListener::bind("[::1]:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let gw = gateway("egress-pysocks", Some("allow = [\"::1/128\"]")).await;
    let body = "[socks5]\nlisten = \"[::1]:0\"\nusername = \"alice\"\npassword = \"s3cret\"\n";
    let agent = file_agent("egress-pysocks-agent", gw.addr, "laptop", body).await;
    let proxy = agent.socks5.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/socks_client.py");
    let run = |user: &'static str, password: &'static str| {
        let args = [
            script.to_string(),
            "tcp".into(),
            proxy.ip().to_string(),
            proxy.port().to_string(),
            "::1".into(),
            echo_port.to_string(),
            user.into(),
            password.into(),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            output("python3", &args).await.1
        }
    };
    assert_eq!(run("alice", "s3cret").await.trim(), "ok 65536");
    let wrong = run("alice", "guess").await;
    assert!(wrong.contains("authentication failed"), "{wrong}");
}

#[tokio::test]
async fn the_egress_policy_allows_denies_and_counts() {
    let echo = echo_server(false).await;
    let denied_port = echo_server(false).await.port();
    let policy = format!(
        "allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.2\", \"*.blocked.test\"]\ndeny_ports = [\"{denied_port}\"]\nconnect_timeout = \"500ms\"\n"
    );
    let mut gw = gateway("egress-policy", Some(&policy)).await;
    let agent = cli_agent(gw.addr, "t0ken", &["--socks5", "127.0.0.1:0"]).await;
    let proxy = agent.socks5.unwrap();
    // Allowed: bytes go through.
    let (code, stream) = socks::connect(proxy, &Target::Addr(echo)).await;
    assert_eq!(code, 0);
    let data = random_bytes(256 << 10, 7);
    assert!(echo_through(&mut stream.unwrap(), &data).await == data);
    // Denied, each with reply 2 ("not allowed by ruleset").
    let at = |ip: [u8; 4], port: u16| Target::Addr(SocketAddr::from((ip, port)));
    let denied = [
        at([127, 0, 0, 2], echo.port()),            // a denied address
        Target::Name("db.blocked.test".into(), 80), // a denied name
        at([127, 0, 0, 1], denied_port),            // a denied port
        at([10, 1, 2, 3], 80),                      // private: denied by default
        at([169, 254, 169, 254], 80),               // cloud metadata: link-local
    ];
    for target in &denied {
        assert_eq!(socks::connect(proxy, target).await.0, 2, "{target:?}");
    }
    let line = gw.wait_for_log("denied_total=5").await;
    assert!(
        line.contains("egress denied") && line.contains("agent=laptop"),
        "{line}"
    );
    // Not a policy matter: refused (5), unresolvable (4), no answer (6).
    let refused = refused_port().await;
    assert_eq!(socks::connect(proxy, &Target::Addr(refused)).await.0, 5);
    let unknown = Target::Name("nowhere.invalid".into(), 80);
    assert_eq!(socks::connect(proxy, &unknown).await.0, 4);
    let (silent, _fillers, _socket) = unresponsive_listener();
    assert_eq!(socks::connect(proxy, &Target::Addr(silent)).await.0, 6);
}

#[tokio::test]
async fn by_default_loopback_is_denied_however_it_is_written() {
    let echo = echo_server(false).await;
    let mut gw = gateway("egress-default", Some("connect_timeout = \"2s\"")).await;
    let agent = cli_agent(gw.addr, "t0ken", &["--socks5", "127.0.0.1:0"]).await;
    let proxy = agent.socks5.unwrap();
    let port = echo.port();
    let v6 = |text: &str| Target::Addr(SocketAddr::new(text.parse().unwrap(), port));
    let denied = [
        Target::Addr(echo),
        Target::Name("localhost".into(), port),
        Target::Name("2130706433".into(), port), // 127.0.0.1 as one number
        Target::Name("0x7f.1".into(), port),
        v6("::ffff:127.0.0.1"),
        v6("::1"),
    ];
    for target in &denied {
        assert_eq!(socks::connect(proxy, target).await.0, 2, "{target:?}");
    }
    let line = gw
        .wait_for_log(&format!("denied_total={}", denied.len()))
        .await;
    assert!(line.contains("egress denied"), "{line}");
}

#[tokio::test]
async fn bind_and_unknown_address_types_get_their_reply_codes() {
    let gw = gateway("egress-codes", Some("allow = [\"127.0.0.0/8\"]")).await;
    let agent = cli_agent(gw.addr, "t0ken", &["--socks5", "127.0.0.1:0"]).await;
    let proxy = agent.socks5.unwrap();
    let bind = Target::Addr(SocketAddr::from(([127, 0, 0, 1], 9)));
    assert_eq!(socks::request(proxy, 2, &bind, None).await.unwrap().code, 7);
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut chosen = [0u8; 2];
    stream.read_exact(&mut chosen).await.unwrap();
    stream
        .write_all(&[5, 1, 0, 9, 1, 2, 3, 4, 0, 80])
        .await
        .unwrap();
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [5, 8]);
}

#[tokio::test]
async fn a_token_without_egress_and_a_gateway_without_it_are_refused() {
    let echo = echo_server(false).await;
    let gw = gateway("egress-token", Some("allow = [\"127.0.0.0/8\"]")).await;
    let agent = cli_agent(gw.addr, "plain", &["--socks5", "127.0.0.1:0"]).await;
    assert_eq!(
        socks::connect(agent.socks5.unwrap(), &Target::Addr(echo))
            .await
            .0,
        2
    );
    let bare = gateway("egress-none", None).await;
    let agent = cli_agent(bare.addr, "t0ken", &["--http-proxy", "127.0.0.1:0"]).await;
    let response = raw_request(
        agent.http.unwrap(),
        &format!("CONNECT {echo} HTTP/1.1\nHost: {echo}"),
    )
    .await;
    assert_eq!(response.status, 403);
    assert!(
        response.text().contains("no [egress]"),
        "{}",
        response.text()
    );
}

#[tokio::test]
async fn the_http_proxy_asks_for_credentials_and_maps_failures_to_statuses() {
    let gw = gateway(
        "egress-http",
        Some("allow = [\"127.0.0.0/8\"]\nconnect_timeout = \"500ms\""),
    )
    .await;
    let body = "[http_proxy]\nlisten = \"127.0.0.1:0\"\nusername = \"u\"\npassword = \"p\"\n";
    let agent = file_agent("egress-http-agent", gw.addr, "laptop", body).await;
    let proxy = agent.http.unwrap();
    let auth = "Proxy-Authorization: Basic dTpw"; // u:p
    let connect = |target: String, auth: &'static str| async move {
        raw_request(
            proxy,
            &format!("CONNECT {target} HTTP/1.1\nHost: {target}\n{auth}"),
        )
        .await
    };
    let response = connect("127.0.0.1:1".into(), "").await;
    assert_eq!(response.status, 407);
    assert_eq!(
        response.header("proxy-authenticate"),
        Some("Basic realm=\"wsgate\"")
    );
    assert_eq!(connect("10.0.0.1:80".into(), auth).await.status, 403);
    assert_eq!(
        connect(refused_port().await.to_string(), auth).await.status,
        502
    );
    let (silent, _fillers, _socket) = unresponsive_listener();
    assert_eq!(connect(silent.to_string(), auth).await.status, 504);
    // With credentials, CONNECT opens a tunnel.
    let echo = echo_server(false).await;
    let mut stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let head = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n{auth}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(&mut stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut line = String::new();
    while reader.read_line(&mut line).await.unwrap() > 2 {
        line.clear();
    }
    let data = random_bytes(64 << 10, 3);
    assert!(echo_through(&mut stream, &data).await == data);
}

#[tokio::test]
async fn egress_via_another_agent_exits_from_its_network() {
    let echo = echo_server(true).await;
    // The gateway has no egress of its own: the connection can only leave from the office.
    let gw = gateway("egress-via", None).await;
    let office = "[egress]\nsecret = \"exit-s3\"\nallow = [\"127.0.0.0/8\"]\n";
    let _office = file_agent("egress-via-office", gw.addr, "office", office).await;
    let laptop = "[socks5]\nlisten = \"127.0.0.1:0\"\nvia = \"office\"\nsecret = \"exit-s3\"\n";
    let laptop = file_agent("egress-via-laptop", gw.addr, "laptop", laptop).await;
    let (code, stream) = socks::connect(laptop.socks5.unwrap(), &Target::Addr(echo)).await;
    assert_eq!(code, 0);
    let data = random_bytes(8 << 20, 11);
    assert!(echo_through(&mut stream.unwrap(), &data).await == data);
    // The office's own policy still applies: 10.0.0.0/8 is not allowed there.
    let private = Target::Addr(SocketAddr::from(([10, 0, 0, 1], 80)));
    assert_eq!(socks::connect(laptop.socks5.unwrap(), &private).await.0, 2);
    // Datagrams take the same way out.
    let udp_echo = udp_echo().await;
    let (relay, _control) = associate(laptop.socks5.unwrap()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let answer = udp_round_trip(&client, relay, &Target::Addr(udp_echo), b"via").await;
    assert_eq!(answer, (udp_echo, b"via".to_vec()));
    let wrong = "[socks5]\nlisten = \"127.0.0.1:0\"\nvia = \"office\"\nsecret = \"guess\"\n";
    let wrong = file_agent("egress-via-wrong", gw.addr, "other", wrong).await;
    assert_eq!(
        socks::connect(wrong.socks5.unwrap(), &Target::Addr(echo))
            .await
            .0,
        2
    );
    let absent = "[socks5]\nlisten = \"127.0.0.1:0\"\nvia = \"branch\"\nsecret = \"x\"\n";
    let absent = file_agent("egress-via-absent", gw.addr, "third", absent).await;
    assert_eq!(
        socks::connect(absent.socks5.unwrap(), &Target::Addr(echo))
            .await
            .0,
        3
    );
}

/// A UDP echo server on 127.0.0.1.
async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A UDP ASSOCIATE through `proxy`: the relay address and the control connection.
async fn associate(proxy: SocketAddr) -> (SocketAddr, tokio::net::TcpStream) {
    let anywhere = Target::Addr(SocketAddr::from(([0, 0, 0, 0], 0)));
    let reply = socks::request(proxy, 3, &anywhere, None).await.unwrap();
    assert_eq!(reply.code, 0);
    (reply.bound, reply.stream)
}

/// Sends `payload` to `target` through the relay and returns the first answer's source and
/// payload.
async fn udp_round_trip(
    client: &UdpSocket,
    relay: SocketAddr,
    target: &Target,
    payload: &[u8],
) -> (SocketAddr, Vec<u8>) {
    let packet = socks::udp_request(target, payload);
    client.send_to(&packet, relay).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let received = tokio::time::timeout(STEP, client.recv_from(&mut buf)).await;
    let (n, _) = received.expect("no answer").unwrap();
    socks::udp_reply(&buf[..n])
}

/// Waits (bounded) until the control connection of an association ends.
async fn control_ends(control: &mut tokio::net::TcpStream) {
    let mut end = [0u8; 1];
    let read = tokio::time::timeout(STEP, control.read(&mut end)).await;
    let read = read.expect("the association is still open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_udp_flood_both_ways_does_not_wedge_an_association_and_the_exit_ends_it_when_idle() {
    let echo = udp_echo().await;
    let policy = "allow = [\"127.0.0.0/8\"]\nudp_idle_timeout = \"1s\"";
    let gw = gateway("egress-udp-flood", Some(policy)).await;
    let agent = cli_agent(gw.addr, "t0ken", &["--socks5", "127.0.0.1:0"]).await;
    let (relay, mut control) = associate(agent.socks5.unwrap()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Datagrams out as fast as they go for 3 s while none of the echoes is read: both ways of
    // the tunnel stream fill at once (a relay that waits on one way to serve the other wedges
    // here, as an earlier one did).
    let target = Target::Addr(echo);
    let bulk = socks::udp_request(&target, &[7u8; 1200]);
    let flood_until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    for _ in 0..1_000_000 {
        if tokio::time::Instant::now() > flood_until {
            break;
        }
        client.send_to(&bulk, relay).await.unwrap();
        tokio::task::yield_now().await;
    }
    // The association still carries a datagram both ways (echoes of the flood may come first).
    let probe = socks::udp_request(&target, b"probe");
    let mut buf = vec![0u8; 65_536];
    let answered = tokio::time::timeout(STEP, async {
        loop {
            client.send_to(&probe, relay).await.unwrap();
            let short = std::time::Duration::from_millis(200);
            while let Ok(Ok((n, _))) = tokio::time::timeout(short, client.recv_from(&mut buf)).await
            {
                if socks::udp_reply(&buf[..n]).1 == b"probe" {
                    return;
                }
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "the association no longer answers");
    // Quiet now: the exit's idle timeout (1 s; the agent's is 60 s) ends it, end to end.
    control_ends(&mut control).await;
}

#[tokio::test]
async fn udp_associate_echoes_datagrams_and_ends_when_idle() {
    let echo = udp_echo().await;
    let mut gw = gateway(
        "egress-udp",
        Some("allow = [\"127.0.0.0/8\", \"localhost\"]"),
    )
    .await;
    let body = "[socks5]\nlisten = \"127.0.0.1:0\"\nudp_idle_timeout = \"1s\"\n";
    let agent = file_agent("egress-udp-agent", gw.addr, "laptop", body).await;
    let proxy = agent.socks5.unwrap();
    let anywhere = Target::Addr(SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut reply = socks::request(proxy, 3, &anywhere, None).await.unwrap();
    assert_eq!(reply.code, 0);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let targets = [
        Target::Addr(echo),
        Target::Name("localhost".into(), echo.port()),
    ];
    for (i, target) in targets.iter().enumerate() {
        let payload = random_bytes(1000 + i, i as u64);
        let packet = socks::udp_request(target, &payload);
        client.send_to(&packet, reply.bound).await.unwrap();
        let (n, _) = tokio::time::timeout(STEP, client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let (source, back) = socks::udp_reply(&buf[..n]);
        assert_eq!((source, back), (echo, payload), "{target:?}");
    }
    // A denied destination is dropped, logged and counted.
    let private = Target::Addr(SocketAddr::from(([10, 9, 9, 9], 53)));
    client
        .send_to(&socks::udp_request(&private, b"q"), reply.bound)
        .await
        .unwrap();
    let line = gw.wait_for_log("egress datagram denied").await;
    assert!(line.contains("denied_total=1"), "{line}");
    // Nothing for the idle timeout: the association ends, and so does its TCP connection.
    control_ends(&mut reply.stream).await;
    // PySocks' UDP support through the same proxy.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/socks_client.py");
    let (host, port) = (proxy.ip().to_string(), proxy.port().to_string());
    let echo_port = echo.port().to_string();
    let args = [script, "udp", &host, &port, "127.0.0.1", &echo_port];
    let (_, out) = output("python3", &args).await;
    assert_eq!(out.trim(), "ok 1913");
}

#[tokio::test]
async fn a_hundred_concurrent_downloads_are_byte_exact() {
    // Each connection says which seed it wants and gets 1 MiB made from it.
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = server.accept().await {
            tokio::spawn(async move {
                let seed = stream.read_u64().await.unwrap();
                stream
                    .write_all(&random_bytes(1 << 20, seed))
                    .await
                    .unwrap();
            });
        }
    });
    let gw = gateway("egress-hundred", Some("allow = [\"127.0.0.0/8\"]")).await;
    let agent = cli_agent(gw.addr, "t0ken", &["--socks5", "127.0.0.1:0"]).await;
    let proxy = agent.socks5.unwrap();
    let (done_tx, mut done) = mpsc::channel(100);
    for seed in 0..100u64 {
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let (code, stream) = socks::connect(proxy, &Target::Addr(addr)).await;
            assert_eq!(code, 0);
            let mut stream = stream.unwrap();
            stream.write_u64(seed).await.unwrap();
            let mut body = Vec::new();
            stream.read_to_end(&mut body).await.unwrap();
            done_tx
                .send(body == random_bytes(1 << 20, seed))
                .await
                .unwrap();
        });
    }
    drop(done_tx);
    let mut exact = 0;
    while let Some(ok) = tokio::time::timeout(STEP, done.recv()).await.unwrap() {
        exact += usize::from(ok);
    }
    assert_eq!(exact, 100);
}
