//! The service example (`examples/service`) as a real process, for
//! `tests/service.rs`: [`ServiceProcess::start`] builds the `service` binary
//! once per test process (`cargo build -p service`, a no-op when it is up to
//! date), starts it with `LISTEN_ADDR=127.0.0.1:0`, reads the port from its
//! `listening on <addr>` line, and kills it on drop.
//!
//! The binary is built by the same `cargo` (`$CARGO`) into the same target
//! directory and profile as the running test (found from
//! `std::env::current_exe()`, `<target>/<profile>/deps/<test>`): a test
//! build does not build other packages' binaries, so the test cannot rely on
//! it being there.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::Duration;

use service::client::{self, Response};

use crate::redis_harness::{die_with_parent, spawn_child};

/// How long `cargo build -p service` may take (a cold build on 2 cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// How long a started service may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Prefixes of the variables the service reads: never inherited from the
/// test's environment, only set by [`ServiceProcess::start`].
const OWN_VARS: [&str; 4] = ["CACHE_", "REDIS_", "DATABASE_", "LISTEN_ADDR"];

/// `<target>/<profile>` of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("unexpected test binary path {}", exe.display()))
}

/// The `service` binary, built once per test process.
pub fn service_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = profile_dir();
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("the profile directory's name");
        // Cargo's profile "dev" builds into "debug".
        let profile = if profile == "debug" { "dev" } else { profile };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "service", "--bin", "service"])
            .args(["--profile", profile])
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .stdin(Stdio::null());
        let status = run_with_deadline(cmd, BUILD_TIMEOUT);
        assert!(status, "`cargo build -p service` failed (output above)");
        let bin = profile_dir.join(format!("service{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// Runs `cmd` (output inherited, so a build error shows in the test's
/// output); whether it succeeded within `timeout`.
fn run_with_deadline(mut cmd: Command, timeout: Duration) -> bool {
    let mut child = cmd.spawn().expect("cannot run cargo");
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if std::time::Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`cargo build -p service` did not finish within {timeout:?}");
            }
        }
    }
}

/// A running service process; killed on drop.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Option<Child>,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
    env: Vec<(String, String)>,
}

impl ServiceProcess {
    /// Starts the service on `database_url`, with `env` (e.g. `REDIS_URL`,
    /// `CACHE_*`) set and every other variable of the service unset.
    ///
    /// # Panics
    ///
    /// If it does not print its address within 30 s (the message has its
    /// log).
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> ServiceProcess {
        let mut vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.into()),
            ("LISTEN_ADDR".into(), "127.0.0.1:0".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let log = tempfile::NamedTempFile::new().expect("a temp file for the service's log");
        let mut service = ServiceProcess {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            env: vars,
        };
        service.launch();
        service
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(service_binary());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if OWN_VARS.iter().any(|p| name.starts_with(p)) {
                cmd.env_remove(name.as_ref());
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.log.reopen().expect("the service's log file"));
        die_with_parent(&mut cmd);
        let mut child = spawn_child(cmd).expect("cannot start the service");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            let _ = lines.read_line(&mut line);
            let _ = tx.send(line);
            // Keep reading so the service never blocks on a full pipe.
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => self.addr = addr,
            None => panic!(
                "the service did not print `listening on <addr>` within {START_TIMEOUT:?} \
                 (got {line:?}); its log:\n{}",
                self.log_text()
            ),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it logged so far (stderr).
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = self.log.reopen() {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET path` on a fresh connection.
    ///
    /// # Panics
    ///
    /// On an I/O error, with the service's log.
    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, None).await
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Panics
    ///
    /// As [`get`](Self::get).
    pub async fn put(&self, path: &str, body: &str) -> Response {
        self.request("PUT", path, Some(body)).await
    }

    async fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        match client::send(self.addr, method, path, body).await {
            Ok(response) => response,
            Err(e) => panic!(
                "{method} {path}: {e}; the service's log:\n{}",
                self.log_text()
            ),
        }
    }

    /// The sum of a counter's samples on `/metrics` whose labels include all
    /// of `labels` (`name="value"` pairs); 0 when there is none.
    pub async fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.get("/metrics").await.body;
        client::counter_sum(&text, name, labels)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
