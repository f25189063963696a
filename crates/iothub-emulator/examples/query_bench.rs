//! Query benchmark: times the common `POST /devices/query` shapes (and a twin read) against
//! an in-process emulator holding many devices.
//!
//! ```text
//! cargo run --release -p iothub-emulator --example query_bench [-- --devices 100000 --runs 30]
//! ```
//!
//! The devices are created through the REST API (bulk imports of 100). Device `i` is
//! `bench-NNNNNN` with the tag `fleet = "f<i % 100>"` (each fleet is 1% of the devices), a
//! reported `temp`, and status `disabled` for every tenth device. Every shape then runs
//! `--runs` times, one request after the other over one keep-alive HTTPS connection, and the
//! table shows the median and the slowest request time next to the target.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iothub_auth::{ConnectionString, sas};
use serde_json::{Value, json};

const API: &str = "api-version=2021-04-12";
const BULK: usize = 100;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Options {
    devices: usize,
    runs: usize,
}

fn options() -> BenchResult<Options> {
    let mut opts = Options {
        devices: 100_000,
        runs: 30,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> BenchResult<usize> {
            let text = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            Ok(text.parse::<usize>().map_err(|e| format!("{name}: {e}"))?)
        };
        match arg.as_str() {
            "--devices" => opts.devices = value("--devices")?.max(1000),
            "--runs" => opts.runs = value("--runs")?.max(1),
            "-h" | "--help" => {
                println!("usage: query_bench [--devices N (>= 1000)] [--runs N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(opts)
}

/// One HTTPS client (a single pooled connection) with the hub's SAS token.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}?{API}", self.base)
    }

    async fn bulk(&self, devices: &[Value]) -> BenchResult<()> {
        let resp = self
            .client
            .post(self.url("/devices"))
            .header("authorization", &self.token)
            .json(&devices)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("bulk import failed with {status}: {body}").into());
        }
        Ok(())
    }

    /// Runs `query` for one page of `page_size` items and returns the item count.
    async fn query(&self, query: &str, page_size: u32) -> BenchResult<usize> {
        let resp = self
            .client
            .post(self.url("/devices/query"))
            .header("authorization", &self.token)
            .header("x-ms-max-item-count", page_size.to_string())
            .json(&json!({ "query": query }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            return Err(format!("query {query:?} failed with {status}: {body}").into());
        }
        Ok(body.as_array().map_or(0, Vec::len))
    }

    async fn get_twin(&self, id: &str) -> BenchResult<usize> {
        let resp = self
            .client
            .get(self.url(&format!("/twins/{id}")))
            .header("authorization", &self.token)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() || body["deviceId"] != id {
            return Err(format!("GET /twins/{id} failed with {status}: {body}").into());
        }
        Ok(1)
    }
}

fn device_id(i: usize) -> String {
    format!("bench-{i:06}")
}

fn import_body(i: usize) -> Value {
    json!({
        "id": device_id(i),
        "importMode": "create",
        "status": if i.is_multiple_of(10) { "disabled" } else { "enabled" },
        "tags": { "fleet": format!("f{}", i % 100), "site": { "row": i % 37 } },
        "properties": { "reported": { "temp": i % 50, "fw": format!("1.{}.0", i % 7) } },
    })
}

/// What one shape runs, with the number of items it must return.
enum Call {
    Query {
        text: String,
        page: u32,
        expect: usize,
    },
    Twin(String),
}

struct Shape {
    name: &'static str,
    target: &'static str,
    call: Call,
}

fn shapes(devices: usize) -> Vec<Shape> {
    let mid = devices / 2;
    let ids: Vec<String> = (0..10)
        .map(|k| format!("'{}'", device_id(k * devices / 10 + 3)))
        .collect();
    let prefix = device_id(mid);
    let prefix = &prefix[..prefix.len() - 2];
    vec![
        Shape {
            name: "deviceId point",
            target: "<= 2 ms",
            call: Call::Query {
                text: format!(
                    "SELECT * FROM devices WHERE deviceId = '{}'",
                    device_id(mid)
                ),
                page: 100,
                expect: 1,
            },
        },
        Shape {
            name: "deviceId IN (10 ids)",
            target: "<= 2 ms",
            call: Call::Query {
                text: format!(
                    "SELECT * FROM devices WHERE deviceId IN [{}]",
                    ids.join(", ")
                ),
                page: 100,
                expect: 10,
            },
        },
        Shape {
            name: "STARTSWITH(deviceId) page 1",
            target: "<= 10 ms",
            call: Call::Query {
                text: format!("SELECT * FROM devices WHERE STARTSWITH(deviceId, '{prefix}')"),
                page: 100,
                expect: 100,
            },
        },
        Shape {
            name: "tag filter (1%) page 1",
            target: "<= 10 ms",
            call: Call::Query {
                text: "SELECT * FROM devices WHERE tags.fleet = 'f7'".to_owned(),
                page: 100,
                expect: 100,
            },
        },
        Shape {
            name: "status filter page 1",
            target: "<= 10 ms",
            call: Call::Query {
                text: "SELECT * FROM devices WHERE status = 'disabled'".to_owned(),
                page: 100,
                expect: 100,
            },
        },
        Shape {
            name: "COUNT() all",
            target: "<= 100 ms",
            call: Call::Query {
                text: "SELECT COUNT() AS n FROM devices".to_owned(),
                page: 100,
                expect: 1,
            },
        },
        Shape {
            name: "GROUP BY tags.fleet, COUNT()",
            target: "<= 100 ms",
            call: Call::Query {
                text: "SELECT tags.fleet, COUNT() AS n FROM devices GROUP BY tags.fleet".to_owned(),
                page: 1000,
                expect: 100,
            },
        },
        Shape {
            name: "tag filter, no match (scan)",
            target: "-",
            call: Call::Query {
                text: "SELECT * FROM devices WHERE tags.fleet = 'none'".to_owned(),
                page: 100,
                expect: 0,
            },
        },
        Shape {
            name: "GET /twins/{id}",
            target: "unchanged",
            call: Call::Twin(device_id(mid + 1)),
        },
    ]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> BenchResult<()> {
    let opts = options()?;
    let dir = tempfile::tempdir()?;
    let emu = iothub_emulator::Emulator::builder()
        .data_dir(dir.path())
        .https_port(0)
        .start()
        .await?;
    let cs: ConnectionString = emu.connection_string().parse()?;
    let key = cs
        .shared_access_key()
        .ok_or("no key in the connection string")?;
    let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 24 * 3600;
    let token = sas::generate_sas_token(cs.host_name(), key, cs.shared_access_key_name(), expiry)
        .expose()
        .to_owned();
    let cert = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes())?;
    let client = reqwest::Client::builder()
        .tls_certs_only([cert])
        .pool_max_idle_per_host(1)
        .build()?;
    let api = Api {
        client,
        base: format!("https://localhost:{}", emu.https_port()),
        token,
    };

    let started = Instant::now();
    for chunk in (0..opts.devices).collect::<Vec<_>>().chunks(BULK) {
        let body: Vec<Value> = chunk.iter().map(|&i| import_body(i)).collect();
        api.bulk(&body).await?;
    }
    println!(
        "created {} devices in {:.1} s ({} bulk requests of {BULK})",
        opts.devices,
        started.elapsed().as_secs_f64(),
        opts.devices.div_ceil(BULK)
    );
    let db = dir.path().join(iothub_emulator::DATABASE_FILE);
    let size = |suffix: &str| {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        std::fs::metadata(path).map_or(0, |m| m.len())
    };
    println!(
        "database: {:.0} MB (+ {:.0} MB write-ahead log)",
        size("") as f64 / 1e6,
        size("-wal") as f64 / 1e6
    );

    println!();
    println!(
        "{:<30} {:>9} {:>9}  {:<10}",
        "shape", "p50 ms", "max ms", "target"
    );
    println!("{}", "-".repeat(62));
    for shape in shapes(opts.devices) {
        // One untimed run warms the statement cache and checks the answer.
        let mut times = Vec::with_capacity(opts.runs);
        for run in 0..=opts.runs {
            let t = Instant::now();
            let (got, expect) = match &shape.call {
                Call::Query { text, page, expect } => (api.query(text, *page).await?, *expect),
                Call::Twin(id) => (api.get_twin(id).await?, 1),
            };
            let elapsed = t.elapsed();
            if got != expect {
                return Err(format!("{}: {got} items, expected {expect}", shape.name).into());
            }
            if run > 0 {
                times.push(elapsed);
            }
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let max = times[times.len() - 1];
        println!(
            "{:<30} {:>9.2} {:>9.2}  {:<10}",
            shape.name,
            millis(p50),
            millis(max),
            shape.target
        );
    }
    emu.shutdown().await?;
    Ok(())
}
