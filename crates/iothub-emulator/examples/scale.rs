//! The local hub at IoT Hub's scale: a registry of `--devices` identities (1,000,000 is IoT
//! Hub's largest), written and read through this SDK, beside the official Python SDK in the
//! same run.
//!
//! ```sh
//! bash tests/setup.sh     # <repo>/.venv with azure-iot-hub, for the Python rows
//! cargo build --release -p iothub-emulator --bin iothub-emulator --example scale
//! target/release/examples/scale --devices 1000000 [--python-devices N] [--no-python] [--data-dir DIR]
//! ```
//!
//! The hub is the `iothub-emulator` binary next to this example (same profile), started on
//! free ports with a temporary data directory (or `--data-dir`, which is kept afterwards for
//! inspection), so its CPU time, RSS and data directory are its own. Rows:
//! - bulk import with `bulk_create_or_update_devices_chunked` (requests of 100, 8 in flight);
//!   device `i` is `scale-NNNNNNN` with the tag `fleet = "f<i % 100>"` (each fleet is 1%);
//! - a `deviceId` point query, the first page (100) of a 1%-selective tag filter, `COUNT()`,
//!   `GROUP BY tags.fleet` (100 groups): the median of several runs, one after the other;
//! - a full scan of `SELECT * FROM devices` in pages of 1,000;
//! - the data directory's size and the hub's RSS (now and peak);
//! - cloud-to-device sends with `iothub-c2d` (512 in flight on one connection) and the hub's
//!   CPU time per message;
//! - Python: `bulk_create_or_update_devices` in sequential calls of 100 into a second fresh
//!   hub (`crates/iothub-registry/examples/bench_python.py`), and `send_c2d_message` one after
//!   the other (`crates/iothub-c2d/examples/bench_python.py`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use iothub_emulator::process::HubProcess;
use iothub_registry::{
    AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode, RegistryManager,
};
use serde_json::{Value, json};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    devices: usize,
    python_devices: Option<usize>,
    c2d_messages: usize,
    python_c2d_messages: usize,
    no_python: bool,
    data_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, AnyError> {
    let mut args = Args {
        devices: 1_000_000,
        python_devices: None,
        c2d_messages: 50_000,
        python_c2d_messages: 2_000,
        no_python: false,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize, AnyError> {
            Ok(it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse()?)
        };
        match flag.as_str() {
            "--devices" => args.devices = value()?.max(1000),
            "--python-devices" => args.python_devices = Some(value()?),
            "--c2d-messages" => args.c2d_messages = value()?,
            "--python-c2d-messages" => args.python_c2d_messages = value()?,
            "--no-python" => args.no_python = true,
            "--data-dir" => {
                args.data_dir = Some(it.next().ok_or("--data-dir needs a value")?.into());
            }
            "-h" | "--help" => {
                println!(
                    "scale [--devices N] [--python-devices N] [--c2d-messages N] \
                     [--python-c2d-messages N] [--no-python] [--data-dir DIR]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The hub binary as a child process ([`iothub_emulator::process::HubProcess`]), with what
/// the benchmark reads of it.
struct Hub(HubProcess);

impl Hub {
    fn start(data_dir: Option<&Path>) -> Result<Hub, AnyError> {
        let binary = std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("iothub-emulator"))
            .ok_or("cannot locate the target directory")?;
        let mut builder = HubProcess::builder(binary);
        if let Some(dir) = data_dir {
            builder = builder.data_dir(dir);
        }
        Ok(Hub(builder.start()?))
    }

    fn registry(&self) -> Result<RegistryManager, AnyError> {
        Ok(RegistryManager::builder()
            .connection_string(self.0.connection_string())
            .add_root_certificate_file(self.ca())
            .amqps_port(self.0.amqps_port())
            .build()?)
    }

    fn ca(&self) -> PathBuf {
        self.0.ca_path()
    }

    /// The hub's user + system CPU time.
    fn cpu(&self) -> Duration {
        self.0.usage().cpu
    }

    /// `(RSS, peak RSS, anonymous RSS)` in MB. The database file is memory-mapped, so RSS
    /// includes the file pages read (the kernel's page cache, shared and reclaimable); the
    /// anonymous part is the hub's own memory.
    fn rss(&self) -> (u64, u64, u64) {
        let usage = self.0.usage();
        (usage.rss_mb, usage.peak_rss_mb, usage.anonymous_rss_mb)
    }

    fn data_dir_mb(&self) -> u64 {
        self.0.data_dir_bytes() / 1_000_000
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn timed<F, Fut, T>(runs: usize, mut f: F) -> Result<(Duration, T), AnyError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AnyError>>,
{
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(f().await?);
        samples.push(started.elapsed());
    }
    Ok((median(samples), last.ok_or("no run")?))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn per_s(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64().max(1e-9))
}

fn python_interpreter() -> Option<PathBuf> {
    let path = std::env::var_os("IOTHUB_TEST_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    path.exists().then_some(path)
}

fn python(script: &str, args: &[String], env: &[(&str, String)]) -> Result<String, AnyError> {
    let python = python_interpreter()
        .ok_or("no Python with azure-iot-hub: run `bash tests/setup.sh` (or pass --no-python)")?;
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join(script)).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(stdout)
}

fn field(text: &str, prefix: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    })
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args = parse_args()?;
    let n = args.devices;
    let mut rows: Vec<(String, String, String, &str)> = Vec::new();
    println!("# scale benchmark: {n} devices; hub = the iothub-emulator binary, on this machine");

    let hub = Hub::start(args.data_dir.as_deref())?;
    let rm = hub.registry()?;

    // Bulk import.
    let devices = (0..n).map(|i| ExportImportDevice {
        id: format!("scale-{i:07}"),
        import_mode: Some(ImportMode::Create),
        status: Some(DeviceStatus::Enabled),
        authentication: Some(AuthenticationMechanism::sas("", "")),
        tags: json!({"fleet": format!("f{}", i % 100)})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..Default::default()
    });
    let (cpu0, started) = (hub.cpu(), Instant::now());
    let result = rm
        .bulk_create_or_update_devices_chunked(devices)
        .concurrency(8)
        .await?;
    let import = started.elapsed();
    let import_cpu = hub.cpu().saturating_sub(cpu0);
    if !result.is_successful() {
        return Err(format!(
            "bulk import failed for {} devices",
            result.failed_device_ids().len()
        )
        .into());
    }
    println!("# imported {n} devices in {:.1} s", import.as_secs_f64());
    rows.push((
        "bulk import (chunked, 8 × 100 in flight)".into(),
        format!(
            "{} ({:.1} s; hub CPU {:.1} µs/device)",
            per_s(n, import),
            import.as_secs_f64(),
            import_cpu.as_secs_f64() * 1e6 / n as f64
        ),
        String::new(),
        "≥ 100,000/s",
    ));

    // Queries.
    let point = format!(
        "SELECT * FROM devices WHERE deviceId = 'scale-{:07}'",
        n / 2
    );
    let (d, found) = timed(20, || async {
        let page = rm.query_as::<Value>(point.as_str()).send().await?;
        Ok(page.items.len())
    })
    .await?;
    assert_eq!(found, 1, "point query");
    rows.push((
        "deviceId point query".into(),
        ms(d),
        String::new(),
        "keep (~1 ms)",
    ));
    let (d, found) = timed(10, || async {
        let page = rm
            .query_as::<Value>("SELECT * FROM devices WHERE tags.fleet = 'f7'")
            .page_size(100)
            .send()
            .await?;
        Ok(page.items.len())
    })
    .await?;
    assert_eq!(found, 100.min(n / 100), "tag filter page");
    rows.push((
        "1% tag filter, first page of 100".into(),
        ms(d),
        String::new(),
        "≤ 10 ms",
    ));
    let (d, count) = timed(5, || async {
        let page = rm
            .query_as::<Value>("SELECT COUNT() AS n FROM devices")
            .send()
            .await?;
        Ok(page
            .items
            .first()
            .and_then(|r| r["n"].as_u64())
            .unwrap_or(0))
    })
    .await?;
    assert_eq!(count, n as u64, "COUNT()");
    rows.push((
        "SELECT COUNT() FROM devices".into(),
        ms(d),
        String::new(),
        "≤ 300 ms",
    ));
    let (d, groups) = timed(5, || async {
        let page = rm
            .query_as::<Value>("SELECT tags.fleet, COUNT() AS n FROM devices GROUP BY tags.fleet")
            .page_size(1000)
            .send()
            .await?;
        Ok(page.items.len())
    })
    .await?;
    assert_eq!(groups, 100, "GROUP BY");
    rows.push((
        "GROUP BY tags.fleet (100 groups)".into(),
        ms(d),
        String::new(),
        "≤ 300 ms",
    ));
    let started = Instant::now();
    let mut pages = rm
        .query_as::<Value>("SELECT * FROM devices")
        .page_size(1000)
        .pages();
    let mut scanned = 0;
    while let Some(page) = pages.next().await {
        scanned += page?.items.len();
    }
    let scan = started.elapsed();
    assert_eq!(scanned, n, "full scan");
    rows.push((
        "full scan, pages of 1,000".into(),
        format!("{:.1} s", scan.as_secs_f64()),
        String::new(),
        "≤ 10 s",
    ));
    rows.push((
        "data directory".into(),
        format!("{} MB", hub.data_dir_mb()),
        String::new(),
        "≤ 1 GB",
    ));
    let (rss, peak, anon) = hub.rss();
    rows.push((
        "hub RSS (now / peak; anonymous)".into(),
        format!("{rss} MB / {peak} MB; {anon} MB"),
        String::new(),
        "bounded",
    ));

    // Cloud-to-device sends: 1,000 extra devices, messages spread over them.
    let targets = 1000usize;
    let extra = (0..targets).map(|i| ExportImportDevice {
        id: format!("c2d-{i}"),
        import_mode: Some(ImportMode::Create),
        authentication: Some(AuthenticationMechanism::sas("", "")),
        ..Default::default()
    });
    rm.bulk_create_or_update_devices_chunked(extra).await?;
    let messages = args.c2d_messages.min(targets * 40);
    let c2d = rm.c2d_client()?;
    c2d.send("c2d-0", iothub_c2d::Message::new(vec![b'x'; 100]))
        .await?;
    let (cpu0, started) = (hub.cpu(), Instant::now());
    let sent = futures::stream::iter(0..messages)
        .map(|i| {
            let c2d = c2d.clone();
            async move {
                c2d.send(
                    format!("c2d-{}", i % targets),
                    iothub_c2d::Message::new(vec![b'x'; 100]),
                )
                .await
            }
        })
        .buffer_unordered(512)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    let c2d_time = started.elapsed();
    let c2d_cpu = hub.cpu().saturating_sub(cpu0);
    c2d.close().await;
    rows.push((
        "C2D sends, one AMQP link".into(),
        format!(
            "{} ({sent} of {messages} accepted; hub CPU {:.1} µs/message)",
            per_s(sent, c2d_time),
            c2d_cpu.as_secs_f64() * 1e6 / sent.max(1) as f64
        ),
        String::new(),
        "≥ 50,000/s",
    ));

    if !args.no_python {
        // Python C2D into the same hub (the queues now hold our messages; spread over the
        // same devices, well under their limit of 50).
        let py_messages = args.python_c2d_messages.min(targets * 9);
        let out = python(
            "crates/iothub-c2d/examples/bench_python.py",
            &[
                hub.0.connection_string().to_owned(),
                hub.ca().display().to_string(),
                hub.0.amqps_port().to_string(),
                "c2d-".into(),
                targets.to_string(),
                py_messages.to_string(),
            ],
            &[],
        )?;
        if let Some(wall) = field(&out, "python sent=", "wall_s=")
            && let Some(row) = rows.last_mut()
        {
            row.2 = format!("{:.0}/s (one after the other)", py_messages as f64 / wall);
        }
    }
    drop(hub);

    if !args.no_python {
        let m = args.python_devices.unwrap_or(n);
        let py_hub = Hub::start(None)?;
        let out = python(
            "crates/iothub-registry/examples/bench_python.py",
            &[
                "--part".into(),
                "bulk".into(),
                "--bulk".into(),
                m.to_string(),
                "--keep-alive".into(),
            ],
            &[
                (
                    "IOTHUB_CONNECTION_STRING",
                    py_hub.0.connection_string().to_owned(),
                ),
                ("REQUESTS_CA_BUNDLE", py_hub.ca().display().to_string()),
            ],
        )?;
        if let Some(wall) = field(&out, "python bulk_import", "wall_s=") {
            rows[0].2 = format!(
                "{:.0}/s ({m} devices, sequential calls of 100)",
                m as f64 / wall
            );
        }
    }

    println!();
    println!("| figure at {n} devices | iothub-rs | Python azure-iot-hub | target |");
    println!("|---|---|---|---|");
    for (name, ours, py, target) in &rows {
        let py = if py.is_empty() { "–" } else { py.as_str() };
        println!("| {name} | {ours} | {py} | {target} |");
    }
    Ok(())
}
