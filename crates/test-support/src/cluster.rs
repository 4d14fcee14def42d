//! A throwaway PostgreSQL cluster built from the local server binaries.
//!
//! We drive `initdb`/`pg_ctl` ourselves instead of using a crate (pgtemp,
//! postgresql_embedded) because those either shell out to `sudo` (not installed here), cannot
//! stop a server started through `runuser`, or refuse to run as root. `pg_ctl` stops the
//! server by the pid in `postmaster.pid`, so stopping is reliable however it was started.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::error::HarnessError;
use crate::tls::ServerCertificate;

/// Prefix of the temp directories holding throwaway clusters; also used to find orphans.
const TEMP_PREFIX: &str = "rosetta-pg-";
/// File in the temp directory naming the process that owns the cluster (see [`reap_orphans`]).
const OWNER_FILE: &str = "owner.pid";
/// Name of the server log inside the temp directory.
const LOG_FILE: &str = "postgres.log";
/// How long `pg_ctl -w` may wait for start/stop before giving up.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How many fresh ports to try when the one we picked was taken before the server bound it.
const PORT_ATTEMPTS: usize = 5;

/// Settings for a [`PgCluster`] beyond the harness defaults.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra server settings, passed as `-c key=value` after the defaults (so they override
    /// them), e.g. `("max_wal_size", "64MB")`.
    pub settings: Vec<(String, String)>,
    /// The server binaries to run; the system's ([`find_postgres_bin_dir`]) when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Serve TLS with this certificate (`ssl=on`).
    pub tls: Option<ClusterTls>,
}

/// How a cluster serves TLS.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// The server's certificate and key.
    pub certificate: ServerCertificate,
    /// Accept TCP logins over TLS only (`hostssl` lines alone in `pg_hba.conf`): a plain-text
    /// attempt is refused with "no pg_hba.conf entry … no encryption".
    pub tls_only: bool,
}

impl ClusterOptions {
    /// Runs the binaries of `bin_dir` (another major version, see [`crate::postgres_majors`]).
    #[must_use]
    pub fn binaries(mut self, bin_dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(bin_dir.into());
        self
    }

    /// Serves TLS with `certificate`; with `tls_only`, plain-text TCP logins are refused.
    #[must_use]
    pub fn tls(mut self, certificate: ServerCertificate, tls_only: bool) -> Self {
        self.tls = Some(ClusterTls { certificate, tls_only });
        self
    }

    /// Adds one `-c key=value` server setting (builder style).
    #[must_use]
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }
}

/// A throwaway PostgreSQL cluster: `initdb` into a temp dir under `/tmp`, served on a free
/// localhost port with `wal_level=logical`, trust authentication, superuser `postgres`.
///
/// Durability is switched off (`fsync`, `synchronous_commit`, `full_page_writes`) because the
/// data is disposable and it makes DDL-heavy tests much faster.
///
/// Dropping it stops the server (`pg_ctl -m immediate`) and deletes the directory; drop
/// never panics.
#[derive(Debug)]
pub struct PgCluster {
    /// Owns the directory: removing it is the last step of `Drop`.
    temp: Option<tempfile::TempDir>,
    root: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    /// Settings given to `postgres` (the defaults plus [`ClusterOptions::settings`]), kept so
    /// [`PgCluster::start_again`] restarts with exactly the same configuration.
    settings: Vec<(String, String)>,
}

impl PgCluster {
    /// Creates and starts a new cluster.
    ///
    /// Blocking (runs `initdb` and `pg_ctl`, about 0.7 s); from async code call it through
    /// `tokio::task::spawn_blocking`. Before creating it, removes clusters left behind by
    /// test processes that died without cleaning up (killed, Ctrl-C).
    pub fn start(options: ClusterOptions) -> Result<PgCluster, HarnessError> {
        let bin_dir = match options.bin_dir {
            Some(dir) => dir,
            None => find_postgres_bin_dir()?,
        };
        let run_as = postgres_owner()?;
        reap_orphans(&bin_dir);

        // Under /tmp rather than $TMPDIR: when root, the postgres user must be able to
        // traverse every parent, which /tmp guarantees and a private TMPDIR may not.
        let base = if run_as.is_some() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir_in(&base)
            .map_err(|e| HarnessError::io(format!("creating a temp dir in {}", base.display()), e))?;
        let root = temp.path().to_path_buf();
        fs::write(root.join(OWNER_FILE), std::process::id().to_string())
            .map_err(|e| HarnessError::io("writing the owner pid file", e))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| HarnessError::io(format!("chown {} to postgres", root.display()), e))?;
        }

        let mut settings: Vec<(String, String)> = [
            ("listen_addresses", "127.0.0.1"),
            ("wal_level", "logical"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "200"),
            ("max_replication_slots", "20"),
            ("max_wal_senders", "20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if options.tls.is_some() {
            // Relative to the data directory, where they are written after initdb.
            for (key, value) in [("ssl", "on"), ("ssl_cert_file", "server.crt"), ("ssl_key_file", "server.key")] {
                settings.push((key.to_owned(), value.to_owned()));
            }
        }
        settings.extend(options.settings);

        let mut cluster = PgCluster {
            data_dir: root.join("data"),
            log_file: root.join(LOG_FILE),
            root,
            temp: Some(temp),
            bin_dir,
            port: 0,
            settings,
        };

        let initdb = cluster.bin_dir.join("initdb");
        let mut cmd = cluster.command(&initdb);
        cmd.arg("-D")
            .arg(&cluster.data_dir)
            .args(["--no-sync", "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .arg("--locale=C.UTF-8");
        cluster.run(cmd, "initdb")?;
        if let Some(tls) = &options.tls {
            cluster.serve_tls(tls, run_as)?;
        }

        // Binding port 0 and releasing it leaves a window in which another process can take
        // the port; when the server then fails to bind, try again with a fresh one.
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(err) if attempt < PORT_ATTEMPTS && is_port_conflict(&err) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host the server listens on: always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// A connection URL for database `db` as the superuser `postgres` (no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the unix socket (the temp dir, parent of the data directory).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server log file; its tail is included in start errors.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The directory of the PostgreSQL binaries the cluster runs (for `pg_basebackup`,
    /// `psql`, ...; run them with [`postgres_command`]).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The postmaster's pid (first line of `postmaster.pid`), or `None` when the server is not
    /// running. Tests use it to send signals, e.g. SIGSTOP to simulate a hung database.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Stops the server (`pg_ctl -m fast`: disconnects clients, then shuts down cleanly).
    /// The data directory is kept, so [`PgCluster::start_again`] can bring it back.
    pub fn stop(&self) -> Result<(), HarnessError> {
        resume_if_stopped(self.postmaster_pid());
        let mut cmd = self.command(&self.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(&self.data_dir).args(["-m", "fast", "-w", "-t", PG_CTL_TIMEOUT_SECS, "stop"]);
        self.run(cmd, "pg_ctl stop").map(drop)
    }

    /// Starts the server again on the same data directory and the same port, so URLs handed
    /// out earlier keep working (for tests of recovery after a database outage).
    pub fn start_again(&self) -> Result<(), HarnessError> {
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> Result<(), HarnessError> {
        let mut server_args =
            vec!["-p".to_owned(), self.port.to_string(), "-k".to_owned(), self.root.display().to_string()];
        for (key, value) in &self.settings {
            server_args.push("-c".to_owned());
            server_args.push(format!("{key}={value}"));
        }
        // pg_ctl hands `-o` to `/bin/sh -c`, so every argument must be shell-quoted.
        let options = server_args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        let mut cmd = self.command(&self.bin_dir.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-o"])
            .arg(options)
            .arg("start");
        self.run(cmd, "pg_ctl start").map(drop)
    }

    /// Writes the certificate (owned by the server's user) and, for a TLS-only cluster, a
    /// `pg_hba.conf` of `hostssl` lines.
    fn serve_tls(&self, tls: &ClusterTls, run_as: Option<(u32, u32)>) -> Result<(), HarnessError> {
        tls.certificate.write_to(&self.data_dir)?;
        let mut files = vec![self.data_dir.join("server.crt"), self.data_dir.join("server.key")];
        if tls.tls_only {
            let hba = self.data_dir.join("pg_hba.conf");
            fs::write(
                &hba,
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\n",
            )
            .map_err(|e| HarnessError::io("writing pg_hba.conf", e))?;
            files.push(hba);
        }
        if let Some((uid, gid)) = run_as {
            for file in files {
                std::os::unix::fs::chown(&file, Some(uid), Some(gid))
                    .map_err(|e| HarnessError::io(format!("chown {} to postgres", file.display()), e))?;
            }
        }
        Ok(())
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = postgres_command(program);
        // The caller's working directory may not be readable by the postgres user, and the
        // tools complain when they cannot resolve it.
        cmd.current_dir(&self.root);
        cmd
    }

    fn run(&self, cmd: Command, what: &str) -> Result<Output, HarnessError> {
        run_checked(cmd, what, &self.log_file)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.postmaster_pid().is_some() {
            immediate_stop(&self.bin_dir, &self.data_dir, &self.root);
        }
        if let Some(temp) = self.temp.take() {
            // Errors (e.g. a file vanishing concurrently) are ignored: a leftover directory is
            // reaped by the next `PgCluster::start`, and Drop must not panic.
            let _ = temp.close();
        }
    }
}

/// Builds a [`Command`] for a PostgreSQL tool that refuses to run as root (`initdb`,
/// `pg_ctl`, `postgres`, `pg_basebackup` writing a data dir, ...).
///
/// When this process runs as root the command is `runuser -u postgres -- <program>` and its
/// working directory is `/` (the postgres user may not be allowed into the current
/// directory), so pass absolute paths. Otherwise it is just `<program>`. Files the command
/// creates must be in directories the postgres user can write (chown them first).
pub fn postgres_command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd.current_dir("/");
        cmd
    } else {
        Command::new(program)
    }
}

/// Finds the directory of the PostgreSQL server binaries.
///
/// Order: `$TEST_PG_BIN_DIR`; the highest version under `/usr/lib/postgresql/*/bin`
/// (Debian/Ubuntu layout); the directory of `initdb` on `$PATH` (symlinks resolved).
pub fn find_postgres_bin_dir() -> Result<PathBuf, HarnessError> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
        if let Some(dir) = std::env::var_os("TEST_PG_BIN_DIR").map(PathBuf::from) {
            return has_tools(&dir).then_some(dir);
        }
        let mut versioned: Vec<(Vec<u64>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry
                    .file_name()
                    .to_str()?
                    .split('.')
                    .map(|part| part.parse::<u64>().ok())
                    .collect::<Option<Vec<u64>>>()?;
                let bin = entry.path().join("bin");
                has_tools(&bin).then_some((version, bin))
            })
            .collect();
        versioned.sort();
        if let Some((_, bin)) = versioned.pop() {
            return Some(bin);
        }
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("initdb"))
                .find(|initdb| initdb.is_file())
                .and_then(|initdb| fs::canonicalize(initdb).ok())
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
                .filter(|dir| has_tools(dir))
        })
    });
    found.clone().ok_or_else(|| HarnessError::NoBinaries {
        searched: "$TEST_PG_BIN_DIR, /usr/lib/postgresql/*/bin, $PATH".to_owned(),
    })
}

/// Whether this process runs as root (effective uid 0).
///
/// Read from the owner of `/proc/self` (the effective uid) to stay free of `unsafe` libc
/// calls; the workspace denies `unsafe_code`.
fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0))
}

/// The uid/gid the cluster files must belong to: `Some` (the postgres user) when root, `None`
/// when the tools run as ourselves.
fn postgres_owner() -> Result<Option<(u32, u32)>, HarnessError> {
    if !is_root() {
        return Ok(None);
    }
    let out = Command::new("getent")
        .args(["passwd", "postgres"])
        .output()
        .map_err(|e| HarnessError::io("running getent passwd postgres", e))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let mut fields = line.trim().split(':').skip(2);
    match (fields.next().and_then(|f| f.parse().ok()), fields.next().and_then(|f| f.parse().ok())) {
        (Some(uid), Some(gid)) if out.status.success() => Ok(Some((uid, gid))),
        _ => Err(HarnessError::NoPostgresUser(format!(
            "getent passwd postgres: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// Asks the kernel for a free port by binding port 0, then releases it for the server.
fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| HarnessError::io("binding 127.0.0.1:0 to find a free port", e))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| HarnessError::io("reading the bound port", e))
}

fn is_port_conflict(err: &HarnessError) -> bool {
    match err {
        HarnessError::Command { log_tail, .. } => {
            log_tail.contains("could not bind") || log_tail.contains("Address already in use")
        }
        _ => false,
    }
}

/// Runs `cmd`, turning a spawn failure or non-zero exit into a [`HarnessError`] that includes
/// the command's output and the tail of the server log.
pub(crate) fn run_checked(mut cmd: Command, what: &str, log_file: &Path) -> Result<Output, HarnessError> {
    // pg_ctl redirects the server's stdio to the log file, so these pipes close when pg_ctl
    // exits and `output()` cannot hang on the long-running server.
    cmd.stdin(Stdio::null());
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| HarnessError::io(format!("running {what} ({command})"), e))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(HarnessError::Command {
        command,
        status: out.status,
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        log: log_file.to_path_buf(),
        log_tail: log_tail(log_file, 40),
    })
}

/// The last `lines` lines of a (possibly large or missing) log file.
fn log_tail(path: &Path, lines: usize) -> String {
    const MAX_BYTES: u64 = 16 * 1024;
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Quotes `arg` for `/bin/sh` (single quotes; embedded `'` become `'\''`).
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// `pg_ctl -m immediate stop`, best effort, then SIGKILL if the server is still there.
///
/// Used by `Drop` and the orphan reaper, which must not fail or hang on a misbehaving server.
fn immediate_stop(bin_dir: &Path, data_dir: &Path, cwd: &Path) {
    let pid = read_pid(data_dir);
    // A SIGSTOPped server (tests simulate hangs that way) would ignore the stop signal
    // until continued, and pg_ctl would wait out its whole timeout.
    resume_if_stopped(pid);
    let mut cmd = postgres_command(&bin_dir.join("pg_ctl"));
    cmd.current_dir(cwd)
        .arg("-D")
        .arg(data_dir)
        .args(["-m", "immediate", "-w", "-t", "15", "stop"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let stopped = cmd.status().is_ok_and(|s| s.success());
    if !stopped && let Some(pid) = pid.filter(|pid| process_alive(*pid)) {
        let _ = signal(pid, "KILL");
    }
}

fn read_pid(data_dir: &Path) -> Option<i32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends SIGCONT when the process is stopped (state `T` in `/proc/<pid>/stat`).
fn resume_if_stopped(pid: Option<i32>) {
    let Some(pid) = pid else { return };
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return;
    };
    // The state follows the parenthesised command name, which may itself contain spaces.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("T" | "t")) {
        let _ = signal(pid, "CONT");
    }
}

/// Sends a signal with `kill(1)` (avoids `unsafe` libc calls).
fn signal(pid: i32, name: &str) -> std::io::Result<()> {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(drop)
}

/// Stops and deletes clusters whose owning test process no longer exists.
///
/// The postmaster runs in its own session (pg_ctl calls `setsid`), so it survives a test
/// process that is killed or interrupted before `Drop`/`atexit` can run. Each cluster
/// directory records its owner's pid; when that process is gone, the cluster is an orphan.
fn reap_orphans(bin_dir: &Path) {
    let base = if is_root() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
    let Ok(entries) = fs::read_dir(&base) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let dir = entry.path();
        // No owner file: the directory is being set up right now (or is not ours); skip.
        let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let Ok(owner) = owner.trim().parse::<i32>() else {
            continue;
        };
        if process_alive(owner) {
            continue;
        }
        let data_dir = dir.join("data");
        if data_dir.join("postmaster.pid").exists() {
            immediate_stop(bin_dir, &data_dir, &dir);
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn log_tail_takes_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        fs::write(&path, "1\n2\n3\n4\n").expect("write");
        assert_eq!(log_tail(&path, 2), "3\n4");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }
}
