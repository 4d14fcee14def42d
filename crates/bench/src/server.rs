//! The server under measurement: `rosetta-server serve` as a child process in a session of its
//! own, on a port it picks, its output kept for a post-mortem.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::procfs::Memory;

/// How the bench starts servers: the binary, where it runs, and what every server gets.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `rosetta-server` binary.
    pub binary: PathBuf,
    /// The working directory (the repository, whose `config/` the server reads).
    pub workdir: PathBuf,
    /// The settings every server gets (database, keys); per-run settings come on top.
    pub common: Vec<(String, String)>,
    /// The API key the servers accept.
    pub api_key: String,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: Child,
    name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// `http://<address>`.
    pub base: String,
    /// The API key it accepts.
    pub api_key: String,
    output: Arc<Mutex<String>>,
}

impl Launcher {
    /// Servers of `settings.server_binary` over the metadata database at `database_url`, with a
    /// fresh secret key and API key.
    pub fn new(settings: &crate::settings::Settings, database_url: String) -> Self {
        let api_key = crate::api::random_hex(16);
        Self {
            binary: settings.server_binary.clone(),
            workdir: settings.repo.clone(),
            common: vec![
                ("DATABASE_URL".to_owned(), database_url),
                ("SECRET_KEY".to_owned(), crate::api::random_hex(32)),
                ("API_KEYS".to_owned(), api_key.clone()),
            ],
            api_key,
        }
    }

    /// Starts a server named `name` (for messages) with `settings` on top of the common ones,
    /// and waits until it listens (at most 60 s).
    ///
    /// The server runs in a session of its own (`setsid`), as a service under systemd or in a
    /// container would: left in the bench's session it would share the load generator's
    /// scheduling group (the kernel's autogroup), and under full load PostgreSQL statements then
    /// stalled for up to 1 s (7 ms with the server in its own session).
    pub fn start(&self, name: &str, settings: &[(&str, &str)]) -> Result<Server> {
        let mut command = match which("setsid") {
            // A child is no process group leader, so setsid execs in place: the pid is the server's.
            Some(setsid) => {
                let mut command = Command::new(setsid);
                command.arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command
            .arg("serve")
            .current_dir(&self.workdir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("APP_ENV", "development")
            .env("LOG_FORMAT", "json")
            // "listening" (info) names the address the server bound.
            .env("LOG_LEVEL", "warn,rosetta_server=info")
            .env("RATE_LIMIT_PER_SECOND", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.common {
            command.env(key, value);
        }
        for (key, value) in settings {
            command.env(key, value);
        }
        let mut child = command.spawn().with_context(|| format!("starting {}", self.binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let streams: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().context("server stdout")?),
            Box::new(child.stderr.take().context("server stderr")?),
        ];
        for stream in streams {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut text = output.lock().unwrap_or_else(PoisonError::into_inner);
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        let mut server = Server {
            child,
            name: name.to_owned(),
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            api_key: self.api_key.clone(),
            output,
        };
        server.address = server.wait_for_listening(Duration::from_secs(60))?;
        server.base = format!("http://{}", server.address);
        Ok(server)
    }
}

impl Server {
    fn wait_for_listening(&mut self, limit: Duration) -> Result<SocketAddr> {
        let deadline = Instant::now() + limit;
        loop {
            let address = self.output().lines().find_map(|line| {
                let event: Value = serde_json::from_str(line).ok()?;
                (event["message"] == "listening").then(|| event["address"].as_str()?.parse().ok())?
            });
            if let Some(address) = address {
                return Ok(address);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the {} server exited with {status} before listening:\n{}", self.name, self.output());
            }
            if Instant::now() > deadline {
                bail!("the {} server did not listen within {limit:?}:\n{}", self.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Its memory now.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// An error unless the server still runs (with its output, for a post-mortem).
    pub fn check_alive(&mut self, during: &str) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("the {} server exited ({status}) during {during}:\n{}", self.name, self.output()),
        }
    }

    /// Stops it as a service manager would: SIGTERM, then SIGKILL after 15 s.
    pub fn stop(mut self) -> Result<()> {
        self.terminate();
        Ok(())
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The first `program` on `$PATH`.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
