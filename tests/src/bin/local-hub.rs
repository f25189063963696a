//! The local hub as a process of its own (`iothub_emulator::cli`, as the `iothub-emulator`
//! binary runs it), so suites can `kill -9` it and start it again on the same data directory.

use std::process::ExitCode;

use clap::Parser;
use iothub_emulator::cli::{EmulatorArgs, init_logging, run};

#[tokio::main]
async fn main() -> ExitCode {
    let args = EmulatorArgs::parse();
    init_logging();
    run(args).await
}
