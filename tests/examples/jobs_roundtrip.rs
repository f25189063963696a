//! A registry round trip at IoT Hub's scale, two ways, beside the official Python SDK in the
//! same run:
//!
//! - **jobs**: an export job (keys included) from hub A into Azurite, then an import job of
//!   that blob into a fresh hub B; the hub's peak anonymous RSS is sampled while each job runs;
//! - **bulk calls**: the same registry read from hub A with twin query pages of 1,000 plus
//!   `get_device` for each device's keys (16 in flight), and written into a fresh hub C with
//!   `bulk_create_or_update_devices_chunked` (requests of 100, 8 in flight) and one
//!   `create_module_with_sas` per module;
//! - **Python** (`bench_jobs_python.py`): the bulk-call round trip with `azure-iot-hub`, one
//!   call after the other, over the first `--python-devices` devices.
//!
//! Hub B must then equal hub A: both are exported again and compared line by line (ids, keys,
//! status, tags, desired properties, modules; ETags and timestamps aside). Hub C is checked
//! by count and by a sample.
//!
//! ```sh
//! bash tests/setup.sh    # Azurite and the Python SDK
//! cargo build --release -p iothub-conformance --bin local-hub --example jobs_roundtrip
//! target/release/examples/jobs_roundtrip --devices 1000000 [--python-devices 20000]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use iothub_conformance::azurite::Azurite;
use iothub_conformance::process::HubProcess;
use iothub_registry::{
    AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode, JobProperties,
    JobStatus, RegistryManager,
};
use serde_json::{Value, json};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    devices: usize,
    python_devices: usize,
}

fn parse_args() -> Result<Args, AnyError> {
    let mut args = Args {
        devices: 1_000_000,
        python_devices: 20_000,
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
            "--devices" => args.devices = value()?.max(100),
            "--python-devices" => args.python_devices = value()?,
            "-h" | "--help" => {
                println!("jobs_roundtrip [--devices N] [--python-devices N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    args.python_devices = args.python_devices.min(args.devices);
    Ok(args)
}

fn local_hub_binary() -> Result<PathBuf, AnyError> {
    let binary = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("local-hub"))
        .ok_or("cannot locate the target directory")?;
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build [--release] -p iothub-conformance --bin local-hub`",
            binary.display()
        )
        .into())
    }
}

struct Hub {
    process: HubProcess,
    rm: RegistryManager,
    _dir: tempfile::TempDir,
}

async fn start_hub(binary: &Path) -> Result<Hub, AnyError> {
    let dir = tempfile::tempdir()?;
    let process = HubProcess::start(binary, dir.path()).await;
    let rm = RegistryManager::builder()
        .connection_string(process.connection_string())
        .add_root_certificate_pem(process.ca_pem())
        .build()?;
    Ok(Hub {
        process,
        rm,
        _dir: dir,
    })
}

fn key(i: usize, salt: u8) -> String {
    use base64::Engine as _;
    let mut bytes = [salt; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Device `i`: keys of its own, `fleet` tag; every 10th disabled and with desired
/// properties; every 100th has a module.
fn device(i: usize) -> ExportImportDevice {
    let mut entry = ExportImportDevice {
        id: format!("rt-{i:07}"),
        import_mode: Some(ImportMode::Create),
        status: Some(if i.is_multiple_of(10) {
            DeviceStatus::Disabled
        } else {
            DeviceStatus::Enabled
        }),
        authentication: Some(AuthenticationMechanism::sas(key(i, 1), key(i, 2))),
        tags: json!({ "fleet": format!("f{}", i % 100) })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..Default::default()
    };
    if i.is_multiple_of(10) {
        entry.properties = serde_json::from_value(json!({"desired": {"interval": i % 60}})).ok();
    }
    entry
}

async fn wait(rm: &RegistryManager, job_id: &str) -> Result<(), AnyError> {
    let job = rm
        .wait_for_import_export_job(job_id)
        .poll_interval(Duration::from_millis(200))
        .await?;
    if job.status != JobStatus::Completed {
        return Err(format!(
            "job {job_id} ended {:?}: {:?}",
            job.status, job.failure_reason
        )
        .into());
    }
    Ok(())
}

/// Runs an export job of `hub` into `container` (blob `name`); returns its time and the
/// hub's peak RSS while it ran.
async fn export(hub: &Hub, container: &str, name: &str) -> Result<(Duration, u64), AnyError> {
    let started = Instant::now();
    let job = hub
        .rm
        .create_import_export_job(
            JobProperties::export(container)
                .exclude_keys_in_export(false)
                .output_blob_name(name),
        )
        .await?;
    let (outcome, peak) = hub
        .process
        .peak_rss_during(Duration::from_millis(100), wait(&hub.rm, &job.job_id))
        .await;
    outcome?;
    Ok((started.elapsed(), peak))
}

/// One export line without what a round trip does not keep (ETags, twin metadata).
fn normalized(line: &str) -> Result<Value, AnyError> {
    let mut v: Value = serde_json::from_str(line)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("eTag");
        o.remove("twinETag");
        if let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) {
            for section in props.values_mut() {
                if let Some(s) = section.as_object_mut() {
                    s.remove("$metadata");
                    s.remove("$version");
                }
            }
        }
    }
    Ok(v)
}

/// Compares two exports line by line; returns the number of lines.
fn same_exports(a: &Path, b: &Path) -> Result<usize, AnyError> {
    use std::io::BufRead;
    let (a, b) = (
        std::io::BufReader::new(std::fs::File::open(a)?),
        std::io::BufReader::new(std::fs::File::open(b)?),
    );
    let mut n = 0;
    let mut b_lines = b.lines();
    for line in a.lines() {
        let line = line?;
        let other = b_lines
            .next()
            .ok_or_else(|| format!("hub B's export ends after {n} lines"))??;
        if normalized(&line)? != normalized(&other)? {
            return Err(format!("line {} differs:\n A {line}\n B {other}", n + 1).into());
        }
        n += 1;
    }
    if b_lines.next().is_some() {
        return Err(format!("hub B's export has more than {n} lines").into());
    }
    Ok(n)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64().max(1e-9))
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args = parse_args()?;
    let n = args.devices;
    let modules = n.div_ceil(100);
    let binary = local_hub_binary()?;
    println!("# registry round trip: {n} devices and {modules} modules, on this machine");
    let storage = Azurite::start().await;
    let exports = storage.container("exports").await;
    let logs = storage.container("import-logs").await;

    // Hub A.
    let a = start_hub(&binary).await?;
    let started = Instant::now();
    let created =
        a.rm.bulk_create_or_update_devices_chunked((0..n).map(device))
            .concurrency(8)
            .await?;
    if !created.is_successful() {
        return Err("creating hub A's devices failed".into());
    }
    futures::stream::iter((0..n).step_by(100))
        .map(|i| {
            a.rm.create_module_with_sas(
                format!("rt-{i:07}"),
                "telemetry",
                None,
                key(i, 3),
                key(i, 4),
            )
            .send()
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    println!("# hub A populated in {}", secs(started.elapsed()));

    // Jobs: export A, import into B.
    let rss_a = a.process.rss_mb();
    let (export_time, export_peak) = export(&a, &exports, "devices.txt").await?;
    println!("# export job: {}", secs(export_time));
    let b = start_hub(&binary).await?;
    let started = Instant::now();
    let job =
        b.rm.create_import_export_job(JobProperties::import(&exports, &logs))
            .await?;
    let (outcome, import_peak) = b
        .process
        .peak_rss_during(Duration::from_millis(100), wait(&b.rm, &job.job_id))
        .await;
    outcome?;
    let import_time = started.elapsed();
    println!("# import job: {}", secs(import_time));

    // Compare: export B and diff the two blobs.
    export(&b, &exports, "devices-b.txt").await?;
    let dir = tempfile::tempdir()?;
    let (file_a, file_b, file_log) = (
        dir.path().join("a.txt"),
        dir.path().join("b.txt"),
        dir.path().join("log.txt"),
    );
    storage.get(&exports, "devices.txt", &file_a).await;
    storage.get(&exports, "devices-b.txt", &file_b).await;
    storage.get(&logs, "importErrors.log", &file_log).await;
    let failed_lines = std::fs::read_to_string(&file_log)?.lines().count();
    if failed_lines > 0 {
        return Err(format!("the import logged {failed_lines} failed lines").into());
    }
    let lines = same_exports(&file_a, &file_b)?;
    println!("# hub B equals hub A: {lines} export lines identical");
    drop(b);

    // Bulk calls: read A (query pages + get_device), write C.
    let started = Instant::now();
    let mut twins = BTreeMap::new();
    let mut pages =
        a.rm.query_as::<Value>("SELECT * FROM devices")
            .page_size(1000)
            .pages();
    while let Some(page) = pages.next().await {
        for t in page?.items {
            twins.insert(t["deviceId"].as_str().unwrap_or_default().to_owned(), t);
        }
    }
    let rm_a = &a.rm;
    let entries: Vec<ExportImportDevice> = futures::stream::iter(twins.into_values())
        .map(|twin| async move {
            let id = twin["deviceId"].as_str().unwrap_or_default().to_owned();
            let device = rm_a.get_device(&id).await?;
            let mut desired = twin["properties"]["desired"].clone();
            if let Some(d) = desired.as_object_mut() {
                d.remove("$metadata");
                d.remove("$version");
            }
            Ok::<_, AnyError>(ExportImportDevice {
                id,
                import_mode: Some(ImportMode::Create),
                status: device.status,
                authentication: device.authentication,
                tags: twin["tags"].as_object().cloned().unwrap_or_default(),
                properties: serde_json::from_value(json!({ "desired": desired })).ok(),
                ..Default::default()
            })
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut module_keys = Vec::new();
    for i in (0..n).step_by(100) {
        let m = a.rm.get_module(format!("rt-{i:07}"), "telemetry").await?;
        module_keys.push((m.device_id, m.authentication));
    }
    let bulk_read = started.elapsed();
    println!("# bulk-call read: {}", secs(bulk_read));
    let c = start_hub(&binary).await?;
    let started = Instant::now();
    let written =
        c.rm.bulk_create_or_update_devices_chunked(entries)
            .concurrency(8)
            .await?;
    if !written.is_successful() {
        return Err("the bulk-call write failed".into());
    }
    let rm_c = &c.rm;
    futures::stream::iter(module_keys)
        .map(|(device_id, auth)| async move {
            let keys = auth.and_then(|a| a.symmetric_key).unwrap_or_default();
            rm_c.create_module_with_sas(
                device_id,
                "telemetry",
                None,
                keys.primary_key.unwrap_or_default(),
                keys.secondary_key.unwrap_or_default(),
            )
            .await
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let bulk_write = started.elapsed();
    println!("# bulk-call write: {}", secs(bulk_write));
    let count =
        c.rm.query_as::<Value>("SELECT COUNT() AS n FROM devices")
            .await?;
    if count.items.first().and_then(|r| r["n"].as_u64()) != Some(n as u64) {
        return Err(format!("hub C holds {:?} devices", count.items).into());
    }
    for i in (0..n).step_by((n / 50).max(1)) {
        let id = format!("rt-{i:07}");
        let (da, dc) = (a.rm.get_device(&id).await?, c.rm.get_device(&id).await?);
        if (da.status, da.authentication) != (dc.status, dc.authentication) {
            return Err(format!("{id} differs between hubs A and C").into());
        }
    }
    drop(c);

    // Python, over the first `python_devices` devices, into hub D.
    let p = args.python_devices;
    let mut python_rows = (String::from("–"), String::from("–"), String::from("–"));
    if p > 0 {
        let d = start_hub(&binary).await?;
        let bundle = dir.path().join("cas.pem");
        std::fs::write(&bundle, a.process.ca_pem() + &d.process.ca_pem())?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_jobs_python.py");
        let out = tokio::process::Command::new(iothub_conformance::python())
            .arg(script)
            .arg(a.process.connection_string())
            .arg(d.process.connection_string())
            .arg(p.to_string())
            .env("REQUESTS_CA_BUNDLE", &bundle)
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "bench_jobs_python.py failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let wall = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.split("wall_s=").nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(Duration::from_secs_f64)
        };
        if let (Some(read), Some(write)) = (wall("python read="), wall("python write=")) {
            let projected = (read + write).as_secs_f64() * n as f64 / p as f64;
            python_rows = (
                format!("{} ({p} devices)", rate(p, read)),
                format!("{} ({p} devices)", rate(p, write)),
                format!("{:.0} s projected to {n}", projected),
            );
        }
    }

    println!();
    println!(
        "| {n} devices, {modules} modules | iothub-rs: import/export jobs | iothub-rs: bulk calls | Python azure-iot-hub: bulk calls |"
    );
    println!("|---|---|---|---|");
    println!(
        "| read the registry (with keys) | export job {} ({}) | {} ({}) | {} |",
        secs(export_time),
        rate(n, export_time),
        secs(bulk_read),
        rate(n, bulk_read),
        python_rows.0
    );
    println!(
        "| write it into a fresh hub | import job {} ({}) | {} ({}) | {} |",
        secs(import_time),
        rate(n, import_time),
        secs(bulk_write),
        rate(n, bulk_write),
        python_rows.1
    );
    println!(
        "| round trip | {} | {} | {} |",
        secs(export_time + import_time),
        secs(bulk_read + bulk_write),
        python_rows.2
    );
    println!(
        "| hub peak RSS (anonymous) while the job ran | export {export_peak} MB (hub A at {rss_a} MB before), import {import_peak} MB | – | – |"
    );
    println!(
        "| identical registries | yes: {lines} export lines compared | count and a sample of 50 | – |"
    );
    storage.stop().await;
    Ok(())
}
