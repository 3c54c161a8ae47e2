//! `ssh` and `scp` through `wsgate pipe` to a real OpenSSH server on a loopback port: the
//! `ProxyCommand` use the subcommand exists for, end to end (key exchange, a command's output
//! and exit status, a file up and back whose SHA-256 must survive both trips).

mod support;

use std::{
    fs::OpenOptions,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Output, Stdio},
};

use support::{STEP, process::Wsgate};
use tokio::{net::TcpListener, process::Command, task::JoinHandle, task::JoinSet};

/// The OpenSSH server (Debian's `openssh-server`, from scripts/install-test-deps).
const SSHD: &str = "/usr/sbin/sshd";

/// Any name does: the `ProxyCommand` decides where the bytes go, not the host name.
const HOST: &str = "ssh-through-wsgate";

/// Size of the copied file: more than SSH's 2 MiB initial channel window, so window updates
/// have to flow back through the pipe while data flows forward, and some 320 of the pipe's
/// 16 KiB messages.
const FILE_BYTES: usize = 5 << 20;

/// A real sshd behind a loopback port. Each connection gets its own `sshd -i` (inetd mode)
/// with the socket as stdin and stdout, the way `tests/peers.rs` runs Xtigervnc: the test
/// holds the listener, so there is no free-port probe that another process could race, and
/// the bound address is the readiness signal.
struct Sshd {
    /// Where ssh's bytes must arrive: the bridge's target.
    addr: std::net::SocketAddr,
    /// sshd's log (`-e`, every session appending), shown when a client fails.
    log_path: PathBuf,
    /// The accept loop, owning one task per session. Aborted on drop, which drops the
    /// children, whose `kill_on_drop` ends them.
    serving: JoinHandle<()>,
}

impl Sshd {
    /// Starts accepting on 127.0.0.1:0 with `config`.
    async fn start(config: PathBuf, log_path: PathBuf) -> Sshd {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = log_path.clone();
        let serving = tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let mut sshd = session(stream, &config, &log);
                sessions.spawn(async move { sshd.wait().await });
            }
        });
        Sshd {
            addr,
            log_path,
            serving,
        }
    }

    /// The log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// `sshd -i` serving one accepted connection, logging to `log`.
fn session(stream: tokio::net::TcpStream, config: &Path, log: &Path) -> tokio::process::Child {
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    let output = stream.try_clone().unwrap();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(SSHD)
        .arg("-i")
        .arg("-e")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::from(OwnedFd::from(stream)))
        .stdout(Stdio::from(OwnedFd::from(output)))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sshd: run scripts/install-test-deps")
}

/// An sshd that accepts one client key for root, and a `wsgate websockify` bridge to it.
struct Fixture {
    /// Keys, config, logs and copied files.
    dir: PathBuf,
    sshd: Sshd,
    /// The real binary, bridging every path to `sshd.addr`.
    gateway: Wsgate,
}

impl Fixture {
    async fn start() -> Fixture {
        require_root();
        let dir = support::tempdir("ssh-pipe");
        keygen(&dir.join("host_key")).await;
        keygen(&dir.join("client_key")).await;
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory, which `sshd -t` already checks; Debian's
        // package makes it only when its service starts, and containers start no services.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = write_sshd_config(&dir);
        check_sshd_config(&config).await;
        let sshd = Sshd::start(config, dir.join("sshd.log")).await;
        let gateway =
            support::process::spawn(&["websockify", "127.0.0.1:0", &sshd.addr.to_string()]).await;
        Fixture { dir, sshd, gateway }
    }

    /// Runs `program` (ssh or scp) with options that route it through `wsgate pipe`, trust
    /// any host key, and log in with the client key only; panics with every log on failure.
    async fn run_client(&self, program: &str, args: &[&str]) -> Output {
        let proxy = format!(
            "ProxyCommand={} pipe ws://{}/ssh",
            support::process::BIN,
            self.gateway.addr
        );
        let key = self.dir.join("client_key");
        let mut command = Command::new(program);
        command
            .args(["-F", "/dev/null", "-o", &proxy])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            // Hides "Permanently added … to the list of known hosts"; errors still show.
            .args(["-o", "LogLevel=ERROR"])
            .arg("-i")
            .arg(&key)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(2 * STEP, command.output())
            .await
            .unwrap_or_else(|_| panic!("{program} did not finish\nsshd log:\n{}", self.sshd.log()))
            .unwrap_or_else(|e| panic!("run {program}: {e}: run scripts/install-test-deps"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}\nstderr (ssh and wsgate pipe):\n{}\nsshd log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.sshd.log()
        );
        output
    }
}

/// The tests log in as root (the only account sure to exist) and sshd needs root for its
/// privilege separation, so another user is a setup error, not a reason to skip.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .expect("Uid: line in /proc/self/status");
    assert_eq!(
        uid, "0",
        "tests/ssh_pipe.rs must run as root: its sshd needs root for privilege separation and \
         the test logs in as root"
    );
}

/// `ssh-keygen` writes an ed25519 key pair without passphrase to `path` and `path.pub`.
async fn keygen(path: &Path) {
    let output = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STEP, output)
        .await
        .expect("ssh-keygen did not finish")
        .expect("run ssh-keygen: run scripts/install-test-deps");
    assert!(
        output.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes an sshd_config that uses only files in `dir` (nothing from /etc/ssh) and returns
/// its path.
fn write_sshd_config(dir: &Path) -> PathBuf {
    let dir = dir.display();
    let config = format!(
        "HostKey {dir}/host_key\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile {dir}/sshd.pid\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         Subsystem sftp internal-sftp\n\
         LogLevel VERBOSE\n"
    );
    let path = PathBuf::from(format!("{dir}/sshd_config"));
    std::fs::write(&path, config).unwrap();
    path
}

/// `sshd -t`: a bad config fails here, with sshd's reason, rather than as a refused login.
async fn check_sshd_config(config: &Path) {
    let output = Command::new(SSHD)
        .arg("-t")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STEP, output)
        .await
        .expect("sshd -t did not finish")
        .expect("run sshd: run scripts/install-test-deps");
    assert!(
        output.status.success(),
        "sshd -t: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The SHA-256 of a file, as `sha256sum` prints it.
async fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STEP, output)
        .await
        .expect("sha256sum did not finish")
        .expect("run sha256sum");
    assert!(output.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

#[tokio::test]
async fn ssh_runs_a_command_on_a_real_sshd_through_the_pipe() {
    let fixture = Fixture::start().await;
    let target = format!("root@{HOST}");
    let command = "echo hello from sshd; uname -s";
    let output = fixture
        .run_client("ssh", &["-p", "22", &target, command])
        .await;
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from sshd\nLinux\n"
    );
    let _ = std::fs::remove_dir_all(&fixture.dir);
}

#[tokio::test]
async fn scp_copies_a_file_both_ways_through_the_pipe() {
    let fixture = Fixture::start().await;
    let local = fixture.dir.join("local.bin");
    let remote = fixture.dir.join("remote.bin");
    let back = fixture.dir.join("back.bin");
    std::fs::write(&local, support::random_bytes(FILE_BYTES, 22)).unwrap();
    let local_hash = sha256(&local).await;

    // Up: the file goes through the pipe's standard input; sshd writes it (on this machine).
    let remote_spec = format!("root@{HOST}:{}", remote.display());
    let local_arg = local.to_str().unwrap();
    fixture
        .run_client("scp", &["-P", "22", local_arg, &remote_spec])
        .await;
    assert_eq!(sha256(&remote).await, local_hash, "remote copy differs");

    // Back: the same bytes come out of the pipe's standard output.
    let back_arg = back.to_str().unwrap();
    fixture
        .run_client("scp", &["-P", "22", &remote_spec, back_arg])
        .await;
    assert_eq!(sha256(&back).await, local_hash, "copy brought back differs");
    let _ = std::fs::remove_dir_all(&fixture.dir);
}
