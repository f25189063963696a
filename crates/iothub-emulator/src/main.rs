//! The `iothub-emulator` binary: parses flags, starts the local hub, prints the connection
//! strings and waits for Ctrl-C or SIGTERM (see [`iothub_emulator::cli`]).

use std::process::ExitCode;

use clap::Parser;
use iothub_emulator::cli::{EmulatorArgs, init_logging, run};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = EmulatorArgs::parse();
    init_logging();
    run(args).await
}
