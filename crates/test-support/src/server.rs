//! One PostgreSQL server per test process, one database per test.
//!
//! Tests run in parallel, so each gets its own database; cloning a database that already
//! holds the migrated schema (`CREATE DATABASE ... TEMPLATE`) takes tens of milliseconds,
//! far cheaper than migrating per test or starting a cluster per test.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::cluster::{ClusterOptions, PgCluster};
use crate::error::HarnessError;

/// Upper bound for the best-effort cleanup in `Drop`/at exit, so a hung server (tests
/// SIGSTOP servers) cannot hang the test process.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect timeout applied when the URL does not set one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `CREATE DATABASE` is retried while the template is "being accessed by other
/// users" (a connection from `init` still closing, or another client on `template1`).
const CREATE_ATTEMPTS: u32 = 10;

/// The PostgreSQL server this test process creates its databases on.
///
/// Obtain the process-wide one with [`test_server`]; [`TestServer::new`] wraps any other
/// server (e.g. a dedicated [`PgCluster`]) in the same per-test-database API.
#[derive(Debug)]
pub struct TestServer {
    admin_url: String,
    /// Whether templates must be dropped at process exit (an external server outlives us;
    /// the throwaway cluster does not).
    drop_templates_at_exit: bool,
    templates: Mutex<HashMap<String, Arc<OnceCell<TemplateDatabase>>>>,
}

/// A database cloned from a migrated schema by [`TestServer::template`].
///
/// Cheap to clone; pass it to [`TestServer::create_database`].
#[derive(Debug, Clone)]
pub struct TemplateDatabase {
    name: String,
    url: String,
}

impl TemplateDatabase {
    /// The template's database name (`rosetta_tpl_<key>_<pid>_<random>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of the template database. Connections to it are disabled once it is a template
    /// (a connected session would make every clone fail), so this is for reference only.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A database owned by one test; dropped (`DROP DATABASE ... WITH (FORCE)`) when this value
/// is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// The connection URL of this database (same server, user and options as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name (`rosetta_test_<pid>_<counter>_<random>`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop is synchronous and often runs on a tokio worker (end of an async test), where
        // blocking on the current runtime panics. A separate thread with its own runtime
        // works in every context; joining it means the database is gone when drop returns.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let handle = std::thread::Builder::new().name("rosetta-drop-db".to_owned()).spawn(move || {
            block_on_own_runtime(async move {
                let _ = drop_database(&admin_url, &name).await;
            });
        });
        if let Ok(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The PostgreSQL server for this test process, resolved once per process.
///
/// - `TEST_DATABASE_URL` (else `DATABASE_URL`), when set: that server, which must accept the
///   connection and let the user `CREATE DATABASE`. If it is unreachable, this panics: a test
///   must never pass silently without its database.
/// - Neither set: one throwaway [`PgCluster`] shared by the whole process, stopped and deleted
///   when the process exits (an `atexit` hook; the test harness exits through `exit`).
/// - Neither set and no PostgreSQL binaries: panics, explaining how to set
///   `TEST_DATABASE_URL`.
///
/// Synchronous (the first call blocks about a second) so it works from any test flavour:
/// `#[tokio::test]` (either runtime flavour), `#[actix_web::test]`, or plain `#[test]`.
///
/// # Panics
///
/// When no usable server can be provided, as described above; every later call panics with
/// the same message.
pub fn test_server() -> &'static TestServer {
    static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
    // Resolution runs on its own thread: it needs a runtime for the connection check, and
    // the caller may already be inside one.
    let resolved = SERVER.get_or_init(|| {
        std::thread::Builder::new()
            .name("rosetta-test-server".to_owned())
            .spawn(resolve_server)
            .map_err(|e| format!("spawning the test-server thread: {e}"))
            .and_then(|handle| handle.join().unwrap_or_else(|_| Err("resolving the test server panicked".to_owned())))
    });
    match resolved {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

impl TestServer {
    /// Wraps the server at `admin_url` (a database URL for a user allowed to
    /// `CREATE DATABASE`; which database it names does not matter).
    ///
    /// Templates created through such a value are not dropped at exit, so use it for servers
    /// that die with the test, e.g. a dedicated [`PgCluster`]. No connection is made here.
    pub fn new(admin_url: impl Into<String>) -> TestServer {
        TestServer { admin_url: admin_url.into(), drop_templates_at_exit: false, templates: Mutex::new(HashMap::new()) }
    }

    /// The URL the harness connects with to create and drop databases.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates a new, uniquely named database, cloned from `template` when given (else
    /// from the server's default, `template1`).
    ///
    /// # Panics
    ///
    /// When the server refuses (the test cannot run without its database).
    pub async fn create_database(&self, template: Option<&TemplateDatabase>) -> TestDatabase {
        let name = format!("rosetta_test_{}_{}_{}", std::process::id(), next_counter(), random_suffix());
        let mut sql = format!("CREATE DATABASE {}", quote_ident(&name));
        if let Some(template) = template {
            sql.push_str(" TEMPLATE ");
            sql.push_str(&quote_ident(&template.name));
        }
        if let Err(err) = create_with_retry(&self.admin_url, &sql).await {
            panic!("creating test database {name}: {err}");
        }
        TestDatabase { url: with_database(&self.admin_url, &name), name, admin_url: self.admin_url.clone() }
    }

    /// The template database for `key`, created on first use in this process.
    ///
    /// The first caller creates an empty database and awaits `init(url)` on it, where the
    /// caller runs its migrations; later callers (from any test, on any runtime) wait for
    /// that and share the result. If `init` panics, the test that ran it fails and the next
    /// caller starts over with a new database.
    ///
    /// `init` **must close every connection it opened** before returning (drop the pool /
    /// connection, and let the connection task end): PostgreSQL refuses to clone a database
    /// while another session is connected to it. Sessions still open when `init` returns
    /// are terminated, and connections to the template are disabled afterwards.
    ///
    /// Names are unique per process (`rosetta_tpl_<key>_<pid>_<random>`), so concurrent test
    /// processes and templates from older schema versions never collide.
    ///
    /// # Panics
    ///
    /// When the server refuses to create or configure the template.
    pub async fn template<F, Fut>(&self, key: &str, init: F) -> TemplateDatabase
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let cell = {
            let mut templates = self.templates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(templates.entry(key.to_owned()).or_default())
        };
        cell.get_or_init(|| self.build_template(key, init)).await.clone()
    }

    async fn build_template<F, Fut>(&self, key: &str, init: F) -> TemplateDatabase
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let name = template_name(key);
        let ident = quote_ident(&name);
        if let Err(err) = create_with_retry(&self.admin_url, &format!("CREATE DATABASE {ident}")).await {
            panic!("creating template database {name}: {err}");
        }
        // Registered before `init` runs, so a template whose init panicked is dropped too.
        if self.drop_templates_at_exit {
            exit_cleanup::register_template(&self.admin_url, &name);
        }

        let url = with_database(&self.admin_url, &name);
        init(url.clone()).await;

        let finish = async {
            let client = connect(&self.admin_url).await?;
            // Disallow new connections first, then terminate stragglers (a pool closing
            // asynchronously): afterwards nothing can block cloning.
            client
                .batch_execute(&format!("ALTER DATABASE {ident} WITH ALLOW_CONNECTIONS false"))
                .await
                .map_err(|e| HarnessError::pg("disallowing connections to the template", e))?;
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&name],
                )
                .await
                .map_err(|e| HarnessError::pg("terminating sessions on the template", e))?;
            client
                .batch_execute(&format!("ALTER DATABASE {ident} WITH IS_TEMPLATE true"))
                .await
                .map_err(|e| HarnessError::pg("marking the database as a template", e))
        };
        if let Err(err) = finish.await {
            panic!("finishing template database {name}: {err}");
        }
        TemplateDatabase { name, url }
    }
}

/// Picks the server for this process (see [`test_server`]); runs on a dedicated thread.
fn resolve_server() -> Result<TestServer, String> {
    let configured = ["TEST_DATABASE_URL", "DATABASE_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()).map(|v| (var, v)));
    if let Some((var, url)) = configured {
        block_on_own_runtime(check_external(&url))
            .map_err(|err| format!("{var} is set but its server is not usable: {err}"))?;
        return Ok(TestServer { admin_url: url, drop_templates_at_exit: true, templates: Mutex::new(HashMap::new()) });
    }

    let cluster = PgCluster::start(ClusterOptions::default()).map_err(|err| {
        format!(
            "neither TEST_DATABASE_URL nor DATABASE_URL is set, and starting a throwaway \
             PostgreSQL cluster failed. Set TEST_DATABASE_URL to a PostgreSQL server where the \
             user may CREATE DATABASE, e.g. \
             TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres\n{err}"
        )
    })?;
    let admin_url = cluster.url("postgres");
    exit_cleanup::own_cluster(cluster);
    Ok(TestServer { admin_url, drop_templates_at_exit: false, templates: Mutex::new(HashMap::new()) })
}

/// Connects and checks that the user may create databases, so misconfiguration fails once
/// with a clear message instead of in every test.
async fn check_external(url: &str) -> Result<(), String> {
    let client = connect(url).await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(|e| format!("checking CREATEDB privilege: {e}"))?;
    if row.get::<_, bool>(0) { Ok(()) } else { Err("the user lacks the CREATEDB privilege the tests need".to_owned()) }
}

/// Opens an admin connection (NoTls) and drives it on a spawned task; the task ends when
/// the returned client is dropped.
async fn connect(url: &str) -> Result<Client, HarnessError> {
    let mut config: Config = url.parse().map_err(|e| HarnessError::pg(format!("parsing database URL {url}"), e))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) =
        config.connect(NoTls).await.map_err(|e| HarnessError::pg(format!("connecting to {url}"), e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs a `CREATE DATABASE`, retrying while the source database has other sessions.
async fn create_with_retry(admin_url: &str, sql: &str) -> Result<(), HarnessError> {
    let client = connect(admin_url).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.batch_execute(sql).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < CREATE_ATTEMPTS && err.code() == Some(&SqlState::OBJECT_IN_USE) => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(err) => return Err(HarnessError::pg(sql.to_owned(), err)),
        }
    }
}

/// Drops a database, disconnecting its sessions. Best effort, bounded by
/// [`CLEANUP_TIMEOUT`].
async fn drop_database(admin_url: &str, name: &str) -> Result<(), HarnessError> {
    let work = async {
        let client = connect(admin_url).await?;
        let ident = quote_ident(name);
        let forced = client.batch_execute(&format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)")).await;
        if forced.is_err() {
            // `WITH (FORCE)` needs PostgreSQL 13; older servers: terminate, then drop.
            let _ = client
                .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
                .await;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {ident}"))
                .await
                .map_err(|e| HarnessError::pg(format!("dropping {name}"), e))?;
        }
        Ok(())
    };
    tokio::time::timeout(CLEANUP_TIMEOUT, work).await.unwrap_or(Ok(()))
}

/// Runs `fut` to completion on a new current-thread runtime. Call only from a thread that
/// is not already driving a runtime.
fn block_on_own_runtime<F: Future>(fut: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(fut),
        Err(err) => panic!("building a tokio runtime: {err}"),
    }
}

fn next_counter() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Eight random hex digits: std's randomly seeded hasher mixed with the clock avoids a
/// dependency on `rand` for names that only need to be unlikely to repeat.
fn random_suffix() -> String {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(next_counter());
    if let Ok(elapsed) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    format!("{:08x}", hasher.finish() & 0xffff_ffff)
}

/// `rosetta_tpl_<key>_<pid>_<random>`, with `key` reduced to `[a-z0-9_]` and shortened so
/// the name fits PostgreSQL's 63-byte identifier limit.
fn template_name(key: &str) -> String {
    let key: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(24).collect();
    format!("rosetta_tpl_{key}_{}_{}", std::process::id(), random_suffix())
}

/// Double-quotes an identifier for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database replaced by `db`, keeping user, host, port and parameters.
///
/// Handles URLs (`postgres://user@host:port/db?params`) and key/value connection strings
/// (`host=... dbname=...`).
pub(crate) fn with_database(url: &str, db: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let after_scheme = scheme_end + 3;
        let rest = &url[after_scheme..];
        // The authority ends at the first '/' or '?' (a '/' cannot appear in it unescaped).
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let params = tail.find('?').map_or("", |i| &tail[i..]);
        format!("{}{authority}/{db}{params}", &url[..after_scheme])
    } else {
        let mut parts: Vec<String> =
            url.split_whitespace().filter(|part| !part.starts_with("dbname=")).map(str::to_owned).collect();
        parts.push(format!("dbname={db}"));
        parts.join(" ")
    }
}

/// Cleanup at process exit: the shared throwaway cluster and templates on external servers.
///
/// Statics are never dropped, so the shared cluster would outlive the test process (its
/// postmaster runs in its own session). The Rust test harness ends the process through
/// `exit`, which runs `atexit` handlers, so one handler cleans up.
mod exit_cleanup {
    use super::*;

    static CLUSTER: Mutex<Option<PgCluster>> = Mutex::new(None);
    /// `(admin_url, template name)` pairs to drop.
    static TEMPLATES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    static REGISTERED: OnceLock<()> = OnceLock::new();

    /// Keeps the shared cluster alive until exit, then stops and deletes it.
    pub(super) fn own_cluster(cluster: PgCluster) {
        *CLUSTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cluster);
        register_hook();
    }

    /// Drops template `name` at exit.
    pub(super) fn register_template(admin_url: &str, name: &str) {
        TEMPLATES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((admin_url.to_owned(), name.to_owned()));
        register_hook();
    }

    fn register_hook() {
        REGISTERED.get_or_init(|| {
            // SAFETY: `atexit` only stores the function pointer; `run_at_exit` is a plain
            // `extern "C" fn()` that never unwinds (it catches panics), as atexit requires.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::atexit(run_at_exit) };
            if rc != 0 {
                eprintln!("rosetta-test-support: atexit registration failed; cleanup may leak");
            }
        });
    }

    extern "C" fn run_at_exit() {
        // Unwinding out of an extern "C" fn aborts the process; swallow any panic.
        let _ = std::panic::catch_unwind(|| {
            let templates = std::mem::take(&mut *TEMPLATES.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            if !templates.is_empty() {
                // A fresh thread: the exiting thread may still be inside a runtime context.
                let worker = std::thread::spawn(move || {
                    block_on_own_runtime(async move {
                        for (admin_url, name) in templates {
                            let _ = drop_template(&admin_url, &name).await;
                        }
                    });
                });
                let _ = worker.join();
            }
            let cluster = CLUSTER.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            drop(cluster);
        });
    }

    async fn drop_template(admin_url: &str, name: &str) -> Result<(), HarnessError> {
        let unmark = async {
            let client = connect(admin_url).await?;
            // A template cannot be dropped; unmark it first (fails harmlessly if it was
            // never marked because init panicked).
            let _ = client.batch_execute(&format!("ALTER DATABASE {} WITH IS_TEMPLATE false", quote_ident(name))).await;
            Ok::<(), HarnessError>(())
        };
        let _ = tokio::time::timeout(CLEANUP_TIMEOUT, unmark).await;
        drop_database(admin_url, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h:1/db?sslmode=disable&a=b", "x"),
            "postgresql://u:p@h:1/x?sslmode=disable&a=b"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(with_database("postgres://h?a=b", "x"), "postgres://h/x?a=b");
        assert_eq!(with_database("host=h port=5 dbname=old user=u", "x"), "host=h port=5 user=u dbname=x");
    }

    #[test]
    fn names_are_valid_identifiers() {
        let name = template_name("Postgres-Adapter/Migrations and a very long key indeed");
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with("rosetta_tpl_postgres_adapter_migrat"));
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert_ne!(random_suffix(), random_suffix());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
