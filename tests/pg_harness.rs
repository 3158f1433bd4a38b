//! A real PostgreSQL for the integration tests: [`PgDatabase::start`] gives a
//! fresh, empty database and its URL.
//!
//! A private server is started for each database, in the style of
//! [`redis_harness`](crate::redis_harness): `initdb` into a temporary
//! directory, then `postgres` on a free loopback port (never 5432, only
//! `127.0.0.1`, its socket in that directory) with `fsync=off`. Running as
//! root, both run as the `postgres` user (PostgreSQL refuses root). It is
//! stopped on drop (SIGQUIT, then SIGKILL) and the directory removed; on
//! Linux it also gets SIGKILL if the test process dies first. A server
//! someone else started (`DATABASE_URL`, port 5432) is never used: a test
//! must not read or write a database it does not own.
//!
//! The binaries are looked for in `PG_BIN_DIR`, then on `PATH`, then in the
//! newest `/usr/lib/postgresql/<version>/bin` (Debian's layout). If they are
//! missing the harness panics with how to install them: a test is never
//! skipped. Every wait is bounded; a server that does not come up makes the
//! test panic with its log tail.
//!
//! ```no_run
//! use integration_tests::pg_harness::PgDatabase;
//!
//! let db = PgDatabase::start();
//! println!("url: {}", db.url());
//! ```

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::redis_harness::{die_with_parent, file_tail, pick_port, run_bounded, spawn_child};

/// How long `initdb` may run.
const INITDB_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a new server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `psql` command may run.
const PSQL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopped server may take to exit before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Somebody else's PostgreSQL: never used.
const DEFAULT_PG_PORT: u16 = 5432;
/// The superuser of a private server (and the OS user it runs as, as root).
const SUPERUSER: &str = "postgres";

const INSTALL_HINT: &str = "install PostgreSQL with `apt-get install -y postgresql` (as root, \
     after `apt-get update`; its binaries go to /usr/lib/postgresql/<version>/bin), \
     or point PG_BIN_DIR at the directory holding initdb, postgres and psql";

// ---------------------------------------------------------------------------
// Binaries

/// The directory holding `initdb`, `postgres` and `psql`.
fn bin_dir() -> PathBuf {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            has_all(&dir),
            "PG_BIN_DIR={} lacks initdb, postgres or psql; {INSTALL_HINT}",
            dir.display()
        );
        return dir;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| has_all(d)) {
        return dir;
    }
    // Debian: /usr/lib/postgresql/15/bin; the newest version wins.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => dir,
        None => panic!("PostgreSQL (initdb, postgres, psql) was not found; {INSTALL_HINT}"),
    }
}

/// The uid and gid of `user`, for running as it when we are root.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    // getpwnam's result lives in a static buffer: one caller at a time.
    static LOOKUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOOKUP.lock().unwrap_or_else(|p| p.into_inner());
    let name = std::ffi::CString::new(user).ok()?;
    // SAFETY: `name` is a valid C string; the result is null or points to a
    // passwd record that stays valid until the next getpw* call, which the
    // lock above keeps out until the fields are copied.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command of the server's binaries, as the `postgres` user when root.
fn pg_command(program: &Path, run_as: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = run_as {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
        // root's HOME is not readable by postgres; psql looks at ~/.psqlrc.
        cmd.env("HOME", "/tmp");
    }
    cmd.env_remove("PGDATABASE")
        .env_remove("PGUSER")
        .env_remove("PGPASSWORD")
        .env_remove("PGHOST")
        .env_remove("PGPORT");
    cmd
}

// ---------------------------------------------------------------------------
// A private server

/// A `postgres` child process on a free loopback port, in its own
/// temporary directory, trusting local connections.
#[derive(Debug)]
struct PgServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PgServer {
    fn start() -> PgServer {
        let bin = bin_dir();
        let run_as = if is_root() {
            Some(user_ids(SUPERUSER).unwrap_or_else(|| {
                panic!(
                    "running as root, PostgreSQL must run as the `{SUPERUSER}` user, which \
                     does not exist; {INSTALL_HINT} (the package creates the user)"
                )
            }))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("pg-harness-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot chown {}: {e}", dir.path().display()));
        }
        let mut server = PgServer {
            port: 0,
            dir,
            bin,
            run_as,
            child: None,
        };
        server.initdb();
        server.launch();
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn initdb(&self) {
        let mut cmd = pg_command(&self.bin.join("initdb"), self.run_as);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"]);
        match run_bounded(cmd, INITDB_TIMEOUT) {
            Ok(done) if done.status.success() => {}
            Ok(done) => panic!(
                "initdb failed ({}): {}{}",
                done.status,
                String::from_utf8_lossy(&done.stdout),
                String::from_utf8_lossy(&done.stderr)
            ),
            Err(e) => panic!("initdb: {e}"),
        }
    }

    /// Starts `postgres` on a fresh free port; retried on another port if
    /// the one picked was taken meanwhile.
    fn launch(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            let port = loop {
                let port = pick_port(false);
                if port != DEFAULT_PG_PORT {
                    break port;
                }
            };
            match self.launch_on(port) {
                Ok(()) => return,
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn launch_on(&mut self, port: u16) -> Result<(), String> {
        let log = File::create(self.log_path()).map_err(|e| format!("log file: {e}"))?;
        let mut cmd = pg_command(&self.bin.join("postgres"), self.run_as);
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = spawn_child(cmd).map_err(|e| format!("cannot run postgres: {e}"))?;
        self.child = Some(child);
        self.port = port;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "postgres exited ({status}) on port {port}: {}",
                    file_tail(&self.log_path(), 20)
                ));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
                && self.psql("postgres", "SELECT 1").is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "postgres did not accept connections within {READY_TIMEOUT:?}: {}",
                    file_tail(&self.log_path(), 20)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one SQL command with `psql` through the server's socket.
    fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut cmd = pg_command(&self.bin.join("psql"), self.run_as);
        cmd.arg("-h").arg(self.dir.path()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            database,
        ]);
        run_psql(cmd, sql)
    }

    /// Immediate shutdown (SIGQUIT: the postmaster stops its backends), then
    /// SIGKILL if it has not exited in time.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill has no memory effects; the pid is our own child,
            // not yet reaped, so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGQUIT) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// A database

/// A fresh database on a private server of its own; see the module's docs.
/// The server is stopped on drop.
#[derive(Debug)]
pub struct PgDatabase {
    server: PgServer,
    name: String,
}

/// Distinct database names within one test process.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    /// A new empty database on a new private server.
    ///
    /// # Panics
    ///
    /// If PostgreSQL is not installed (the message says how to install it),
    /// the server does not come up (the message has its log tail), or the
    /// database cannot be created.
    pub fn start() -> PgDatabase {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let server = PgServer::start();
        if let Err(e) = server.psql("postgres", &format!("CREATE DATABASE {name}")) {
            panic!("{e}");
        }
        PgDatabase { server, name }
    }

    /// The database's URL, `postgres://postgres@127.0.0.1:port/name`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.server.port, self.name
        )
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Stops the server at once (SIGQUIT: connections are cut); the data
    /// stays for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Starts the stopped server again on the same port and data.
    ///
    /// # Panics
    ///
    /// If it does not come up.
    pub fn restart(&mut self) {
        self.server.stop();
        let port = self.server.port;
        if let Err(e) = self.server.launch_on(port) {
            panic!("PostgreSQL did not restart on port {port}: {e}");
        }
    }

    /// Runs `sql` in this database and returns `psql`'s unaligned output
    /// (one row a line, columns separated by `|`).
    ///
    /// # Panics
    ///
    /// If the command fails.
    pub fn sql(&self, sql: &str) -> String {
        self.server
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The server's log tail.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.server.log_path(), lines)
    }
}

/// Runs `sql` with `cmd` (`psql` and its connection arguments) and returns
/// its unaligned output. The error quotes the SQL, never the connection
/// arguments (a URL may hold a password).
fn run_psql(mut cmd: Command, sql: &str) -> Result<String, String> {
    cmd.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql]);
    let done = run_bounded(cmd, PSQL_TIMEOUT)
        .map_err(|_| format!("psql {sql:?} could not run or timed out"))?;
    if done.status.success() {
        Ok(String::from_utf8_lossy(&done.stdout).into_owned())
    } else {
        Err(format!(
            "psql {sql:?} failed ({}): {}",
            done.status,
            String::from_utf8_lossy(&done.stderr)
        ))
    }
}
