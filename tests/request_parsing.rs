//! Request parsing edges, sent as an attacker sends them (exact bytes over raw TCP) to a real
//! gateway whose proxy routes lead to an upstream that records every request head it gets:
//! each test asserts the status and exactly what reached the upstream, or that nothing did.

mod support;

use support::{
    Gateway, STEP,
    http_client::HttpConn,
    net::{HeadRecorder, RawResponse, recording_server},
};

/// A gateway whose routes each map to their own base path on one recording upstream, so the
/// path the upstream receives names the route that matched.
struct Setup {
    gateway: Gateway,
    upstream: HeadRecorder,
}

impl Setup {
    async fn start() -> Setup {
        let upstream = HeadRecorder::start().await;
        let up = upstream.addr;
        let gateway = Gateway::start(&format!(
            "[[route]]\npath = \"/admin\"\nproxy = \"http://{up}/admin\"\n\
             [[route]]\npath = \"/api\"\nproxy = \"http://{up}/v1\"\n\
             [[route]]\npath = \"/static\"\nproxy = \"http://{up}/static\"\n\
             [[route]]\nhost = \"app.test\"\nproxy = \"http://{up}/host\"\n\
             [[route]]\npath = \"/\"\nproxy = \"http://{up}/root\"\n"
        ))
        .await;
        Setup { gateway, upstream }
    }

    /// Writes `request` as it is and reads one response.
    async fn send(&self, request: &str) -> RawResponse {
        let mut client = HttpConn::connect(self.gateway.addr).await;
        client.write_all(request.as_bytes()).await;
        let method = request.split(' ').next().unwrap_or_default();
        client.read_response(method).await
    }

    /// What the upstream received: each request line with the values of its `Host` lines.
    fn received(&self) -> Vec<(String, Vec<String>)> {
        self.upstream
            .heads()
            .iter()
            .map(|head| seen(head))
            .collect()
    }
}

/// A head's request line and its `Host` values.
fn seen(head: &str) -> (String, Vec<String>) {
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let hosts = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.trim().to_string())
        .collect();
    (line, hosts)
}

/// One expected upstream request: request line and `Host` values.
fn request(line: &str, hosts: &[&str]) -> (String, Vec<String>) {
    (
        line.to_string(),
        hosts.iter().map(|host| host.to_string()).collect(),
    )
}

/// Sends each request and asserts it is refused with 400 and nothing reaches the upstream.
async fn assert_refused(setup: &Setup, requests: &[&str]) {
    for sent in requests {
        let response = setup.send(sent).await;
        assert_eq!(response.status, 400, "{sent:?}: {}", response.text());
    }
    assert_eq!(setup.received(), Vec::new(), "nothing reaches the upstream");
}

#[tokio::test]
async fn duplicate_host_headers_are_refused() {
    let setup = Setup::start().await;
    assert_refused(
        &setup,
        &[
            "GET /api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /api/x HTTP/1.1\r\nHost: app.test\r\nHost: app.test\r\n\r\n",
            "GET /api/x HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
            "GET http://a/api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ],
    )
    .await;
}

#[tokio::test]
async fn http11_without_host_is_refused_and_http10_without_host_is_served() {
    let setup = Setup::start().await;
    let response = setup.send("GET /api/x HTTP/1.1\r\n\r\n").await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(setup.received(), Vec::new());
    let response = setup.send("GET /api/x HTTP/1.0\r\n\r\n").await;
    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
    // No Host from the client: the upstream gets its own authority (RFC 9112 requires one).
    let upstream = setup.upstream.addr.to_string();
    assert_eq!(
        setup.received(),
        [request("GET /v1/x HTTP/1.1", &[&upstream])]
    );
}

#[tokio::test]
async fn malformed_hosts_are_refused() {
    let setup = Setup::start().await;
    let hosts = [
        "a:abc",
        "a:99999",
        "a:",
        "a:+80",
        "user@a",
        "a b",
        "",
        "a..b",
        ".a",
        "a/b",
        "a,b",
        "::1",
        "[::1",
        "[::1]x",
        "[fe80::1%25eth0]",
        "a%2eb",
    ];
    let requests: Vec<String> = hosts
        .iter()
        .map(|host| format!("GET /api/x HTTP/1.1\r\nHost: {host}\r\n\r\n"))
        .collect();
    let requests: Vec<&str> = requests.iter().map(String::as_str).collect();
    assert_refused(&setup, &requests).await;
}

#[tokio::test]
async fn valid_hosts_are_forwarded_as_sent() {
    let setup = Setup::start().await;
    let hosts = [
        "a",
        "a:0",
        "a:65535",
        "127.0.0.1:8080",
        "[::1]:8080",
        "xn--bcher-kva.example",
    ];
    for host in hosts {
        let sent = format!("GET /api/x HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(setup.send(&sent).await.status, 200, "{host}");
    }
    let expected: Vec<_> = hosts
        .iter()
        .map(|host| request("GET /v1/x HTTP/1.1", &[host]))
        .collect();
    assert_eq!(setup.received(), expected);
}

#[tokio::test]
async fn an_absolute_uri_authority_wins_over_host_and_must_be_valid() {
    let setup = Setup::start().await;
    // RFC 9112 §3.2.2: the target's authority replaces Host, for routing and upstream alike.
    let response = setup
        .send("GET http://app.test/x HTTP/1.1\r\nHost: other.test\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    let response = setup
        .send("GET http://other.test/api/x HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        setup.received(),
        [
            request("GET /host/x HTTP/1.1", &["app.test"]),
            request("GET /v1/x HTTP/1.1", &["other.test"]),
        ]
    );
    let setup = Setup::start().await;
    assert_refused(
        &setup,
        &[
            "GET http://user@app.test/x HTTP/1.1\r\nHost: app.test\r\n\r\n",
            "GET http://app.test:99999/x HTTP/1.1\r\nHost: app.test\r\n\r\n",
            "GET http://app.test/x HTTP/1.1\r\nHost: a:abc\r\n\r\n",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_trailing_dot_name_matches_its_route_and_is_forwarded_without_the_dot() {
    let setup = Setup::start().await;
    for host in ["app.test.", "APP.test.:8080", "app.test"] {
        let sent = format!("GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(setup.send(&sent).await.status, 200, "{host}");
    }
    assert_eq!(
        setup.received(),
        [
            request("GET /host/x HTTP/1.1", &["app.test"]),
            request("GET /host/x HTTP/1.1", &["APP.test:8080"]),
            request("GET /host/x HTTP/1.1", &["app.test"]),
        ]
    );
}

#[tokio::test]
async fn routes_match_the_normalised_path_which_the_upstream_receives() {
    let setup = Setup::start().await;
    let cases = [
        ("/%61dmin/x", "/admin/x"),
        ("//admin/x", "/admin/x"),
        ("/admin//x//y", "/admin/x/y"),
        ("/%41dmin/x", "/root/Admin/x"),
        ("/api/%7euser?q=%61", "/v1/~user?q=%61"),
        ("/api/a%2Fb", "/v1/a%2Fb"),
        ("/x/%2e%2e/admin/y", "/admin/y"),
    ];
    assert_forwarded(&setup, &cases).await;
}

/// Each `(path, upstream)`: a GET for `path` is answered 200, and the upstreams received
/// exactly the `upstream` request lines, in order.
async fn assert_forwarded(setup: &Setup, cases: &[(&str, &str)]) {
    for (path, _) in cases {
        let sent = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(setup.send(&sent).await.status, 200, "{path}");
    }
    let expected: Vec<_> = cases
        .iter()
        .map(|(_, upstream)| request(&format!("GET {upstream} HTTP/1.1"), &["a"]))
        .collect();
    assert_eq!(setup.received(), expected);
}

#[tokio::test]
async fn dot_segments_with_path_parameters_are_refused() {
    let setup = Setup::start().await;
    assert_refused(
        &setup,
        &[
            "GET /api/..;/admin/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /api/.;x/admin HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /api/%2e%2e;/admin/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /api/..%3b/admin/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /api/..;jsessionid=1/admin/x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /api/..%2f..%2fadmin HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /api/%zz HTTP/1.1\r\nHost: a\r\n\r\n",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_path_an_upstream_reads_as_another_routes_is_refused() {
    let setup = Setup::start().await;
    // Each falls to the `/` route as sent, and Tomcat, Spring or a server that decodes `%2F`
    // reads it as `/admin/secret`.
    let paths = [
        "/admin;x/secret",
        "/admin;jsessionid=1",
        "/admin%3Bx/secret",
        "/admin%2Fsecret",
        "/admin%2fsecret",
        "/admin%5Csecret",
        "/admin%5csecret",
        "//admin;x//secret",
    ];
    for path in paths {
        let response = setup
            .send(&format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"))
            .await;
        assert_eq!(response.status, 400, "{path}");
        let routed = path.replace("//", "/");
        let reason =
            format!("ambiguous path: {routed} would route differently when read by an upstream\n");
        assert_eq!(response.text(), reason, "{path}");
    }
    // hyper takes a raw `\` in the target; IIS and others read it as `/`. The reason shows
    // it escaped, as in the logs.
    let response = setup
        .send("GET /admin\\secret HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(response.status, 400);
    let reason = r"ambiguous path: /admin\\secret would route differently when read by an upstream";
    assert_eq!(response.text(), format!("{reason}\n"));
    assert_eq!(
        setup.received(),
        Vec::new(),
        "neither route's upstream is reached"
    );
}

#[tokio::test]
async fn parameters_and_escaped_separators_within_one_route_reach_it_as_sent() {
    let setup = Setup::start().await;
    let cases = [
        (
            "/api/v4/projects/group%2Fproject",
            "/v1/v4/projects/group%2Fproject",
        ),
        ("/static/a;v=1.css", "/static/a;v=1.css"),
        ("/static/a%5cb;c%2F", "/static/a%5cb;c%2F"),
        ("/admin/a;x/b%2Fc", "/admin/a;x/b%2Fc"),
        ("/other;x/y%2Fz", "/root/other;x/y%2Fz"),
    ];
    assert_forwarded(&setup, &cases).await;
}

#[tokio::test]
async fn options_asterisk_is_answered_by_the_gateway() {
    let setup = Setup::start().await;
    let response = setup.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("allow"),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE")
    );
    assert_eq!(setup.received(), Vec::new(), "never rewritten into a path");
    assert_refused(
        &setup,
        &[
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
        ],
    )
    .await;
    let response = setup
        .send("CONNECT a:80 HTTP/1.1\r\nHost: a:80\r\n\r\n")
        .await;
    assert_eq!(response.status, 405);
    assert_eq!(setup.received(), Vec::new());
}

#[tokio::test]
async fn a_malformed_chunked_body_is_the_clients_fault() {
    let (upstream, mut received) = recording_server(None).await;
    let gateway = Gateway::start(&format!(
        "[[route]]\npath = \"/up\"\nproxy = \"http://{upstream}\"\n"
    ))
    .await;
    let head = "POST /up/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n"] {
        let mut client = HttpConn::connect(gateway.addr).await;
        client.write_all(format!("{head}{body}").as_bytes()).await;
        let response = client.read_response("POST").await;
        assert_eq!(response.status, 400, "{body:?}: {}", response.text());
        // The head, and the chunks before the bad one, may have left before the body failed;
        // the bad bytes never do, and the upstream never sees the body end.
        let bytes = tokio::time::timeout(STEP, received.recv())
            .await
            .expect("the upstream connection ends")
            .expect("the upstream connection was recorded");
        let text = String::from_utf8_lossy(&bytes);
        let head_only = text.is_empty()
            || (text.starts_with("POST /up/x HTTP/1.1\r\n")
                && !text.contains("zz")
                && !text.contains("XX")
                && !text.ends_with("0\r\n\r\n"));
        assert!(head_only, "{body:?}: the upstream received {text:?}");
    }
}
