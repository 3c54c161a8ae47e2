//! Conformance: the Autobahn|Testsuite fuzzing client, cases 1 to 10, through the real binary's
//! proxy in both modes (`splice` and `message`) to a compliant echo server (Python
//! `websockets`), with no case worse than the same suite run directly against that server.
//! `scripts/autobahn` installs the suite (Python 2.7, pinned) and does the run and the
//! comparison; this test starts the servers and holds it to its exit status.

mod support;

use std::{
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

use support::process;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Bound on the whole script. One run takes under a minute (the agents run in parallel, about
/// 20 s each, mostly the suite's own waits); a first install of the suite adds about half a
/// minute; the script bounds each wstest run at 10 minutes. Past this something hangs.
const AUTOBAHN_LIMIT: Duration = Duration::from_secs(20 * 60);

/// `tests/peers/ws_echo_server.py`: echoes every message, killed on drop.
struct EchoServer {
    /// The Python process; `kill_on_drop` stops it when the test ends, passing or not.
    _child: Child,
    /// The port from its `listening PORT` line on 127.0.0.1.
    port: u16,
}

/// Starts the echo server; its stderr goes to `dir/echo-server.log`.
async fn echo_server(dir: &Path) -> EchoServer {
    let log = std::fs::File::create(dir.join("echo-server.log")).unwrap();
    let mut child = Command::new("python3")
        .arg("tests/peers/ws_echo_server.py")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("python3: run scripts/install-test-deps");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(support::STEP, stdout.next_line())
        .await
        .expect("echo server did not start listening")
        .unwrap()
        .expect("echo server exited before listening: is `websockets` >= 13 installed?");
    let port = line
        .strip_prefix("listening ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("expected `listening PORT`, got {line:?}"));
    EchoServer {
        _child: child,
        port,
    }
}

/// The gateway's config: one route per proxy mode, both to the echo server. Autobahn's largest
/// messages are 16 MiB (9.1.6), so `message` mode gets room above that.
fn config(echo_port: u16) -> String {
    format!(
        r#"listen = ["127.0.0.1:0"]
[[route]]
path = "/splice"
proxy = "ws://127.0.0.1:{echo_port}/"
[[route]]
path = "/message"
proxy = "ws://127.0.0.1:{echo_port}/"
mode = "message"
max_message_size = "64MiB"
"#
    )
}

/// Runs `scripts/autobahn OUTDIR AGENTS...` to completion.
async fn autobahn(outdir: &Path, agents: &[String]) -> Output {
    let run = Command::new("scripts/autobahn")
        .arg(outdir)
        .args(agents)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(AUTOBAHN_LIMIT, run)
        .await
        .expect("scripts/autobahn did not finish")
        .expect("run scripts/autobahn")
}

// The script's per-agent summary and its list of worse cases are the point of this test, so
// they are printed (shown by `cargo test -- --nocapture`, and for a failure).
#[allow(clippy::print_stdout)]
#[tokio::test]
async fn autobahn_cases_1_to_10_through_both_modes_no_worse_than_direct() {
    let dir = support::tempdir("autobahn");
    let echo = echo_server(&dir).await;
    let config_file = dir.join("wsgate.toml");
    std::fs::write(&config_file, config(echo.port)).unwrap();
    let wsgate = process::spawn(&["serve", "-c", config_file.to_str().unwrap()]).await;

    let agents = [
        format!("direct=ws://127.0.0.1:{}/", echo.port),
        format!("splice=ws://{}/splice", wsgate.addr),
        format!("message=ws://{}/message", wsgate.addr),
    ];
    let output = autobahn(&dir.join("reports"), &agents).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "scripts/autobahn {}: {}\nreports in {}",
        agents.join(" "),
        output.status,
        dir.join("reports").display()
    );
}
