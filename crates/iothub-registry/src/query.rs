//! Queries (`POST /devices/query`): one page at a time, as Python's `query_iot_hub`, or as a
//! lazy stream of items or pages that follows continuation tokens; twins, or any type the
//! caller decodes projections and aggregates into.

use std::collections::HashSet;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{self, BoxStream, Stream, StreamExt as _};
use iothub_rest::QueryResultItem;
use iothub_rest::types as wire;
use serde::de::DeserializeOwned;

use crate::RegistryManager;
use crate::error::{Error, Result, excerpt};
use crate::model::{QueryResult, QuerySpecification, Twin};
use crate::operation::{Op, decode};
use crate::retry::Idempotency;

impl RegistryManager {
    /// A query of twins (`POST /devices/query`), as Python's `query_iot_hub`.
    ///
    /// `.await` gives one page ([`QueryResult`]): pass its `continuation_token` back for the
    /// next one. [`into_stream`](QueryRequest::into_stream) gives every twin instead, and
    /// [`pages`](QueryRequest::pages) every page, following the tokens itself.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use futures::TryStreamExt as _;
    ///
    /// // Python's shape: one page per call.
    /// let page = rm.query_iot_hub("SELECT * FROM devices").page_size(100).await?;
    /// if let Some(token) = &page.continuation_token {
    ///     let next = rm.query_iot_hub("SELECT * FROM devices").continuation_token(token).await?;
    ///     # let _ = next;
    /// }
    ///
    /// // Every twin, fetched lazily a page at a time.
    /// let mut twins = rm
    ///     .query_iot_hub("SELECT * FROM devices WHERE status = 'enabled'")
    ///     .page_size(500)
    ///     .into_stream();
    /// while let Some(twin) = twins.try_next().await? {
    ///     println!("{:?}", twin.device_id);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::is_bad_request`](crate::Error::is_bad_request) for a query IoT Hub cannot
    /// parse; [`Error::InvalidResponse`](crate::Error::InvalidResponse) when an item is not a
    /// twin (a projection or aggregate: use [`query_as`](Self::query_as));
    /// [`Error::is_unauthorized`](crate::Error::is_unauthorized),
    /// [`Error::is_throttled`](crate::Error::is_throttled) once retries are spent, and the
    /// transport errors of every call. A stream yields the error and ends.
    pub fn query_iot_hub(&self, query: impl Into<QuerySpecification>) -> QueryRequest<'_, Twin> {
        self.query_as(query)
    }

    /// A query whose items decode into `T`: any [`DeserializeOwned`] type, for projections
    /// and aggregates (`SELECT deviceId, tags.site FROM devices`,
    /// `SELECT status, COUNT() AS n FROM devices GROUP BY status`) or
    /// [`serde_json::Value`] for raw items. The same request as
    /// [`query_iot_hub`](Self::query_iot_hub), with the same pages and streams.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use futures::TryStreamExt as _;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Row {
    ///     #[serde(rename = "deviceId")]
    ///     device_id: String,
    ///     fleet: Option<String>,
    /// }
    /// let rows: Vec<Row> = rm
    ///     .query_as::<Row>("SELECT deviceId, tags.fleet AS fleet FROM devices")
    ///     .into_stream()
    ///     .try_collect()
    ///     .await?;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Count { n: u64 }
    /// let page = rm.query_as::<Count>("SELECT COUNT() AS n FROM devices").await?;
    /// println!("{} devices", page.items[0].n);
    /// # let _ = rows; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`query_iot_hub`](Self::query_iot_hub);
    /// [`Error::InvalidResponse`](crate::Error::InvalidResponse) when an item does not
    /// decode into `T`.
    pub fn query_as<T>(&self, query: impl Into<QuerySpecification>) -> QueryRequest<'_, T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        QueryRequest {
            rm: self,
            query: query.into(),
            continuation_token: None,
            page_size: None,
            item: PhantomData,
        }
    }

    pub(crate) async fn query_page<T>(
        &self,
        query: &wire::QuerySpecification,
        continuation_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<QueryResult<T>>
    where
        T: DeserializeOwned,
    {
        let rest = self.rest();
        let count = page_size.map(|n| n.to_string());
        let count = count.as_deref();
        self.run(Op::new("query_iot_hub", Idempotency::Safe), || async move {
            match rest.query_get_twins(continuation_token, count, query).await {
                Ok(rv) => {
                    let header = |name: &str| {
                        rv.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let item_type = header("x-ms-item-type");
                    let continuation_token = header("x-ms-continuation").filter(|t| !t.is_empty());
                    let items = rv
                        .into_inner()
                        .iter()
                        .map(decode_item)
                        .collect::<Result<Vec<T>>>()?;
                    Ok(QueryResult {
                        item_type,
                        continuation_token,
                        items,
                    })
                }
                Err(e) => Err(decode(e).await),
            }
        })
        .await
    }
}

/// Decodes one query item from its JSON text, in one pass.
fn decode_item<T: DeserializeOwned>(item: &QueryResultItem) -> Result<T> {
    item.decode::<T>().map_err(|e| Error::InvalidResponse {
        status: Some(200),
        body: format!(
            "query item does not decode as {} (use query_as for projections and aggregates): {}",
            std::any::type_name::<T>(),
            excerpt(item.json())
        ),
        source: Some(e),
    })
}

/// A query, ready to send. `.await` (or [`send`](Self::send)) gets one page, as Python's
/// `query_iot_hub`; [`into_stream`](Self::into_stream) and [`pages`](Self::pages) follow the
/// continuation tokens. Items are [`Twin`]s from
/// [`query_iot_hub`](RegistryManager::query_iot_hub), or `T` from
/// [`query_as`](RegistryManager::query_as).
#[must_use = "a request does nothing until it is awaited or streamed"]
pub struct QueryRequest<'a, T = Twin> {
    rm: &'a RegistryManager,
    query: QuerySpecification,
    continuation_token: Option<String>,
    page_size: Option<u32>,
    item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for QueryRequest<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRequest")
            .field("query", &self.query)
            .field("continuation_token", &self.continuation_token)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl<'a, T> QueryRequest<'a, T>
where
    T: DeserializeOwned + Send + 'static,
{
    /// Starts after the page that returned this token (`x-ms-continuation`). Without it, or
    /// with an empty token, the query starts at its first page.
    pub fn continuation_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.continuation_token = (!token.is_empty()).then_some(token);
        self
    }

    /// Items per page (`x-ms-max-item-count`; Python's `max_item_count`). Defaults to the
    /// service's choice (100 on IoT Hub; at most 1000).
    #[doc(alias = "max_item_count")]
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// Sends the request for one page (same as `.await`).
    ///
    /// # Errors
    ///
    /// As [`RegistryManager::query_iot_hub`] and [`RegistryManager::query_as`].
    pub async fn send(self) -> Result<QueryResult<T>> {
        let spec = wire::QuerySpecification {
            query: self.query.query,
        };
        self.rm
            .query_page(&spec, self.continuation_token.as_deref(), self.page_size)
            .await
    }

    /// Every page, lazily: nothing is sent until the stream is polled, and each page is
    /// fetched when the previous one has been taken. Ends after the last page, after the
    /// first error (which it yields), or when IoT Hub repeats a continuation token.
    pub fn pages(self) -> QueryPages<T> {
        let spec = wire::QuerySpecification {
            query: self.query.query,
        };
        let rm = self.rm.clone();
        let page_size = self.page_size;
        follow_pages(self.continuation_token, "query", move |token| {
            let rm = rm.clone();
            let spec = spec.clone();
            async move { rm.query_page(&spec, token.as_deref(), page_size).await }
        })
    }

    /// Every item of every page, lazily, as [`pages`](Self::pages) fetches them.
    pub fn into_stream(self) -> QueryStream<T> {
        self.pages().into_items()
    }
}

/// The pages `fetch` returns, starting with the token `first` (`None`: the first page) and
/// following each page's continuation token: lazily, one page after another, ending after
/// the last page, after the first error (which it yields), or when a token repeats.
pub(crate) fn follow_pages<T, F, Fut>(
    first: Option<String>,
    what: &'static str,
    fetch: F,
) -> QueryPages<T>
where
    T: Send + 'static,
    F: FnMut(Option<String>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<QueryResult<T>>> + Send + 'static,
{
    let seen = HashSet::<String>::new();
    let pages = stream::unfold(
        (PageState::Next(first), fetch, seen),
        move |(state, mut fetch, mut seen)| async move {
            let PageState::Next(token) = state else {
                return None;
            };
            match fetch(token).await {
                Ok(page) => {
                    let next = match &page.continuation_token {
                        Some(t) if seen.insert(t.clone()) => PageState::Next(Some(t.clone())),
                        Some(t) => {
                            tracing::warn!(
                                token = t.as_str(),
                                "{what} continuation token repeated; stopping"
                            );
                            PageState::Done
                        }
                        None => PageState::Done,
                    };
                    Some((Ok(page), (next, fetch, seen)))
                }
                Err(e) => Some((Err(e), (PageState::Done, fetch, seen))),
            }
        },
    );
    QueryPages {
        inner: pages.boxed(),
    }
}

impl<'a, T> std::future::IntoFuture for QueryRequest<'a, T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Output = Result<QueryResult<T>>;
    type IntoFuture = futures::future::BoxFuture<'a, Result<QueryResult<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

enum PageState {
    Next(Option<String>),
    Done,
}

/// The items of a query, as a lazy [`Stream`] of `Result<T>` (from
/// [`QueryRequest::into_stream`]). `'static` and `Send`: it holds its own clone of the client.
#[must_use = "streams do nothing unless polled"]
pub struct QueryStream<T> {
    inner: BoxStream<'static, Result<T>>,
}

impl<T> std::fmt::Debug for QueryStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream").finish_non_exhaustive()
    }
}

impl<T> Stream for QueryStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The pages of a query, as a lazy [`Stream`] of `Result<QueryResult<T>>` (from
/// [`QueryRequest::pages`]).
#[must_use = "streams do nothing unless polled"]
pub struct QueryPages<T> {
    inner: BoxStream<'static, Result<QueryResult<T>>>,
}

impl<T> std::fmt::Debug for QueryPages<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryPages").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> QueryPages<T> {
    /// Every item of every page, in order; yields the first error and ends.
    pub(crate) fn into_items(self) -> QueryStream<T> {
        let items = self
            .flat_map(|page| match page {
                Ok(page) => stream::iter(page.items.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => stream::iter(vec![Err(e)]),
            })
            .boxed();
        QueryStream { inner: items }
    }
}

impl<T> Stream for QueryPages<T> {
    type Item = Result<QueryResult<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
