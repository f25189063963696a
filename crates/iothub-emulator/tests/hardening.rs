//! Hostile-client hardening: connection limits, early body limits, strict `If-Match` and
//! number parsing, and a journal that only observes. Each test uses the failing input of
//! the hardening report as its input.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Hub, Resp, TestResult, token};
use iothub_emulator::ConnectionLimits;
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.unwrap_or_else(|e| panic!("CA PEM: {e}")))
            .unwrap_or_else(|e| panic!("CA: {e}"));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("TLS versions: {e}"))
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls(hub: &Hub, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", hub.emu.https_port())).await?;
    let name = ServerName::try_from("localhost").unwrap_or_else(|e| panic!("name: {e}"));
    connector.connect(name, tcp).await
}

/// A raw HTTP/1.1 response: status, lower-cased headers and the body parsed as JSON.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (head plus a `Content-Length` body) within `limit`.
async fn read_response<R: AsyncReadExt + Unpin>(stream: &mut R, limit: Duration) -> RawResponse {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = serde_json::from_slice(&buf[end + 4..]).unwrap_or(Value::Null);
                return RawResponse {
                    status,
                    headers,
                    body,
                };
            }
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "connection closed before a response");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {limit:?}"))
}

fn assert_iothub_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "body: {}", resp.body);
    assert_eq!(resp.header("iothub-errorcode"), Some(code));
    let message = resp.body["Message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("ErrorCode:{code};")),
        "{message}"
    );
    assert!(
        resp.body["ExceptionMessage"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Tracking ID:")
    );
}

fn fast_limits(max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        handshake_timeout: Duration::from_secs(2),
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
    }
}

/// Waits until the server closes `stream` (EOF or error) or `limit` passes; returns when.
async fn closed_within<S: AsyncReadExt + Unpin>(
    mut stream: S,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok()
}

/// Item 1: 1,000 idle TLS connections plus 100 half-sent requests against a hub that allows
/// 300 connections. A new client is answered within 1 s and every flooding connection is
/// closed within the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_cannot_pin_the_hub() -> TestResult {
    let limits = fast_limits(300);
    let hub = Hub::start_with(|b| b.connection_limits(limits)).await;
    let connector = connector(&hub.emu.ca_pem());

    let flood_started = Instant::now();
    let mut idle = Vec::new();
    let mut refused = 0usize;
    for _ in 0..20 {
        let batch = (0..50).map(|_| tls(&hub, &connector));
        for result in futures::future::join_all(batch).await {
            match result {
                Ok(stream) => idle.push(stream),
                Err(_) => refused += 1,
            }
        }
    }
    let mut half_sent = Vec::new();
    for _ in 0..100 {
        let mut stream = tls(&hub, &connector).await?;
        stream
            .write_all(b"GET /statistics/devices?api-version=2021-04-12 HTTP/1.1\r\nHost: local")
            .await?;
        stream.flush().await?;
        half_sent.push(stream);
    }
    let flood_time = flood_started.elapsed();
    let open_during_flood = hub.emu.open_connections();
    assert!(
        open_during_flood <= limits.max_connections,
        "{open_during_flood} connections open"
    );

    // A new client is served at once.
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(1),
        hub.call(Method::GET, "/statistics/devices", None),
    )
    .await
    .map_err(|_| "a new client was not answered within 1 s")?;
    resp.expect(200, None);
    let answered_in = started.elapsed();
    assert!(answered_in < Duration::from_secs(1));

    // Every flooding connection is closed within the idle timeout (plus the sweep period
    // and scheduling slack), counted from the end of the flood.
    let deadline = limits.idle_timeout + Duration::from_secs(2);
    let waits = idle
        .into_iter()
        .map(|s| closed_within(s, deadline))
        .chain(half_sent.into_iter().map(|s| closed_within(s, deadline)));
    let closed = futures::future::join_all(waits).await;
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    let slowest = closed.iter().flatten().max().copied().unwrap_or_default();
    eprintln!(
        "flood: 1000 idle + 100 half-sent in {flood_time:?} ({refused} refused during the handshake); \
         {open_during_flood} open at the peak (limit {}); new request answered in {answered_in:?}; \
         all closed within {slowest:?} of the end of the flood",
        limits.max_connections
    );
    assert_eq!(still_open, 0, "connections still open after {deadline:?}");
    Ok(())
}

/// Item 1: a kept-alive connection is closed after the idle timeout; a stalled body fails
/// after the body timeout; an idle AMQPS connection is closed too.
#[tokio::test]
async fn idle_and_stalled_connections_are_closed() -> TestResult {
    let limits = fast_limits(100);
    let hub = Hub::start_with(|b| b.connection_limits(limits)).await;
    let connector = connector(&hub.emu.ca_pem());

    // Nothing sent after the handshake.
    let quiet = tls(&hub, &connector).await?;
    let closed = closed_within(quiet, Duration::from_secs(4)).await;
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(1500)),
        "{closed:?}"
    );

    // Headers sent, body stalls.
    let mut stalled = tls(&hub, &connector).await?;
    let auth = token(&hub.emu, "iothubowner");
    let head = format!(
        "PUT /devices/stall?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"deviceId\""
    );
    stalled.write_all(head.as_bytes()).await?;
    let closed = closed_within(stalled, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "stalled body kept the connection open");

    // AMQPS: TLS done, no protocol header.
    let tcp = TcpStream::connect(("127.0.0.1", hub.emu.amqps_port())).await?;
    let name = ServerName::try_from("localhost")?;
    let amqps = connector.connect(name, tcp).await?;
    let closed = closed_within(amqps, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "idle AMQPS connection kept open");

    // A request on a new connection still works, and it was not counted as idle.
    hub.call(Method::GET, "/statistics/devices", None)
        .await
        .expect(200, None);
    Ok(())
}

fn put_with_length(auth: &str, path: &str, length: &str) -> String {
    format!(
        "PUT {path}?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}"
    )
}

/// Item 2: a declared Content-Length over the limit is refused at once.
#[tokio::test]
async fn oversized_declared_body_gets_413_at_once() -> TestResult {
    let hub = Hub::start().await;
    let connector = connector(&hub.emu.ca_pem());
    let mut stream = tls(&hub, &connector).await?;
    let request = put_with_length(&token(&hub.emu, "iothubowner"), "/devices/x", "10737418240");
    stream.write_all(request.as_bytes()).await?;
    let resp = read_response(&mut stream, Duration::from_secs(2)).await;
    assert_iothub_error(&resp, 413, "MessageTooLarge");
    hub.call(Method::GET, "/devices/x", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    Ok(())
}

/// Item 3: an empty or malformed If-Match is 412 on every write, never "no condition".
#[tokio::test]
async fn empty_or_malformed_if_match_is_412_everywhere() -> TestResult {
    let hub = Hub::start().await;
    hub.call(Method::PUT, "/devices/d0", Some(json!({"deviceId": "d0"})))
        .await
        .expect(200, None);
    hub.call(
        Method::PUT,
        "/devices/d0/modules/m0",
        Some(json!({"deviceId": "d0", "moduleId": "m0"})),
    )
    .await
    .expect(200, None);
    hub.call(
        Method::PUT,
        "/configurations/c0",
        Some(json!({"id": "c0", "content": {"deviceContent": {"properties.desired.x": 1}}})),
    )
    .await
    .expect(200, None);
    let patch = json!({"properties": {"desired": {"applied": true}}});
    for value in ["", "W/\"\"", "W/", "\"\"", "\"unbalanced", "\"a\", \"b\""] {
        let h = [("if-match", value)];
        let writes: [(Method, &str, Option<Value>); 10] = [
            (Method::PATCH, "/twins/d0", Some(patch.clone())),
            (Method::PUT, "/twins/d0", Some(patch.clone())),
            (Method::PATCH, "/twins/d0/modules/m0", Some(patch.clone())),
            (Method::PUT, "/devices/d0", Some(json!({"deviceId": "d0"}))),
            (Method::DELETE, "/devices/d0", None),
            (
                Method::PUT,
                "/devices/d0/modules/m0",
                Some(json!({"deviceId": "d0", "moduleId": "m0"})),
            ),
            (Method::DELETE, "/devices/d0/modules/m0", None),
            (
                Method::PUT,
                "/configurations/c0",
                Some(
                    json!({"id": "c0", "content": {"deviceContent": {"properties.desired.x": 1}}}),
                ),
            ),
            (Method::DELETE, "/configurations/c0", None),
            (
                Method::PUT,
                "/devices/new0",
                Some(json!({"deviceId": "new0"})),
            ),
        ];
        for (method, path, body) in writes {
            let resp: Resp = hub
                .call_as("iothubowner", method.clone(), path, body, &h)
                .await;
            assert_eq!(
                resp.status, 412,
                "{method} {path} with If-Match {value:?}: {}",
                resp.body
            );
            resp.expect(412, Some("PreconditionFailed"));
        }
    }
    let twin = hub.call(Method::GET, "/twins/d0", None).await;
    twin.expect(200, None);
    assert!(twin.body["properties"]["desired"].get("applied").is_none());
    hub.call(Method::GET, "/devices/new0", None)
        .await
        .expect(404, Some("DeviceNotFound"));
    // The valid forms still work.
    hub.call_as(
        "iothubowner",
        Method::PATCH,
        "/twins/d0",
        Some(patch),
        &[("if-match", "*")],
    )
    .await
    .expect(200, None);
    Ok(())
}

/// Item 4: every number in a twin is held to IoT Hub's range, whatever its spelling; every
/// numeric parameter is parsed by one strict rule.
#[tokio::test]
async fn numbers_are_parsed_strictly_and_consistently() -> TestResult {
    let hub = Hub::start().await;
    hub.call(Method::PUT, "/devices/d0", Some(json!({"deviceId": "d0"})))
        .await
        .expect(200, None);
    let auth = token(&hub.emu, "iothubowner");
    for big in [
        "1e30",
        "-1e30",
        "1152921504606846976",
        "4503599627370497.0",
        "4503599627370496",
        "-4503599627370497",
        "1E16",
    ] {
        let body = format!("{{\"properties\":{{\"desired\":{{\"big\":{big}}}}}}}");
        hub.raw(
            Some(&auth),
            Method::PATCH,
            &hub.url("/twins/d0"),
            Some(body),
            &[],
        )
        .await
        .expect(400, Some("ArgumentInvalid"));
    }
    let body = "{\"properties\":{\"desired\":{\"ok\":1.5e3,\"edge\":4503599627370495,\"low\":-4503599627370496}}}".to_owned();
    hub.raw(
        Some(&auth),
        Method::PATCH,
        &hub.url("/twins/d0"),
        Some(body),
        &[],
    )
    .await
    .expect(200, None);

    let query = json!({"query": "SELECT * FROM devices"});
    for bad in ["2147483648", "", "0", "-1", "+5", "5.0", "1e2"] {
        let resp = hub
            .call_as(
                "iothubowner",
                Method::POST,
                "/devices/query",
                Some(query.clone()),
                &[("x-ms-max-item-count", bad)],
            )
            .await;
        resp.expect(400, Some("ArgumentInvalid"));
    }
    // Spaces inside the value (the header's own surrounding spaces are not part of it in
    // HTTP) are refused through the query string, where they survive.
    for path in ["/devices", "/configurations"] {
        for bad in ["2147483648", "", "%205%20", "0", "-1", "1e2", "abc"] {
            let resp = hub
                .call(Method::GET, &format!("{path}?top={bad}"), None)
                .await;
            resp.expect(400, Some("ArgumentInvalid"));
            let message = resp.body["Message"].as_str().unwrap_or_default().to_owned();
            assert!(
                message.contains("value") && message.contains("of top"),
                "{message}"
            );
        }
        hub.call(Method::GET, &format!("{path}?top=5"), None)
            .await
            .expect(200, None);
    }
    hub.call_as(
        "iothubowner",
        Method::POST,
        "/devices/query",
        Some(query),
        &[("x-ms-max-item-count", "5")],
    )
    .await
    .expect(200, None);
    Ok(())
}

/// Strips what legitimately differs between two hubs: tracking ids and times.
fn normalized(resp: &RawResponse) -> (u16, Option<String>, String) {
    let message = resp.body["Message"].as_str().unwrap_or_default().to_owned();
    let body = match &resp.body {
        b if b.get("ExceptionMessage").is_some() => message,
        // A created identity: its generation id, ETag and times differ; its shape must not.
        Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    (
        resp.status,
        resp.header("iothub-errorcode").map(str::to_owned),
        body,
    )
}

/// Sends `head` then `body` (written concurrently with reading the answer) and reads the
/// response.
async fn exchange(hub: &Hub, head: String, body: Vec<u8>) -> RawResponse {
    let connector = connector(&hub.emu.ca_pem());
    let stream = tls(hub, &connector)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        for chunk in body.chunks(64 * 1024) {
            if writer.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = writer.flush().await;
        writer
    });
    let resp = read_response(&mut reader, Duration::from_secs(10)).await;
    writing.abort();
    resp
}

/// Item 5: answers are the same with and without `--journal`.
#[tokio::test]
async fn journal_only_observes() -> TestResult {
    let plain = Hub::start().await;
    let dir = tempfile::tempdir()?;
    let journal_path = dir.path().join("journal.jsonl");
    let path = journal_path.clone();
    let journaled = Hub::start_with(move |b| b.journal(path)).await;

    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    let mut chunked_ten_mb = format!("{:x}\r\n", ten_mb.len()).into_bytes();
    chunked_ten_mb.extend_from_slice(&ten_mb);
    chunked_ten_mb.extend_from_slice(b"\r\n0\r\n\r\n");

    type Case = (&'static str, &'static str, &'static str, Vec<u8>);
    let cases: Vec<Case> = vec![
        // A malformed chunked body.
        (
            "PUT",
            "/devices/chunky",
            "Transfer-Encoding: chunked\r\n",
            b"zz\r\n{}\r\n0\r\n\r\n".to_vec(),
        ),
        // A GET with a 10 MB chunked body (not read by the handler).
        (
            "GET",
            "/devices",
            "Transfer-Encoding: chunked\r\n",
            chunked_ten_mb,
        ),
        // A GET with a declared 10 MB body.
        (
            "GET",
            "/devices",
            "Content-Length: 10485760\r\n",
            ten_mb.clone(),
        ),
        // An ordinary create.
        (
            "PUT",
            "/devices/plain",
            "Content-Length: 20\r\n",
            b"{\"deviceId\":\"plain\"}".to_vec(),
        ),
    ];
    for (method, path, framing, body) in cases {
        let mut answers = Vec::new();
        for hub in [&plain, &journaled] {
            let head = format!(
                "{method} {path}?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\n{framing}\r\n",
                token(&hub.emu, "iothubowner")
            );
            answers.push(normalized(&exchange(hub, head, body.clone()).await));
        }
        assert_eq!(answers[0], answers[1], "{method} {path} with {framing:?}");
        eprintln!("{method} {path} ({}): {:?}", framing.trim(), answers[0]);
    }
    let journal = std::fs::read_to_string(&journal_path)?;
    assert_eq!(journal.lines().count(), 4, "{journal}");
    Ok(())
}
