//! Harness for the conformance suites.
//!
//! Each suite starts its own in-process emulator (HTTPS on port 0, certificates and store in
//! a temporary directory) so suites run in parallel, then runs one scenario script of an
//! official Azure IoT Hub service SDK against it:
//!
//! * Python: `tests/python/<name>.py` with the `azure-iot-hub` package from `<repo>/.venv`
//!   (or the interpreter named by `IOTHUB_TEST_PYTHON`);
//! * Node: `tests/node/<name>.js` with `azure-iothub` from `tests/node/node_modules`, run as
//!   `node -r ./preload-port.js <name>.js`.
//!
//! Both get `IOTHUB_CONNECTION_STRING` (policy `iothubowner`),
//! `IOTHUB_REGISTRY_READ_CONNECTION_STRING`, `IOTHUB_SERVICE_CONNECTION_STRING`,
//! `EMULATOR_HTTPS_PORT`, `EMULATOR_AMQPS_PORT` (cloud-to-device messaging over AMQP), the CA
//! file (`REQUESTS_CA_BUNDLE` for Python, `NODE_EXTRA_CA_CERTS` for Node) and its path again as
//! `EMULATOR_CA_PATH` (for clients that ignore both, such as Python's uamqp). A script passes when it
//! exits 0; otherwise the test fails and prints everything the script wrote. A missing
//! toolchain is a failure that says to run `bash tests/setup.sh`, never a silent skip.

pub mod azurite;
pub mod process;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use iothub_emulator::Emulator;
use tempfile::TempDir;
use tokio::process::Command;

/// How long one scenario script may run before it is killed and the test fails.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// The repository root (the parent of this package's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `tests/` in the repository.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The emulator's cloud-to-device feedback batch interval in the suites (IoT Hub's is 15 s).
pub const FEEDBACK_BATCH_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) const SETUP_HINT: &str = "run `bash tests/setup.sh` from the repository root first";

/// A running emulator with its own temporary data directory.
pub struct Hub {
    emulator: Emulator,
    dir: TempDir,
}

impl Hub {
    /// Starts an emulator on a free port with a fresh temporary data directory.
    pub async fn start() -> Hub {
        Self::start_with(|b| b).await
    }

    /// Starts an emulator that appends one JSON line per request to `journal`.
    pub async fn start_with_journal(journal: &Path) -> Hub {
        let journal = journal.to_path_buf();
        Self::start_with(move |b| b.journal(journal)).await
    }

    async fn start_with(
        configure: impl FnOnce(iothub_emulator::EmulatorBuilder) -> iothub_emulator::EmulatorBuilder,
    ) -> Hub {
        let dir = tempfile::Builder::new()
            .prefix("iothub-conformance-")
            .tempdir()
            .expect("create a temporary directory");
        let builder = Emulator::builder()
            .data_dir(dir.path().join("data"))
            .https_port(0)
            .amqps_port(0)
            .mqtts_port(0)
            // Feedback batches at once rather than every 15 s, so feedback checks stay short.
            .feedback_batch_interval(FEEDBACK_BATCH_INTERVAL);
        let emulator = configure(builder)
            .start()
            .await
            .expect("start the emulator");
        Hub { emulator, dir }
    }

    /// The service connection string (`HostName=localhost:<port>;SharedAccessKeyName=iothubowner;…`).
    pub fn connection_string(&self) -> String {
        self.emulator.connection_string()
    }

    /// The CA certificate file clients must trust.
    pub fn ca_path(&self) -> PathBuf {
        self.emulator.ca_path()
    }

    /// The HTTPS port.
    pub fn https_port(&self) -> u16 {
        self.emulator.https_port()
    }

    /// The AMQPS port (cloud-to-device messaging over AMQP 1.0 and TLS).
    pub fn amqps_port(&self) -> u16 {
        self.emulator.amqps_port()
    }

    /// The emulator itself (its event log, ports, connection strings).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// A scratch directory that lives as long as the hub.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment every scenario script gets.
    pub fn script_env(&self) -> Vec<(String, OsString)> {
        let mut env: Vec<(String, OsString)> = vec![
            (
                "IOTHUB_CONNECTION_STRING".into(),
                self.connection_string().into(),
            ),
            (
                "EMULATOR_HTTPS_PORT".into(),
                self.https_port().to_string().into(),
            ),
            (
                "EMULATOR_AMQPS_PORT".into(),
                self.amqps_port().to_string().into(),
            ),
            (
                "EMULATOR_MQTTS_PORT".into(),
                self.emulator.mqtts_port().to_string().into(),
            ),
            (
                "EVENTHUB_CONNECTION_STRING".into(),
                self.emulator.eventhub_connection_string().into(),
            ),
            ("EMULATOR_CA_PATH".into(), self.ca_path().into_os_string()),
            ("REQUESTS_CA_BUNDLE".into(), self.ca_path().into_os_string()),
            (
                "NODE_EXTRA_CA_CERTS".into(),
                self.ca_path().into_os_string(),
            ),
        ];
        // Connection strings of the narrower built-in policies, for the access-rights checks.
        for (policy, var) in [
            ("registryRead", "IOTHUB_REGISTRY_READ_CONNECTION_STRING"),
            ("service", "IOTHUB_SERVICE_CONNECTION_STRING"),
        ] {
            let cs = self
                .emulator
                .policy_connection_string(policy)
                .unwrap_or_else(|| panic!("the emulator has no '{policy}' policy"));
            env.push((var.into(), cs.into()));
        }
        env
    }

    /// Stops the emulator.
    pub async fn shutdown(self) {
        self.emulator
            .shutdown()
            .await
            .expect("shut the emulator down");
    }
}

/// The Python interpreter that has `azure-iot-hub` installed: `IOTHUB_TEST_PYTHON`, else
/// `<repo>/.venv/bin/python`. Panics with a setup hint when it is missing.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("IOTHUB_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "IOTHUB_TEST_PYTHON={} does not exist; {SETUP_HINT}",
            p.display()
        );
        return p;
    }
    let venv = repo_root().join(".venv").join("bin").join("python");
    assert!(
        venv.exists(),
        "no Python virtual environment at .venv/bin/python; {SETUP_HINT}"
    );
    venv
}

/// `tests/node`, after checking that its `node_modules` holds `azure-iothub`.
pub fn node_dir() -> PathBuf {
    let dir = tests_dir().join("node");
    assert!(
        dir.join("node_modules")
            .join("azure-iothub")
            .join("package.json")
            .exists(),
        "tests/node/node_modules/azure-iothub is missing; {SETUP_HINT}"
    );
    dir
}

/// What a finished script did.
#[derive(Debug)]
pub struct ScriptOutput {
    /// Exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl ScriptOutput {
    fn report(&self, what: &str) -> String {
        format!(
            "{what} exited with {:?} after {:.1?}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `program args…` in `cwd` with `env` added, killing it after [`SCRIPT_TIMEOUT`].
pub async fn run_script(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    env: &[(String, OsString)],
) -> ScriptOutput {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {SETUP_HINT}", program.display()));
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("waiting for {} failed: {e}", program.display()),
        Err(_) => panic!(
            "{} {:?} did not finish within {SCRIPT_TIMEOUT:?} and was killed",
            program.display(),
            args
        ),
    };
    ScriptOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Panics with the script's whole output unless it exited 0.
pub fn assert_success(what: &str, out: &ScriptOutput) {
    assert!(out.code == Some(0), "{}", out.report(what));
}

/// Runs `tests/python/<name>.py` against a fresh emulator and requires exit 0.
pub async fn python_scenario(name: &str) -> ScriptOutput {
    python_scenario_with(name, false).await
}

/// Starts Azurite when `with_azurite` (its variables go to the script, see
/// [`azurite::Azurite::script_env`]).
async fn scenario_env(
    hub: &Hub,
    with_azurite: bool,
) -> (Vec<(String, OsString)>, Option<azurite::Azurite>) {
    let mut env = hub.script_env();
    if !with_azurite {
        return (env, None);
    }
    let storage = azurite::Azurite::start().await;
    env.extend(storage.script_env());
    (env, Some(storage))
}

/// Runs `tests/python/<name>.py` against a fresh emulator (and a fresh Azurite when
/// `with_azurite`) and requires exit 0.
pub async fn python_scenario_with(name: &str, with_azurite: bool) -> ScriptOutput {
    let python = python();
    let hub = Hub::start().await;
    let (env, storage) = scenario_env(&hub, with_azurite).await;
    let script = tests_dir().join("python").join(format!("{name}.py"));
    assert!(script.exists(), "missing scenario {}", script.display());
    let out = run_script(
        &python,
        &[script.into_os_string()],
        &tests_dir().join("python"),
        &env,
    )
    .await;
    hub.shutdown().await;
    if let Some(storage) = storage {
        storage.stop().await;
    }
    assert_success(&format!("python {name}.py"), &out);
    println!(
        "python {name}.py: {}",
        out.stdout.lines().last().unwrap_or_default()
    );
    out
}

/// Runs `tests/node/<name>.js` (with the port preload) against a fresh emulator and requires exit 0.
pub async fn node_scenario(name: &str) -> ScriptOutput {
    node_scenario_with(name, false).await
}

/// Runs `tests/node/<name>.js` against a fresh emulator (and a fresh Azurite when
/// `with_azurite`) and requires exit 0.
pub async fn node_scenario_with(name: &str, with_azurite: bool) -> ScriptOutput {
    let dir = node_dir();
    let hub = Hub::start().await;
    let (env, storage) = scenario_env(&hub, with_azurite).await;
    let script = dir.join(format!("{name}.js"));
    assert!(script.exists(), "missing scenario {}", script.display());
    let args: Vec<OsString> = vec![
        "-r".into(),
        "./preload-port.js".into(),
        script.into_os_string(),
    ];
    let out = run_script(Path::new("node"), &args, &dir, &env).await;
    hub.shutdown().await;
    if let Some(storage) = storage {
        storage.stop().await;
    }
    assert_success(&format!("node {name}.js"), &out);
    println!(
        "node {name}.js: {}",
        out.stdout.lines().last().unwrap_or_default()
    );
    out
}

/// Reads a journal file written by the emulator: one JSON value per non-empty line.
pub fn read_journal(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read journal {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("journal line {} is not JSON ({e}): {l}", i + 1))
        })
        .collect()
}

/// An official device SDK's device (or module) run as a child process that speaks the line
/// protocol of `tests/python/device_agent.py` and `tests/node/device_agent.js`: one JSON
/// event per stdout line, one JSON command per stdin line. The Rust test plays the service.
pub struct DeviceAgent {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

/// Which official device SDK runs the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSdk {
    /// Python `azure-iot-device`.
    Python,
    /// Node `azure-iot-device` with `azure-iot-device-mqtt` / `-http`.
    Node,
}

impl DeviceAgent {
    /// Starts the agent for `connection_string` over `transport` (`mqtt`, `mqttws`, or
    /// `http` for Node) and waits for its `connected` event.
    pub async fn start(
        hub: &Hub,
        sdk: AgentSdk,
        connection_string: &str,
        transport: &str,
    ) -> DeviceAgent {
        use tokio::io::AsyncBufReadExt as _;
        let (program, args, cwd): (PathBuf, Vec<OsString>, PathBuf) = match sdk {
            AgentSdk::Python => (
                python(),
                vec![
                    tests_dir()
                        .join("python")
                        .join("device_agent.py")
                        .into_os_string(),
                ],
                tests_dir().join("python"),
            ),
            AgentSdk::Node => (
                PathBuf::from("node"),
                vec![
                    "-r".into(),
                    "./preload-port.js".into(),
                    "device_agent.js".into(),
                ],
                node_dir(),
            ),
        };
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("DEVICE_CONNECTION_STRING", connection_string)
            .env("DEVICE_TRANSPORT", transport)
            .env("DEVICE_METHODS", "echo,reboot");
        for (k, v) in hub.script_env() {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {sdk:?} device agent: {e}; {SETUP_HINT}"));
        let stdin = child.stdin.take().expect("agent stdin");
        let stdout = child.stdout.take().expect("agent stdout");
        let mut agent = DeviceAgent {
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
            seen: Vec::new(),
        };
        agent.expect("connected", Duration::from_secs(30)).await;
        agent
    }

    /// The next event named `name` within `wait` (other events are kept in the log shown on
    /// failure).
    pub async fn expect(&mut self, name: &str, wait: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => panic!(
                    "the device agent ended while waiting for '{name}'; it printed: {:#?}",
                    self.seen
                ),
                Err(_) => panic!(
                    "no '{name}' event from the device agent within {wait:?}; it printed: {:#?}",
                    self.seen
                ),
            };
            self.seen.push(line.clone());
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["event"] == name {
                return event;
            }
        }
    }

    /// Sends a command line.
    pub async fn command(&mut self, command: serde_json::Value) {
        use tokio::io::AsyncWriteExt as _;
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the device agent");
        self.stdin
            .flush()
            .await
            .expect("flush the device agent's stdin");
    }

    /// Asks the agent to disconnect and waits for it to exit.
    pub async fn exit(mut self) {
        self.command(serde_json::json!({"cmd": "exit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
    }
}
