//! Configuration: struct defaults → `config/default.toml` → `config/<profile>.toml` → `.env` →
//! environment variables (later wins). Keys are the environment variable names of the service
//! Rosetta replaces (`DATABASE_URL`, `DB_POOL_SIZE`, …), lower-cased in the TOML files.
//! Invalid values stop start-up with a message naming the setting.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rosetta_postgres_adapter::DatabaseUrlError;
use serde::{Deserialize, Deserializer, Serialize};

/// Which defaults and safety checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Local development: listens on 127.0.0.1, text logs, API keys optional.
    Development,
    /// Production: listens on 0.0.0.0, JSON logs, refuses to start without API keys.
    Production,
}

impl Profile {
    fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// The raw settings as layered by figment, before validation. Field names are the lower-cased
/// environment variable names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
struct RawSettings {
    app_env: Profile,
    #[serde(deserialize_with = "lenient_string")]
    database_url: Option<String>,
    db_pool_size: u32,
    db_max_overflow: u32,
    db_pool_timeout: f64,
    #[serde(deserialize_with = "lenient_string")]
    host: Option<String>,
    port: u16,
    api_v1_prefix: String,
    #[serde(deserialize_with = "lenient_string")]
    api_keys: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    api_key: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    secret_key: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    secret_keys: Option<String>,
    log_level: String,
    log_format: Option<LogFormat>,
    auto_migrate: bool,
    body_limit_bytes: usize,
    request_body_timeout_seconds: f64,
    request_head_timeout_seconds: f64,
    max_connections: usize,
    rate_limit_per_second: u32,
    rate_limit_burst: u32,
    workers: Option<usize>,
    shutdown_timeout_seconds: u64,
    readiness_timeout_seconds: f64,
    source_timeout_seconds: f64,
    wal_monitor_enabled: bool,
    wal_monitor_interval_seconds: u64,
    wal_monitor_timeout_seconds: u64,
    wal_monitor_concurrency: usize,
    wal_metrics_retention_days: u32,
    system_metrics_interval_seconds: u64,
    alerts_enabled: bool,
    alert_renotify_seconds: u64,
    notify_timeout_seconds: f64,
    notify_max_age_seconds: u64,
    notify_concurrency: usize,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            app_env: Profile::Development,
            database_url: None,
            db_pool_size: 20,
            db_max_overflow: 10,
            db_pool_timeout: 30.0,
            host: None,
            port: 8000,
            api_v1_prefix: "/api/v1".into(),
            api_keys: None,
            api_key: None,
            secret_key: None,
            secret_keys: None,
            log_level: "info".into(),
            log_format: None,
            auto_migrate: true,
            body_limit_bytes: 64 * 1024,
            request_body_timeout_seconds: 10.0,
            request_head_timeout_seconds: 5.0,
            max_connections: 1024,
            rate_limit_per_second: 0,
            rate_limit_burst: 0,
            workers: None,
            shutdown_timeout_seconds: 30,
            readiness_timeout_seconds: 2.0,
            source_timeout_seconds: 10.0,
            wal_monitor_enabled: true,
            wal_monitor_interval_seconds: 300,
            wal_monitor_timeout_seconds: 30,
            wal_monitor_concurrency: 64,
            wal_metrics_retention_days: 7,
            system_metrics_interval_seconds: 60,
            alerts_enabled: true,
            alert_renotify_seconds: 14_400,
            notify_timeout_seconds: 10.0,
            notify_max_age_seconds: 86_400,
            notify_concurrency: 32,
        }
    }
}

/// Environment values are parsed by figment (`12345` becomes a number); a key or password made of
/// digits must still be accepted as text.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Text(String),
        Integer(i128),
        Float(f64),
        Bool(bool),
    }
    Ok(Option::<Lenient>::deserialize(deserializer)?.map(|value| match value {
        Lenient::Text(text) => text,
        Lenient::Integer(n) => n.to_string(),
        Lenient::Float(n) => n.to_string(),
        Lenient::Bool(b) => b.to_string(),
    }))
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {problem}")]
pub struct ConfigError {
    /// The environment variable name of the setting.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.to_owned(), problem: problem.into() }
}

/// The keys from which secrets' encryption keys are derived, newest first (`SECRET_KEYS`, or
/// `SECRET_KEY` alone): the first seals, all open. `Debug` does not show them.
#[derive(Clone)]
pub struct SecretKeys(Vec<String>);

impl SecretKeys {
    /// The key material, newest first; never empty.
    pub fn expose(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKeys({} × ***)", self.0.len())
    }
}

/// The metadata database connection and pool.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// `postgres://…` URL (may contain a password: never log it).
    pub url: String,
    /// Most connections open at once (`DB_POOL_SIZE + DB_MAX_OVERFLOW`).
    pub max_connections: usize,
    /// How long a request waits for a connection before the service answers 503.
    pub pool_timeout: Duration,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"***")
            .field("max_connections", &self.max_connections)
            .field("pool_timeout", &self.pool_timeout)
            .finish()
    }
}

/// The HTTP listener and API behaviour.
#[derive(Clone)]
pub struct HttpConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Prefix of the versioned routes.
    pub api_prefix: String,
    /// Accepted API keys; empty means authentication is off.
    pub api_keys: Vec<String>,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// How long a request head may take to arrive, and how long an idle connection stays open.
    pub head_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Requests per second and burst per client IP; `None` = no limit.
    pub rate_limit: Option<(u32, u32)>,
    /// Worker threads.
    pub workers: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Duration,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("api_prefix", &self.api_prefix)
            .field("api_keys", &format_args!("{} key(s)", self.api_keys.len()))
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("body_timeout", &self.body_timeout)
            .field("head_timeout", &self.head_timeout)
            .field("max_connections", &self.max_connections)
            .field("rate_limit", &self.rate_limit)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `rosetta=debug,info`.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// The WAL monitor of this process.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Each source is sampled once per interval.
    pub interval: Duration,
    /// Bound on connecting to and querying one source.
    pub timeout: Duration,
    /// Sources sampled at once.
    pub concurrency: usize,
    /// History older than this is deleted.
    pub retention: Duration,
    /// How often host CPU / memory / swap are sampled.
    pub system_interval: Duration,
}

/// The validated configuration of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Profile in force.
    pub profile: Profile,
    /// Metadata database.
    pub database: DatabaseConfig,
    /// HTTP.
    pub http: HttpConfig,
    /// Secret-encryption key material.
    pub secret_keys: SecretKeys,
    /// Logging.
    pub log: LogConfig,
    /// Whether `serve` migrates the database first.
    pub auto_migrate: bool,
    /// Bound on the readiness database check.
    pub readiness_timeout: Duration,
    /// Bound on every operation on a source database (preflight, catalog, publication, slots,
    /// cleanup attempts).
    pub source_timeout: Duration,
    /// The WAL monitor; `None` when `WAL_MONITOR_ENABLED=false`.
    pub monitor: Option<MonitorConfig>,
    /// Alert evaluation and notification delivery.
    pub alerts: AlertsConfig,
}

/// Alert evaluation and notification delivery.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Whether the samples this process records are evaluated (off: no alert changes from them).
    pub evaluate: bool,
    /// A firing, unacknowledged alert is notified again after this long.
    pub renotify: Duration,
    /// Bound on one attempt to send a notification.
    pub notify_timeout: Duration,
    /// A delivery not delivered this long after its transition fails.
    pub notify_max_age: Duration,
    /// Notifications sent at once by this process.
    pub notify_concurrency: usize,
}

impl AlertsConfig {
    fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        if !(60..=30 * 86_400).contains(&raw.alert_renotify_seconds) {
            return Err(invalid("ALERT_RENOTIFY_SECONDS", "must be between 60 and 2592000 (30 days)"));
        }
        if !(60..=30 * 86_400).contains(&raw.notify_max_age_seconds) {
            return Err(invalid("NOTIFY_MAX_AGE_SECONDS", "must be between 60 and 2592000 (30 days)"));
        }
        if !(1..=1_000).contains(&raw.notify_concurrency) {
            return Err(invalid("NOTIFY_CONCURRENCY", "must be between 1 and 1000"));
        }
        Ok(Self {
            evaluate: raw.alerts_enabled,
            renotify: Duration::from_secs(raw.alert_renotify_seconds),
            notify_timeout: seconds("NOTIFY_TIMEOUT_SECONDS", raw.notify_timeout_seconds, 300.0)?,
            notify_max_age: Duration::from_secs(raw.notify_max_age_seconds),
            notify_concurrency: raw.notify_concurrency,
        })
    }
}

impl Config {
    /// Loads the configuration from `config_dir` (`default.toml`, `<APP_ENV>.toml`), `.env` in
    /// the working directory and the process environment.
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        // `.env` sits between the files and the environment: it never overrides a variable
        // that is already set.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(error) if error.not_found() => {}
            Err(error) => return Err(invalid(".env", error.to_string())),
        }
        Self::from_figment(Self::figment(config_dir))
    }

    fn figment(config_dir: &Path) -> Figment {
        let base = Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(Toml::file(config_dir.join("default.toml")))
            .merge(Env::raw().only(&["app_env"]));
        let profile: Profile = base.extract_inner("app_env").unwrap_or(Profile::Development);
        let names = setting_names();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        Figment::from(Serialized::defaults(RawSettings::default()))
            .merge(Toml::file(config_dir.join("default.toml")))
            .merge(Toml::file(config_dir.join(format!("{}.toml", profile.as_str()))))
            .merge(Env::raw().only(&keys))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(|error| {
            let setting = error.path.last().map(|key| key.to_uppercase()).unwrap_or_else(|| "configuration".into());
            invalid(&setting, error.kind.to_string())
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            profile: raw.app_env,
            database: DatabaseConfig::from_raw(&raw)?,
            http: HttpConfig::from_raw(&raw)?,
            secret_keys: SecretKeys::from_raw(&raw)?,
            log: LogConfig::from_raw(&raw)?,
            auto_migrate: raw.auto_migrate,
            readiness_timeout: seconds("READINESS_TIMEOUT_SECONDS", raw.readiness_timeout_seconds, 60.0)?,
            source_timeout: seconds("SOURCE_TIMEOUT_SECONDS", raw.source_timeout_seconds, 300.0)?,
            monitor: MonitorConfig::from_raw(&raw)?,
            alerts: AlertsConfig::from_raw(&raw)?,
        })
    }
}

/// A number of seconds in (0, `max`].
fn seconds(setting: &str, value: f64, max: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= max {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(setting, format!("must be a number of seconds in (0, {max}]")))
    }
}

impl DatabaseConfig {
    fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let url = raw
            .database_url
            .clone()
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| invalid("DATABASE_URL", "is required (postgres://user:password@host:port/database)"))?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("DATABASE_URL", "must start with postgres:// or postgresql://"));
        }
        rosetta_postgres_adapter::check_database_url(&url).map_err(|error| match error {
            DatabaseUrlError::Invalid(cause) => {
                invalid("DATABASE_URL", format!("is not a valid PostgreSQL connection URL ({cause})"))
            }
            other => invalid("DATABASE_URL", other.to_string()),
        })?;
        if raw.db_pool_size == 0 {
            return Err(invalid("DB_POOL_SIZE", "must be at least 1"));
        }
        Ok(Self {
            url,
            max_connections: raw.db_pool_size as usize + raw.db_max_overflow as usize,
            pool_timeout: seconds("DB_POOL_TIMEOUT", raw.db_pool_timeout, 3600.0)?,
        })
    }
}

impl HttpConfig {
    fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let api_keys = parse_api_keys(raw.api_keys.as_deref(), raw.api_key.as_deref())?;
        if raw.app_env == Profile::Production && api_keys.is_empty() {
            return Err(invalid("API_KEYS", "must be set in production (comma-separated keys)"));
        }
        let prefix = raw.api_v1_prefix.trim_end_matches('/').to_owned();
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains(['?', '#', ' ']) {
            return Err(invalid("API_V1_PREFIX", "must be a path such as /api/v1"));
        }
        if raw.body_limit_bytes < 1024 {
            return Err(invalid("BODY_LIMIT_BYTES", "must be at least 1024"));
        }
        if !(1..=1_000_000).contains(&raw.max_connections) {
            return Err(invalid("MAX_CONNECTIONS", "must be between 1 and 1000000"));
        }
        let rate_limit = match (raw.rate_limit_per_second, raw.rate_limit_burst) {
            (0, _) => None,
            (per_second, 0) => Some((per_second, per_second)),
            (per_second, burst) => Some((per_second, burst)),
        };
        if raw.workers == Some(0) {
            return Err(invalid("WORKERS", "must be at least 1"));
        }
        let default_host = match raw.app_env {
            Profile::Development => "127.0.0.1",
            Profile::Production => "0.0.0.0",
        };
        Ok(Self {
            host: raw.host.clone().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| default_host.into()),
            port: raw.port,
            api_prefix: prefix,
            api_keys,
            body_limit_bytes: raw.body_limit_bytes,
            body_timeout: seconds("REQUEST_BODY_TIMEOUT_SECONDS", raw.request_body_timeout_seconds, 3600.0)?,
            head_timeout: seconds("REQUEST_HEAD_TIMEOUT_SECONDS", raw.request_head_timeout_seconds, 3600.0)?,
            max_connections: raw.max_connections,
            rate_limit,
            workers: raw.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            shutdown_timeout: Duration::from_secs(raw.shutdown_timeout_seconds),
        })
    }
}

impl SecretKeys {
    /// `SECRET_KEYS` (comma-separated, newest first) when set — it is then the whole list and
    /// `SECRET_KEY` is not read — else `SECRET_KEY` alone.
    fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        const MIN_CHARS: usize = 32;
        if let Some(list) = raw.secret_keys.as_deref().filter(|list| !list.trim().is_empty()) {
            let keys: Vec<String> = list.split(',').map(|key| key.trim().to_owned()).collect();
            for (index, key) in keys.iter().enumerate() {
                let position = index + 1;
                if key.chars().count() < MIN_CHARS {
                    return Err(invalid(
                        "SECRET_KEYS",
                        format!("key {position} must be at least {MIN_CHARS} characters"),
                    ));
                }
                if keys[..index].contains(key) {
                    return Err(invalid("SECRET_KEYS", format!("key {position} repeats an earlier key")));
                }
            }
            return Ok(Self(keys));
        }
        let secret_key = raw.secret_key.clone().ok_or_else(|| {
            invalid(
                "SECRET_KEY",
                "is required (or SECRET_KEYS): at least 32 characters, used to encrypt stored secrets",
            )
        })?;
        if secret_key.chars().count() < MIN_CHARS {
            return Err(invalid("SECRET_KEY", "must be at least 32 characters"));
        }
        Ok(Self(vec![secret_key]))
    }
}

impl LogConfig {
    fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let level = raw.log_level.trim().to_owned();
        if level.is_empty() {
            return Err(invalid("LOG_LEVEL", "must not be empty"));
        }
        let default_format = match raw.app_env {
            Profile::Development => LogFormat::Text,
            Profile::Production => LogFormat::Json,
        };
        Ok(Self { level, format: raw.log_format.unwrap_or(default_format) })
    }
}

impl MonitorConfig {
    /// `None` when the monitor is disabled (its other settings are then not validated).
    fn from_raw(raw: &RawSettings) -> Result<Option<Self>, ConfigError> {
        if !raw.wal_monitor_enabled {
            return Ok(None);
        }
        if raw.wal_monitor_interval_seconds < 1 {
            return Err(invalid("WAL_MONITOR_INTERVAL_SECONDS", "must be at least 1"));
        }
        if !(1..=3600).contains(&raw.wal_monitor_timeout_seconds) {
            return Err(invalid("WAL_MONITOR_TIMEOUT_SECONDS", "must be between 1 and 3600"));
        }
        if !(1..=10_000).contains(&raw.wal_monitor_concurrency) {
            return Err(invalid("WAL_MONITOR_CONCURRENCY", "must be between 1 and 10000"));
        }
        if raw.wal_metrics_retention_days < 1 {
            return Err(invalid("WAL_METRICS_RETENTION_DAYS", "must be at least 1"));
        }
        if raw.system_metrics_interval_seconds < 1 {
            return Err(invalid("SYSTEM_METRICS_INTERVAL_SECONDS", "must be at least 1"));
        }
        Ok(Some(Self {
            interval: Duration::from_secs(raw.wal_monitor_interval_seconds),
            timeout: Duration::from_secs(raw.wal_monitor_timeout_seconds),
            concurrency: raw.wal_monitor_concurrency,
            retention: Duration::from_secs(u64::from(raw.wal_metrics_retention_days) * 24 * 3600),
            system_interval: Duration::from_secs(raw.system_metrics_interval_seconds),
        }))
    }
}

/// Every setting, as figment sees it (lower-cased): the field names of [`RawSettings`], taken
/// from the settings themselves, so a new field is read from its environment variable without a
/// list to keep in step.
fn setting_names() -> Vec<String> {
    match serde_json::to_value(RawSettings::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn parse_api_keys(keys: Option<&str>, key: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let mut parsed = Vec::new();
    for (setting, value) in [("API_KEYS", keys), ("API_KEY", key)] {
        for candidate in value.unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if candidate.len() < 16 {
                return Err(invalid(setting, "every key must be at least 16 characters"));
            }
            if !candidate.chars().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(setting, "keys may contain only visible ASCII characters"));
            }
            if !parsed.iter().any(|k| k == candidate) {
                parsed.push(candidate.to_owned());
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error by design
mod tests {
    use std::collections::BTreeSet;

    use figment::Jail;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn load(jail: &Jail) -> Result<Config, ConfigError> {
        Config::from_figment(Config::figment(&jail.directory().join("config")))
    }

    fn base_env(jail: &mut Jail) {
        jail.set_env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rosetta");
        jail.set_env("SECRET_KEY", SECRET);
    }

    #[test]
    fn defaults_follow_the_spec() {
        Jail::expect_with(|jail| {
            base_env(jail);
            let config = load(jail).map_err(|e| e.to_string())?;
            assert_eq!(config.profile, Profile::Development);
            assert_eq!((config.http.host.as_str(), config.http.port), ("127.0.0.1", 8000));
            assert_eq!(config.database.max_connections, 30);
            assert_eq!(config.database.pool_timeout, Duration::from_secs(30));
            assert_eq!(config.http.api_prefix, "/api/v1");
            assert_eq!(config.http.body_limit_bytes, 65_536);
            assert!(config.http.api_keys.is_empty() && config.auto_migrate);
            assert_eq!(config.log.format, LogFormat::Text);
            let monitor = config.monitor.ok_or("monitor enabled by default")?;
            assert_eq!((monitor.interval, monitor.timeout), (Duration::from_secs(300), Duration::from_secs(30)));
            assert_eq!(monitor.retention, Duration::from_secs(7 * 86_400));
            Ok(())
        });
    }

    #[test]
    fn files_then_profile_then_environment() {
        Jail::expect_with(|jail| {
            base_env(jail);
            jail.create_dir("config")?;
            jail.create_file("config/default.toml", "port = 9000\ndb_pool_size = 5\n")?;
            jail.create_file("config/production.toml", "port = 9100\napi_keys = \"k-0123456789abcdef\"\n")?;
            jail.set_env("APP_ENV", "production");
            jail.set_env("DB_POOL_SIZE", "7");
            let config = load(jail).map_err(|e| e.to_string())?;
            assert_eq!(config.http.port, 9100, "profile file wins over default file");
            assert_eq!(config.database.max_connections, 17, "environment wins over files");
            assert_eq!(config.http.host, "0.0.0.0");
            assert_eq!(config.log.format, LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_setting() {
        Jail::expect_with(|jail| {
            base_env(jail);
            jail.set_env("PORT", "eighty");
            let error = load(jail).err().map(|e| e.setting);
            assert_eq!(error.as_deref(), Some("PORT"));
            jail.set_env("PORT", "8000");
            jail.set_env("SECRET_KEY", "short");
            assert_eq!(load(jail).err().map(|e| e.setting).as_deref(), Some("SECRET_KEY"));
            jail.set_env("SECRET_KEY", SECRET);
            jail.set_env("DB_POOL_SIZE", "0");
            assert_eq!(load(jail).err().map(|e| e.setting).as_deref(), Some("DB_POOL_SIZE"));
            jail.set_env("DB_POOL_SIZE", "5");
            jail.set_env("WAL_MONITOR_INTERVAL_SECONDS", "0");
            assert_eq!(load(jail).err().map(|e| e.setting).as_deref(), Some("WAL_MONITOR_INTERVAL_SECONDS"));
            jail.set_env("WAL_MONITOR_ENABLED", "false");
            assert!(load(jail).map_err(|e| e.to_string())?.monitor.is_none(), "a disabled monitor is not validated");
            Ok(())
        });
    }

    #[test]
    fn production_requires_api_keys() {
        Jail::expect_with(|jail| {
            base_env(jail);
            jail.set_env("APP_ENV", "production");
            let error = load(jail).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("API_KEYS"), "{error}");
            jail.set_env("API_KEY", "1234567890123456");
            let config = load(jail).map_err(|e| e.to_string())?;
            assert_eq!(config.http.api_keys, vec!["1234567890123456".to_owned()], "numeric keys stay text");
            Ok(())
        });
    }

    #[test]
    fn a_malformed_database_url_is_named() {
        Jail::expect_with(|jail| {
            base_env(jail);
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db:notaport/rosetta");
            let error = load(jail).err().ok_or("a malformed URL is refused")?;
            assert_eq!(error.setting, "DATABASE_URL");
            assert!(!error.to_string().contains("hunter2"), "{error}");
            jail.set_env("DATABASE_URL", "postgres://db/rosetta?frobnicate=1");
            assert_eq!(load(jail).err().map(|e| e.setting).as_deref(), Some("DATABASE_URL"));
            Ok(())
        });
    }

    /// Each setting with a value its validation refuses (so the error proves the variable was
    /// read and checked), or, for free-form text, a value to find in the configuration.
    const REFUSED: &[(&str, &str)] = &[
        ("APP_ENV", "staging"),
        ("DATABASE_URL", "mysql://db/x"),
        ("DB_POOL_SIZE", "0"),
        ("DB_MAX_OVERFLOW", "-1"),
        ("DB_POOL_TIMEOUT", "0"),
        ("PORT", "eighty"),
        ("API_V1_PREFIX", "api"),
        ("API_KEYS", "short"),
        ("API_KEY", "short"),
        ("SECRET_KEY", "short"),
        ("SECRET_KEYS", "0123456789abcdef0123456789abcdef,short"),
        ("LOG_LEVEL", " "),
        ("LOG_FORMAT", "xml"),
        ("AUTO_MIGRATE", "maybe"),
        ("BODY_LIMIT_BYTES", "10"),
        ("REQUEST_BODY_TIMEOUT_SECONDS", "0"),
        ("REQUEST_HEAD_TIMEOUT_SECONDS", "0"),
        ("MAX_CONNECTIONS", "0"),
        ("RATE_LIMIT_PER_SECOND", "-1"),
        ("RATE_LIMIT_BURST", "-1"),
        ("WORKERS", "0"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "-1"),
        ("READINESS_TIMEOUT_SECONDS", "0"),
        ("SOURCE_TIMEOUT_SECONDS", "0"),
        ("WAL_MONITOR_ENABLED", "maybe"),
        ("WAL_MONITOR_INTERVAL_SECONDS", "0"),
        ("WAL_MONITOR_TIMEOUT_SECONDS", "0"),
        ("WAL_MONITOR_CONCURRENCY", "0"),
        ("WAL_METRICS_RETENTION_DAYS", "0"),
        ("SYSTEM_METRICS_INTERVAL_SECONDS", "0"),
        ("ALERTS_ENABLED", "maybe"),
        ("ALERT_RENOTIFY_SECONDS", "10"),
        ("NOTIFY_TIMEOUT_SECONDS", "0"),
        ("NOTIFY_MAX_AGE_SECONDS", "10"),
        ("NOTIFY_CONCURRENCY", "0"),
    ];
    const READ_BACK: &[(&str, &str)] = &[("HOST", "10.1.2.3")];

    #[test]
    fn every_setting_is_read_from_its_environment_variable_and_checked() {
        let names: BTreeSet<String> = setting_names().iter().map(|name| name.to_uppercase()).collect();
        let covered: BTreeSet<String> = REFUSED.iter().chain(READ_BACK).map(|(key, _)| (*key).to_owned()).collect();
        assert_eq!(names, covered, "every setting has a case here (and nothing else does)");
        for (key, value) in REFUSED {
            Jail::expect_with(|jail| {
                base_env(jail);
                jail.set_env(key, value);
                let error = load(jail).err().map(|e| e.setting);
                assert_eq!(error.as_deref(), Some(*key), "{key}={value:?} must be refused under its name");
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            base_env(jail);
            jail.set_env("HOST", "10.1.2.3");
            assert_eq!(load(jail).map_err(|e| e.to_string())?.http.host, "10.1.2.3");
            Ok(())
        });
    }

    #[test]
    fn secret_keys_list_the_keys_newest_first_and_replace_secret_key() {
        const NEW: &str = "fedcba9876543210fedcba9876543210";
        Jail::expect_with(|jail| {
            base_env(jail);
            assert_eq!(load(jail).map_err(|e| e.to_string())?.secret_keys.expose(), vec![SECRET]);
            jail.set_env("SECRET_KEYS", format!(" {NEW} , {SECRET} "));
            assert_eq!(load(jail).map_err(|e| e.to_string())?.secret_keys.expose(), vec![NEW, SECRET]);
            jail.set_env("SECRET_KEYS", format!("{NEW},{NEW}"));
            let error = load(jail).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("SECRET_KEYS") && error.contains("key 2 repeats"), "{error}");
            jail.set_env("SECRET_KEYS", format!("{NEW},,{SECRET}"));
            let error = load(jail).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("key 2 must be at least 32 characters") && !error.contains(NEW), "{error}");
            Ok(())
        });
    }

    #[test]
    fn every_setting_is_documented_in_the_readme() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
            .unwrap_or_else(|e| panic!("README: {e}"));
        let configuration = readme.split("\n## Configuration").nth(1).and_then(|rest| rest.split("\n## ").next());
        let configuration = configuration.unwrap_or_else(|| panic!("the README has a Configuration section"));
        for name in setting_names() {
            let documented = format!("`{}`", name.to_uppercase());
            assert!(configuration.contains(&documented), "{documented} is not in the README's Configuration section");
        }
    }

    #[test]
    fn missing_database_url_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("SECRET_KEY", SECRET);
            assert_eq!(load(jail).err().map(|e| e.setting).as_deref(), Some("DATABASE_URL"));
            Ok(())
        });
    }

    #[test]
    fn debug_output_hides_secrets() {
        Jail::expect_with(|jail| {
            base_env(jail);
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db/rosetta");
            jail.set_env("API_KEYS", "key-aaaaaaaaaaaaaaaa,key-bbbbbbbbbbbbbbbb");
            let debug = format!("{:?}", load(jail).map_err(|e| e.to_string())?);
            for secret in ["hunter2", SECRET, "key-aaaa"] {
                assert!(!debug.contains(secret), "{secret} leaked: {debug}");
            }
            Ok(())
        });
    }
}
