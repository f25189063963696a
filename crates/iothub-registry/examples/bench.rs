//! Throughput and client CPU of `RegistryManager` and of the official Python SDK
//! (`azure-iot-hub`, `IoTHubRegistryManager`) against one local emulator in its own process,
//! so that the CPU measured for each client is that client's alone.
//!
//! ```text
//! cargo build --release -p iothub-emulator
//! bash tests/setup.sh          # <repo>/.venv with azure-iot-hub, for the Python side
//! cargo run -p iothub-registry --release --example bench -- [options]
//!
//!   --ops N                 devices created, read, twin-updated and deleted per side (2000);
//!                           queries: N / 20
//!   --concurrency N         Rust calls in flight (8)
//!   --bulk N                devices bulk-imported by the Rust side (100000)
//!   --bulk-concurrency N    Rust bulk requests of 100 in flight (4)
//!   --bulk-target-secs S    target for the Rust bulk import's wall time (10)
//!   --emulator PATH         emulator binary (default: `cargo run -p iothub-emulator --release`)
//!   --python PATH           Python interpreter with azure-iot-hub (default: $IOTHUB_TEST_PYTHON,
//!                           else <repo>/.venv/bin/python)
//!   --python-ops N          Python's --ops (same as --ops)
//!   --python-bulk N         devices bulk-imported by the Python side (10000)
//!   --python-concurrency N  Python threads making calls (1: one call after the other)
//!   --python-keep-alive     let the Python SDK reuse connections (by default it opens a new
//!                           TCP + TLS connection for every call)
//!   --no-python             Rust side only
//!   --runtime R             tokio runtime of the Rust side: multi-thread (default) or
//!                           current-thread
//! ```
//!
//! Order, all against one emulator: Rust op mix, Python op mix (`examples/bench_python.py`),
//! Rust bulk import, Python bulk import. Each side's device ids have their own prefix.
//! Prints one line per measurement (`rust <op> ops/s=<n> cpu_us_per_op=<n> …`, and the Python
//! script's `python <op> …` lines), then a side-by-side table, the bulk import's wall time
//! against the target and the emulator's CPU time during each bulk import.
//!
//! Client CPU is user + system time of the client process only (here: the sum over this
//! process's threads from `/proc/self/task/*/schedstat`; Python: `time.process_time()`), from
//! the first call of a measurement to the last answer; process start-up and one warm-up call
//! per connection (each side) are not counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use iothub_registry::{
    AuthenticationMechanism, DeviceStatus, ExportImportDevice, ImportMode, RegistryManager,
    TwinPatch,
};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The operations of the mix, in the order they run and are tabled.
const OPS: [&str; 6] = [
    "create",
    "get",
    "twin_update",
    "query",
    "delete",
    "bulk_import",
];

/// The Python side's time limit per part; the counts are bounded, so this only stops a hang.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(1800);

struct Args {
    ops: usize,
    bulk: usize,
    concurrency: usize,
    bulk_concurrency: usize,
    bulk_target: Duration,
    emulator: Option<String>,
    python: Option<PathBuf>,
    python_ops: Option<usize>,
    python_bulk: usize,
    python_concurrency: usize,
    python_keep_alive: bool,
    no_python: bool,
    current_thread: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        ops: 2000,
        bulk: 100_000,
        concurrency: 8,
        bulk_concurrency: 4,
        bulk_target: Duration::from_secs(10),
        emulator: None,
        python: None,
        python_ops: None,
        python_bulk: 10_000,
        python_concurrency: 1,
        python_keep_alive: false,
        no_python: false,
        current_thread: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--ops" => args.ops = value().parse().expect("--ops N"),
            "--bulk" => args.bulk = value().parse().expect("--bulk N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--bulk-concurrency" => {
                args.bulk_concurrency = value().parse().expect("--bulk-concurrency N")
            }
            "--bulk-target-secs" => {
                args.bulk_target =
                    Duration::from_secs_f64(value().parse().expect("--bulk-target-secs S"))
            }
            "--emulator" => args.emulator = Some(value()),
            "--python" => args.python = Some(value().into()),
            "--python-ops" => args.python_ops = Some(value().parse().expect("--python-ops N")),
            "--python-bulk" => args.python_bulk = value().parse().expect("--python-bulk N"),
            "--python-concurrency" => {
                args.python_concurrency = value().parse().expect("--python-concurrency N")
            }
            "--python-keep-alive" => args.python_keep_alive = true,
            "--no-python" => args.no_python = true,
            "--runtime" => {
                args.current_thread = match value().as_str() {
                    "current-thread" => true,
                    "multi-thread" => false,
                    other => panic!("--runtime current-thread|multi-thread, not {other}"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

// --- CPU time -----------------------------------------------------------------------------

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;
const TICK: Duration = Duration::from_millis(1000 / TICKS_PER_SECOND);

/// CPU time of a process at one instant: per thread (nanoseconds, from
/// `/proc/<pid>/task/<tid>/schedstat`) and for the whole process (utime + stime of
/// `/proc/<pid>/stat`, in ticks of 10 ms, which also counts threads that have exited).
struct CpuMark {
    threads: HashMap<String, u64>,
    total: Duration,
    /// The system (kernel) part of `total`.
    system: Duration,
}

fn cpu_mark(pid: &str) -> CpuMark {
    let mut threads = HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let ns = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = ns {
                threads.insert(task.file_name().to_string_lossy().into_owned(), ns);
            }
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ")".
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = |n: u64| Duration::from_micros(n * 1_000_000 / TICKS_PER_SECOND);
    CpuMark {
        threads,
        total: ticks(field(11) + field(12)),
        system: ticks(field(12)),
    }
}

/// CPU time `pid` used since `start`: the per-thread sum (precise), unless threads that
/// exited in between make the whole-process tick count larger than the tick rounding allows.
fn cpu_since(pid: &str, start: &CpuMark) -> Duration {
    let now = cpu_mark(pid);
    let per_thread: u64 = now
        .threads
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(start.threads.get(tid).copied().unwrap_or(0)))
        .sum();
    let ticks = now.total.saturating_sub(start.total);
    if per_thread == 0 {
        return ticks;
    }
    Duration::from_nanos(per_thread).max(ticks.saturating_sub(TICK))
}

// --- measurements -------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Measured {
    op: String,
    count: usize,
    wall: Duration,
    cpu: Duration,
    /// The part of `cpu` spent in the kernel (10 ms resolution).
    system: Duration,
}

impl Measured {
    fn ops_per_sec(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn cpu_us_per_op(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.count.max(1) as f64
    }

    /// Share of the CPU time spent in the kernel, in percent.
    fn system_percent(&self) -> f64 {
        (100.0 * self.system.as_secs_f64() / self.cpu.as_secs_f64().max(1e-9)).min(100.0)
    }
}

/// Prints a measurement line; `emulator_cpu` is the emulator's CPU time in the same window.
fn report(m: &Measured, emulator_cpu: Duration) {
    println!(
        "rust {} ops/s={:.1} cpu_us_per_op={:.1} count={} wall_s={:.6} cpu_s={:.6} sys_s={:.2} emulator_cpu_us_per_op={:.1}",
        m.op,
        m.ops_per_sec(),
        m.cpu_us_per_op(),
        m.count,
        m.wall.as_secs_f64(),
        m.cpu.as_secs_f64(),
        m.system.as_secs_f64(),
        emulator_cpu.as_secs_f64() * 1e6 / m.count.max(1) as f64,
    );
}

async fn measure<F, Fut>(
    op: &str,
    count: usize,
    concurrency: usize,
    emulator_pid: &str,
    f: F,
) -> Measured
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = iothub_registry::Result<()>>,
{
    let (emu0, cpu0, t0) = (cpu_mark(emulator_pid), cpu_mark("self"), Instant::now());
    futures::stream::iter(0..count)
        .map(&f)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{op} failed: {e:?}"));
    let m = Measured {
        op: op.to_owned(),
        count,
        wall: t0.elapsed(),
        cpu: cpu_since("self", &cpu0),
        system: cpu_mark("self").system.saturating_sub(cpu0.system),
    };
    report(&m, cpu_since(emulator_pid, &emu0));
    m
}

// --- emulator -----------------------------------------------------------------------------

/// The emulator's own process: `pid` itself, or (when it is a `cargo run` that did not
/// replace itself) its child named `iothub-emulator`.
fn emulator_process(pid: u32) -> String {
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    // The kernel keeps the first 15 bytes of the name: exactly "iothub-emulator".
    if comm(&pid.to_string()).trim() == "iothub-emulator" {
        return pid.to_string();
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .find(|c| comm(c).trim() == "iothub-emulator")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            println!(
                "# note: could not find the emulator's process; its CPU time is that of {pid}"
            );
            pid.to_string()
        })
}

// --- Python side --------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The interpreter to use, or why the Python side is skipped.
fn python_interpreter(args: &Args) -> Result<PathBuf, String> {
    if args.no_python {
        return Err("--no-python was given".into());
    }
    let (path, source) = match (&args.python, std::env::var_os("IOTHUB_TEST_PYTHON")) {
        (Some(p), _) => (p.clone(), "--python"),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), "IOTHUB_TEST_PYTHON"),
        _ => (
            repo_root().join(".venv/bin/python"),
            "the default <repo>/.venv",
        ),
    };
    if !path.exists() {
        return Err(format!(
            "no Python interpreter at {} (from {source}); run `bash tests/setup.sh` to create \
             <repo>/.venv with azure-iot-hub, or pass --python PATH",
            path.display()
        ));
    }
    Ok(path)
}

/// Runs `bench_python.py` with `script_args` and returns its measurements and `#` notes.
async fn run_python(
    python: &Path,
    script_args: &[String],
    connection_string: &str,
    ca: &Path,
) -> Result<(Vec<Measured>, Vec<String>), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_python.py");
    let child = tokio::process::Command::new(python)
        .arg(&script)
        .args(script_args)
        .env("IOTHUB_CONNECTION_STRING", connection_string)
        .env("REQUESTS_CA_BUNDLE", ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", python.display()))?;
    let output = tokio::time::timeout(PYTHON_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("the Python script ran longer than {PYTHON_TIMEOUT:?}"))?
        .map_err(|e| format!("the Python script failed to run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        println!("{line}");
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "the Python script failed ({}); is azure-iot-hub installed for {}? (`bash tests/setup.sh`)\n{}",
            output.status,
            python.display(),
            tail.join("\n")
        ));
    }
    let mut measured = Vec::new();
    let mut notes = Vec::new();
    for line in stdout.lines() {
        if let Some(note) = line.strip_prefix('#') {
            notes.push(note.trim().to_owned());
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("python") {
            continue;
        }
        let Some(op) = words.next() else { continue };
        let fields: HashMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<f64>().ok());
        if let (Some(count), Some(wall), Some(cpu)) = (num("count"), num("wall_s"), num("cpu_s")) {
            measured.push(Measured {
                op: op.to_owned(),
                count: count as usize,
                wall: Duration::from_secs_f64(wall),
                cpu: Duration::from_secs_f64(cpu),
                system: Duration::from_secs_f64(num("sys_s").unwrap_or(0.0)),
            });
        }
    }
    Ok((measured, notes))
}

// --- output -------------------------------------------------------------------------------

fn print_table(rust: &[Measured], python: &[Measured], python_note: Option<&str>) {
    let find = |list: &[Measured], op: &str| list.iter().find(|m| m.op == op).cloned();
    let dash = || "-".to_owned();
    println!();
    println!(
        "{:<12} {:>12} {:>12} {:>15} {:>17} {:>20}",
        "op",
        "rust ops/s",
        "python ops/s",
        "rust cpu µs/op",
        "python cpu µs/op",
        "cpu ratio (py/rust)"
    );
    let mut min_ratio: Option<(f64, String)> = None;
    for op in OPS {
        let (r, p) = (find(rust, op), find(python, op));
        if r.is_none() && p.is_none() {
            continue;
        }
        let ratio = match (&r, &p) {
            (Some(r), Some(p)) if r.cpu_us_per_op() > 0.0 => {
                let ratio = p.cpu_us_per_op() / r.cpu_us_per_op();
                if min_ratio.as_ref().is_none_or(|(m, _)| ratio < *m) {
                    min_ratio = Some((ratio, op.to_owned()));
                }
                format!("{ratio:.1}x")
            }
            _ => dash(),
        };
        println!(
            "{:<12} {:>12} {:>12} {:>15} {:>17} {:>20}",
            op,
            r.as_ref()
                .map_or_else(dash, |m| format!("{:.0}", m.ops_per_sec())),
            p.as_ref()
                .map_or_else(dash, |m| format!("{:.0}", m.ops_per_sec())),
            r.as_ref()
                .map_or_else(dash, |m| format!("{:.1}", m.cpu_us_per_op())),
            p.as_ref()
                .map_or_else(dash, |m| format!("{:.1}", m.cpu_us_per_op())),
            ratio,
        );
    }
    let shares = |list: &[Measured]| {
        OPS.iter()
            .filter_map(|op| find(list, op))
            .map(|m| {
                // The system part is counted in 10 ms ticks: too coarse below ~20 of them.
                if m.cpu >= Duration::from_millis(200) {
                    format!("{} {:.0}%", m.op, m.system_percent())
                } else {
                    format!("{} n/a", m.op)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("kernel share of client cpu, rust:   {}", shares(rust));
    if !python.is_empty() {
        println!("kernel share of client cpu, python: {}", shares(python));
    }
    let (rb, pb) = (find(rust, "bulk_import"), find(python, "bulk_import"));
    if let (Some(rb), Some(pb)) = (&rb, &pb)
        && rb.count != pb.count
    {
        println!(
            "(bulk_import per device: rust imported {} devices, python {})",
            rb.count, pb.count
        );
    }
    match (min_ratio, python_note) {
        (_, Some(note)) => println!(
            "python side skipped: {}",
            note.lines().next().unwrap_or_default()
        ),
        (Some((ratio, op)), None) => println!(
            "client cpu per op, target rust <= 1/20 of python: {} (smallest ratio {ratio:.1}x, {op})",
            if ratio >= 20.0 { "PASS" } else { "FAIL" }
        ),
        (None, None) => println!("python side printed no measurements"),
    }
}

fn main() {
    let args = parse_args();
    let mut runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(args));
}

async fn run(args: Args) {
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
    let emulator_pid = emulator_process(child.id().expect("emulator pid"));
    let ca = dir.path().join("ca.pem");

    let python = python_interpreter(&args);
    let python_ops = args.python_ops.unwrap_or(args.ops);
    println!(
        "# rust: {} ops per kind, {} in flight; bulk {} devices, {} requests of 100 in flight",
        args.ops, args.concurrency, args.bulk, args.bulk_concurrency
    );
    match &python {
        Ok(p) => println!(
            "# python ({}): {python_ops} ops per kind, {} in flight, {}; bulk {} devices in sequential calls of 100",
            p.display(),
            args.python_concurrency,
            if args.python_keep_alive {
                "connections reused (--python-keep-alive)"
            } else {
                "SDK default: a new connection per call"
            },
            args.python_bulk
        ),
        Err(why) => println!("# python side skipped: {why}"),
    }

    let rm = RegistryManager::builder()
        .connection_string(&connection_string)
        .add_root_certificate_file(&ca)
        .build()
        .expect("registry manager");
    let (n, c, emu) = (args.ops, args.concurrency, emulator_pid.as_str());
    let id = |i: usize| format!("bench-{i:06}");
    let mut rust = Vec::new();

    // Warm-up before any clock starts: one call per connection the measurements will use, so
    // that one-time costs (TLS handshakes, the TLS library's random generator seeding) are not
    // spread over the first operation kind.
    futures::future::try_join_all((0..c.max(args.bulk_concurrency)).map(|_| {
        let rm = &rm;
        async move { rm.get_device_registry_statistics().await.map(drop) }
    }))
    .await
    .expect("warm-up call");

    rust.push(
        measure("create", n, c, emu, |i| {
            let rm = &rm;
            async move {
                rm.create_device_with_sas(id(i), "", "", DeviceStatus::Enabled)
                    .await
                    .map(drop)
            }
        })
        .await,
    );
    rust.push(
        measure("get", n, c, emu, |i| {
            let rm = &rm;
            async move { rm.get_device(id(i)).await.map(drop) }
        })
        .await,
    );
    let patch = TwinPatch::new()
        .desired(serde_json::json!({"bench": {"interval": 30}}))
        .expect("object");
    rust.push(
        measure("twin_update", n, c, emu, |i| {
            let (rm, patch) = (&rm, &patch);
            async move { rm.update_twin(id(i), patch).await.map(drop) }
        })
        .await,
    );
    let queries = (n / 20).max(1);
    rust.push(
        measure("query", queries, c, emu, |_| {
            let rm = &rm;
            async move {
                rm.query_iot_hub(
                    "SELECT * FROM devices WHERE properties.desired.bench.interval = 30",
                )
                .page_size(100)
                .await
                .map(drop)
            }
        })
        .await,
    );
    rust.push(
        measure("delete", n, c, emu, |i| {
            let rm = &rm;
            async move { rm.delete_device(id(i)).await }
        })
        .await,
    );

    // The Python op mix, against the same emulator in the same state (the Rust devices are gone).
    let mut python_measured = Vec::new();
    let mut python_skipped = python.as_ref().err().cloned();
    let common = |part: &str| {
        let mut script_args = vec![
            "--part".to_owned(),
            part.to_owned(),
            "--ops".to_owned(),
            python_ops.to_string(),
            "--bulk".to_owned(),
            args.python_bulk.to_string(),
            "--concurrency".to_owned(),
            args.python_concurrency.to_string(),
            "--prefix".to_owned(),
            "py".to_owned(),
        ];
        if args.python_keep_alive {
            script_args.push("--keep-alive".to_owned());
        }
        script_args
    };
    if let Ok(py) = &python {
        match run_python(py, &common("ops"), &connection_string, &ca).await {
            Ok((m, _)) => python_measured.extend(m),
            Err(why) => {
                println!("# python side skipped: {why}");
                python_skipped = Some(why);
            }
        }
    }

    // Rust bulk import.
    let entries: Vec<ExportImportDevice> = (0..args.bulk)
        .map(|i| ExportImportDevice {
            id: format!("bulk-{i:07}"),
            import_mode: Some(ImportMode::Create),
            status: Some(DeviceStatus::Enabled),
            authentication: Some(AuthenticationMechanism::sas("", "")),
            ..Default::default()
        })
        .collect();
    let (emu0, cpu0, t0) = (cpu_mark(emu), cpu_mark("self"), Instant::now());
    let outcome = rm
        .bulk_create_or_update_devices_chunked(entries)
        .concurrency(args.bulk_concurrency)
        .await
        .expect("bulk import");
    let (wall, cpu) = (t0.elapsed(), cpu_since("self", &cpu0));
    let system = cpu_mark("self").system.saturating_sub(cpu0.system);
    let rust_bulk_emulator_cpu = cpu_since(emu, &emu0);
    assert!(
        outcome.is_successful(),
        "bulk import failed for {} devices",
        outcome.failed_device_ids().len()
    );
    let rust_bulk = Measured {
        op: "bulk_import".into(),
        count: args.bulk,
        wall,
        cpu,
        system,
    };
    report(&rust_bulk, rust_bulk_emulator_cpu);
    rust.push(rust_bulk.clone());

    // Python bulk import.
    let mut python_bulk_emulator_cpu = None;
    if python_skipped.is_none()
        && let Ok(py) = &python
    {
        let emu0 = cpu_mark(emu);
        match run_python(py, &common("bulk"), &connection_string, &ca).await {
            Ok((m, _)) => {
                // The window also holds the interpreter's start-up, when the emulator is idle.
                python_bulk_emulator_cpu = Some(cpu_since(emu, &emu0));
                python_measured.extend(m);
            }
            Err(why) => {
                println!("# python bulk import skipped: {why}");
            }
        }
    }

    print_table(&rust, &python_measured, python_skipped.as_deref());

    println!();
    let pass = rust_bulk.wall <= args.bulk_target;
    println!(
        "bulk import, rust: {} devices in {:.2} s = {:.0} devices/s (target < {:.0} s: {})",
        rust_bulk.count,
        rust_bulk.wall.as_secs_f64(),
        rust_bulk.ops_per_sec(),
        args.bulk_target.as_secs_f64(),
        if pass { "PASS" } else { "FAIL" },
    );
    let share = |cpu: Duration, wall: Duration| cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9);
    println!(
        "  client cpu {:.2} s ({:.0}% of one core), emulator cpu {:.2} s ({:.0}% of one core, {:.1} µs/device)",
        rust_bulk.cpu.as_secs_f64(),
        100.0 * share(rust_bulk.cpu, rust_bulk.wall),
        rust_bulk_emulator_cpu.as_secs_f64(),
        100.0 * share(rust_bulk_emulator_cpu, rust_bulk.wall),
        rust_bulk_emulator_cpu.as_secs_f64() * 1e6 / rust_bulk.count.max(1) as f64,
    );
    if let (Some(pb), Some(emu_cpu)) = (
        python_measured.iter().find(|m| m.op == "bulk_import"),
        python_bulk_emulator_cpu,
    ) {
        let extrapolated = if rust_bulk.count > pb.count {
            format!(
                "; {} devices would take ~{:.0} s at this rate",
                rust_bulk.count,
                rust_bulk.count as f64 / pb.ops_per_sec().max(1e-9)
            )
        } else {
            String::new()
        };
        println!(
            "bulk import, python: {} devices in {:.2} s = {:.0} devices/s (sequential calls of 100{extrapolated})",
            pb.count,
            pb.wall.as_secs_f64(),
            pb.ops_per_sec(),
        );
        println!(
            "  client cpu {:.2} s ({:.0}% of one core), emulator cpu {:.2} s ({:.1} µs/device)",
            pb.cpu.as_secs_f64(),
            100.0 * share(pb.cpu, pb.wall),
            emu_cpu.as_secs_f64(),
            emu_cpu.as_secs_f64() * 1e6 / pb.count.max(1) as f64,
        );
    }

    drop(rm);
    let _ = child.kill().await;
}
