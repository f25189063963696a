//! Blob containers as IoT Hub's import/export jobs name them: a container URL with a shared
//! access signature (`https://{account}.blob.core.windows.net/{container}?sv=…&sig=…`, or
//! Azurite's `http://127.0.0.1:{port}/{account}/{container}?…`). Reads and writes go through
//! `object_store`'s Azure Blob client (Get Blob with ranges, Put Block / Put Block List).
//!
//! The SAS is a secret: it never appears in errors, logs or `Debug` output.

use std::sync::Arc;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::buffered::{BufReader, BufWriter};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};

/// A blob container reached through a SAS URL.
#[derive(Clone)]
pub(crate) struct Container {
    store: Arc<dyn ObjectStore>,
    /// The URL without its query (no SAS), for messages.
    shown: String,
    /// The SAS's `sp` (signed permissions), when it has one.
    permissions: Option<String>,
    /// The SAS's `se` (signed expiry), when it has one that parses.
    expiry: Option<chrono::DateTime<chrono::Utc>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Why a container URL is not usable (the text never holds the SAS).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadContainerUri(String);

impl Container {
    /// Parses a container URL with a SAS. The container is the URL's last path segment; what
    /// comes before it is the account's endpoint (`/{account}` included for Azurite's
    /// path-style URLs).
    ///
    /// # Errors
    /// [`BadContainerUri`] for a URL that does not parse, is not `http(s)`, names no
    /// container, or carries no SAS.
    pub(crate) fn from_sas_url(field: &str, uri: &str) -> Result<Self, BadContainerUri> {
        let url = url::Url::parse(uri)
            .map_err(|e| BadContainerUri(format!("{field} is not a URL ({e}).")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BadContainerUri(format!(
                "{field} must be an http or https URL of a blob container."
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| BadContainerUri(format!("{field} has no host.")))?
            .to_owned();
        let mut segments: Vec<String> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        // Azurite and other emulators put the account in the path (`/{account}/{container}`).
        let path_style = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok();
        if path_style && segments.len() < 2 {
            return Err(BadContainerUri(format!(
                "{field} names no container: on a local storage emulator it must look like http://127.0.0.1:10000/<account>/<container>?<SAS>."
            )));
        }
        let container = segments.pop().ok_or_else(|| {
            BadContainerUri(format!(
                "{field} names no container: it must look like https://<account>.blob.core.windows.net/<container>?<SAS>."
            ))
        })?;
        let sas: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if !sas.iter().any(|(k, _)| k == "sig") {
            return Err(BadContainerUri(format!(
                "{field} carries no shared access signature (no 'sig' parameter); IoT Hub's key-based storage access needs a container URI with a SAS."
            )));
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let mut endpoint = format!("{}://{host}{port}", url.scheme());
        for s in &segments {
            endpoint.push('/');
            endpoint.push_str(s);
        }
        // The account: Azurite's first path segment, or the host's first label.
        let account = segments
            .first()
            .cloned()
            .unwrap_or_else(|| host.split('.').next().unwrap_or(&host).to_owned());
        let store = MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_container_name(container.clone())
            .with_config(AzureConfigKey::Endpoint, endpoint.clone())
            .with_sas_authorization(sas)
            .with_client_options(ClientOptions::new().with_allow_http(url.scheme() == "http"))
            .build()
            .map_err(|e| BadContainerUri(format!("{field} is not usable: {e}")))?;
        let permissions = url
            .query_pairs()
            .find(|(k, _)| k == "sp")
            .map(|(_, v)| v.into_owned());
        let expiry = url
            .query_pairs()
            .find(|(k, _)| k == "se")
            .and_then(|(_, v)| chrono::DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        Ok(Container {
            store: Arc::new(store),
            shown: format!("{endpoint}/{container}"),
            permissions,
            expiry,
        })
    }

    /// The SAS's signed expiry (`se`), when given.
    pub(crate) fn expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.expiry
    }

    /// The SAS's signed permissions (`sp`, such as `racwdl`), when given.
    pub(crate) fn permissions(&self) -> Option<&str> {
        self.permissions.as_deref()
    }

    /// The container's URL without its SAS.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    fn path(name: &str) -> Result<Path, object_store::Error> {
        Path::parse(name).map_err(|e| object_store::Error::Generic {
            store: "blob name",
            source: Box::new(e),
        })
    }

    /// Opens blob `name` for buffered reading and gives its size in bytes.
    ///
    /// # Errors
    /// `object_store`'s error (`NotFound` when the blob does not exist).
    pub(crate) async fn open(&self, name: &str) -> Result<(BufReader, u64), object_store::Error> {
        let path = Self::path(name)?;
        let meta = self.store.head(&path).await?;
        let size = meta.size;
        Ok((
            BufReader::with_capacity(Arc::clone(&self.store), &meta, 4 << 20),
            size,
        ))
    }

    /// A writer that uploads blob `name` in blocks; the blob appears (or is replaced) only
    /// when the writer is shut down.
    ///
    /// # Errors
    /// A blob name that `object_store` refuses.
    pub(crate) fn create(&self, name: &str) -> Result<BufWriter, object_store::Error> {
        Ok(BufWriter::with_capacity(
            Arc::clone(&self.store),
            Self::path(name)?,
            8 << 20,
        ))
    }
}

/// A short description of a blob failure for a job's `failureReason` (no URL, no SAS).
pub(crate) fn describe(error: &object_store::Error, container: &Container, blob: &str) -> String {
    match error {
        object_store::Error::NotFound { .. } => format!(
            "The blob '{blob}' was not found in the container {}.",
            container.shown()
        ),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            format!(
                "The storage account refused access to '{blob}' in the container {}: check the SAS's permissions and expiry.",
                container.shown()
            )
        }
        other => format!(
            "Reaching '{blob}' in the container {} failed: {}",
            container.shown(),
            redact(&other.to_string())
        ),
    }
}

/// Removes anything that looks like a SAS signature (`sig=…`) from a text.
pub(crate) fn redact(text: &str) -> String {
    match text.find("sig=") {
        Some(at) => {
            let end = text[at..]
                .find(|c: char| c == '&' || c.is_whitespace() || c == '"')
                .map_or(text.len(), |n| at + n);
            format!("{}sig=REDACTED{}", &text[..at], &text[end..])
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azurite_and_azure_urls_parse_and_hide_the_sas() {
        let c = Container::from_sas_url(
            "outputBlobContainerUri",
            "http://127.0.0.1:10000/devstoreaccount1/exports?sv=2021-08-06&sp=rwl&sig=c2VjcmV0",
        )
        .unwrap();
        assert_eq!(c.shown(), "http://127.0.0.1:10000/devstoreaccount1/exports");
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
        let c = Container::from_sas_url(
            "inputBlobContainerUri",
            "https://acct.blob.core.windows.net/imports?sv=2021-08-06&sig=c2VjcmV0",
        )
        .unwrap();
        assert_eq!(c.shown(), "https://acct.blob.core.windows.net/imports");
    }

    #[test]
    fn urls_without_container_or_sas_are_refused() {
        for bad in [
            "not a url",
            "ftp://acct.blob.core.windows.net/c?sig=x",
            "https://acct.blob.core.windows.net/?sig=x",
            "https://acct.blob.core.windows.net/c",
            "http://127.0.0.1:10000/devstoreaccount1?sig=x",
        ] {
            let e = Container::from_sas_url("outputBlobContainerUri", bad).unwrap_err();
            assert!(e.to_string().starts_with("outputBlobContainerUri"), "{e}");
        }
    }

    #[test]
    fn signatures_are_redacted() {
        assert_eq!(
            redact("GET http://h/c?sv=1&sig=abc%2F&se=2 failed"),
            "GET http://h/c?sv=1&sig=REDACTED&se=2 failed"
        );
    }
}
