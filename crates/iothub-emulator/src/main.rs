//! The `iothub-emulator` binary: parses flags, starts the local hub, prints the connection
//! strings and waits for Ctrl-C or SIGTERM (see [`iothub_emulator::cli`]).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use iothub_emulator::cli::{EmulatorArgs, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = EmulatorArgs::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    run(args).await
}
