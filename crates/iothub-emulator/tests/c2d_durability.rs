//! Cloud-to-device durability of the real binary: every message the hub accepted over AMQP
//! before a `kill -9` is still queued after a restart.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iothub_c2d::{C2dClient, Message, RetryPolicy};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Running {
    child: Child,
    cs: String,
    https_port: u16,
    amqps_port: u16,
}

/// Starts the binary on free ports; reads the connection string (stdout) and the AMQPS port
/// (stderr).
fn spawn(data_dir: &std::path::Path) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iothub-emulator"))
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--https-port",
            "0",
            "--amqps-port",
            "0",
            "--mqtts-port",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("IOTHUB_EMULATOR_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let cs = line
        .trim()
        .strip_prefix("IOTHUB_CONNECTION_STRING=")
        .ok_or_else(|| format!("unexpected line: {line:?}"))?
        .to_owned();
    let https_port = cs
        .split(';')
        .find_map(|p| p.strip_prefix("HostName=localhost:"))
        .ok_or("no port")?
        .parse()?;
    let mut amqps_port = None;
    let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?);
    for _ in 0..20 {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix("AMQPS (cloud-to-device) on port ") {
            amqps_port = rest.split(';').next().and_then(|p| p.trim().parse().ok());
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    Ok(Running {
        child,
        cs,
        https_port,
        amqps_port: amqps_port.ok_or("no AMQPS port on stderr")?,
    })
}

async fn rest(
    http: &reqwest::Client,
    hub: &Running,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    let cs = iothub_auth::ConnectionString::parse(&hub.cs)?;
    let credential = iothub_auth::HubCredential::from_connection_string(&cs)?;
    let header = credential.authorization_header().await?;
    let mut request = http
        .request(
            method,
            format!(
                "https://localhost:{}{path}?api-version=2021-04-12",
                hub.https_port
            ),
        )
        .header("authorization", header.expose());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("{status}: {value}").into());
    }
    Ok(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_messages_survive_kill_9() -> TestResult {
    let dir = tempfile::tempdir()?;
    let hub = spawn(dir.path())?;
    let ca = std::fs::read(dir.path().join("ca.pem"))?;
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&ca)?])
        .build()?;
    let devices = 8;
    for d in 0..devices {
        let id = format!("k{d}");
        rest(
            &http,
            &hub,
            reqwest::Method::PUT,
            &format!("/devices/{id}"),
            Some(json!({"deviceId": id})),
        )
        .await?;
    }
    let client = C2dClient::builder()
        .connection_string(&hub.cs)
        .amqps_port(hub.amqps_port)
        .add_root_certificate_pem(ca.clone())
        .retry_policy(RetryPolicy::none())
        .send_timeout(Duration::from_secs(10))
        .build()?;

    // Several tasks stream sends, each to its own device, with many in flight at once.
    let acknowledged = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut tasks = Vec::new();
    for d in 0..devices {
        for _ in 0..4 {
            let client = client.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tasks.push(tokio::spawn(async move {
                let id = format!("k{d}");
                for i in 0..12 {
                    match client
                        .send(&id, Message::new(format!("{i}").into_bytes()))
                        .await
                    {
                        Ok(()) => {
                            *acknowledged
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(id.clone())
                                .or_default() += 1
                        }
                        Err(_) => break,
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    let total = |a: &Mutex<HashMap<String, u64>>| {
        a.lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum::<u64>()
    };
    while total(&acknowledged) < 60 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let Running { mut child, .. } = hub;
    child.kill()?; // SIGKILL
    child.wait()?;
    for task in tasks {
        let _ = task.await;
    }
    let acknowledged = acknowledged
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let acked_total: u64 = acknowledged.values().sum();
    assert!(
        acked_total >= 60,
        "only {acked_total} sends were acknowledged"
    );

    let hub = spawn(dir.path())?;
    let mut missing = Vec::new();
    for (id, acked) in &acknowledged {
        let device = rest(
            &http,
            &hub,
            reqwest::Method::GET,
            &format!("/devices/{id}"),
            None,
        )
        .await?;
        let queued = device["cloudToDeviceMessageCount"].as_u64().unwrap_or(0);
        if queued < *acked {
            missing.push(format!("{id}: {acked} acknowledged, {queued} queued"));
        }
        assert!(queued <= 48, "{id}: {queued} queued, more than were sent");
    }
    let Running { mut child, .. } = hub;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "acknowledged messages lost: {missing:?}"
    );
    Ok(())
}
