//! The `iothub-emulator` binary: parses flags, starts the emulator, prints the connection
//! string line and waits for Ctrl-C or SIGTERM.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use cli::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let emulator = match cli.builder().start().await {
        Ok(e) => e,
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            if let iothub_emulator::Error::Bind { protocol, .. } = &e {
                let flag = match *protocol {
                    "AMQPS" => "--amqps-port",
                    "MQTTS" => "--mqtts-port",
                    _ => "--https-port",
                };
                message.push_str(&format!(
                    " (choose another port with {flag}, or 0 for a free one)"
                ));
            }
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("CA certificate: {}", emulator.ca_path().display());
    eprintln!(
        "AMQPS (cloud-to-device) on port {}; AMQP over WebSockets on the HTTPS port at /$iothub/websocket; the built-in endpoint '{}' is served on both",
        emulator.amqps_port(),
        emulator.eventhub_name()
    );
    eprintln!(
        "MQTTS (devices) on port {}; MQTT over WebSockets on the HTTPS port at /$iothub/websocket",
        emulator.mqtts_port()
    );
    {
        let mut stdout = std::io::stdout().lock();
        // Both lines in one write, so a reader that takes the first line and closes the
        // pipe never makes the second one fail.
        let lines = format!(
            "IOTHUB_CONNECTION_STRING={}\nEVENTHUB_CONNECTION_STRING={}\n",
            emulator.connection_string(),
            emulator.eventhub_connection_string()
        );
        let printed = stdout
            .write_all(lines.as_bytes())
            .and_then(|()| stdout.flush());
        if let Err(e) = printed {
            eprintln!("error: cannot write the connection string to stdout: {e}");
            return ExitCode::FAILURE;
        }
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    match emulator.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
