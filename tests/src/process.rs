//! The local hub as a process of its own (the `local-hub` binary of this package, which runs
//! `iothub_emulator::cli` as the `iothub-emulator` binary does): for `kill -9` tests and for
//! benchmarks that measure the hub's own CPU time and memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// A running `local-hub` process on free ports.
pub struct HubProcess {
    child: Child,
    connection_string: String,
    data_dir: PathBuf,
}

impl HubProcess {
    /// Starts `binary` (the `local-hub` executable) with `data_dir` on free ports and waits
    /// for its connection string.
    ///
    /// # Panics
    /// When the binary cannot start or prints something unexpected.
    pub async fn start(binary: &Path, data_dir: &Path) -> HubProcess {
        let mut child = Command::new(binary)
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
            .env("RUST_LOG", "error")
            .env_remove("IOTHUB_EMULATOR_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines
            .next_line()
            .await
            .expect("read the hub's output")
            .expect("the hub printed nothing");
        let connection_string = first
            .strip_prefix("IOTHUB_CONNECTION_STRING=")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        HubProcess {
            child,
            connection_string,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The service connection string (policy `iothubowner`).
    pub fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// The CA certificate (PEM) the hub's TLS certificates chain to.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("ca.pem")).expect("read ca.pem")
    }

    /// The hub's own memory in MB: its anonymous resident set (`RssAnon`; 0 once it has
    /// exited). The hub memory-maps its database file, whose pages also count in its RSS
    /// but are the kernel's file cache, shared and reclaimable, so they are left out.
    pub fn rss_mb(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    }

    /// Samples [`rss_mb`](Self::rss_mb) every `every` until `stop` resolves; returns the peak.
    pub async fn peak_rss_during<F: std::future::Future>(
        &self,
        every: Duration,
        stop: F,
    ) -> (F::Output, u64) {
        let mut peak = self.rss_mb();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                out = &mut stop => return (out, peak.max(self.rss_mb())),
                _ = tick.tick() => peak = peak.max(self.rss_mb()),
            }
        }
    }

    /// Kills the process with SIGKILL (`kill -9`) and waits for it.
    pub async fn kill_9(mut self) {
        self.child.start_kill().expect("kill -9");
        self.child.wait().await.expect("wait for the killed hub");
    }
}
