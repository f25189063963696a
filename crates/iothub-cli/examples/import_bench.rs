//! Bulk import of device identities from a file: `iothub device-identity import` beside the
//! official Python SDK (`azure-iot-hub`'s `bulk_create_or_update_devices`, calls of 100 one
//! after the other, as its users write it), each into a fresh local hub, in the same run.
//!
//! ```sh
//! bash tests/setup.sh    # <repo>/.venv with azure-iot-hub, for the Python side
//! cargo build --release -p iothub-cli --bin iothub --example import_bench
//! target/release/examples/import_bench [--devices 1000000] [--python-devices N] [--no-python]
//! ```
//!
//! The hub runs in this process (release build, temporary data directory); `iothub` runs as
//! a child process on a JSONL file written beforehand (writing it is not timed), with its
//! default concurrency (8 requests of 100). The Python side runs
//! `crates/iothub-registry/examples/bench_python.py --part bulk`. Both counts are checked
//! against the hub's registry statistics afterwards.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    devices: usize,
    python_devices: Option<usize>,
    python: Option<PathBuf>,
    no_python: bool,
}

fn parse_args() -> Result<Args, AnyError> {
    let mut args = Args {
        devices: 1_000_000,
        python_devices: None,
        python: None,
        no_python: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--devices" => args.devices = value()?.parse()?,
            "--python-devices" => args.python_devices = Some(value()?.parse()?),
            "--python" => args.python = Some(PathBuf::from(value()?)),
            "--no-python" => args.no_python = true,
            "-h" | "--help" => {
                println!(
                    "import_bench [--devices N] [--python-devices N] [--python PATH] [--no-python]"
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

async fn start_hub(dir: &Path) -> Result<iothub_emulator::Emulator, AnyError> {
    Ok(iothub_emulator::Emulator::builder()
        .data_dir(dir)
        .https_port(0)
        .amqps_port(0)
        .mqtts_port(0)
        .start()
        .await?)
}

async fn device_count(hub: &iothub_emulator::Emulator) -> Result<i64, AnyError> {
    let rm = iothub_registry::RegistryManager::builder()
        .connection_string(&hub.connection_string())
        .add_root_certificate_pem(hub.ca_pem())
        .build()?;
    Ok(rm
        .get_device_registry_statistics()
        .await?
        .total_device_count)
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args = parse_args()?;
    let iothub = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("iothub"))
        .ok_or("cannot locate the target directory")?;
    if !iothub.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p iothub-cli --bin iothub`",
            iothub.display()
        )
        .into());
    }
    let work = tempfile::tempdir()?;
    let file = work.path().join("devices.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for i in 0..args.devices {
            writeln!(
                out,
                r#"{{"id":"bulk-{i:07}","status":"enabled","authentication":{{"type":"sas"}},"tags":{{"fleet":"f{}"}}}}"#,
                i % 100
            )?;
        }
        out.flush()?;
    }
    println!(
        "# {} devices in {} ({} MB), release build, 2-core machine; hub in this process",
        args.devices,
        file.display(),
        std::fs::metadata(&file)?.len() / 1_000_000
    );

    // Ours: the CLI on the file.
    let hub_dir = tempfile::tempdir()?;
    let hub = start_hub(hub_dir.path()).await?;
    let started = Instant::now();
    let status = tokio::process::Command::new(&iothub)
        .arg(format!("--local={}", hub_dir.path().display()))
        .args(["-o", "json", "device-identity", "import", "-f"])
        .arg(&file)
        .stdin(Stdio::null())
        .status()
        .await?;
    let ours = started.elapsed();
    if !status.success() {
        return Err(format!("iothub device-identity import failed: {status}").into());
    }
    let count = device_count(&hub).await?;
    if count != args.devices as i64 {
        return Err(format!("the hub holds {count} devices, not {}", args.devices).into());
    }
    hub.shutdown().await?;
    println!(
        "iothub device-identity import: {} devices in {:.1} s = {:.0} devices/s (registry holds {count})",
        args.devices,
        ours.as_secs_f64(),
        rate(args.devices, ours)
    );

    if args.no_python {
        return Ok(());
    }
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    if !python.exists() {
        return Err(format!(
            "no Python at {}: run `bash tests/setup.sh` or pass --python PATH (or --no-python)",
            python.display()
        )
        .into());
    }
    let n = args.python_devices.unwrap_or(args.devices);
    let py_dir = tempfile::tempdir()?;
    let py_hub = start_hub(py_dir.path()).await?;
    let script = repo_root().join("crates/iothub-registry/examples/bench_python.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--part", "bulk", "--bulk", &n.to_string(), "--keep-alive"])
        .env("IOTHUB_CONNECTION_STRING", py_hub.connection_string())
        .env("REQUESTS_CA_BUNDLE", py_hub.ca_path())
        .stdin(Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the Python side failed: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let wall = stdout
        .lines()
        .find(|l| l.starts_with("python bulk_import"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("wall_s="))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .ok_or("the Python side printed no bulk_import line")?;
    let py_count = device_count(&py_hub).await?;
    py_hub.shutdown().await?;
    let py = Duration::from_secs_f64(wall);
    println!(
        "Python azure-iot-hub, sequential calls of 100: {n} devices in {:.1} s = {:.0} devices/s (registry holds {py_count})",
        py.as_secs_f64(),
        rate(n, py)
    );
    println!(
        "ratio: iothub imports {:.1}x as many devices per second",
        rate(args.devices, ours) / rate(n, py)
    );
    Ok(())
}
