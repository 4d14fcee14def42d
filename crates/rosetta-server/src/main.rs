use std::process::ExitCode;
use std::time::Duration;

/// How long the runtime waits at exit for blocking tasks still running (a name lookup of a
/// source whose DNS never answers, a host probe): their results are no longer wanted, and
/// waiting for them would keep a stopped server alive.
const BLOCKING_TASKS_GRACE: Duration = Duration::from_millis(250);

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(rosetta_server::cli::main(std::env::args().skip(1).collect()));
    runtime.shutdown_timeout(BLOCKING_TASKS_GRACE);
    code
}
