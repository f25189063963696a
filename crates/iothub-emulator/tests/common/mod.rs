//! Helpers shared by the integration tests: start an emulator on port 0 in a temporary
//! directory and talk to it over HTTPS with SAS tokens.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use iothub_auth::{ConnectionString, sas};
use iothub_emulator::{Emulator, EmulatorBuilder};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub mod mqtt;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub const API: &str = "api-version=2021-04-12";

/// A response, with the body parsed as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The `iothub-errorcode` header.
    pub fn error_code(&self) -> Option<&str> {
        self.headers
            .get("iothub-errorcode")
            .and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and, for errors, the error name in both header and body.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Self {
        let mut shown = self.body.to_string();
        shown.truncate(600);
        assert_eq!(self.status, status, "unexpected status; body: {shown}");
        if let Some(code) = code {
            assert_eq!(self.error_code(), Some(code), "body: {shown}");
            let message = self.body["Message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with(&format!("ErrorCode:{code};")),
                "message: {message}"
            );
            let exception = self.body["ExceptionMessage"].as_str().unwrap_or_default();
            assert!(
                exception.starts_with("Tracking ID:"),
                "exception: {exception}"
            );
        }
        self
    }
}

/// An HTTPS client that trusts only `ca_pem`.
pub fn client(ca_pem: &str) -> reqwest::Client {
    let cert =
        reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap_or_else(|e| panic!("CA PEM: {e}"));
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A SAS token for `policy` on `emu`, valid for an hour.
pub fn token(emu: &Emulator, policy: &str) -> String {
    token_with(emu, policy, now() + 3600)
}

/// A SAS token for `policy` expiring at `expiry`.
pub fn token_with(emu: &Emulator, policy: &str, expiry: u64) -> String {
    let cs: ConnectionString = emu
        .policy_connection_string(policy)
        .unwrap_or_else(|| panic!("no policy {policy}"))
        .parse()
        .unwrap_or_else(|e| panic!("connection string: {e}"));
    let key = cs.shared_access_key().unwrap_or_else(|| panic!("no key"));
    sas::generate_sas_token(cs.host_name(), key, Some(policy), expiry)
        .expose()
        .to_owned()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A running emulator with its temporary data directory and a client.
pub struct Hub {
    pub emu: Emulator,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Hub {
    pub async fn start() -> Hub {
        Self::start_with(|b| b).await
    }

    pub async fn start_with(configure: impl FnOnce(EmulatorBuilder) -> EmulatorBuilder) -> Hub {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let builder = configure(Emulator::builder().data_dir(dir.path()).https_port(0));
        let emu = builder
            .start()
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        let client = client(&emu.ca_pem());
        Hub { emu, client, dir }
    }

    pub fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!(
            "https://localhost:{}{path}{sep}{API}",
            self.emu.https_port()
        )
    }

    /// Sends a request as `iothubowner`.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_as("iothubowner", method, path, body, &[]).await
    }

    /// Sends a request as `policy` with extra headers.
    pub async fn call_as(
        &self,
        policy: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = body.map(|b| b.to_string());
        self.raw(
            Some(&token(&self.emu, policy)),
            method,
            &self.url(path),
            body,
            headers,
        )
        .await
    }

    /// Sends a request with full control over the URL, auth header and body text.
    pub async fn raw(
        &self,
        authorization: Option<&str>,
        method: Method,
        url: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, url);
        if let Some(auth) = authorization {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json; charset=utf-8")
                .body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url}: {e:?}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Creates a SAS device and returns its JSON.
    pub async fn create_device(&self, id: &str) -> Value {
        let r = self
            .call(
                Method::PUT,
                &format!("/devices/{id}"),
                Some(serde_json::json!({ "deviceId": id })),
            )
            .await;
        r.expect(200, None);
        r.body
    }
}

/// The `iothub-emulator` binary running on free ports.
pub struct Running {
    pub child: Child,
    pub cs: String,
    pub https_port: u16,
    pub amqps_port: u16,
    pub mqtts_port: u16,
}

/// Starts the binary on free ports with `data_dir`; reads the connection string (stdout) and
/// the AMQPS port (stderr), then keeps draining stderr.
pub fn spawn_binary(
    data_dir: &std::path::Path,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
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
    let mut mqtts_port = None;
    let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?);
    for _ in 0..20 {
        let mut line = String::new();
        if stderr.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix("AMQPS (cloud-to-device) on port ") {
            amqps_port = rest.split(';').next().and_then(|p| p.trim().parse().ok());
        }
        if let Some(rest) = line.strip_prefix("MQTTS (devices) on port ") {
            mqtts_port = rest.split(';').next().and_then(|p| p.trim().parse().ok());
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
        mqtts_port: mqtts_port.ok_or("no MQTTS port on stderr")?,
    })
}
