//! Claim rules against agents that try to take what is not theirs (issue 10, item 1): host
//! claims on the gateway's own names (as reached, on its TLS certificate, or configured), IP
//! literals, localhost, configured routes' hosts, hosts under another agent's wildcard, paths
//! under a configured `/` catch-all or outside `[agents] paths`, paths nested in another
//! agent's path, and everything the embedded default configures. Each is refused with its reason, and what it aimed at still
//! answers visitors from its real upstream. Victims are real `wsgate agent` processes;
//! attackers speak the agent protocol directly, so they can name any `Host` on their upgrade.

mod support;

use std::net::SocketAddr;

use rustls::pki_types::ServerName;
use tokio::{net::TcpStream, process::Child, sync::mpsc};
use tokio_rustls::{TlsConnector, client::TlsStream};
use wsgate::config::route::{BridgeTarget, RouteKind};
use wsgate::{
    session::{self, SessionHandle},
    wire::{self, Control, Expose, Service},
};

use support::{
    Gateway, STEP,
    certs::{self, TestPki},
    connect,
    http_upstream::HttpUpstream,
    net::{RawResponse, echo_server, raw_request, raw_request_on},
    process,
    raw_agent::{self, RawSession},
    read_bytes, send_binary,
};

/// The token every gateway here accepts; it has no limits of its own.
const TOKEN: &str = "t0ken";

/// A raw agent: hello, one registration, and its session held open (so its claims hold) until
/// it is dropped. It serves no visitor.
struct RawAgent {
    /// Keeps the session (and its task) alive.
    _session: SessionHandle,
    /// The control stream: the gateway takes its end for the agent leaving.
    control: session::OpenedStream,
    /// The gateway's answer per service: `Ok(url)` or `Err(why)`.
    answers: Vec<(String, Result<String, String>)>,
}

impl RawAgent {
    /// Connects to `gateway` naming `host` in its upgrade's `Host`, as agent `name` with
    /// `token`, and registers `services`.
    async fn register(
        gateway: SocketAddr,
        host: &str,
        token: &str,
        name: &str,
        services: Vec<Service>,
    ) -> RawAgent {
        let hello = raw_agent::hello(gateway, host, token, name, wire::VERSION, |_| {}).await;
        Self::registered(hello, services).await
    }

    /// [`RawAgent::register`] over TLS: the handshake trusts `pki`'s CA and names `host`
    /// (without a port) as SNI and in `Host`.
    async fn register_tls(
        gateway: SocketAddr,
        pki: &TestPki,
        host: &str,
        name: &str,
        services: Vec<Service>,
    ) -> RawAgent {
        let tls = tls_connect(gateway, pki, host).await;
        let hello = raw_agent::hello_on(tls, host, TOKEN, name, wire::VERSION, |_| {}).await;
        Self::registered(hello, services).await
    }

    /// After the hello's answer (a welcome), registers `services` and reads their answers.
    async fn registered((raw, welcome): (RawSession, Control), services: Vec<Service>) -> RawAgent {
        assert!(matches!(welcome, Control::Welcome { .. }), "{welcome:?}");
        let RawSession {
            session,
            mut control,
        } = raw;
        let count = services.len();
        let register = Control::Register {
            services,
            egress: None,
        };
        wsgate::session::messages::write_frame(&mut control, &register)
            .await
            .unwrap();
        let mut answers = Vec::with_capacity(count);
        for _ in 0..count {
            answers.push(match read_control(&mut control).await {
                Control::Registered { name, url } => (name, Ok(url)),
                Control::Refused { name, why } => (name, Err(why)),
                other => panic!("expected an answer to the registration, got {other:?}"),
            });
        }
        RawAgent {
            _session: session,
            control,
            answers,
        }
    }

    /// Whether the gateway ended this session (it was replaced), within [`STEP`].
    async fn ended(mut self) -> bool {
        let read = wsgate::session::messages::read_frame::<_, Control>(&mut self.control);
        matches!(
            tokio::time::timeout(STEP, read).await,
            Ok(Ok(None) | Err(_))
        )
    }

    /// The refusal for service `name`; panics when it was registered.
    fn refusal(&self, name: &str) -> &str {
        match self.answers.iter().find(|(n, _)| n == name) {
            Some((_, Err(why))) => why,
            Some((_, Ok(url))) => panic!("{name} was registered at {url}: {:#?}", self.answers),
            None => panic!("no answer for {name}: {:#?}", self.answers),
        }
    }
}

async fn read_control(control: &mut session::OpenedStream) -> Control {
    tokio::time::timeout(STEP, wsgate::session::messages::read_frame(control))
        .await
        .expect("the gateway answered in time")
        .expect("a frame")
        .expect("the control stream open")
}

/// A service exposed at `expose`; what it dials is never reached (it is refused).
fn claim(name: &str, expose: Expose) -> Service {
    Service {
        name: name.into(),
        local: "http://127.0.0.1:9/".into(),
        expose,
    }
}

fn host(name: &str, host: &str) -> Service {
    claim(name, Expose::Host(host.into()))
}

fn path(name: &str, path: &str) -> Service {
    claim(name, Expose::Path(path.into()))
}

/// A real `wsgate agent` named `name` with `services` (registration URLs); returns once it
/// has printed `answers` registration answers (registered or refused), with them.
async fn real_agent(
    gateway: SocketAddr,
    name: &str,
    services: &[String],
    answers: usize,
) -> (Child, Vec<String>) {
    let server = format!("ws://{gateway}/_wsgate/agent");
    let mut args = vec![
        "agent", "--server", &server, "--token", TOKEN, "--name", name,
    ];
    args.extend(services.iter().map(String::as_str));
    let (child, mut lines): (Child, mpsc::UnboundedReceiver<String>) = process::start(&args);
    let mut seen = Vec::new();
    tokio::time::timeout(STEP, async {
        while seen.len() < answers {
            let line = lines.recv().await.expect("the agent exited");
            if line.contains("service registered") || line.contains("service refused") {
                seen.push(line);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("agent {name} answered only {seen:#?}"));
    (child, seen)
}

/// A real `wsgate agent` named `name` whose one `service` (a registration URL) was registered.
async fn registered_agent(gateway: SocketAddr, name: &str, service: String) -> Child {
    let (child, answers) = real_agent(gateway, name, &[service], 1).await;
    assert!(answers[0].contains("service registered"), "{answers:#?}");
    child
}

/// `GET path` with `Host: host` on a fresh connection.
async fn get(gateway: SocketAddr, host: &str, path: &str) -> RawResponse {
    raw_request(gateway, &format!("GET {path} HTTP/1.1\nHost: {host}")).await
}

/// Asserts `GET path` with `Host: host` gets 200 and `body` from the real upstream.
async fn assert_answers(gateway: SocketAddr, host: &str, path: &str, body: &str) {
    let response = get(gateway, host, path).await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, body),
        "GET {path} with Host: {host}"
    );
}

/// A TLS connection to `gateway` that trusts `pki`'s CA, naming `host` as SNI.
async fn tls_connect(gateway: SocketAddr, pki: &TestPki, host: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(gateway).await.unwrap();
    let name = ServerName::try_from(host.to_string()).unwrap();
    TlsConnector::from(pki.client_config())
        .connect(name, tcp)
        .await
        .expect("the TLS handshake")
}

/// Asserts `GET path` over TLS with `Host: host` (and SNI) gets 200 and `body`.
async fn assert_answers_tls(
    gateway: SocketAddr,
    pki: &TestPki,
    host: &str,
    path: &str,
    body: &str,
) {
    let tls = tls_connect(gateway, pki, host).await;
    let response = raw_request_on(tls, &format!("GET {path} HTTP/1.1\nHost: {host}")).await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, body),
        "GET {path} over TLS with Host: {host}"
    );
}

/// Asserts every refusal in `cases` (service, start of the reason) among `agent`'s answers.
fn assert_refusals(agent: &RawAgent, cases: &[(&str, &str)]) {
    for (service, reason) in cases {
        let why = agent.refusal(service);
        assert!(why.starts_with(reason), "{service}: {why:?}");
    }
}

/// Asserts `agent` registered `service` at `url`.
fn assert_registered(agent: &RawAgent, service: &str, url: &str) {
    assert!(
        agent
            .answers
            .iter()
            .any(|(name, answer)| name == service && answer.as_deref() == Ok(url)),
        "{service} at {url}: {:#?}",
        agent.answers
    );
}

/// Asserts a bridge route at `path` still echoes bytes through its configured target.
async fn assert_bridge_echoes(gateway: &Gateway, path: &str) {
    let mut client = connect(&gateway.ws_url(path), "binary").await.unwrap();
    send_binary(&mut client, b"still the configured route").await;
    assert_eq!(
        read_bytes(&mut client, 26).await,
        b"still the configured route",
        "{path}"
    );
}

#[tokio::test]
async fn host_claims_on_the_gateway_its_addresses_and_configured_hosts_are_refused() {
    let echo = echo_server(true).await;
    let api = HttpUpstream::start("api").await;
    let admin = HttpUpstream::start("admin").await;
    let ops = HttpUpstream::start("ops").await;
    let gateway = Gateway::start(&format!(
        "[agents]\ntokens = [\"{TOKEN}\"]\nhosts = [\"*.tunnel.test\"]\n\
         [[route]]\npath = \"/vnc\"\nbridge = \"tcp://{echo}\"\n\
         [[route]]\npath = \"/api\"\nproxy = \"{}\"\n\
         [[route]]\nname = \"admin\"\nhost = \"admin.tunnel.test\"\nproxy = \"{}\"\n\
         [[route]]\nname = \"ops\"\nhost = \"*.ops.tunnel.test\"\nproxy = \"{}\"\n",
        api.url("/"),
        admin.url("/"),
        ops.url("/"),
    ))
    .await;
    // The attacker reached the gateway as gw.tunnel.test, a name under the agents' zone.
    let reached = format!("gw.tunnel.test:{}", gateway.addr.port());
    let attacker = RawAgent::register(
        gateway.addr,
        &reached,
        TOKEN,
        "mallory",
        vec![
            host("ip", "127.0.0.1"),
            host("decimal", "2130706433"),
            host("hex", "0x7f.1"),
            host("v6", "[::1]"),
            host("localhost", "localhost"),
            host("under-localhost", "gw.localhost"),
            host("reached", "gw.tunnel.test"),
            host("reached-dot", "GW.tunnel.test."),
            host("zone", "*.tunnel.test"),
            host("configured", "admin.tunnel.test"),
            host("configured-wildcard", "x.ops.tunnel.test"),
            host("outside", "app.example.com"),
            path("vnc", "/vnc"),
            path("under-api", "/api/v2"),
        ],
    )
    .await;
    let cases = [
        (
            "ip",
            "host 127.0.0.1 is an IP address: agents claim host names",
        ),
        ("decimal", "host 2130706433 is an IP address"),
        ("hex", "host 0x7f.1 is an IP address"),
        ("v6", "host [::1] is an IP address"),
        (
            "localhost",
            "host localhost is localhost: it names the gateway's own machine",
        ),
        ("under-localhost", "host gw.localhost is localhost"),
        (
            "reached",
            "host gw.tunnel.test would take gw.tunnel.test, the name this agent reached the \
             gateway by",
        ),
        (
            "reached-dot",
            "host gw.tunnel.test would take gw.tunnel.test",
        ),
        ("zone", "host *.tunnel.test would take gw.tunnel.test"),
        (
            "configured",
            "admin.tunnel.test would take requests from the configured route \"admin\"",
        ),
        (
            "configured-wildcard",
            "x.ops.tunnel.test would take requests from the configured route \"ops\"",
        ),
        (
            "outside",
            "host app.example.com is not under this gateway's [agents] hosts (*.tunnel.test)",
        ),
        (
            "vnc",
            "/vnc would take requests from the configured route \"/vnc\"",
        ),
        (
            "under-api",
            "/api/v2 would take requests from the configured route \"/api\"",
        ),
    ];
    for (service, reason) in cases {
        let why = attacker.refusal(service);
        assert!(why.starts_with(reason), "{service}: {why:?}");
    }

    // Every configured route still answers, by every name the gateway is reached by.
    for name in ["127.0.0.1", "localhost", "gw.tunnel.test", "2130706433"] {
        assert_answers(gateway.addr, name, "/api/name", "api").await;
    }
    assert_answers(gateway.addr, "admin.tunnel.test", "/name", "admin").await;
    assert_answers(gateway.addr, "x.ops.tunnel.test", "/name", "ops").await;
    assert_bridge_echoes(&gateway, "/vnc").await;
    drop(attacker);
}

#[tokio::test]
async fn a_host_under_another_agents_wildcard_is_refused_and_theirs_still_answers() {
    let bee = HttpUpstream::start("bee").await;
    let wasp = HttpUpstream::start("wasp").await;
    let gateway = Gateway::start(&format!(
        "[agents]\ntokens = [\"{TOKEN}\"]\nhosts = [\"*.tunnel.test\"]\n"
    ))
    .await;
    let _bee = registered_agent(
        gateway.addr,
        "bee",
        format!("http://{}/?mode=domain&value=*.b.tunnel.test", bee.addr),
    )
    .await;

    // A real agent with the same unrestricted token tries around, inside and onto it.
    let domain = |value: &str, name: &str| {
        format!(
            "http://{}/?mode=domain&value={value}&name={name}",
            wasp.addr
        )
    };
    let (_wasp, answers) = real_agent(
        gateway.addr,
        "wasp",
        &[
            domain("x.b.tunnel.test", "inside"),
            domain("*.x.b.tunnel.test", "inside-wildcard"),
            domain("*.tunnel.test", "around"),
            domain("*.b.tunnel.test", "same"),
            domain("w.tunnel.test", "own"),
        ],
        5,
    )
    .await;
    let answer = |name: &str| {
        answers
            .iter()
            .find(|line| line.contains(&format!("service={name} ")))
            .unwrap_or_else(|| panic!("no answer for {name}: {answers:#?}"))
            .clone()
    };
    let cases = [
        (
            "inside",
            "x.b.tunnel.test nests inside *.b.tunnel.test, held by agent",
        ),
        (
            "inside-wildcard",
            "*.x.b.tunnel.test nests inside *.b.tunnel.test, held by agent",
        ),
        (
            "around",
            "*.tunnel.test nests around *.b.tunnel.test, held by agent",
        ),
        ("same", "*.b.tunnel.test is held by agent"),
    ];
    for (service, reason) in cases {
        let line = answer(service);
        // The holder is named (quoted as the agent's log prints it).
        assert!(
            line.contains("service refused") && line.contains(reason) && line.contains("bee"),
            "{service}: {line}"
        );
    }
    assert!(answer("own").contains("service registered"), "{answers:#?}");

    // The wildcard's hosts still reach bee's upstream; wasp's own host reaches wasp's.
    for name in ["x.b.tunnel.test", "deep.x.b.tunnel.test", "y.b.tunnel.test"] {
        assert_answers(gateway.addr, name, "/name", "bee").await;
    }
    assert_answers(gateway.addr, "w.tunnel.test", "/name", "wasp").await;
    assert_eq!(wasp.requests(), 1, "only wasp's own host reached wasp");
}

#[tokio::test]
async fn path_claims_may_not_nest_inside_or_around_another_agents_path() {
    let alpha = HttpUpstream::start("alpha").await;
    let beta = HttpUpstream::start("beta").await;
    let gateway = Gateway::start(&format!("[agents]\ntokens = [\"{TOKEN}\"]\n")).await;
    let _alpha = registered_agent(
        gateway.addr,
        "alpha",
        format!("http://{}/?mode=path&value=alpha", alpha.addr),
    )
    .await;
    let _beta = registered_agent(
        gateway.addr,
        "beta",
        format!("http://{}/?mode=path&value=beta/x", beta.addr),
    )
    .await;

    let attacker = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        TOKEN,
        "mallory",
        vec![
            path("under-alpha", "/alpha/x"),
            path("around-beta", "/beta"),
            path("root", "/"),
            path("beside", "/alphabet"),
        ],
    )
    .await;
    assert_eq!(
        attacker.refusal("under-alpha"),
        "/alpha/x nests inside /alpha, held by agent \"alpha\""
    );
    assert_eq!(
        attacker.refusal("around-beta"),
        "/beta nests around /beta/x, held by agent \"beta\""
    );
    let root = attacker.refusal("root");
    assert!(root.starts_with("/ nests around /"), "{root}");
    assert!(
        matches!(&attacker.answers[3], (name, Ok(url)) if name == "beside" && url == "/alphabet"),
        "a path beside another is free: {:#?}",
        attacker.answers
    );

    // alpha's upstream still gets all of /alpha, beta's all of /beta/x.
    assert_answers(gateway.addr, "x", "/alpha/name", "alpha").await;
    // /alpha/x is alpha's: its upstream answers (with its own 404 for a path it lacks).
    let response = get(gateway.addr, "x", "/alpha/x/name").await;
    assert_eq!(
        (response.status, response.text().as_str()),
        (404, "no such path /x/name\n"),
        "alpha's upstream answers /alpha/x"
    );
    assert_eq!(alpha.requests(), 2);
    assert_answers(gateway.addr, "x", "/beta/x/name", "beta").await;
    let response = get(gateway.addr, "x", "/beta/name").await;
    assert_eq!(
        response.status,
        404,
        "nobody holds /beta: {}",
        response.text()
    );
    drop(attacker);
}

#[tokio::test]
async fn a_host_under_the_agents_zone_routes_visitors_by_host() {
    let app = HttpUpstream::start("app").await;
    let exact = HttpUpstream::start("exact").await;
    let gateway = Gateway::start(&format!(
        "[agents]\ntokens = [\"{TOKEN}\"]\nhosts = [\"*.tunnel.test\", \"app.example.com\"]\n"
    ))
    .await;
    // A trailing dot names the same host: the claim is made canonical.
    let (_agent, answers) = real_agent(
        gateway.addr,
        "office",
        &[
            format!("http://{}/?mode=domain&value=App.tunnel.test.", app.addr),
            format!(
                "http://{}/?mode=domain&value=app.example.com&name=exact",
                exact.addr
            ),
        ],
        2,
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|line| line.contains("service registered")),
        "{answers:#?}"
    );
    assert!(
        answers
            .iter()
            .any(|line| line.ends_with("url=app.tunnel.test")),
        "{answers:#?}"
    );
    assert_answers(gateway.addr, "app.tunnel.test", "/name", "app").await;
    assert_answers(gateway.addr, "APP.tunnel.test:8080", "/name", "app").await;
    assert_answers(gateway.addr, "app.example.com", "/name", "exact").await;
    for name in ["other.tunnel.test", "x.app.tunnel.test", "127.0.0.1"] {
        let response = get(gateway.addr, name, "/name").await;
        assert_eq!(response.status, 404, "Host: {name}: {}", response.text());
    }

    // Another agent cannot have it by spelling it differently.
    let other = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        TOKEN,
        "other",
        vec![host("again", "APP.tunnel.test.")],
    )
    .await;
    assert_eq!(
        other.refusal("again"),
        "app.tunnel.test is held by agent \"office\""
    );
    assert_answers(gateway.addr, "app.tunnel.test", "/name", "app").await;
    assert_eq!(app.requests(), 3);
}

#[tokio::test]
async fn the_embedded_defaults_token_takes_nothing_configured() {
    let echo = echo_server(true).await;
    let mut config = wsgate::config::embedded_default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    // The default's bridges dial the usual VNC and SSH ports; here both reach an echo server,
    // so that they can be shown to still answer.
    for route in &mut config.routes {
        if let RouteKind::Bridge(bridge) = &mut route.kind {
            let target = Some(format!("tcp://{echo}").parse().unwrap());
            bridge.target = BridgeTarget::Direct {
                target,
                tokens: None,
            };
        }
    }
    let token = config.agents.as_ref().unwrap().tokens[0]
        .expose()
        .to_string();
    let gateway = Gateway::start_config(config);
    let attacker = RawAgent::register(
        gateway.addr,
        &format!("localhost:{}", gateway.addr.port()),
        &token,
        "mallory",
        vec![
            host("named", "app.example.com"),
            host("ip", "127.0.0.1"),
            host("localhost", "localhost"),
            path("vnc", "/vnc"),
            path("under-vnc", "/vnc/x"),
            path("ssh", "/ssh"),
            path("under-ssh", "/ssh/a/b"),
        ],
    )
    .await;
    let cases = [
        (
            "named",
            "this gateway allows no host claims: set [agents] hosts",
        ),
        ("ip", "host 127.0.0.1 is an IP address"),
        ("localhost", "host localhost is localhost"),
        (
            "vnc",
            "/vnc would take requests from the configured route \"vnc\"",
        ),
        (
            "under-vnc",
            "/vnc/x would take requests from the configured route \"vnc\"",
        ),
        (
            "ssh",
            "/ssh would take requests from the configured route \"ssh\"",
        ),
        (
            "under-ssh",
            "/ssh/a/b would take requests from the configured route \"ssh\"",
        ),
    ];
    for (service, reason) in cases {
        let why = attacker.refusal(service);
        assert!(why.starts_with(reason), "{service}: {why:?}");
    }
    assert_bridge_echoes(&gateway, "/vnc").await;
    assert_bridge_echoes(&gateway, "/ssh").await;
    drop(attacker);
}

#[tokio::test]
async fn the_same_agent_takes_over_its_own_nested_claims_but_never_another_agents() {
    let gateway = Gateway::start(&format!("[agents]\ntokens = [\"{TOKEN}\"]\n")).await;
    let at = |name: &'static str, claims| {
        RawAgent::register(gateway.addr, "127.0.0.1", TOKEN, name, claims)
    };
    let first = at("office", vec![path("x", "/a/x")]).await;
    let other = at("other", vec![path("y", "/a/y")]).await;

    // office again, claiming around its own /a/x and other's /a/y: refused, naming other, and
    // office's first session keeps /a/x.
    let second = at("office", vec![path("a", "/a")]).await;
    assert_eq!(
        second.refusal("a"),
        "/a nests around /a/y, held by agent \"other\""
    );
    let probe = at("probe", vec![path("z", "/a/x/z")]).await;
    assert_eq!(
        probe.refusal("z"),
        "/a/x/z nests inside /a/x, held by agent \"office\""
    );

    // office again, inside only its own claim: the reconnecting agent takes it over, and its
    // stale session is ended.
    let third = at("office", vec![path("deeper", "/a/x/deeper")]).await;
    assert!(
        matches!(&third.answers[0], (_, Ok(url)) if url == "/a/x/deeper"),
        "{:#?}",
        third.answers
    );
    assert!(first.ended().await, "the stale session was not ended");
    drop((other, second, probe));
}

#[tokio::test]
async fn paths_under_a_configured_catch_all_are_refused_without_a_zone() {
    // websockify --web: noVNC's files at `/` beside the VNC bridge at `/`.
    let echo = echo_server(true).await;
    let web = support::tempdir("claims-web");
    std::fs::write(web.join("vnc.html"), "the noVNC page").unwrap();
    std::fs::write(web.join("app.js"), "the app").unwrap();
    let gateway = Gateway::start(&format!(
        "[agents]\ntokens = [\"{TOKEN}\"]\n\
         [[route]]\nname = \"web\"\nstatic = \"{}\"\n\
         [[route]]\nname = \"vnc\"\nbridge = \"tcp://{echo}\"\n",
        web.display()
    ))
    .await;
    let attacker = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        TOKEN,
        "mallory",
        vec![
            path("page", "/vnc.html"),
            path("script", "/app.js"),
            path("anything", "/x/y"),
            path("root", "/"),
        ],
    )
    .await;
    let catch_all = "the configured route \"web\" answers every path: set [agents] paths to \
                     give agents a zone";
    assert_refusals(
        &attacker,
        &[
            ("page", catch_all),
            ("script", catch_all),
            ("anything", catch_all),
            ("root", catch_all),
        ],
    );
    assert_answers(gateway.addr, "x", "/vnc.html", "the noVNC page").await;
    assert_answers(gateway.addr, "x", "/app.js", "the app").await;
    assert_bridge_echoes(&gateway, "/").await;
    drop(attacker);
}

#[tokio::test]
async fn a_path_zone_carved_out_of_a_proxy_catch_all_takes_claims_only_inside_it() {
    let site = HttpUpstream::start("site").await;
    let admin = HttpUpstream::start("admin").await;
    let app = HttpUpstream::start("app").await;
    let gateway = Gateway::start(&format!(
        "[agents]\ntokens = [\"{TOKEN}\"]\npaths = [\"/agents\"]\n\
         [[agents.token]]\ntoken = \"office-token\"\npaths = [\"/agents/office\"]\n\
         [[route]]\nname = \"site\"\nproxy = \"{}\"\n\
         [[route]]\nname = \"admin\"\npath = \"/agents/admin\"\nproxy = \"{}\"\n",
        site.url("/"),
        admin.url("/"),
    ))
    .await;
    let _app = registered_agent(
        gateway.addr,
        "app",
        format!("http://{}/?mode=path&value=agents/app", app.addr),
    )
    .await;

    let attacker = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        TOKEN,
        "mallory",
        vec![
            path("page", "/index.html"),
            path("under-site", "/admin/x"),
            path("beside", "/agentsx"),
            path("root", "/"),
            path("configured", "/agents/admin/x"),
            path("own", "/agents/mallory"),
        ],
    )
    .await;
    assert_refusals(
        &attacker,
        &[
            (
                "page",
                "path /index.html is not under this gateway's [agents] paths (/agents)",
            ),
            ("under-site", "path /admin/x is not under"),
            ("beside", "path /agentsx is not under"),
            ("root", "path / is not under"),
            (
                "configured",
                "/agents/admin/x would take requests from the configured route \"admin\"",
            ),
        ],
    );
    assert_registered(&attacker, "own", "/agents/mallory");

    // A token's paths narrow the zone further.
    let limited = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        "office-token",
        "office",
        vec![
            path("other", "/agents/other"),
            path("mine", "/agents/office/app"),
        ],
    )
    .await;
    assert_refusals(
        &limited,
        &[(
            "other",
            "this token may not expose /agents/other (allowed: /agents/office)",
        )],
    );
    assert_registered(&limited, "mine", "/agents/office/app");

    // The same agent reconnecting still takes over its own claim inside the zone.
    let again = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        "office-token",
        "office",
        vec![path("mine", "/agents/office/app")],
    )
    .await;
    assert_registered(&again, "mine", "/agents/office/app");
    assert!(limited.ended().await, "the stale session was not ended");

    assert_answers(gateway.addr, "x", "/name", "site").await;
    assert_answers(gateway.addr, "x", "/agents/admin/name", "admin").await;
    assert_answers(gateway.addr, "x", "/agents/app/name", "app").await;
    drop((attacker, again));
}

#[tokio::test]
async fn host_claims_on_the_tls_certificates_names_are_refused_whatever_host_the_agent_names() {
    let api = HttpUpstream::start("api").await;
    let dir = support::tempdir("claims-tls");
    let pki = certs::make_for(
        &dir,
        &[
            "gw.tunnel.test",
            "*.wild.tunnel.test",
            "localhost",
            "127.0.0.1",
        ],
    );
    let gateway = Gateway::start(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [agents]\ntokens = [\"{TOKEN}\"]\nhosts = [\"*.tunnel.test\"]\n\
         [[route]]\nname = \"api\"\npath = \"/api\"\nproxy = \"{}\"\n",
        pki.cert_path.display(),
        pki.key_path.display(),
        api.url("/"),
    ))
    .await;
    // The attacker reaches the gateway as `localhost`, so the reached-name rule does not help.
    let attacker = RawAgent::register_tls(
        gateway.addr,
        &pki,
        "localhost",
        "mallory",
        vec![
            host("own", "gw.tunnel.test"),
            host("own-spelled", "GW.Tunnel.test."),
            host("zone", "*.tunnel.test"),
            host("under-wildcard", "app.wild.tunnel.test"),
            host("beside", "app.tunnel.test"),
        ],
    )
    .await;
    assert_refusals(
        &attacker,
        &[
            (
                "own",
                "host gw.tunnel.test is a name on the gateway's TLS certificate",
            ),
            (
                "own-spelled",
                "host gw.tunnel.test is a name on the gateway's TLS certificate",
            ),
            (
                "zone",
                "host *.tunnel.test covers gw.tunnel.test, a name on the gateway's TLS \
                 certificate",
            ),
        ],
    );
    // A wildcard name on the certificate blocks nothing under it: it names no one host.
    assert_registered(&attacker, "under-wildcard", "app.wild.tunnel.test");
    assert_registered(&attacker, "beside", "app.tunnel.test");
    assert_answers_tls(gateway.addr, &pki, "gw.tunnel.test", "/api/name", "api").await;
    drop(attacker);
}

#[tokio::test]
async fn host_claims_on_configured_gateway_names_are_refused() {
    // TLS ends in front of this gateway: `gateway_names` says what it is reached by.
    let api = HttpUpstream::start("api").await;
    let gateway = Gateway::start(&format!(
        "[agents]\ntokens = [\"{TOKEN}\"]\nhosts = [\"*.example.test\"]\n\
         gateway_names = [\"GW.example.test.\"]\n\
         [[route]]\nname = \"api\"\npath = \"/api\"\nproxy = \"{}\"\n",
        api.url("/"),
    ))
    .await;
    let attacker = RawAgent::register(
        gateway.addr,
        "127.0.0.1",
        TOKEN,
        "mallory",
        vec![
            host("own", "gw.example.test"),
            host("zone", "*.example.test"),
            host("beside", "app.example.test"),
        ],
    )
    .await;
    assert_refusals(
        &attacker,
        &[
            (
                "own",
                "host gw.example.test is the gateway's own name ([agents] gateway_names)",
            ),
            (
                "zone",
                "host *.example.test covers gw.example.test, the gateway's own name \
                 ([agents] gateway_names)",
            ),
        ],
    );
    assert_registered(&attacker, "beside", "app.example.test");
    assert_answers(gateway.addr, "gw.example.test", "/api/name", "api").await;
    drop(attacker);
}
