//! The `http_proxy` example's processes for the tests that run them
//! (`http_proxy.rs`, `http_trust_proxy.rs`, `proxy_trust.rs`): its two
//! binaries, built (or found up to date) by cargo, and a child process that
//! prints the address it bound and is killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::redis_harness::spawn_owned;

/// The package's executables.
pub struct Binaries {
    /// `http_proxy`, the caching reverse proxy.
    pub proxy: PathBuf,
    /// `origin`, its test upstream.
    pub origin: PathBuf,
}

impl Binaries {
    /// Builds the package's binaries with `cargo build -p http_proxy --bins`
    /// (a no-op when the workspace's build made them already), in this
    /// test's profile, and takes their paths from cargo's own messages.
    ///
    /// # Panics
    ///
    /// When cargo fails or names no such executable.
    pub fn build() -> Binaries {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "http_proxy", "--bins"])
            .arg("--message-format=json-render-diagnostics")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit());
        // The same profile as this test, so a workspace run builds nothing new.
        let exe = std::env::current_exe().expect("the test's own path");
        if exe.components().any(|c| c.as_os_str() == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cargo runs");
        assert!(out.status.success(), "cargo build -p http_proxy failed");
        let artifacts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"compiler-artifact\""))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let find = |name: &str| {
            artifacts
                .iter()
                .filter(|m| m["target"]["name"] == name)
                .find_map(|m| m["executable"].as_str().map(PathBuf::from))
                .unwrap_or_else(|| panic!("cargo named the {name} executable"))
        };
        Binaries {
            proxy: find("http_proxy"),
            origin: find("origin"),
        }
    }

    /// [`Binaries::build`] off the async runtime's threads.
    pub async fn get() -> Binaries {
        tokio::task::spawn_blocking(Binaries::build)
            .await
            .expect("the build task ran")
    }

    /// An `origin` on a free loopback port.
    pub fn origin(&self) -> Process {
        let mut cmd = Command::new(&self.origin);
        cmd.args(["--listen", "127.0.0.1:0"]);
        Process::start(cmd)
    }

    /// A proxy on a free loopback port in front of `upstream`, memory only
    /// unless `args` name a Redis; the environment's cache variables are not
    /// passed on.
    pub fn proxy(&self, upstream: SocketAddr, args: &[&str]) -> Process {
        let mut cmd = Command::new(&self.proxy);
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(["--upstream", &format!("http://{upstream}")])
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("CACHE_NAMESPACE");
        Process::start(cmd)
    }
}

/// A child process that prints `... http://ADDR...` once bound; killed
/// when dropped.
pub struct Process {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `cmd` and waits (up to 20 s) for the line naming its address.
    ///
    /// # Panics
    ///
    /// When it does not start or prints no address.
    pub fn start(mut cmd: Command) -> Process {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = spawn_owned(cmd).expect("the process starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the process printed its address");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ', '\n']).next())
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Process { child, addr }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
