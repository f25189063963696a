//! The emulator as a new user runs it: the `iothub-emulator` binary on a fresh data
//! directory, and the official Python SDK given only the printed connection string and
//! `ca.pem`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use iothub_conformance::{assert_success, python, run_script, tests_dir};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `target/<profile>/iothub-emulator`, built by `cargo test --workspace` alongside this test.
fn emulator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("iothub-emulator");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p iothub-emulator` (or `cargo test --workspace`)",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_works_with_only_the_printed_connection_string_and_ca() {
    let python = python();
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(emulator_binary())
        .args([
            "--https-port",
            "0",
            "--amqps-port",
            "0",
            "--mqtts-port",
            "0",
            "--data-dir",
        ])
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start iothub-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the emulator printed nothing within 60 s")
        .expect("read stdout")
        .expect("stdout closed before the connection string");
    let connection_string = first
        .strip_prefix("IOTHUB_CONNECTION_STRING=")
        .unwrap_or_else(|| panic!("first stdout line is not the connection string: {first}"))
        .to_owned();
    assert!(connection_string.contains("SharedAccessKeyName=iothubowner"));

    let env: Vec<(String, OsString)> = vec![
        ("IOTHUB_CONNECTION_STRING".into(), connection_string.into()),
        (
            "REQUESTS_CA_BUNDLE".into(),
            data.path().join("ca.pem").into_os_string(),
        ),
    ];
    let dir = tests_dir().join("python");
    let out = run_script(
        &python,
        &[dir.join("devices.py").into_os_string()],
        &dir,
        &env,
    )
    .await;

    child.start_kill().expect("stop the emulator");
    let _ = child.wait().await;
    assert_success("python devices.py against the emulator binary", &out);
}
