//! Schema fuzzing: a bounded schemathesis run of `openapi/iothub.yaml` against the emulator.
//!
//! Every check runs, with the seed, the exclusions of known false positives and the cache
//! settings of `tests/schemathesis/schemathesis.toml`, and the hooks of
//! `tests/schemathesis/hooks.py` (api-version, a SAS token, ids that survive URL encoding).
//! TLS is verified with the emulator's CA. The run fails on any 5xx, any answer that does not
//! match the spec and any failure the configuration does not explain; it is killed, and the
//! test fails, when it does not finish within [`HARD_TIMEOUT`].

use std::ffi::OsString;
use std::process::Stdio;
use std::time::{Duration, Instant};

use iothub_conformance::{Hub, python, read_journal, repo_root, tests_dir};
use tokio::process::Command;

/// Schemathesis' own time budget for generating and sending requests.
const MAX_TIME_SECONDS: u32 = 100;
/// The whole run, start-up and reports included, is killed after this.
const HARD_TIMEOUT: Duration = Duration::from_secs(150);
/// Must match `seed` in `tests/schemathesis/schemathesis.toml`.
const SEED: &str = "20261130";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_fuzzing() {
    let schemathesis = python()
        .parent()
        .expect("the interpreter is in a directory")
        .join("schemathesis");
    assert!(
        schemathesis.exists(),
        "schemathesis is not installed next to {}; run `bash tests/setup.sh` from the repository root first",
        python().display()
    );
    // The request journal (read-only by design) gives the number of requests the hub answered.
    let journal_dir = tempfile::tempdir().expect("create a temporary directory");
    let journal = journal_dir.path().join("journal.jsonl");
    let hub = Hub::start_with_journal(&journal).await;
    let reports = hub.scratch_dir().join("schemathesis-reports");
    let st_dir = tests_dir().join("schemathesis");
    let args: Vec<OsString> = vec![
        "--config-file".into(),
        st_dir.join("schemathesis.toml").into(),
        "run".into(),
        repo_root().join("openapi").join("iothub.yaml").into(),
        "--url".into(),
        format!("https://localhost:{}", hub.https_port()).into(),
        "--max-time".into(),
        MAX_TIME_SECONDS.to_string().into(),
        // One worker: with several threads, CPython 3.11 can fail while schemathesis compiles
        // code concurrently ("AST constructor recursion depth mismatch"), an error of the tool.
        "--workers".into(),
        "1".into(),
        "--tls-verify".into(),
        hub.ca_path().into(),
        "--generation-database".into(),
        "none".into(),
        "--report".into(),
        "junit".into(),
        "--report-dir".into(),
        reports.clone().into(),
        "--no-color".into(),
    ];
    let mut cmd = Command::new(&schemathesis);
    cmd.args(&args)
        // The scratch directory, so nothing schemathesis writes lands in the repository.
        .current_dir(hub.scratch_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("SCHEMATHESIS_HOOKS", st_dir.join("hooks.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in hub.script_env() {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", schemathesis.display()));
    let output = match tokio::time::timeout(HARD_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("waiting for schemathesis failed: {e}"),
        Err(_) => panic!(
            "schemathesis did not finish within {HARD_TIMEOUT:?} and was killed (a hang in the hub?)"
        ),
    };
    let elapsed = started.elapsed();
    hub.shutdown().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!(
        "schemathesis exited with {:?} after {elapsed:.1?}\n----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}",
        output.status.code()
    );
    assert!(output.status.success(), "{report}");
    assert!(
        stdout.contains(&format!("Seed: {SEED}")),
        "the run did not use seed {SEED}\n{report}"
    );
    let cases = stdout
        .lines()
        .find(|l| l.trim_start().ends_with("generated") || l.contains(" generated,"))
        .map(str::trim)
        .unwrap_or("(no test-case count printed)");
    let requests = read_journal(&journal).len();
    println!(
        "schemathesis: {requests} requests, test cases: {cases}, {elapsed:.1?} (seed {SEED}, --max-time {MAX_TIME_SECONDS})"
    );
}
