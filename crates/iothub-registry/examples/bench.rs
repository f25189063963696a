//! Throughput and client CPU of `RegistryManager` against a local emulator in its own process,
//! so that the CPU measured here is the client's alone.
//!
//! ```text
//! cargo run -p iothub-registry --release --example bench -- [--ops N] [--bulk N] [--concurrency N] [--emulator PATH]
//! ```
//!
//! Without `--emulator`, the emulator is started with `cargo run -p iothub-emulator --release`.
//! Prints one line per operation: `rust <op> ops/s=<n> cpu_us_per_op=<n>`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use iothub_registry::{
    AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode, RegistryManager, Twin,
};
use tokio::io::{AsyncBufReadExt as _, BufReader};

struct Args {
    ops: usize,
    bulk: usize,
    concurrency: usize,
    emulator: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        ops: 2000,
        bulk: 100_000,
        concurrency: 8,
        emulator: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--ops" => args.ops = value().parse().expect("--ops N"),
            "--bulk" => args.bulk = value().parse().expect("--bulk N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--emulator" => args.emulator = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ")".
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_micros(ticks * 1_000_000 / TICKS_PER_SECOND)
}

fn report(op: &str, count: usize, wall: Duration, cpu: Duration) {
    let ops = count as f64 / wall.as_secs_f64().max(1e-9);
    let cpu_us = cpu.as_secs_f64() * 1e6 / count.max(1) as f64;
    println!("rust {op} ops/s={ops:.1} cpu_us_per_op={cpu_us:.1}");
}

async fn measure<F, Fut>(op: &str, count: usize, concurrency: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = iothub_registry::Result<()>>,
{
    let (cpu0, t0) = (process_cpu(), Instant::now());
    futures::stream::iter(0..count)
        .map(&f)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{op} failed: {e:?}"));
    report(op, count, t0.elapsed(), process_cpu() - cpu0);
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let emulator_args = [
        "--https-port",
        "0",
        "--amqps-port",
        "0",
        "--mqtts-port",
        "0",
        "--data-dir",
        data_dir.as_str(),
    ];
    let mut command = match &args.emulator {
        Some(path) => tokio::process::Command::new(path),
        None => {
            let mut c = tokio::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            );
            c.args(["run", "-q", "-p", "iothub-emulator", "--release", "--"]);
            c
        }
    };
    let mut child = command
        .args(emulator_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env(
            "RUST_LOG",
            std::env::var("BENCH_EMULATOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("start the emulator");
    let stdout = child.stdout.take().expect("emulator stdout");
    let mut lines = BufReader::new(stdout).lines();
    let connection_string = loop {
        match lines.next_line().await.expect("read emulator stdout") {
            Some(line) => {
                if let Some(cs) = line.strip_prefix("IOTHUB_CONNECTION_STRING=") {
                    break cs.to_owned();
                }
            }
            None => panic!("the emulator exited before printing its connection string"),
        }
    };

    let rm = RegistryManager::builder()
        .connection_string(&connection_string)
        .add_root_certificate_file(dir.path().join("ca.pem"))
        .build()
        .expect("registry manager");
    let (n, c) = (args.ops, args.concurrency);
    let id = |i: usize| format!("bench-{i:06}");

    measure("create", n, c, |i| {
        let rm = &rm;
        async move {
            rm.create_device_with_sas(id(i), "", "", DeviceStatus::Enabled)
                .await
                .map(drop)
        }
    })
    .await;
    measure("get", n, c, |i| {
        let rm = &rm;
        async move { rm.get_device(&id(i)).await.map(drop) }
    })
    .await;
    let patch = Twin::with_desired(serde_json::json!({"bench": {"interval": 30}})).expect("object");
    measure("twin_update", n, c, |i| {
        let (rm, patch) = (&rm, &patch);
        async move { rm.update_twin(id(i), patch).await.map(drop) }
    })
    .await;
    let queries = (n / 20).max(1);
    measure("query", queries, c, |_| {
        let rm = &rm;
        async move {
            rm.query_iot_hub("SELECT * FROM devices WHERE properties.desired.bench.interval = 30")
                .max_item_count(100)
                .await
                .map(drop)
        }
    })
    .await;
    measure("delete", n, c, |i| {
        let rm = &rm;
        async move { rm.delete_device(id(i)).await }
    })
    .await;

    let entries: Vec<ExportImportDevice> = (0..args.bulk)
        .map(|i| ExportImportDevice {
            id: format!("bulk-{i:07}"),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(AuthenticationMechanism::sas("", "")),
            ..Default::default()
        })
        .collect();
    let (cpu0, t0) = (process_cpu(), Instant::now());
    let outcome = rm
        .bulk_create_or_update_devices_chunked(entries)
        .concurrency(4)
        .await;
    let (wall, cpu) = (t0.elapsed(), process_cpu() - cpu0);
    assert!(
        outcome.is_successful(),
        "bulk import failed for {} devices",
        outcome.failed_device_ids().len()
    );
    report("bulk_import", args.bulk, wall, cpu);

    drop(rm);
    let _ = child.kill().await;
}
