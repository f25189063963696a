//! The `iothub` binary against a local hub started in-process (free ports, a temporary data
//! directory): every command, and the error cases a user meets first.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use iothub_device_sim::{DeviceConfig, DeviceOptions, SimulatedDevice};
use iothub_emulator::{Emulator, ThrottleConfig};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Hub {
    emulator: Emulator,
    dir: tempfile::TempDir,
}

async fn start_with(
    configure: impl FnOnce(iothub_emulator::EmulatorBuilder) -> iothub_emulator::EmulatorBuilder,
) -> Result<Hub, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let builder = Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .amqps_port(0)
        .mqtts_port(0)
        .feedback_batch_interval(Duration::from_millis(100));
    let emulator = configure(builder).start().await?;
    Ok(Hub { emulator, dir })
}

async fn start() -> Result<Hub, Box<dyn std::error::Error>> {
    start_with(|b| b).await
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn ok(self) -> Self {
        assert_eq!(
            self.status, 0,
            "exit status {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        );
        self
    }

    /// A failure: exit status 1 and one `error: …` line on stderr, with no Rust `Debug`
    /// output or panic text.
    fn fails_with(self, text: &str) -> Self {
        assert_eq!(
            self.status, 1,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(
            self.stderr.contains(text),
            "expected '{text}' in:\n{}",
            self.stderr
        );
        for debug in ["Some(", "None", " { ", "panicked", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(debug),
                "Debug output: {}",
                self.stderr
            );
        }
        self
    }
}

fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_iothub"));
    cmd.args(args)
        .env_remove("IOTHUB_CONNECTION_STRING")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn iothub_raw(args: &[&str]) -> Run {
    let output = match tokio::time::timeout(Duration::from_secs(120), command(args).output()).await
    {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => panic!("cannot run iothub: {e}"),
        Err(_) => panic!("iothub {args:?} did not finish within 120 s"),
    };
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `iothub --local=DIR -o json ARGS…` against `hub`.
async fn iothub(hub: &Hub, args: &[&str]) -> Run {
    let local = format!("--local={}", hub.dir.path().display());
    let mut all = vec![local.as_str(), "-o", "json"];
    all.extend_from_slice(args);
    iothub_raw(&all).await
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) -> std::io::Result<()> {
    let text: Vec<String> = lines.into_iter().collect();
    std::fs::write(path, text.join("\n") + "\n")
}

fn device_row(i: usize) -> String {
    json!({"id": format!("bulk-{i:05}"), "status": "enabled", "authentication": {"type": "sas"},
           "tags": {"n": i}})
    .to_string()
}

async fn device_count(hub: &Hub) -> i64 {
    iothub(hub, &["stats"]).await.ok().json()["totalDeviceCount"]
        .as_i64()
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn device_identity_lifecycle_and_key_masking() -> TestResult {
    let hub = start().await?;
    let created = iothub(&hub, &["device-identity", "create", "-d", "dev-1"])
        .await
        .ok()
        .json();
    assert_eq!(created["deviceId"], "dev-1");
    assert_eq!(created["authentication"]["type"], "sas");
    let masked = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap_or("");
    assert!(masked.contains("--show-keys"), "{created}");

    let shown = iothub(
        &hub,
        &["--show-keys", "device-identity", "show", "-d", "dev-1"],
    )
    .await
    .ok()
    .json();
    let key = shown["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap_or("");
    assert!(key.len() >= 24 && !key.contains("show-keys"), "{shown}");

    let x509 = iothub(
        &hub,
        &[
            "device-identity",
            "create",
            "-d",
            "cam-1",
            "--am",
            "self_signed",
            "--ptp",
            "9C1E3F5A7B2D4C6E8F0A1B3C5D7E9F1A2B4C6D8E",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(x509["authentication"]["type"], "selfSigned");
    let ca = iothub(
        &hub,
        &[
            "device-identity",
            "create",
            "-d",
            "gw-1",
            "--am",
            "x509_ca",
            "--ee",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(ca["authentication"]["type"], "certificateAuthority");
    assert_eq!(ca["capabilities"]["iotEdge"], true);

    let updated = iothub(
        &hub,
        &[
            "device-identity",
            "update",
            "-d",
            "dev-1",
            "--status",
            "disabled",
            "--status-reason",
            "maintenance",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["status"], "disabled");
    assert_eq!(updated["statusReason"], "maintenance");
    // The keys were kept.
    let again = iothub(
        &hub,
        &["--show-keys", "device-identity", "show", "-d", "dev-1"],
    )
    .await
    .ok()
    .json();
    assert_eq!(again["authentication"]["symmetricKey"]["primaryKey"], key);

    iothub(
        &hub,
        &[
            "device-identity",
            "update",
            "-d",
            "dev-1",
            "--status",
            "enabled",
            "--etag",
            "stale",
        ],
    )
    .await
    .fails_with("PreconditionFailed (412");

    let list = iothub(&hub, &["device-identity", "list"]).await.ok().json();
    let ids: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["deviceId"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 3, "{list}");
    let table = iothub(&hub, &["-o", "table", "device-identity", "list"])
        .await
        .ok();
    assert!(
        table.stdout.contains("cam-1") && table.stdout.contains("3 row(s)"),
        "{}",
        table.stdout
    );

    iothub(&hub, &["device-identity", "delete", "-d", "dev-1"])
        .await
        .ok();
    iothub(&hub, &["device-identity", "show", "-d", "dev-1"])
        .await
        .fails_with("DeviceNotFound (404001)");
    iothub(&hub, &["device-identity", "create", "-d", "cam-1"])
        .await
        .fails_with("DeviceAlreadyExists (409001)");
    iothub(&hub, &["device-identity", "create", "-d", "bad id!"])
        .await
        .fails_with("(400");
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_errors_are_one_clear_line() -> TestResult {
    let hub = start().await?;
    iothub_raw(&["--connection-string", "HostName=x;nonsense", "stats"])
        .await
        .fails_with("malformed connection string");
    iothub_raw(&["stats"]).await.fails_with("no hub");
    iothub_raw(&["--local=/no/such/dir", "stats"])
        .await
        .fails_with("iothub emulator start");
    // The right host with a wrong key: IoT Hub's 401.
    let cs = hub.emulator.connection_string();
    let wrong = cs.replace(
        cs.split("SharedAccessKey=").nth(1).unwrap_or_default(),
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=",
    );
    let ca = hub.emulator.ca_path();
    let ca = ca.display().to_string();
    iothub_raw(&["--connection-string", &wrong, "--ca", &ca, "stats"])
        .await
        .fails_with("(401");
    // Secrets never reach the error line.
    let run = iothub_raw(&["--connection-string", &wrong, "--ca", &ca, "stats"]).await;
    assert!(!run.stderr.contains("d3Jvbmcta2V5"), "{}", run.stderr);
    // Usage errors come from clap with status 2.
    let usage = iothub_raw(&["device-identity", "show"]).await;
    assert_eq!(usage.status, 2, "{}", usage.stderr);
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn modules_twins_query_configurations_and_stats() -> TestResult {
    let hub = start().await?;
    for i in 0..5 {
        iothub(
            &hub,
            &["device-identity", "create", "-d", &format!("q-{i}")],
        )
        .await
        .ok();
    }
    let module = iothub(
        &hub,
        &["module-identity", "create", "-d", "q-0", "-m", "m1"],
    )
    .await
    .ok()
    .json();
    assert_eq!(module["moduleId"], "m1");
    let modules = iothub(&hub, &["module-identity", "list", "-d", "q-0"])
        .await
        .ok()
        .json();
    assert_eq!(modules.as_array().map(Vec::len), Some(1));
    iothub(
        &hub,
        &["module-identity", "update", "-d", "q-0", "-m", "m1"],
    )
    .await
    .ok();
    iothub(
        &hub,
        &["module-identity", "show", "-d", "q-0", "-m", "nope"],
    )
    .await
    .fails_with("ModuleNotFound");

    let twin = iothub(
        &hub,
        &[
            "device-twin",
            "update",
            "-d",
            "q-1",
            "--tags",
            r#"{"site":"b4"}"#,
            "--desired",
            r#"{"interval":5}"#,
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(twin["tags"]["site"], "b4");
    assert_eq!(twin["properties"]["desired"]["interval"], 5);
    let replaced = iothub(
        &hub,
        &[
            "device-twin",
            "replace",
            "-d",
            "q-1",
            "--json",
            r#"{"tags":{"site":"b5"}}"#,
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(replaced["tags"], json!({"site": "b5"}));
    iothub(
        &hub,
        &["device-twin", "update", "-d", "q-1", "--tags", "{not json"],
    )
    .await
    .fails_with("not valid JSON");
    iothub(
        &hub,
        &[
            "device-twin",
            "update",
            "-d",
            "q-1",
            "--tags",
            "{}",
            "--etag",
            "AAAAAAAAAAE=",
        ],
    )
    .await
    .fails_with("PreconditionFailed");
    let mtwin = iothub(
        &hub,
        &[
            "module-twin",
            "update",
            "-d",
            "q-0",
            "-m",
            "m1",
            "--desired",
            r#"{"x":1}"#,
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(mtwin["properties"]["desired"]["x"], 1);
    let mshow = iothub(&hub, &["module-twin", "show", "-d", "q-0", "-m", "m1"])
        .await
        .ok()
        .json();
    assert_eq!(mshow["moduleId"], "m1");

    // Paging: pages of 2 follow continuation tokens; --top stops early.
    let all = iothub(
        &hub,
        &["query", "-q", "SELECT * FROM devices", "--page-size", "2"],
    )
    .await
    .ok()
    .json();
    assert_eq!(all.as_array().map(Vec::len), Some(5));
    let top = iothub(
        &hub,
        &[
            "query",
            "-q",
            "SELECT deviceId FROM devices",
            "--top",
            "3",
            "--page-size",
            "2",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(top.as_array().map(Vec::len), Some(3));
    let count = iothub(&hub, &["query", "-q", "SELECT COUNT() AS n FROM devices"])
        .await
        .ok()
        .json();
    assert_eq!(count[0]["n"], 5);
    iothub(&hub, &["query", "-q", "SELEKT * FROM devices"])
        .await
        .fails_with("(400");

    let config = iothub(
        &hub,
        &[
            "configuration",
            "create",
            "-c",
            "cfg-1",
            "--content",
            r#"{"deviceContent":{"properties.desired.fw":"1.2"}}"#,
            "--target-condition",
            "tags.site = 'b5'",
            "--priority",
            "3",
            "--labels",
            r#"{"team":"ops"}"#,
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(config["id"], "cfg-1");
    let shown = iothub(&hub, &["configuration", "show", "-c", "cfg-1"])
        .await
        .ok()
        .json();
    assert_eq!(shown["priority"], 3);
    let updated = iothub(
        &hub,
        &["configuration", "update", "-c", "cfg-1", "--priority", "7"],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["priority"], 7);
    let list = iothub(&hub, &["configuration", "list"]).await.ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    iothub(&hub, &["configuration", "delete", "-c", "cfg-1"])
        .await
        .ok();
    iothub(&hub, &["configuration", "show", "-c", "cfg-1"])
        .await
        .fails_with("ConfigurationNotFound");

    iothub(&hub, &["device-identity", "create", "-d", "edge-1", "--ee"])
        .await
        .ok();
    iothub(
        &hub,
        &[
            "edge",
            "set-modules",
            "-d",
            "edge-1",
            "--content",
            r#"{"modulesContent":{"$edgeAgent":{"properties.desired":{"schemaVersion":"1.1"}}}}"#,
        ],
    )
    .await
    .ok();

    let stats = iothub(&hub, &["stats"]).await.ok().json();
    assert_eq!(stats["totalDeviceCount"], 6);
    assert_eq!(stats["connectedDeviceCount"], 0);

    let completions = iothub_raw(&["completions", "bash"]).await.ok();
    assert!(completions.stdout.contains("device-identity"));
    hub.emulator.shutdown().await?;
    Ok(())
}

async fn connect_device(
    hub: &Hub,
    id: &str,
) -> Result<SimulatedDevice, Box<dyn std::error::Error>> {
    let shown = iothub(hub, &["--show-keys", "device-identity", "show", "-d", id])
        .await
        .ok()
        .json();
    let key = shown["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap_or_default();
    let config = DeviceConfig::new(hub.emulator.host_name(), id, key)
        .with_port(hub.emulator.mqtts_port())
        .with_ca_pem(hub.emulator.ca_pem());
    Ok(SimulatedDevice::connect(config, DeviceOptions::default()).await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_c2d_feedback_and_telemetry() -> TestResult {
    let hub = start().await?;
    iothub(&hub, &["device-identity", "create", "-d", "dev"])
        .await
        .ok();
    iothub(
        &hub,
        &["invoke-device-method", "-d", "dev", "--mn", "reboot"],
    )
    .await
    .fails_with("DeviceNotOnline (404103)");
    let device = connect_device(&hub, "dev").await?;
    let answer = iothub(
        &hub,
        &[
            "invoke-device-method",
            "-d",
            "dev",
            "--mn",
            "reboot",
            "--mp",
            r#"{"delay":1}"#,
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["payload"], json!({"delay": 1}));

    // C2D with full feedback: the device gets it, monitor-feedback sees the record.
    let sent = iothub(
        &hub,
        &[
            "c2d-message",
            "send",
            "-d",
            "dev",
            "--data",
            "hello",
            "--props",
            "messageId=m-1;color=red",
            "--ack",
            "full",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(sent["messageId"], "m-1");
    let message = device
        .next_c2d(Duration::from_secs(10))
        .await
        .ok_or("no C2D message")?;
    assert_eq!(message.body, b"hello");
    assert_eq!(message.property("color"), Some("red"));
    let feedback = iothub(
        &hub,
        &["monitor-feedback", "--wait-on-id", "m-1", "--timeout", "20"],
    )
    .await
    .ok();
    let record: Value = serde_json::from_str(feedback.stdout.lines().last().unwrap_or(""))?;
    assert_eq!(record["originalMessageId"], "m-1");
    assert_eq!(record["deviceId"], "dev");

    // Purge: messages to an offline device wait, then go.
    device.disconnect().await;
    iothub(&hub, &["device-identity", "create", "-d", "offline"])
        .await
        .ok();
    for _ in 0..3 {
        iothub(&hub, &["c2d-message", "send", "-d", "offline"])
            .await
            .ok();
    }
    let purged = iothub(&hub, &["c2d-message", "purge", "-d", "offline"])
        .await
        .ok()
        .json();
    assert_eq!(purged["totalMessagesPurged"], 3);
    // IoT Hub's code leads the line, as for REST answers.
    let run = iothub(&hub, &["c2d-message", "send", "-d", "ghost"])
        .await
        .fails_with("DeviceNotFound (404001)");
    assert!(
        run.stderr.starts_with("error: DeviceNotFound (404001): "),
        "{}",
        run.stderr
    );
    iothub(&hub, &["c2d-message", "purge", "-d", "ghost"])
        .await
        .fails_with("error: DeviceNotFound (404001)");

    // Telemetry: a message sent as a device, read back by monitor-events.
    iothub(
        &hub,
        &[
            "device",
            "send-d2c-message",
            "-d",
            "dev",
            "--data",
            r#"{"t":21}"#,
            "--props",
            "alert=true;$.ct=application/json",
        ],
    )
    .await
    .ok();
    let events = iothub(
        &hub,
        &[
            "monitor-events",
            "-d",
            "dev",
            "--start",
            "earliest",
            "--count",
            "1",
            "--timeout",
            "20",
            "--properties",
        ],
    )
    .await
    .ok();
    let event: Value = serde_json::from_str(events.stdout.lines().next().unwrap_or(""))?;
    assert_eq!(event["origin"], "dev");
    assert_eq!(event["payload"], json!({"t": 21}));
    assert_eq!(event["properties"]["application"]["alert"], "true");
    assert_eq!(
        event["properties"]["system"]["content-type"],
        "application/json"
    );
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_devices_answer_and_send() -> TestResult {
    let hub = start().await?;
    let local = format!("--local={}", hub.dir.path().display());
    // A fleet of 3, created on the fly, each sending 2 messages, then kept running.
    let mut child = command(&[
        &local,
        "-o",
        "json",
        "device",
        "simulate",
        "-d",
        "sim",
        "--count",
        "3",
        "--msg-count",
        "2",
        "--msg-interval-ms",
        "50",
        "--keep-running",
        "--duration",
        "60",
    ])
    .spawn()?;
    let mut answered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let run = iothub(
            &hub,
            &[
                "invoke-device-method",
                "-d",
                "sim-0001",
                "--mn",
                "ping",
                "--mp",
                "7",
            ],
        )
        .await;
        if run.status == 0 {
            assert_eq!(
                run.json()["payload"],
                json!({"method": "ping", "received": 7})
            );
            answered = true;
            break;
        }
    }
    assert!(answered, "the simulated device never answered");
    let mut sent = 0;
    for _ in 0..50 {
        sent = 0;
        for id in ["sim-0000", "sim-0001", "sim-0002"] {
            sent += hub.emulator.telemetry().from_device(id).await?.len();
        }
        if sent == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent, 6);
    // A desired patch reaches the device, which reports it back.
    iothub(
        &hub,
        &[
            "device-twin",
            "update",
            "-d",
            "sim-0002",
            "--desired",
            r#"{"mode":"eco"}"#,
        ],
    )
    .await
    .ok();
    let mut reported = Value::Null;
    for _ in 0..50 {
        let twin = iothub(&hub, &["device-twin", "show", "-d", "sim-0002"])
            .await
            .ok()
            .json();
        reported = twin["properties"]["reported"]["mode"].clone();
        if reported == "eco" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reported, "eco");
    let stats = iothub(&hub, &["stats"]).await.ok().json();
    assert_eq!(stats["connectedDeviceCount"], 3);
    child.start_kill()?;
    let _ = child.wait().await;
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn import_reports_malformed_rows_and_export_round_trips() -> TestResult {
    let hub = start().await?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("devices.jsonl");
    let mut lines: Vec<String> = (0..250).map(device_row).collect();
    lines[9] = "{\"id\": \"broken\"".to_owned(); // line 10: not JSON
    lines[99] = json!({"id": "", "status": "enabled"}).to_string(); // line 100: empty id
    lines[199] = json!({"id": "bad/id", "status": "enabled"}).to_string(); // line 200: refused by the hub
    write_lines(&file, lines)?;
    let run = iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &file.display().to_string(),
        ],
    )
    .await;
    assert_eq!(run.status, 1, "{}", run.stderr);
    for expected in [
        "line 10: MalformedRow",
        "line 100: MalformedRow",
        "line 200: ArgumentInvalid (400004)",
    ] {
        assert!(
            run.stderr.contains(expected),
            "expected '{expected}' in:\n{}",
            run.stderr
        );
    }
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap_or(""))?;
    assert_eq!(summary["imported"], 247);
    assert_eq!(summary["failed"], 3);
    assert_eq!(device_count(&hub).await, 247);
    let failed_file = work.path().join("devices.failed.jsonl");
    let failed = std::fs::read_to_string(&failed_file)?;
    assert_eq!(failed.lines().count(), 3, "{failed}");
    assert!(failed.contains("\"importError\""), "{failed}");

    // Fixed in the failed-rows file, then imported from it.
    let fixed = failed
        .replace("{\"id\": \"broken\"", "{\"id\": \"fixed-1\"}")
        .replace("\"id\":\"\"", "\"id\":\"fixed-2\"")
        .replace("bad/id", "fixed-3");
    std::fs::write(&failed_file, fixed)?;
    let rerun = iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &failed_file.display().to_string(),
        ],
    )
    .await
    .ok();
    let summary: Value = serde_json::from_str(rerun.stdout.lines().last().unwrap_or(""))?;
    assert_eq!(summary["imported"], 3);
    assert_eq!(device_count(&hub).await, 250);

    // CSV, with a bad status on line 3.
    let csv = work.path().join("more.csv");
    std::fs::write(
        &csv,
        "deviceId,status,tags\ncsv-1,enabled,\"{\"\"a\"\":1}\"\ncsv-2,sleeping,\ncsv-3,disabled,\n\"csv-4,enabled\n",
    )?;
    let run = iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &csv.display().to_string(),
        ],
    )
    .await;
    // An unterminated quote is a malformed row, not a device named "csv-4,enabled".
    assert!(
        run.stderr.contains("line 5: MalformedRow"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line 3: MalformedRow"),
        "{}",
        run.stderr
    );
    assert!(work.path().join("more.failed.csv").exists());
    let twin = iothub(&hub, &["device-twin", "show", "-d", "csv-1"])
        .await
        .ok()
        .json();
    assert_eq!(twin["tags"]["a"], 1);

    // Export → import into a new hub → export: the same rows, keys included.
    iothub(
        &hub,
        &[
            "device-twin",
            "update",
            "-d",
            "bulk-00007",
            "--desired",
            r#"{"fw":"2.0"}"#,
        ],
    )
    .await
    .ok();
    let first = work.path().join("export-1.jsonl");
    iothub(
        &hub,
        &[
            "device-identity",
            "export",
            "-f",
            &first.display().to_string(),
        ],
    )
    .await
    .ok();
    let other = start().await?;
    iothub(
        &other,
        &[
            "device-identity",
            "import",
            "-f",
            &first.display().to_string(),
        ],
    )
    .await
    .ok();
    let second = work.path().join("export-2.jsonl");
    iothub(
        &other,
        &[
            "device-identity",
            "export",
            "-f",
            &second.display().to_string(),
        ],
    )
    .await
    .ok();
    let sorted = |p: &Path| -> std::io::Result<Vec<String>> {
        let mut l: Vec<String> = std::fs::read_to_string(p)?
            .lines()
            .map(str::to_owned)
            .collect();
        l.sort();
        Ok(l)
    };
    let (a, b) = (sorted(&first)?, sorted(&second)?);
    assert_eq!(a.len(), 252);
    assert_eq!(a, b);
    assert!(
        a.iter()
            .any(|l| l.contains("primaryKey") && l.contains("\"fw\":\"2.0\""))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&first)?.permissions().mode() & 0o777,
            0o600
        );
    }
    other.emulator.shutdown().await?;
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn import_completes_on_a_throttled_hub() -> TestResult {
    let hub = start_with(|b| b.throttle(ThrottleConfig::off().with_failure_rate(0.3))).await?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("devices.jsonl");
    write_lines(&file, (0..1500).map(device_row))?;
    let local = format!("--local={}", hub.dir.path().display());
    let run = iothub_raw(&[
        &local,
        "-o",
        "json",
        "device-identity",
        "import",
        "-f",
        &file.display().to_string(),
    ])
    .await
    .ok();
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap_or(""))?;
    assert_eq!(summary["imported"], 1500, "{}", run.stderr);
    // Statistics can be throttled too; the SDK retries them.
    assert_eq!(device_count(&hub).await, 1500);
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_an_import_that_a_rerun_resumes() -> TestResult {
    let hub = start().await?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("devices.jsonl");
    let total = 20_000;
    write_lines(&file, (0..total).map(device_row))?;
    let local = format!("--local={}", hub.dir.path().display());
    let file_arg = file.display().to_string();
    let child = command(&[
        &local,
        "-o",
        "json",
        "device-identity",
        "import",
        "-f",
        &file_arg,
        "--concurrency",
        "1",
    ])
    .spawn()?;
    let pid = child.id().ok_or("no pid")?;
    // Interrupt once the first devices are in.
    let rm = iothub_registry::RegistryManager::builder()
        .connection_string(&hub.emulator.connection_string())
        .add_root_certificate_pem(hub.emulator.ca_pem())
        .build()?;
    let mut seen = 0;
    for _ in 0..500 {
        seen = rm
            .get_device_registry_statistics()
            .await?
            .total_device_count;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen > 0, "the import never started");
    let signalled = tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await?;
    assert!(signalled.success());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("rerun it on"), "{stderr}");
    let summary: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )?;
    let imported = summary["imported"].as_i64().unwrap_or(-1);
    assert!(imported > 0 && imported < total as i64, "{summary}");
    assert_eq!(summary["interrupted"], true);

    // Consistent: what the hub holds is exactly what the summary says; the rest is in the
    // failed-rows file, none of it in the hub.
    assert_eq!(
        rm.get_device_registry_statistics()
            .await?
            .total_device_count,
        imported
    );
    let failed_file = work.path().join("devices.failed.jsonl");
    let rest = std::fs::read_to_string(&failed_file)?;
    assert_eq!(rest.lines().count() as i64, total as i64 - imported);
    let first_rest: Value = serde_json::from_str(rest.lines().next().unwrap_or(""))?;
    assert_eq!(first_rest["importError"]["code"], "NotAttempted");
    let id = first_rest["id"].as_str().unwrap_or_default();
    assert!(
        rm.get_device(id).await.is_err_and(|e| e.is_not_found()),
        "{id} was imported"
    );

    // Resume.
    let rerun = iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &failed_file.display().to_string(),
        ],
    )
    .await
    .ok();
    let summary: Value = serde_json::from_str(rerun.stdout.lines().last().unwrap_or(""))?;
    assert_eq!(summary["imported"].as_i64(), Some(total as i64 - imported));
    assert_eq!(device_count(&hub).await, total as i64);
    hub.emulator.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_shows_every_step() -> TestResult {
    let run = iothub_raw(&["quickstart"]).await.ok();
    for step in 1..=8 {
        assert!(
            run.stdout.contains(&format!("[{step}/8]")),
            "{}",
            run.stdout
        );
    }
    for expected in [
        "answered 'reboot' with status 200",
        "thermostat-1 received it",
        "feedback record",
        "read from partition",
        "2 connected",
        "Every step succeeded",
    ] {
        assert!(
            run.stdout.contains(expected),
            "expected '{expected}' in:\n{}",
            run.stdout
        );
    }
    for debug in ["Some(", "None", "Ok(", "Err("] {
        assert!(!run.stdout.contains(debug), "Debug output:\n{}", run.stdout);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_start_serves_until_interrupted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().display().to_string();
    let mut child = command(&[
        "emulator",
        "start",
        "--data-dir",
        &data,
        "--https-port",
        "0",
        "--amqps-port",
        "0",
        "--mqtts-port",
        "0",
    ])
    .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await??
        .unwrap_or_default();
    assert!(
        first.starts_with("IOTHUB_CONNECTION_STRING=HostName=localhost:"),
        "{first}"
    );
    let local = format!("--local={data}");
    let run = iothub_raw(&[
        &local,
        "-o",
        "json",
        "device-identity",
        "create",
        "-d",
        "d1",
    ])
    .await
    .ok();
    assert_eq!(run.json()["deviceId"], "d1");
    // A second hub on the same data directory is refused; the first keeps its files.
    let second = iothub_raw(&[
        "emulator",
        "start",
        "--data-dir",
        &data,
        "--https-port",
        "0",
        "--amqps-port",
        "0",
        "--mqtts-port",
        "0",
    ])
    .await;
    assert_eq!(second.status, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains("in use by another running hub"),
        "{}",
        second.stderr
    );
    iothub_raw(&[&local, "-o", "json", "device-identity", "show", "-d", "d1"])
        .await
        .ok();
    let pid = child.id().ok_or("no pid")?;
    tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await?;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn risky_input_is_refused_before_anything_is_sent() -> TestResult {
    let hub = start().await?;
    iothub(&hub, &["device-identity", "create", "-d", "victim"])
        .await
        .ok();
    // `..` would address the device itself.
    let run = iothub(
        &hub,
        &["module-identity", "delete", "-d", "victim", "-m", ".."],
    )
    .await;
    assert_eq!(run.status, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot be an id"), "{}", run.stderr);
    iothub(&hub, &["device-identity", "show", "-d", "victim"])
        .await
        .ok();
    assert_eq!(
        iothub(&hub, &["device-identity", "create", "-d", ""])
            .await
            .status,
        2
    );

    // The failed-rows file may not be the input, however it is spelled.
    let work = tempfile::tempdir()?;
    let file = work.path().join("same.jsonl");
    write_lines(&file, (0..3).map(device_row))?;
    let before = std::fs::read_to_string(&file)?;
    let dotted = work.path().join(".").join("same.jsonl");
    iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &file.display().to_string(),
            "--failed-file",
            &dotted.display().to_string(),
        ],
    )
    .await
    .fails_with("is the file being imported");
    assert_eq!(std::fs::read_to_string(&file)?, before);

    // An id twice in a file goes into separate requests: both rows apply, in order.
    let twice = work.path().join("twice.jsonl");
    write_lines(
        &twice,
        [
            json!({"id": "dup", "tags": {"v": 1}}).to_string(),
            json!({"id": "other"}).to_string(),
            json!({"id": "dup", "tags": {"v": 2}}).to_string(),
        ],
    )?;
    let run = iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &twice.display().to_string(),
        ],
    )
    .await
    .ok();
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap_or(""))?;
    assert_eq!(summary["imported"], 3);
    let twin = iothub(&hub, &["device-twin", "show", "-d", "dup"])
        .await
        .ok()
        .json();
    assert_eq!(twin["tags"]["v"], 2);

    // A stopped hub: a prompt error with a hint, not a long wait.
    let local = format!("--local={}", hub.dir.path().display());
    let Hub { emulator, dir } = hub;
    emulator.shutdown().await?;
    let started = std::time::Instant::now();
    let run = iothub_raw(&[&local, "stats"]).await;
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("is the local hub running?"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    drop(dir);
    Ok(())
}

/// The value of the SAS signature (`sig=`) of a container URL, as given and URL-decoded.
fn sas_signatures(url: &str) -> Vec<String> {
    let sig = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap_or_else(|| panic!("no SAS signature in the container URL"))
        .to_owned();
    let mut decoded = String::new();
    let mut rest = sig.as_str();
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        match u8::from_str_radix(rest.get(at + 1..at + 3).unwrap_or("zz"), 16) {
            Ok(byte) => {
                decoded.push(char::from(byte));
                rest = &rest[at + 3..];
            }
            Err(_) => {
                decoded.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    decoded.push_str(rest);
    assert!(sig.len() >= 16, "a short signature: {sig}");
    vec![sig, decoded]
}

/// Fails when any of `secrets` appears in what the command printed.
fn assert_no_secret(run: &Run, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
            "a SAS signature was printed:\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// The primary key of `device` in `hub`.
async fn primary_key(hub: &Hub, device: &str) -> String {
    let shown = iothub(
        hub,
        &["--show-keys", "device-identity", "show", "-d", device],
    )
    .await
    .ok()
    .json();
    shown["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_and_import_jobs_through_blob_storage() -> TestResult {
    let storage = iothub_conformance::azurite::Azurite::start().await;
    let source = start().await?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("devices.jsonl");
    write_lines(&file, (0..30).map(device_row))?;
    iothub(
        &source,
        &[
            "device-identity",
            "import",
            "-f",
            &file.display().to_string(),
        ],
    )
    .await
    .ok();
    let exports = storage.container("exports").await;
    let logs = storage.container("logs").await;
    let mut secrets = sas_signatures(&exports);
    secrets.extend(sas_signatures(&logs));
    let mut runs = Vec::new();

    // Export through an IoT Hub export job (`--bcu` as az spells it).
    let run = iothub(
        &source,
        &[
            "device-identity",
            "export",
            "--bcu",
            &exports,
            "--poll-interval",
            "0.1",
        ],
    )
    .await
    .ok();
    let outcome = run.json();
    assert_eq!(outcome["type"], "export", "{outcome}");
    assert_eq!(outcome["status"], "completed", "{outcome}");
    assert_eq!(outcome["progress"], 100, "{outcome}");
    assert!(outcome["seconds"].as_f64().is_some(), "{outcome}");
    let location = exports.split('?').next().unwrap_or_default();
    assert_eq!(outcome["outputBlob"], format!("{location}/devices.txt"));
    let export_id = outcome["jobId"].as_str().unwrap_or_default().to_owned();
    runs.push(run);

    // The export job among the import/export jobs, and shown by id.
    let run = iothub(&source, &["job", "list", "--import-export"])
        .await
        .ok();
    let listed = run.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["jobId"], export_id.as_str());
    assert_eq!(listed[0]["status"], "completed");
    runs.push(run);
    let run = iothub(&source, &["job", "show", "--job-id", &export_id])
        .await
        .ok();
    assert_eq!(run.json()["type"], "export");
    runs.push(run);

    // Import it into a second hub: the devices and their keys arrive.
    let target = start().await?;
    let run = iothub(
        &target,
        &[
            "device-identity",
            "import",
            "--ibcu",
            &exports,
            "--obcu",
            &logs,
            "--poll-interval",
            "0.1",
        ],
    )
    .await
    .ok();
    let outcome = run.json();
    assert_eq!(outcome["type"], "import", "{outcome}");
    assert_eq!(outcome["status"], "completed", "{outcome}");
    let log_location = logs.split('?').next().unwrap_or_default();
    assert_eq!(
        outcome["importErrorsLog"],
        format!("{log_location}/importErrors.log")
    );
    runs.push(run);
    assert_eq!(device_count(&target).await, 30);
    let key = primary_key(&source, "bulk-00007").await;
    assert!(!key.is_empty());
    assert_eq!(primary_key(&target, "bulk-00007").await, key);
    let twin = iothub(&target, &["device-twin", "show", "-d", "bulk-00007"])
        .await
        .ok()
        .json();
    assert_eq!(twin["tags"]["n"], 7);
    let log = work.path().join("importErrors.log");
    storage.get(&logs, "importErrors.log", &log).await;
    assert_eq!(std::fs::read_to_string(&log)?, "");

    // Without keys, to another blob, as a table.
    let run = iothub(
        &source,
        &[
            "-o",
            "table",
            "device-identity",
            "export",
            "--blob",
            &exports,
            "--exclude-keys",
            "--blob-name",
            "no-keys.txt",
            "--interval",
            "0.1",
        ],
    )
    .await
    .ok();
    assert!(
        run.stdout.contains("completed") && run.stdout.contains("without keys"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("/exports/no-keys.txt"),
        "{}",
        run.stdout
    );
    runs.push(run);
    let exported = work.path().join("no-keys.txt");
    storage.get(&exports, "no-keys.txt", &exported).await;
    let exported = std::fs::read_to_string(&exported)?;
    assert_eq!(exported.lines().count(), 30, "{exported}");
    assert!(!exported.contains(&key), "keys were exported");

    // An import whose input blob does not exist fails, saying why.
    let run = iothub(
        &target,
        &[
            "device-identity",
            "import",
            "--blob",
            &exports,
            "--output-blob",
            &logs,
            "--blob-name",
            "missing.txt",
            "--poll-interval",
            "0.1",
        ],
    )
    .await
    .fails_with("import job");
    assert!(run.stderr.contains("failed: "), "{}", run.stderr);
    assert!(run.stderr.contains("missing.txt"), "{}", run.stderr);
    let outcome = run.json();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(outcome["failureReason"].is_string(), "{outcome}");
    runs.push(run);

    // Usage errors name the flags, never the URL.
    let run = iothub(
        &source,
        &[
            "device-identity",
            "export",
            "--blob",
            &exports,
            "-f",
            "x.jsonl",
        ],
    )
    .await;
    assert_eq!(run.status, 2, "{}", run.stderr);
    runs.push(run);
    let run = iothub(&target, &["device-identity", "import", "--blob", &exports]).await;
    assert_eq!(run.status, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--output-blob"), "{}", run.stderr);
    runs.push(run);
    let not_a_url = format!(
        "devices.txt?{}",
        exports.split('?').nth(1).unwrap_or_default()
    );
    let run = iothub(
        &source,
        &["device-identity", "export", "--blob", &not_a_url],
    )
    .await;
    assert_eq!(run.status, 2, "{}", run.stderr);
    assert!(run.stderr.contains("SAS token"), "{}", run.stderr);
    runs.push(run);

    for run in &runs {
        assert_no_secret(run, &secrets);
    }
    storage.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_jobs_create_wait_show_list_and_cancel() -> TestResult {
    let hub = start().await?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("sites.jsonl");
    write_lines(
        &file,
        (0..24).map(|i| {
            json!({"id": format!("site-{i:02}"), "authentication": {"type": "sas"},
                   "tags": {"site": if i % 3 == 0 { "b4" } else { "b5" }}})
            .to_string()
        }),
    )?;
    iothub(
        &hub,
        &[
            "device-identity",
            "import",
            "-f",
            &file.display().to_string(),
        ],
    )
    .await
    .ok();

    // A twin update over a tag query, waited for.
    let job = iothub(
        &hub,
        &[
            "job",
            "create",
            "--job-id",
            "interval-b4",
            "--job-type",
            "scheduleUpdateTwin",
            "-q",
            "tags.site = 'b4'",
            "--twin-patch",
            r#"{"tags": {"patched": true}, "properties": {"desired": {"interval": 30}}}"#,
            "--wait",
            "--poll-interval",
            "0.1",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(job["jobId"], "interval-b4");
    assert_eq!(job["type"], "scheduleUpdateTwin");
    assert_eq!(job["status"], "completed", "{job}");
    let stats = &job["deviceJobStatistics"];
    assert_eq!(stats["deviceCount"], 8, "{job}");
    assert_eq!(stats["succeededCount"], 8, "{job}");
    assert_eq!(stats["failedCount"], 0, "{job}");
    assert_eq!(stats["pendingCount"], 0, "{job}");
    let patched = iothub(&hub, &["device-twin", "show", "-d", "site-03"])
        .await
        .ok()
        .json();
    assert_eq!(patched["properties"]["desired"]["interval"], 30);
    assert_eq!(patched["tags"]["patched"], true);
    let untouched = iothub(&hub, &["device-twin", "show", "-d", "site-04"])
        .await
        .ok()
        .json();
    assert!(untouched["properties"]["desired"]["interval"].is_null());
    let shown = iothub(&hub, &["job", "show", "--job-id", "interval-b4"])
        .await
        .ok()
        .json();
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["deviceJobStatistics"]["succeededCount"], 8);

    // Unknown ids.
    iothub(&hub, &["job", "show", "--job-id", "no-such-job"])
        .await
        .fails_with("JobNotFound");
    iothub(&hub, &["job", "cancel", "--job-id", "no-such-job"])
        .await
        .fails_with("JobNotFound");

    // A method job an hour ahead: scheduled, listed, then cancelled.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let created = iothub(
        &hub,
        &[
            "job",
            "create",
            "--job-id",
            "reboot-later",
            "--jt",
            "scheduleDeviceMethod",
            "-q",
            "tags.site = 'b5'",
            "--mn",
            "reboot",
            "--mp",
            r#"{"delay": 5}"#,
            "--start-time",
            &later,
            "--ttl",
            "600",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(created["type"], "scheduleDeviceMethod", "{created}");
    assert_eq!(created["cloudToDeviceMethod"]["methodName"], "reboot");
    assert_eq!(created["maxExecutionTimeInSeconds"], 600);
    let shown = iothub(&hub, &["job", "show", "--job-id", "reboot-later"])
        .await
        .ok()
        .json();
    assert_eq!(shown["status"], "scheduled", "{shown}");

    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|j| j["jobId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = iothub(&hub, &["job", "list"]).await.ok().json();
    assert_eq!(ids(&all), ["interval-b4", "reboot-later"], "{all}");
    let scheduled = iothub(&hub, &["job", "list", "--job-status", "scheduled"])
        .await
        .ok()
        .json();
    assert_eq!(ids(&scheduled), ["reboot-later"], "{scheduled}");
    let twins = iothub(&hub, &["job", "list", "--jt", "scheduleUpdateTwin"])
        .await
        .ok()
        .json();
    assert_eq!(ids(&twins), ["interval-b4"], "{twins}");
    let first = iothub(&hub, &["job", "list", "--top", "1"])
        .await
        .ok()
        .json();
    assert_eq!(ids(&first).len(), 1, "{first}");
    let none = iothub(&hub, &["job", "list", "--import-export"])
        .await
        .ok()
        .json();
    assert_eq!(none, json!([]));

    let cancelled = iothub(&hub, &["job", "cancel", "--job-id", "reboot-later"])
        .await
        .ok()
        .json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let shown = iothub(&hub, &["job", "show", "--job-id", "reboot-later"])
        .await
        .ok()
        .json();
    assert_eq!(shown["status"], "cancelled", "{shown}");
    let table = iothub(&hub, &["-o", "table", "job", "list"]).await.ok();
    assert!(
        table.stdout.contains("reboot-later") && table.stdout.contains("cancelled"),
        "{}",
        table.stdout
    );

    // Usage errors: a twin job without its patch, a method job given a patch.
    let run = iothub(
        &hub,
        &[
            "job",
            "create",
            "--job-id",
            "x",
            "--job-type",
            "scheduleUpdateTwin",
            "-q",
            "tags.site = 'b5'",
        ],
    )
    .await;
    assert_eq!(run.status, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--twin-patch"), "{}", run.stderr);
    let run = iothub(
        &hub,
        &[
            "job",
            "create",
            "--job-id",
            "x",
            "--job-type",
            "scheduleDeviceMethod",
            "-q",
            "tags.site = 'b5'",
            "--twin-patch",
            "{}",
        ],
    )
    .await;
    assert_eq!(run.status, 2, "{}", run.stderr);
    // A query condition the hub refuses.
    iothub(
        &hub,
        &[
            "job",
            "create",
            "--job-id",
            "bad-query",
            "--job-type",
            "scheduleUpdateTwin",
            "-q",
            "tags.site = = 'b4'",
            "--twin-patch",
            r#"{"tags": {"x": 1}}"#,
        ],
    )
    .await
    .fails_with("ArgumentInvalid");
    Ok(())
}
