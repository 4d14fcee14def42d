//! The command line: `rosetta-server [serve]`, `migrate`, `rotate-secrets [--dry-run]`, `--help`,
//! `--version`.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::startup::Application;

const USAGE: &str = "\
Rosetta control plane for PostgreSQL change-data-capture pipelines.

Usage: rosetta-server [COMMAND]

Commands:
  serve     Migrate the metadata database (unless AUTO_MIGRATE=false) and serve the API (default)
  migrate   Apply pending migrations to the metadata database and exit
  rotate-secrets [--dry-run]
            Re-seal every stored secret under an older key with the newest of SECRET_KEYS
            (--dry-run: print the counts per key and change nothing)

Options:
  -h, --help     Print this help
  -V, --version  Print the version

Configuration: config/default.toml, config/<APP_ENV>.toml, .env and environment variables
(DATABASE_URL, SECRET_KEYS or SECRET_KEY, API_KEYS, HOST, PORT, …; see README.md).";

enum Command {
    Serve,
    Migrate,
    RotateSecrets { dry_run: bool },
}

/// Runs the command named by `args` (without the program name) and returns the exit code.
pub async fn main(args: Vec<String>) -> ExitCode {
    let command = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => Command::Serve,
        ["migrate"] => Command::Migrate,
        ["rotate-secrets"] => Command::RotateSecrets { dry_run: false },
        ["rotate-secrets", "--dry-run"] => Command::RotateSecrets { dry_run: true },
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ["-V" | "--version"] => {
            println!("rosetta-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("unrecognised arguments: {}\n\n{USAGE}", args.join(" "));
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(Path::new("config")) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    crate::telemetry::init(&config.log);
    let outcome = match command {
        Command::Migrate => crate::startup::migrate(&config.database.url).await,
        Command::RotateSecrets { dry_run } => crate::secrets::rotate(&config, dry_run).await,
        Command::Serve => match Application::build(config).await {
            Ok(application) => application.run_until_stopped().await,
            Err(error) => Err(error),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "rosetta-server failed");
            ExitCode::FAILURE
        }
    }
}
