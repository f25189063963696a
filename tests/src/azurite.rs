//! Azurite, Microsoft's storage emulator, as the blob storage of import/export jobs: each
//! test starts its own blob service (`azurite-blob` from `tests/node/node_modules`, installed
//! by `tests/setup.sh`) on a free port with a temporary data directory, and stops it when
//! dropped. Containers and blobs are handled through the official `azure-storage-blob`
//! Python package (`tests/python/azurite.py`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{SETUP_HINT, python, run_script, tests_dir};

/// Azurite's documented development account.
pub const ACCOUNT_NAME: &str = "devstoreaccount1";
/// Azurite's documented development account key (public, in Azurite's README).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service.
pub struct Azurite {
    child: Child,
    dir: TempDir,
    endpoint: String,
}

impl Azurite {
    /// Starts `azurite-blob` on 127.0.0.1 with a free port and a fresh data directory, and
    /// waits until it listens. Panics with a setup hint when Azurite is not installed.
    pub async fn start() -> Azurite {
        let bin = tests_dir()
            .join("node")
            .join("node_modules")
            .join(".bin")
            .join("azurite-blob");
        assert!(bin.exists(), "{} is missing; {SETUP_HINT}", bin.display());
        let dir = tempfile::Builder::new()
            .prefix("azurite-")
            .tempdir()
            .expect("create a temporary directory");
        let mut child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--location"])
            .arg(dir.path())
            .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {SETUP_HINT}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.split("listens on ").nth(1) {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("Azurite did not say where it listens within 60 s");
        // Keep reading its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Azurite {
            child,
            dir,
            endpoint: format!("{listening}/{ACCOUNT_NAME}"),
        }
    }

    /// The account URL, `http://127.0.0.1:<port>/devstoreaccount1`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Azurite's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates container `name` (if missing) and returns its URL with a container SAS
    /// (read, add, create, write, delete, list; valid one day): the form IoT Hub's jobs take.
    pub async fn container(&self, name: &str) -> String {
        let out = self
            .blob_chore(&[
                "container".into(),
                self.endpoint.clone().into(),
                name.into(),
            ])
            .await;
        out.trim().to_owned()
    }

    /// Uploads `file` as `blob` into the container at `container_url`.
    pub async fn put(&self, container_url: &str, blob: &str, file: &Path) {
        self.blob_chore(&["put".into(), container_url.into(), blob.into(), file.into()])
            .await;
    }

    /// Downloads `blob` of the container at `container_url` into `file`.
    pub async fn get(&self, container_url: &str, blob: &str, file: &Path) {
        self.blob_chore(&["get".into(), container_url.into(), blob.into(), file.into()])
            .await;
    }

    async fn blob_chore(&self, args: &[OsString]) -> String {
        let mut all: Vec<OsString> = vec![script().into_os_string()];
        all.extend_from_slice(args);
        let env = vec![(
            "AZURITE_ACCOUNT_KEY".to_owned(),
            OsString::from(ACCOUNT_KEY),
        )];
        let out = run_script(&python(), &all, &tests_dir().join("python"), &env).await;
        crate::assert_success(&format!("azurite.py {:?}", args.first()), &out);
        out.stdout
    }

    /// What scenario scripts get: `AZURITE_BLOB_ENDPOINT`, `AZURITE_ACCOUNT_NAME`,
    /// `AZURITE_ACCOUNT_KEY`.
    pub fn script_env(&self) -> Vec<(String, OsString)> {
        vec![
            ("AZURITE_BLOB_ENDPOINT".into(), self.endpoint.clone().into()),
            ("AZURITE_ACCOUNT_NAME".into(), ACCOUNT_NAME.into()),
            ("AZURITE_ACCOUNT_KEY".into(), ACCOUNT_KEY.into()),
        ]
    }

    /// Stops Azurite.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn script() -> PathBuf {
    tests_dir().join("python").join("azurite.py")
}
