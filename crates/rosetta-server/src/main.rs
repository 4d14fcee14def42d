use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    rosetta_server::cli::main(std::env::args().skip(1).collect()).await
}
