//! Cloud-to-device throughput and client CPU: `iothub-c2d` next to the official Node
//! (`azure-iothub` `Client.send`) and Python (`azure-iot-hub` `send_c2d_message`) service
//! SDKs, in one run, against one local emulator in its own process (so each client's CPU is
//! its own). 100-byte messages, spread over enough devices to stay under IoT Hub's
//! 50-message queue limit.
//!
//! ```text
//! cargo build --release -p iothub-emulator
//! bash tests/setup.sh            # the official SDKs (<repo>/.venv, tests/node/node_modules)
//! cargo run --release -p iothub-c2d --example c2d_bench -- [--messages N] [--concurrency N]
//!     [--node-messages N] [--python-messages N] [--emulator PATH]
//! ```
//!
//! Rust runs twice: pipelined (`--concurrency` sends in flight on one connection, default
//! 256) and one send after the other. The official SDKs send one after the other, as their
//! samples do. Client CPU: user + system time of the client process over the measured sends
//! (`/proc/self/stat` for Rust, `process.cpuUsage()` for Node, `time.process_time()` for
//! Python); one warm-up send per client opens its connection first and is not counted. The
//! emulator's CPU per message over the same interval (Node and Python: over the whole script,
//! start-up included) shows where the time goes when the hub is the limit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iothub_c2d::{C2dClient, Message};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BODY: [u8; 100] = [b'x'; 100];
const PER_DEVICE: usize = 40;

struct Args {
    messages: usize,
    concurrency: usize,
    node_messages: usize,
    python_messages: usize,
    emulator: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        messages: 20_000,
        concurrency: 256,
        node_messages: 2_000,
        python_messages: 300,
        emulator: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--messages" => args.messages = value().parse().expect("--messages N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--node-messages" => args.node_messages = value().parse().expect("--node-messages N"),
            "--python-messages" => {
                args.python_messages = value().parse().expect("--python-messages N")
            }
            "--emulator" => args.emulator = Some(value().into()),
            other => panic!("unknown option {other}"),
        }
    }
    args
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// CPU time (user + system) of this process so far.
fn process_cpu() -> Duration {
    cpu_of("self")
}

/// CPU time (user + system) of process `pid` (`self` for this one) so far.
fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((field(11) + field(12)) * 10)
}

struct Row {
    client: String,
    sent: usize,
    wall: Duration,
    cpu: Duration,
    hub_cpu: Duration,
}

impl Row {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.wall.as_secs_f64()
    }
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.sent as f64
    }
    fn hub_cpu_us(&self) -> f64 {
        self.hub_cpu.as_secs_f64() * 1e6 / self.sent as f64
    }
}

struct Hub {
    child: tokio::process::Child,
    pid: String,
    cs: String,
    https_port: u16,
    amqps_port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_emulator(args: &Args) -> Hub {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = match &args.emulator {
        Some(path) => tokio::process::Command::new(path),
        None => {
            let mut c = tokio::process::Command::new(env!("CARGO"));
            c.current_dir(repo_root());
            c.args(["run", "-q", "-p", "iothub-emulator", "--release", "--"]);
            c
        }
    };
    let mut child = command
        .args([
            "--https-port",
            "0",
            "--amqps-port",
            "0",
            "--mqtts-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the emulator");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut cs = None;
    let mut amqps_port = None;
    while cs.is_none() || amqps_port.is_none() {
        tokio::select! {
            line = stdout.next_line(), if cs.is_none() => {
                let line = line.expect("read stdout").expect("emulator exited");
                cs = line.strip_prefix("IOTHUB_CONNECTION_STRING=").map(str::to_owned);
            }
            line = stderr.next_line(), if amqps_port.is_none() => {
                let line = line.expect("read stderr").expect("emulator exited");
                if let Some(rest) = line.strip_prefix("AMQPS (cloud-to-device) on port ") {
                    amqps_port = rest.split(';').next().and_then(|p| p.trim().parse().ok());
                }
            }
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let cs = cs.expect("connection string");
    let https_port = cs
        .split(';')
        .find_map(|p| p.strip_prefix("HostName=localhost:"))
        .and_then(|p| p.parse().ok())
        .expect("https port");
    let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
    Hub {
        child,
        pid,
        cs,
        https_port,
        amqps_port: amqps_port.expect("amqps port"),
        ca: dir.path().join("ca.pem"),
        _dir: dir,
    }
}

/// Registers `count` devices `<prefix>0..` with bulk registry operations of 100.
async fn create_devices(hub: &Hub, prefix: &str, count: usize) {
    let pem = std::fs::read(&hub.ca).expect("ca.pem");
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(&pem).expect("CA")])
        .build()
        .expect("http");
    let cs = iothub_auth::ConnectionString::parse(&hub.cs).expect("cs");
    let credential = iothub_auth::HubCredential::from_connection_string(&cs).expect("credential");
    for start in (0..count).step_by(100) {
        let batch: Vec<_> = (start..count.min(start + 100))
            .map(|i| json!({ "id": format!("{prefix}{i}"), "importMode": "create" }))
            .collect();
        let header = credential.authorization_header().await.expect("token");
        let response = http
            .post(format!(
                "https://localhost:{}/devices?api-version=2021-04-12",
                hub.https_port
            ))
            .header("Authorization", header.expose())
            .json(&batch)
            .send()
            .await
            .expect("bulk create");
        assert!(
            response.status().is_success(),
            "bulk create: {}",
            response.status()
        );
    }
}

async fn rust_side(hub: &Hub, prefix: &str, messages: usize, concurrency: usize) -> Row {
    let devices = messages.div_ceil(PER_DEVICE);
    create_devices(hub, prefix, devices).await;
    let client = C2dClient::builder()
        .connection_string(&hub.cs)
        .amqps_port(hub.amqps_port)
        .add_root_certificate_file(&hub.ca)
        .build()
        .expect("client");
    create_devices(hub, &format!("{prefix}w"), 1).await;
    client
        .send(format!("{prefix}w0"), Message::new(BODY.to_vec()))
        .await
        .expect("warm-up send");
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = process_cpu();
    let hub_cpu = cpu_of(&hub.pid);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, next, prefix) = (client.clone(), Arc::clone(&next), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= messages {
                    return;
                }
                let message = Message::new(BODY.to_vec()).with_content_type("text/plain");
                client
                    .send(format!("{prefix}{}", i % devices), message)
                    .await
                    .expect("send");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let wall = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu);
    let hub_cpu = cpu_of(&hub.pid).saturating_sub(hub_cpu);
    client.close().await;
    Row {
        client: if concurrency > 1 {
            format!("rust iothub-c2d ({concurrency} in flight)")
        } else {
            "rust iothub-c2d (one at a time)".into()
        },
        sent: messages,
        wall,
        cpu,
        hub_cpu,
    }
}

fn parse_line(line: &str, client: &str) -> Option<Row> {
    let mut sent = None;
    let mut wall = None;
    let mut cpu = None;
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("sent=") {
            sent = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("wall_s=") {
            wall = v.parse::<f64>().ok().map(Duration::from_secs_f64);
        } else if let Some(v) = word.strip_prefix("cpu_s=") {
            cpu = v.parse::<f64>().ok().map(Duration::from_secs_f64);
        }
    }
    Some(Row {
        client: client.into(),
        sent: sent?,
        wall: wall?,
        cpu: cpu?,
        hub_cpu: Duration::ZERO,
    })
}

async fn node_side(hub: &Hub, messages: usize) -> Result<Row, String> {
    let devices = messages.div_ceil(PER_DEVICE);
    create_devices(hub, "n", devices).await;
    let node_modules = repo_root().join("tests/node/node_modules");
    if !node_modules.join("azure-iothub").exists() {
        return Err("tests/node/node_modules has no azure-iothub: run bash tests/setup.sh".into());
    }
    // Node's AMQP transport takes the port from HostName.
    let cs = hub.cs.replace(
        &format!("HostName=localhost:{}", hub.https_port),
        &format!("HostName=localhost:{}", hub.amqps_port),
    );
    let hub_cpu = cpu_of(&hub.pid);
    let output = tokio::process::Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_node.js"))
        .args([
            cs.as_str(),
            "n",
            &devices.to_string(),
            &messages.to_string(),
        ])
        .env("NODE_PATH", &node_modules)
        .env("NODE_EXTRA_CA_CERTS", &hub.ca)
        .output()
        .await
        .map_err(|e| format!("cannot run node: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let hub_cpu = cpu_of(&hub.pid).saturating_sub(hub_cpu);
    text.lines()
        .find_map(|l| parse_line(l, "node azure-iothub Client.send"))
        .map(|row| Row { hub_cpu, ..row })
        .ok_or_else(|| format!("node failed: {}", String::from_utf8_lossy(&output.stderr)))
}

async fn python_side(hub: &Hub, messages: usize) -> Result<Row, String> {
    let devices = messages.div_ceil(PER_DEVICE);
    create_devices(hub, "py", devices).await;
    let python = std::env::var_os("IOTHUB_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let hub_cpu = cpu_of(&hub.pid);
    let output = tokio::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_python.py"))
        .args([
            hub.cs.as_str(),
            &hub.ca.to_string_lossy(),
            &hub.amqps_port.to_string(),
            "py",
            &devices.to_string(),
            &messages.to_string(),
        ])
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let hub_cpu = cpu_of(&hub.pid).saturating_sub(hub_cpu);
    text.lines()
        .find_map(|l| parse_line(l, "python azure-iot-hub send_c2d_message"))
        .map(|row| Row { hub_cpu, ..row })
        .ok_or_else(|| format!("python failed: {}", String::from_utf8_lossy(&output.stderr)))
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut hub = start_emulator(&args).await;
    let mut rows = vec![
        rust_side(&hub, "rp", args.messages, args.concurrency).await,
        rust_side(&hub, "rs", args.node_messages, 1).await,
    ];
    match node_side(&hub, args.node_messages).await {
        Ok(row) => rows.push(row),
        Err(e) => println!("# node side skipped: {e}"),
    }
    match python_side(&hub, args.python_messages).await {
        Ok(row) => rows.push(row),
        Err(e) => println!("# python side skipped: {e}"),
    }
    println!(
        "{:<42} {:>8} {:>9} {:>10} {:>18} {:>16}",
        "client", "messages", "wall s", "msg/s", "client CPU µs/msg", "hub CPU µs/msg"
    );
    for row in &rows {
        println!(
            "{:<42} {:>8} {:>9.3} {:>10.0} {:>18.1} {:>16.1}",
            row.client,
            row.sent,
            row.wall.as_secs_f64(),
            row.rate(),
            row.cpu_us(),
            row.hub_cpu_us()
        );
    }
    let ours = &rows[0];
    for other in rows.iter().skip(2) {
        println!(
            "ratio vs {}: throughput {:.1}x, CPU per message {:.1}x less",
            other.client,
            ours.rate() / other.rate(),
            other.cpu_us() / ours.cpu_us().max(f64::MIN_POSITIVE)
        );
    }
    let _ = hub.child.kill().await;
}
