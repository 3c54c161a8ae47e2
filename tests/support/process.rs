//! The real `wsgate` binary as a child process: started with arguments, ready when it logs its
//! bound address, stopped by PID.

use std::{net::SocketAddr, process::Stdio};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use super::STEP;

/// Path of the binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_wsgate");

/// A running `wsgate` process.
pub struct Wsgate {
    /// The child; killed on drop.
    pub child: Child,
    /// The address from its "listening on" line.
    pub addr: SocketAddr,
    /// The rest of its stderr, line by line, drained continuously so the child never blocks
    /// on a full pipe.
    pub stderr: mpsc::UnboundedReceiver<String>,
    /// Lines read before readiness (the banner).
    pub banner: Vec<String>,
}

/// Starts `wsgate ARGS` (logging at info, without the agent token from the environment):
/// the child, killed on drop, and its stderr line by line, drained continuously so it never
/// blocks on a full pipe. Waits for nothing.
pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Child, mpsc::UnboundedReceiver<String>) {
    start_program(BIN, args)
}

/// As [`start`], for `program` (a wrapper such as `prlimit` that runs the binary).
pub fn start_program<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
) -> (Child, mpsc::UnboundedReceiver<String>) {
    start_logging(program, args, "info")
}

/// As [`start_program`], logging what the `RUST_LOG` directives `filter` enable.
pub fn start_logging<S: AsRef<std::ffi::OsStr>>(
    program: &str,
    args: &[S],
    filter: &str,
) -> (Child, mpsc::UnboundedReceiver<String>) {
    let mut child = Command::new(program)
        .args(args)
        .env("RUST_LOG", filter)
        .env_remove("WSGATE_AGENT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wsgate");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Starts `wsgate ARGS` and waits for its first "listening on" log line.
pub async fn spawn(args: &[&str]) -> Wsgate {
    let (child, stderr) = start(args);
    ready(child, stderr).await
}

/// Waits for a started `wsgate`'s first "listening on" log line.
pub async fn ready(child: Child, mut stderr: mpsc::UnboundedReceiver<String>) -> Wsgate {
    let mut banner = Vec::new();
    let addr = tokio::time::timeout(STEP, async {
        while let Some(line) = stderr.recv().await {
            banner.push(line.clone());
            if let Some(addr) = line.split("listening on http").nth(1) {
                let addr = addr.trim_start_matches('s').trim_start_matches("://");
                return addr
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
        panic!("wsgate exited before listening: {banner:#?}");
    })
    .await
    .expect("wsgate did not start listening");
    Wsgate {
        child,
        addr,
        stderr,
        banner,
    }
}

/// Runs `wsgate ARGS` to completion: exit code and stderr.
pub async fn run(args: &[&str]) -> (i32, String) {
    let output = tokio::time::timeout(
        STEP,
        Command::new(BIN).args(args).stdin(Stdio::null()).output(),
    )
    .await
    .expect("wsgate did not exit")
    .expect("run wsgate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Reads the process's RSS until it is at most `limit_kib`, for up to 30 s; the last reading.
/// Freed memory leaves the process when its allocator's background thread purges it, a
/// timer inside the process that nothing outside can wait on, so this polls (every 200 ms)
/// and the caller asserts on what it read.
pub async fn rss_settles_at_most(pid: u32, limit_kib: u64) -> u64 {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut rss = rss_kib(pid);
    for _ in 0..150 {
        if rss <= limit_kib {
            break;
        }
        every.tick().await;
        rss = rss_kib(pid);
    }
    rss
}

impl Wsgate {
    /// Sends SIGTERM (via `kill`, the binary) and waits for the exit code.
    pub async fn terminate(mut self) -> i32 {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap();
        status.code().unwrap_or(-1)
    }

    /// Reads stderr lines until `done` says yes to one (it sees every line read); returns it.
    pub async fn wait_for(&mut self, mut done: impl FnMut(&str) -> bool) -> String {
        tokio::time::timeout(STEP, async {
            while let Some(line) = self.stderr.recv().await {
                if done(&line) {
                    return line;
                }
            }
            panic!("stderr ended before the awaited line");
        })
        .await
        .expect("the awaited log line did not come")
    }

    /// Reads stderr lines until one contains `needle`; returns it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        tokio::time::timeout(STEP, async {
            while let Some(line) = self.stderr.recv().await {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("stderr ended before {needle:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("no log line with {needle:?}"))
    }
}
