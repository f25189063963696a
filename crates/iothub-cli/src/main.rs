//! `iothub`: the command line of iothub-rs. See `iothub --help` and the crate README.

mod args;
mod bulk;
mod commands;
mod error;
mod hub;
mod jobs;
mod output;
mod quickstart;
mod simulate;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

use args::{Cli, Command, DeviceCommand, DeviceIdentity, EmulatorCommand, OutputFormat};
use error::Result;
use hub::Hub;
use output::Output;

/// `--local DIR` as `--local=DIR` when DIR is an existing directory that is not also a
/// command's name (clap alone would read `--local` without a value and DIR as a command).
fn join_local_dir(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        if arg == "--local"
            && let Some(next) = it.peek()
            && !next.to_string_lossy().starts_with('-')
            && !commands.iter().any(|c| *next == **c)
            && std::path::Path::new(next).is_dir()
        {
            let mut joined = std::ffi::OsString::from("--local=");
            joined.push(next);
            out.push(joined);
            it.next();
            continue;
        }
        out.push(arg);
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(join_local_dir(std::env::args_os().collect()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Emulator(EmulatorCommand::Start(args)) = cli.command {
        iothub_emulator::cli::init_logging();
        return runtime.block_on(iothub_emulator::cli::run(args));
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // SAS tokens (blob container URLs of jobs) never reach the terminal.
            eprintln!("error: {}", jobs::scrub_sas(&e.to_string()));
            ExitCode::from(e.status)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let out = Output {
        format: cli.output.unwrap_or(if std::io::stdout().is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Json
        }),
        show_keys: cli.show_keys,
    };
    let command = match cli.command {
        Command::Quickstart => return quickstart::run().await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "iothub", &mut std::io::stdout());
            return Ok(());
        }
        Command::Emulator(_) => unreachable!("handled before the runtime runs"),
        other => other,
    };
    let hub = Hub::resolve(&cli.hub)?;
    let rm = hub.registry()?;
    let outcome = match command {
        Command::DeviceIdentity(DeviceIdentity::Import(cmd)) => match cmd.file_import() {
            Some(args) => {
                // Throttling and brief outages are retried as the SDK does by default.
                let rm = rm.with_retry_policy(iothub_registry::RetryPolicy::default());
                bulk::import(&rm, out, args).await
            }
            None => jobs::import_from_blob(&rm, out, cmd).await,
        },
        Command::DeviceIdentity(DeviceIdentity::Export(cmd)) => match cmd.file_export() {
            Some(args) => bulk::export(&rm, out, args).await,
            None => jobs::export_to_blob(&rm, out, cmd).await,
        },
        Command::Job(cmd) => jobs::job(&rm, out, cmd).await,
        Command::DeviceIdentity(cmd) => commands::device_identity(&rm, out, cmd).await,
        Command::ModuleIdentity(cmd) => commands::module_identity(&rm, out, cmd).await,
        Command::DeviceTwin(cmd) => commands::device_twin(&rm, out, cmd).await,
        Command::ModuleTwin(cmd) => commands::module_twin(&rm, out, cmd).await,
        Command::Query(args) => commands::query(&rm, out, args).await,
        Command::InvokeDeviceMethod(args) => commands::invoke_method(&rm, out, args, None).await,
        Command::InvokeModuleMethod(args) => {
            commands::invoke_method(&rm, out, args.method, Some(args.module_id)).await
        }
        Command::C2dMessage(cmd) => commands::c2d_message(&rm, out, cmd).await,
        Command::MonitorFeedback(args) => commands::monitor_feedback(&rm, out, args).await,
        Command::MonitorEvents(args) => commands::monitor_events(&hub, out, args).await,
        Command::Configuration(cmd) => commands::configuration(&rm, out, cmd).await,
        Command::Edge(cmd) => commands::edge(&rm, out, cmd).await,
        Command::Stats => commands::stats(&rm, out).await,
        Command::Device(DeviceCommand::Simulate(args)) => {
            simulate::simulate(&hub, &rm, out, args).await
        }
        Command::Device(DeviceCommand::SendD2cMessage {
            device_id,
            data,
            props,
        }) => simulate::send_d2c(&hub, &rm, out, &device_id, data, props.as_deref()).await,
        Command::Quickstart | Command::Completions { .. } | Command::Emulator(_) => {
            unreachable!("handled above")
        }
    };
    outcome.map_err(|e| hub.hint(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn local_takes_its_directory_only_with_equals() -> std::result::Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["iothub", "--local", "stats"])?;
        assert_eq!(
            cli.hub.local.as_deref(),
            Some(std::path::Path::new(args::DEFAULT_LOCAL_DIR))
        );
        assert!(matches!(cli.command, Command::Stats));
        let cli = Cli::try_parse_from(["iothub", "stats", "--local=d"])?;
        assert_eq!(cli.hub.local.as_deref(), Some(std::path::Path::new("d")));
        Ok(())
    }

    #[test]
    fn local_with_a_space_takes_an_existing_directory() -> std::result::Result<(), clap::Error> {
        let dir = std::env::temp_dir();
        let args: Vec<std::ffi::OsString> = ["iothub", "--local"]
            .iter()
            .map(Into::into)
            .chain([dir.clone().into_os_string(), "stats".into()])
            .collect();
        let cli = Cli::try_parse_from(join_local_dir(args))?;
        assert_eq!(cli.hub.local.as_deref(), Some(dir.as_path()));
        // Not a directory: `--local` alone, and the word is the command.
        let args = ["iothub", "--local", "stats"]
            .iter()
            .map(Into::into)
            .collect();
        let cli = Cli::try_parse_from(join_local_dir(args))?;
        assert!(matches!(cli.command, Command::Stats));
        Ok(())
    }

    #[test]
    fn emulator_start_takes_the_emulator_flags() -> std::result::Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "iothub",
            "emulator",
            "start",
            "--https-port",
            "0",
            "--amqps-port",
            "0",
            "--mqtts-port",
            "0",
            "--data-dir",
            "d",
        ])?;
        assert!(matches!(
            cli.command,
            Command::Emulator(EmulatorCommand::Start(_))
        ));
        Ok(())
    }
}
