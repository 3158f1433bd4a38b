//! Real `redis-server` processes for the integration tests.
//!
//! [`RedisServer`] is one standalone server, [`RedisCluster`] a cluster of
//! masters, either of them with TLS ([`RedisServer::start_tls`],
//! [`RedisCluster::start_tls`]: a fresh test CA made with `openssl`). Each
//! server is a `redis-server` child process that this module starts itself:
//!
//! * on a free loopback port (`127.0.0.1` only, never 6379, always < 55535),
//!   picked by binding `127.0.0.1:0`; if the port is taken before the server
//!   binds it, the start is retried on another port;
//! * in its own temporary directory (log file, cluster config), removed on
//!   drop;
//! * with no persistence (`--save "" --appendonly no`);
//! * killed with SIGKILL (and reaped) when the value is dropped, also while a
//!   test panics. On Linux the child also gets SIGKILL if the test process
//!   dies without running destructors (`PR_SET_PDEATHSIG`).
//!
//! Every wait is bounded: a server that does not answer PING within 10 s, a
//! cluster that does not reach `cluster_state:ok`, or a `redis-cli` that hangs
//! makes the test panic with the server's log tail.
//!
//! If `redis-server` (or, for [`RedisServer::cli`] and clusters, `redis-cli`)
//! is not installed, the harness panics with the command to install it: a
//! test is never skipped silently. `REDIS_SERVER_BIN` and `REDIS_CLI_BIN`
//! may name other binaries than the ones on `PATH`.
//!
//! ```no_run
//! use integration_tests::redis_harness::RedisServer;
//!
//! let server = RedisServer::start();
//! let client = redis::Client::open(server.url()).unwrap();
//! assert_eq!(server.cli(&["PING"]).trim(), "PONG");
//! # drop(client);
//! ```

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restart may wait for its (same) port to become free again.
const RESTART_PORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `redis-cli` command may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `redis-cli --cluster create` may run.
const CLUSTER_CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new cluster may take to reach `cluster_state:ok` everywhere.
const CLUSTER_OK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SIGSTOP / SIGCONT may take to show in `/proc/PID/stat`.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at starting a new server on a fresh port.
const START_ATTEMPTS: usize = 5;
/// Attempts at creating a cluster from fresh nodes.
const CLUSTER_ATTEMPTS: usize = 2;
/// Ports are kept below this, so that a cluster bus port (port + 10000) fits.
const MAX_PORT: u16 = 55_535;
/// Offset of the cluster bus port.
const CLUSTER_BUS_OFFSET: u16 = 10_000;
/// Somebody else's Redis: never used.
const DEFAULT_REDIS_PORT: u16 = 6379;
/// Node timeout given to cluster nodes, in milliseconds.
const CLUSTER_NODE_TIMEOUT_MS: &str = "5000";

const INSTALL_HINT: &str = "install Redis with `apt-get install -y redis-server redis-tools` \
     (as root, or with sudo; run `apt-get update` first on a fresh machine), \
     or point REDIS_SERVER_BIN / REDIS_CLI_BIN at the binaries";

// ---------------------------------------------------------------------------
// Binaries

/// What `BIN --version` told about an installed binary.
#[derive(Debug, Clone)]
struct BinInfo {
    path: OsString,
    major_version: Option<u32>,
}

fn bin_from_env(var: &str, default: &str) -> OsString {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from(default))
}

/// Runs `bin --version`; an error says how to install Redis.
fn probe_binary(bin: &OsStr) -> Result<BinInfo, String> {
    let name = bin.to_string_lossy();
    match Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(BinInfo {
                path: bin.to_owned(),
                major_version: parse_major_version(&text),
            })
        }
        Ok(out) => Err(format!(
            "`{name} --version` failed ({}): {}{}\n{INSTALL_HINT}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
            "`{name}` was not found (is Redis installed?); the Redis tests need it: {INSTALL_HINT}"
        )),
        Err(e) => Err(format!("cannot run `{name}`: {e}; {INSTALL_HINT}")),
    }
}

/// Finds the major version in `Redis server v=7.0.15 ...` or `redis-cli 7.0.15`.
fn parse_major_version(text: &str) -> Option<u32> {
    let start = text
        .find("v=")
        .map(|i| i + 2)
        .or_else(|| text.find(|c: char| c.is_ascii_digit()))?;
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn redis_server_bin() -> &'static BinInfo {
    static BIN: OnceLock<Result<BinInfo, String>> = OnceLock::new();
    match BIN.get_or_init(|| probe_binary(&bin_from_env("REDIS_SERVER_BIN", "redis-server"))) {
        Ok(info) => info,
        Err(msg) => panic!("{msg}"),
    }
}

fn redis_cli_bin() -> &'static BinInfo {
    static BIN: OnceLock<Result<BinInfo, String>> = OnceLock::new();
    match BIN.get_or_init(|| probe_binary(&bin_from_env("REDIS_CLI_BIN", "redis-cli"))) {
        Ok(info) => info,
        Err(msg) => panic!("{msg}"),
    }
}

// ---------------------------------------------------------------------------
// Ports

/// Ports (and cluster bus ports) handed out in this process; never reused,
/// so a killed server's port stays its own until it is restarted.
fn handed_out() -> std::sync::MutexGuard<'static, HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn loopback_port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A free loopback port below [`MAX_PORT`], not 6379, not handed out before;
/// with `cluster_bus`, port + 10000 is free too.
pub(crate) fn pick_port(cluster_bus: bool) -> u16 {
    for _ in 0..1000 {
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(listener) => match listener.local_addr() {
                Ok(addr) => addr.port(),
                Err(_) => continue,
            },
            Err(e) => panic!("cannot bind 127.0.0.1:0 to pick a port: {e}"),
        };
        let bus = port.checked_add(CLUSTER_BUS_OFFSET);
        if port >= MAX_PORT || port == DEFAULT_REDIS_PORT || bus == Some(DEFAULT_REDIS_PORT) {
            continue;
        }
        let bus = bus.expect("port < MAX_PORT so port + 10000 fits");
        if cluster_bus && !loopback_port_free(bus) {
            continue;
        }
        let mut taken = handed_out();
        if taken.contains(&port) || (cluster_bus && taken.contains(&bus)) {
            continue;
        }
        taken.insert(port);
        if cluster_bus {
            taken.insert(bus);
        }
        return port;
    }
    panic!("found no free loopback port below {MAX_PORT} in 1000 tries");
}

// ---------------------------------------------------------------------------
// Processes

/// Spawns children from one thread that lives as long as the process, so
/// that `PR_SET_PDEATHSIG` (which fires when the *spawning thread* exits)
/// only fires when the whole test process dies. Also for the other harnesses'
/// children (PostgreSQL, the service example's processes).
pub fn spawn_child(cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("redis-harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the redis-harness spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("redis-harness spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("redis-harness spawner thread is gone"))?
}

/// Spawns `cmd` (another program a test runs beside its servers) as a child
/// that gets SIGKILL if the test process dies first (Linux), as the servers do.
pub fn spawn_owned(mut cmd: Command) -> io::Result<Child> {
    die_with_parent(&mut cmd);
    spawn_child(cmd)
}

/// Kills the child with SIGKILL if the test process dies first (Linux).
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: plain syscall on a pid we own (our not yet reaped child).
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `T`, ...), if readable.
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (comm) S ..." where comm may contain spaces and parentheses.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Waits (bounded) until the process is stopped (`stopped`) or running again.
fn wait_for_stop_state(pid: u32, stopped: bool) {
    if !Path::new("/proc/self/stat").exists() {
        // No procfs: signals to another process arrive within microseconds.
        thread::sleep(Duration::from_millis(50));
        return;
    }
    let deadline = Instant::now() + SIGNAL_TIMEOUT;
    loop {
        match proc_state(pid) {
            Some(state) if matches!(state, 'T' | 't') == stopped => return,
            None => {
                panic!("redis-server (pid {pid}) vanished while waiting for it to stop/continue")
            }
            Some(state) if Instant::now() >= deadline => panic!(
                "redis-server (pid {pid}) is in state {state:?} {SIGNAL_TIMEOUT:?} after {}",
                if stopped { "SIGSTOP" } else { "SIGCONT" }
            ),
            Some(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The outcome of a command run with a deadline.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

fn read_back(mut file: File) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut buf);
    buf
}

/// Runs `cmd` to completion; output goes to anonymous files (no pipe can fill
/// up); after `timeout` the command is killed and `Err` tells what it printed.
pub(crate) fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Finished, String> {
    let stdout = tempfile::tempfile().map_err(|e| format!("cannot create a temp file: {e}"))?;
    let stderr = tempfile::tempfile().map_err(|e| format!("cannot create a temp file: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(|e| e.to_string())?)
        .stderr(stderr.try_clone().map_err(|e| e.to_string())?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Finished {
                    status,
                    stdout: read_back(stdout),
                    stderr: read_back(stderr),
                })
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{cmd:?} did not finish within {timeout:?} and was killed; stdout: {}; stderr: {}",
                    String::from_utf8_lossy(&read_back(stdout)),
                    String::from_utf8_lossy(&read_back(stderr)),
                ));
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot wait for {cmd:?}: {e}"));
            }
        }
    }
}

/// The last `lines` lines of a file, or a note that it cannot be read.
pub(crate) fn file_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({} unreadable: {e})", path.display()),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------
// RedisServer

/// How clients authenticate to a server.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Password(String),
    User { user: String, password: String },
}

/// Why a launch failed.
enum LaunchError {
    /// The port (or its cluster bus port) was taken by someone else.
    PortTaken(String),
    /// Anything else: not worth retrying.
    Failed(String),
}

/// How a server speaks TLS (certificates `ca.crt`, `server.crt` and
/// `server.key` in its directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// Plain TCP only.
    Off,
    /// Plain TCP on `port`, which the harness uses itself, and TLS on this
    /// second port (0 until one is picked).
    Beside(u16),
    /// TLS only, on `port` (`--port 0`): clients, `redis-cli` and, for a
    /// cluster node, the cluster bus (`--tls-cluster yes`) all use TLS.
    Only,
}

/// A `redis-server` child process on a free `127.0.0.1` port, with its own
/// temporary directory and no persistence. Killed (SIGKILL) and reaped on
/// drop, also when the test panics.
#[derive(Debug)]
pub struct RedisServer {
    /// The port clients use: plain TCP, or TLS with [`Tls::Only`].
    port: u16,
    tls: Tls,
    auth: Auth,
    cluster: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a standalone server without authentication and waits (at most
    /// 10 s) until it answers PING.
    ///
    /// # Panics
    /// If `redis-server` is not installed (the message says how to install
    /// it), or the server does not come up (the message has its log tail).
    pub fn start() -> RedisServer {
        Self::launch_new(Auth::None, false)
    }

    /// Starts a standalone server with `requirepass pw`: clients must send
    /// `AUTH pw`. [`url`](Self::url) is `redis://:PW@127.0.0.1:PORT/`
    /// (percent-encoded) and [`cli`](Self::cli) authenticates by itself.
    pub fn start_with_password(pw: &str) -> RedisServer {
        Self::launch_new(Auth::Password(pw.to_owned()), false)
    }

    /// Starts a standalone server with an ACL user `user` / `pw` that may run
    /// every command on every key and channel (`on >pw ~* &* +@all`). The
    /// `default` user is switched off, so unauthenticated clients get NOAUTH.
    /// [`url`](Self::url) is `redis://USER:PW@127.0.0.1:PORT/`.
    pub fn start_with_acl_user(user: &str, pw: &str) -> RedisServer {
        assert!(
            !user.is_empty() && user != "default",
            "start_with_acl_user needs a user name other than `default`"
        );
        Self::launch_new(
            Auth::User {
                user: user.to_owned(),
                password: pw.to_owned(),
            },
            false,
        )
    }

    /// Starts a standalone server that also accepts TLS, on a second port,
    /// with a certificate for `127.0.0.1` signed by a fresh test CA (made with
    /// `openssl`). [`tls_url`](Self::tls_url) is `rediss://127.0.0.1:PORT/` and
    /// [`ca_pem`](Self::ca_pem) the CA to trust; the plain port stays open for
    /// the harness's own checks.
    pub fn start_tls() -> RedisServer {
        Self::launch_with(Auth::None, false, Tls::Beside(0), None)
    }

    /// The `rediss://` URL of a TLS server: a [`start_tls`](Self::start_tls)
    /// server's TLS port, or a node of [`RedisCluster::start_tls`] (then the
    /// same as [`url`](Self::url)).
    ///
    /// # Panics
    /// If the server was not started with TLS.
    pub fn tls_url(&self) -> String {
        match self.tls {
            Tls::Beside(port) => format!("rediss://127.0.0.1:{port}/"),
            Tls::Only => self.url(),
            Tls::Off => panic!("tls_url() needs a TLS server (RedisServer::start_tls)"),
        }
    }

    /// The test CA certificate (PEM) of a TLS server.
    ///
    /// # Panics
    /// If the server was not started with TLS.
    pub fn ca_pem(&self) -> Vec<u8> {
        assert!(self.tls != Tls::Off, "ca_pem() needs a TLS server");
        fs::read(self.dir.path().join("ca.crt")).expect("the test CA certificate")
    }

    /// A cluster-enabled node (used by [`RedisCluster`]); TLS only, with the
    /// certificates of the `certs` directory, when given.
    fn start_cluster_node(auth: Auth, certs: Option<&Path>) -> RedisServer {
        let tls = if certs.is_some() { Tls::Only } else { Tls::Off };
        Self::launch_with(auth, true, tls, certs)
    }

    /// The URL for `redis::Client::open`: `redis://127.0.0.1:PORT/`
    /// (`rediss://` for a node of [`RedisCluster::start_tls`]), with `:PW@`
    /// or `USER:PW@` (percent-encoded) when the server needs them.
    pub fn url(&self) -> String {
        let port = self.port;
        let scheme = if self.tls == Tls::Only {
            "rediss"
        } else {
            "redis"
        };
        match &self.auth {
            Auth::None => format!("{scheme}://127.0.0.1:{port}/"),
            Auth::Password(pw) => format!("{scheme}://:{}@127.0.0.1:{port}/", url_encode(pw)),
            Auth::User { user, password } => format!(
                "{scheme}://{}:{}@127.0.0.1:{port}/",
                url_encode(user),
                url_encode(password)
            ),
        }
    }

    /// A `redis::Client` for [`url`](Self::url); over TLS (trusting the test
    /// CA) for a node of [`RedisCluster::start_tls`].
    pub fn client(&self) -> redis::Client {
        if self.tls == Tls::Only {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(self.ca_pem()),
            };
            return redis::Client::build_with_tls(self.url(), certs)
                .expect("the harness URL and CA are valid");
        }
        redis::Client::open(self.url()).expect("the harness URL is valid")
    }

    /// The TCP port on `127.0.0.1`; the same across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's temporary directory (log file, cluster `nodes.conf`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file (`--logfile`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last `lines` lines of the server's log, then of its stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- {} (last {lines} lines) ---\n{}\n--- stdout/stderr ---\n{}",
            self.log_path().display(),
            file_tail(&self.log_path(), lines),
            file_tail(&self.output_path(), lines),
        )
    }

    /// Kills the server with SIGKILL (it works on a frozen server too) and
    /// waits until the process is gone and its port closed. Does nothing if
    /// it is not running. Data is lost: there is no persistence.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the SAME port with the same settings (a
    /// running one is killed first) and waits until it answers PING. The
    /// data set starts empty. Retries for up to 10 s if the port is still
    /// taken.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + RESTART_PORT_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(LaunchError::PortTaken(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(LaunchError::PortTaken(msg) | LaunchError::Failed(msg)) => {
                    panic!("cannot restart redis-server on port {}: {msg}", self.port)
                }
            }
        }
    }

    /// Freezes the server with SIGSTOP: connections stay open (the kernel
    /// still accepts new ones) but nothing is answered until
    /// [`thaw`](Self::thaw). Returns once the process is stopped.
    pub fn freeze(&self) {
        let pid = self.running_pid("freeze");
        send_signal(pid, libc::SIGSTOP)
            .unwrap_or_else(|e| panic!("SIGSTOP to redis-server {pid}: {e}"));
        wait_for_stop_state(pid, true);
    }

    /// Resumes a [`freeze`](Self::freeze)d server with SIGCONT. Returns once
    /// the process runs again.
    pub fn thaw(&self) {
        let pid = self.running_pid("thaw");
        send_signal(pid, libc::SIGCONT)
            .unwrap_or_else(|e| panic!("SIGCONT to redis-server {pid}: {e}"));
        wait_for_stop_state(pid, false);
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` (authenticated like
    /// [`url`](Self::url)) and returns its stdout, unchanged: raw replies one
    /// per line, so `.trim()` it for a single value. Error replies (`ERR ...`,
    /// `WRONGTYPE ...`) come back as text too. Arguments may be any
    /// `OsStr`, e.g. non-UTF-8 garbage bytes via
    /// `std::os::unix::ffi::OsStrExt::from_bytes`.
    ///
    /// # Panics
    /// If `redis-cli` is missing, cannot connect (exits non-zero), or runs
    /// longer than 10 s (a frozen server, say).
    pub fn cli<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        String::from_utf8_lossy(&self.cli_raw(args)).into_owned()
    }

    /// Like [`cli`](Self::cli), but returns stdout as raw bytes.
    pub fn cli_raw<S: AsRef<OsStr>>(&self, args: &[S]) -> Vec<u8> {
        match run_bounded(self.cli_command(args), CLI_TIMEOUT) {
            Ok(done) if done.status.success() => done.stdout,
            Ok(done) => panic!(
                "redis-cli on port {} failed ({}): {}{}\n{}",
                self.port,
                done.status,
                String::from_utf8_lossy(&done.stdout),
                String::from_utf8_lossy(&done.stderr),
                self.log_tail(20)
            ),
            Err(msg) => panic!(
                "redis-cli on port {}: {msg}\n(is the server frozen?)\n{}",
                self.port,
                self.log_tail(20)
            ),
        }
    }

    /// The number of keys in database 0 (`DBSIZE`).
    pub fn dbsize(&self) -> u64 {
        let out = self.cli(&["DBSIZE"]);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("DBSIZE on port {} answered {out:?}", self.port))
    }

    fn running_pid(&self, what: &str) -> u32 {
        self.pid().unwrap_or_else(|| {
            panic!(
                "cannot {what} redis-server on port {}: it is not running",
                self.port
            )
        })
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("redis.stdout.log")
    }

    /// `redis-cli -h 127.0.0.1 -p PORT ARGS...`, authenticated like
    /// [`url`](Self::url), over TLS for a TLS-only server.
    fn cli_command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&redis_cli_bin().path);
        cmd.args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string());
        self.cli_credentials(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// The credentials and TLS options `redis-cli` needs for this server.
    fn cli_credentials(&self, cmd: &mut Command) {
        cmd.env_remove("REDISCLI_AUTH");
        match &self.auth {
            Auth::None => {}
            Auth::Password(pw) => {
                cmd.env("REDISCLI_AUTH", pw);
            }
            Auth::User { user, password } => {
                cmd.arg("--user").arg(user).env("REDISCLI_AUTH", password);
            }
        }
        if self.tls == Tls::Only {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(self.dir.path().join("ca.crt"));
        }
    }

    /// Starts a new server on a fresh port; retries on other ports if the
    /// port got taken in between.
    fn launch_new(auth: Auth, cluster: bool) -> RedisServer {
        Self::launch_with(auth, cluster, Tls::Off, None)
    }

    /// Like [`launch_new`](Self::launch_new), with TLS unless `tls` is
    /// [`Tls::Off`]: the certificates are copied from `certs`, or made fresh.
    fn launch_with(auth: Auth, cluster: bool, tls: Tls, certs: Option<&Path>) -> RedisServer {
        redis_server_bin();
        let dir = tempfile::Builder::new()
            .prefix("redis-harness-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis-server: {e}"));
        match (tls, certs) {
            (Tls::Off, _) => {}
            (_, Some(from)) => {
                for file in ["ca.crt", "server.crt", "server.key"] {
                    fs::copy(from.join(file), dir.path().join(file)).unwrap_or_else(|e| {
                        panic!("cannot copy {file} from {}: {e}", from.display())
                    });
                }
            }
            (_, None) => make_test_certificates(dir.path()),
        }
        let mut server = RedisServer {
            port: 0,
            tls,
            auth,
            cluster,
            dir,
            child: None,
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            server.port = pick_port(cluster);
            if let Tls::Beside(_) = server.tls {
                server.tls = Tls::Beside(pick_port(false));
            }
            // A failed attempt may have written a nodes.conf naming its port.
            let _ = fs::remove_file(server.dir.path().join("nodes.conf"));
            match server.launch() {
                Ok(()) => return server,
                Err(LaunchError::PortTaken(msg)) => failures.push(msg),
                Err(LaunchError::Failed(msg)) => panic!("cannot start redis-server: {msg}"),
            }
        }
        panic!(
            "cannot start redis-server: ports kept being taken ({START_ATTEMPTS} attempts):\n{}",
            failures.join("\n")
        );
    }

    fn command(&self) -> Command {
        let bin = redis_server_bin();
        let dir = self.dir.path();
        let mut cmd = Command::new(&bin.path);
        match self.tls {
            Tls::Only => cmd.args(["--port", "0", "--tls-port"]),
            Tls::Off | Tls::Beside(_) => cmd.arg("--port"),
        };
        cmd.arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        if bin.major_version.is_some_and(|v| v >= 7) {
            // Redis 7 refuses DEBUG unless told otherwise.
            cmd.args(["--enable-debug-command", "yes"]);
        }
        match &self.auth {
            Auth::None => {}
            Auth::Password(pw) => {
                cmd.arg("--requirepass").arg(pw);
                if self.cluster {
                    cmd.arg("--masterauth").arg(pw);
                }
            }
            Auth::User { user, password } => {
                cmd.args(["--user", "default", "off"])
                    .arg("--user")
                    .arg(user)
                    .arg("on")
                    .arg(format!(">{password}"))
                    .args(["~*", "&*", "+@all"]);
            }
        }
        if let Tls::Beside(tls_port) = self.tls {
            cmd.arg("--tls-port").arg(tls_port.to_string());
        }
        if self.tls != Tls::Off {
            cmd.arg("--tls-cert-file")
                .arg(dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.crt"))
                .args(["--tls-auth-clients", "no"]);
        }
        if self.cluster && self.tls == Tls::Only {
            // The cluster bus and replication links use TLS too, and the
            // nodes announce their TLS ports.
            cmd.args(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(dir.join("nodes.conf"))
                .args(["--cluster-node-timeout", CLUSTER_NODE_TIMEOUT_MS]);
        }
        cmd
    }

    /// Spawns the server on `self.port` and waits until it answers.
    fn launch(&mut self) -> Result<(), LaunchError> {
        assert!(self.child.is_none(), "launch with a child still running");
        let failed = LaunchError::Failed;
        let log_start = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        let out_start = fs::metadata(self.output_path())
            .map(|m| m.len())
            .unwrap_or(0);
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path())
            .map_err(|e| failed(format!("cannot open {}: {e}", self.output_path().display())))?;
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(output.try_clone().map_err(|e| failed(e.to_string()))?)
            .stderr(output);
        die_with_parent(&mut cmd);
        let child = spawn_child(cmd)
            .map_err(|e| failed(format!("cannot spawn {:?}: {e}", redis_server_bin().path)))?;
        self.child = Some(child);

        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(why) => {
                self.kill();
                let fresh = |path: PathBuf, from: u64| {
                    let bytes = fs::read(path).unwrap_or_default();
                    let from = usize::try_from(from).unwrap_or(0).min(bytes.len());
                    String::from_utf8_lossy(&bytes[from..]).into_owned()
                };
                let log = fresh(self.log_path(), log_start);
                let out = fresh(self.output_path(), out_start);
                let msg = format!(
                    "redis-server on 127.0.0.1:{}: {why}\n--- log ---\n{}\n--- stdout/stderr ---\n{}",
                    self.port,
                    tail_lines(&log, 30),
                    tail_lines(&out, 30)
                );
                if log.contains("already in use") || out.contains("already in use") {
                    Err(LaunchError::PortTaken(msg))
                } else {
                    Err(LaunchError::Failed(msg))
                }
            }
        }
    }

    /// Polls until our own process (checked by pid, so never somebody else's
    /// server on the same port) answers `INFO server`.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("launched");
            let pid = child.id();
            match child.try_wait() {
                Ok(Some(status)) => return Err(format!("exited ({status}) before it was ready")),
                Ok(None) => {}
                Err(e) => return Err(format!("cannot wait for it: {e}")),
            }
            let last_error = match self.info_pid() {
                Ok(Some(p)) if p == pid => return Ok(()),
                Ok(other) => format!("port answered by another process (pid {other:?})"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {READY_TIMEOUT:?} (last error: {last_error})"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `process_id` from `INFO server`, over a short-timeout sync connection
    /// (through `redis-cli --tls` for a TLS-only server, so that the harness
    /// does not depend on the client's TLS set-up under test).
    fn info_pid(&self) -> Result<Option<u32>, String> {
        let timeout = Duration::from_millis(500);
        let info = if self.tls == Tls::Only {
            let done = run_bounded(self.cli_command(&["INFO", "server"]), timeout * 4)?;
            let out = String::from_utf8_lossy(&done.stdout).into_owned();
            if !done.status.success() || !out.contains("process_id:") {
                return Err(format!(
                    "redis-cli INFO ({}): {out}{}",
                    done.status,
                    String::from_utf8_lossy(&done.stderr)
                ));
            }
            out
        } else {
            let query = || -> redis::RedisResult<String> {
                let mut con = self.client().get_connection_with_timeout(timeout)?;
                con.set_read_timeout(Some(timeout))?;
                con.set_write_timeout(Some(timeout))?;
                redis::cmd("INFO").arg("server").query(&mut con)
            };
            query().map_err(|e| e.to_string())?
        };
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|v| v.trim().parse().ok()))
    }
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// RedisCluster

/// A Redis Cluster of `masters` master nodes and no replicas, each a
/// [`RedisServer`] with `--cluster-enabled yes`, created with
/// `redis-cli --cluster create`. All nodes are killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    tls: bool,
}

impl RedisCluster {
    /// Starts `masters` (at least 3) cluster nodes on free ports whose bus
    /// port (port + 10000) is free too, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`,
    /// and waits (bounded) until every node reports `cluster_state:ok` and
    /// knows all the others. A failed creation is retried once with new
    /// nodes.
    ///
    /// # Panics
    /// If `redis-server` or `redis-cli` is missing, or the cluster does not
    /// come up (with the nodes' log tails).
    pub fn start(masters: usize) -> RedisCluster {
        Self::start_with(masters, Auth::None, false)
    }

    /// Like [`start`](Self::start), but TLS only: every node listens on a
    /// TLS port alone (`port 0`, `tls-port`, `tls-cluster yes`,
    /// `tls-replication yes`), so the cluster announces TLS ports and its bus
    /// runs over TLS. All nodes share one certificate for `127.0.0.1` signed
    /// by a fresh test CA (made with `openssl`): [`urls`](Self::urls) are
    /// `rediss://127.0.0.1:PORT/` and [`ca_pem`](Self::ca_pem) is the CA to
    /// trust. The harness's own checks use `redis-cli --tls`.
    ///
    /// # Panics
    /// Like [`start`](Self::start); also if `openssl` is missing.
    pub fn start_tls(masters: usize) -> RedisCluster {
        Self::start_with(masters, Auth::None, true)
    }

    /// Like [`start_tls`](Self::start_tls), with `requirepass pw` on every
    /// node: [`urls`](Self::urls) are `rediss://:PW@127.0.0.1:PORT/`
    /// (percent-encoded).
    pub fn start_tls_with_password(masters: usize, pw: &str) -> RedisCluster {
        Self::start_with(masters, Auth::Password(pw.to_owned()), true)
    }

    fn start_with(masters: usize, auth: Auth, tls: bool) -> RedisCluster {
        assert!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters, got {masters}"
        );
        redis_server_bin();
        redis_cli_bin();
        let mut failures = Vec::new();
        for attempt in 1..=CLUSTER_ATTEMPTS {
            match Self::try_start(masters, &auth, tls) {
                Ok(cluster) => return cluster,
                Err(msg) => failures.push(format!("attempt {attempt}: {msg}")),
            }
        }
        panic!(
            "cannot start a {masters}-master Redis cluster{}:\n{}",
            if tls { " with TLS" } else { "" },
            failures.join("\n\n")
        );
    }

    fn try_start(masters: usize, auth: &Auth, tls: bool) -> Result<RedisCluster, String> {
        // One CA and one server certificate for every node: the nodes verify
        // each other on the bus, and clients trust one CA.
        let certs = if tls {
            let dir = tempfile::Builder::new()
                .prefix("redis-harness-certs-")
                .tempdir()
                .map_err(|e| format!("cannot create a temp dir for certificates: {e}"))?;
            make_test_certificates(dir.path());
            Some(dir)
        } else {
            None
        };
        let cluster = RedisCluster {
            nodes: (0..masters)
                .map(|_| {
                    RedisServer::start_cluster_node(
                        auth.clone(),
                        certs.as_ref().map(tempfile::TempDir::path),
                    )
                })
                .collect(),
            tls,
        };
        let mut cmd = Command::new(&redis_cli_bin().path);
        cluster.nodes[0].cli_credentials(&mut cmd);
        cmd.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            cmd.arg(format!("127.0.0.1:{}", node.port()));
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        match run_bounded(cmd, CLUSTER_CREATE_TIMEOUT) {
            Ok(done) if done.status.success() => {}
            Ok(done) => {
                return Err(format!(
                    "redis-cli --cluster create failed ({}):\n{}{}\n{}",
                    done.status,
                    String::from_utf8_lossy(&done.stdout),
                    String::from_utf8_lossy(&done.stderr),
                    cluster.log_tails(15)
                ))
            }
            Err(msg) => return Err(format!("{msg}\n{}", cluster.log_tails(15))),
        }
        cluster.try_wait_until_healthy(CLUSTER_OK_TIMEOUT)?;
        Ok(cluster)
    }

    /// Waits (at most 30 s) until every running node reports
    /// `cluster_state:ok` and knows every node, e.g. after restarting one.
    ///
    /// # Panics
    /// With each node's `CLUSTER INFO` and log tail if that does not happen.
    pub fn wait_until_healthy(&self) {
        if let Err(msg) = self.try_wait_until_healthy(CLUSTER_OK_TIMEOUT) {
            panic!("{msg}");
        }
    }

    fn try_wait_until_healthy(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let expected_known = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let infos: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| n.pid().is_some())
                .map(|n| n.cli(&["CLUSTER", "INFO"]))
                .collect();
            let healthy = |info: &String| {
                let mut lines = info.lines().map(str::trim);
                let ok = lines.clone().any(|l| l == "cluster_state:ok");
                ok && lines.any(|l| l == expected_known)
            };
            if infos.iter().all(healthy) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut msg = format!("cluster not healthy within {timeout:?}:\n");
                for (node, info) in self.nodes.iter().zip(&infos) {
                    let _ = writeln!(msg, "--- CLUSTER INFO of port {} ---\n{info}", node.port());
                }
                msg.push_str(&self.log_tails(15));
                return Err(msg);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| format!("=== node on port {} ===\n{}", n.port(), n.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One URL per node (`redis://127.0.0.1:PORT/`, or
    /// `rediss://127.0.0.1:PORT/` for [`start_tls`](Self::start_tls)), e.g.
    /// for `redis::cluster::ClusterClient::new`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The test CA certificate (PEM) of a [`start_tls`](Self::start_tls)
    /// cluster, e.g. for `.redis_tls_root_ca(..)`.
    ///
    /// # Panics
    /// If the cluster was not started with TLS.
    pub fn ca_pem(&self) -> Vec<u8> {
        assert!(self.tls, "ca_pem() needs RedisCluster::start_tls()");
        self.nodes[0].ca_pem()
    }

    /// A `ClusterClient` seeded with every node (trusting the test CA for a
    /// [`start_tls`](Self::start_tls) cluster).
    pub fn client(&self) -> redis::cluster::ClusterClient {
        let builder = redis::cluster::ClusterClientBuilder::new(self.urls());
        let builder = if self.tls {
            builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(self.ca_pem()),
            })
        } else {
            builder
        };
        builder.build().expect("the harness URLs are valid")
    }

    /// The nodes, in the order given to `--cluster create`.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`, e.g. to [`freeze`](RedisServer::freeze) it.
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Node `i`, mutably, e.g. to [`kill`](RedisServer::kill) and
    /// [`restart`](RedisServer::restart) it (it keeps its `nodes.conf`, so it
    /// rejoins as the same node; then call
    /// [`wait_until_healthy`](Self::wait_until_healthy)).
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// Each node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Runs `redis-cli` against node `i` only (no `-c` redirection); see
    /// [`RedisServer::cli`].
    pub fn cli_node<S: AsRef<OsStr>>(&self, i: usize, args: &[S]) -> String {
        self.nodes[i].cli(args)
    }

    /// `DBSIZE` of each node, in node order: how the keys spread over the
    /// masters.
    pub fn dbsize_per_node(&self) -> Vec<u64> {
        self.nodes.iter().map(RedisServer::dbsize).collect()
    }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_test_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl is needed for TLS tests (apt-get install openssl): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=cache-runtime test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_says_how_to_install() {
        let err = probe_binary(OsStr::new("redis-server-that-does-not-exist-42")).unwrap_err();
        assert!(
            err.contains("apt-get install -y redis-server redis-tools"),
            "{err}"
        );
    }

    #[test]
    fn versions_and_urls() {
        assert_eq!(
            parse_major_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc"),
            Some(7)
        );
        assert_eq!(parse_major_version("redis-cli 6.0.16"), Some(6));
        assert_eq!(url_encode("a b:c@d/e_f"), "a%20b%3Ac%40d%2Fe_f");
    }

    #[test]
    fn a_taken_port_is_reported_as_taken() {
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut server = RedisServer {
            port: squatter.local_addr().unwrap().port(),
            tls: Tls::Off,
            auth: Auth::None,
            cluster: false,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        match server.launch() {
            Err(LaunchError::PortTaken(msg)) => assert!(msg.contains("already in use"), "{msg}"),
            Err(LaunchError::Failed(msg)) => panic!("expected PortTaken, got Failed: {msg}"),
            Ok(()) => panic!("redis-server started on a taken port"),
        }
        assert_eq!(server.pid(), None);
    }

    #[test]
    fn picked_ports_are_distinct_and_in_range() {
        let ports: Vec<u16> = (0..20).map(|i| pick_port(i % 2 == 0)).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        assert!(ports
            .iter()
            .all(|&p| p < MAX_PORT && p != DEFAULT_REDIS_PORT));
    }
}
