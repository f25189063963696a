//! Queries: one page at a time (`query_iot_hub`, as in Python) or as a lazy stream that
//! follows continuation tokens (`query`); `query_raw` streams projections and aggregates
//! as plain JSON values.

use std::collections::HashSet;
use std::future::IntoFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, Stream, StreamExt as _};
use iothub_rest::types as wire;

use crate::RegistryManager;
use crate::client::{Op, decode};
use crate::error::Result;
use crate::model::{QueryResult, QuerySpecification, Twin};
use crate::retry::Idempotency;

impl RegistryManager {
    /// Runs one page of a query (`POST /devices/query`), as Python's `query_iot_hub`: pass the
    /// previous page's `continuation_token` to get the next one.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// let mut token = None;
    /// loop {
    ///     let page = rm
    ///         .query_iot_hub("SELECT * FROM devices WHERE status = 'enabled'")
    ///         .continuation_token(token)
    ///         .max_item_count(100)
    ///         .await?;
    ///     for twin in &page.items {
    ///         println!("{:?}", twin.device_id);
    ///     }
    ///     token = page.continuation_token;
    ///     if token.is_none() { break; }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn query_iot_hub(&self, query: impl Into<QuerySpecification>) -> QueryRequest<'_> {
        QueryRequest {
            rm: self,
            query: query.into(),
            continuation_token: None,
            max_item_count: None,
        }
    }

    /// Streams every twin a query returns, following continuation tokens. Nothing is sent
    /// until the stream is polled; the stream ends after the last page, at the first error,
    /// or when IoT Hub repeats a continuation token.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use futures::TryStreamExt as _;
    /// let twins: Vec<_> = rm
    ///     .query("SELECT * FROM devices WHERE tags.site = 'lab'")
    ///     .page_size(500)
    ///     .try_collect()
    ///     .await?;
    /// # let _ = twins; Ok(()) }
    /// ```
    pub fn query(&self, query: impl Into<QuerySpecification>) -> Query {
        Query::new(self.clone(), query.into())
    }

    /// Streams the items of any query as JSON values, following continuation tokens: use it
    /// for projections and aggregates (`SELECT deviceId, tags.site FROM devices`,
    /// `SELECT COUNT() AS n FROM devices GROUP BY status`), whose items are not twins.
    ///
    /// ```no_run
    /// # async fn run(rm: iothub_registry::RegistryManager) -> iothub_registry::Result<()> {
    /// use futures::TryStreamExt as _;
    /// let counts: Vec<serde_json::Value> = rm
    ///     .query_raw("SELECT status, COUNT() AS n FROM devices GROUP BY status")
    ///     .try_collect()
    ///     .await?;
    /// # let _ = counts; Ok(()) }
    /// ```
    pub fn query_raw(&self, query: impl Into<QuerySpecification>) -> Query<serde_json::Value> {
        Query::new(self.clone(), query.into())
    }

    pub(crate) async fn query_page<T: QueryItem>(
        &self,
        query: &wire::QuerySpecification,
        continuation_token: Option<&str>,
        max_item_count: Option<u32>,
    ) -> Result<QueryResult<T>> {
        let rest = self.rest();
        let count = max_item_count.map(|n| n.to_string());
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
                        .into_iter()
                        .map(|item| T::from_query_item(&item))
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

/// What a query can yield: a [`Twin`] (for `SELECT *`) or any JSON value
/// ([`serde_json::Value`], for projections and aggregates).
pub trait QueryItem: sealed::FromQueryItem + Sized + Send + 'static {}

impl QueryItem for serde_json::Value {}
impl QueryItem for Twin {}

mod sealed {
    use iothub_rest::QueryResultItem;
    use iothub_rest::types as wire;

    use crate::error::{Error, Result, excerpt};
    use crate::model::Twin;

    /// Decodes one query item from its JSON text, in one pass.
    pub trait FromQueryItem: Sized {
        fn from_query_item(item: &QueryResultItem) -> Result<Self>;
    }

    fn invalid(item: &QueryResultItem, what: &str, e: serde_json::Error) -> Error {
        Error::InvalidResponse {
            status: Some(200),
            body: format!("{what}: {}", excerpt(item.json())),
            source: Some(e),
        }
    }

    impl FromQueryItem for serde_json::Value {
        fn from_query_item(item: &QueryResultItem) -> Result<Self> {
            item.decode()
                .map_err(|e| invalid(item, "query item is not JSON", e))
        }
    }

    impl FromQueryItem for Twin {
        fn from_query_item(item: &QueryResultItem) -> Result<Self> {
            item.decode::<wire::Twin>().map(Twin::from).map_err(|e| {
                invalid(
                    item,
                    "query item is not a twin (use query_raw for projections and aggregates)",
                    e,
                )
            })
        }
    }
}

/// One page of a query, ready to send: set `continuation_token` / `max_item_count`, then
/// `.await` it.
#[must_use = "a request does nothing until it is awaited"]
#[derive(Debug)]
pub struct QueryRequest<'a> {
    rm: &'a RegistryManager,
    query: QuerySpecification,
    continuation_token: Option<String>,
    max_item_count: Option<u32>,
}

impl QueryRequest<'_> {
    /// The token of the previous page (`x-ms-continuation`); `None` for the first page.
    pub fn continuation_token<S: Into<String>>(mut self, token: Option<S>) -> Self {
        self.continuation_token = token.map(Into::into);
        self
    }

    /// Requested page size (`x-ms-max-item-count`); defaults to the service's choice.
    pub fn max_item_count(mut self, count: u32) -> Self {
        self.max_item_count = Some(count);
        self
    }

    /// Sends the request (same as `.await`).
    pub async fn send(self) -> Result<QueryResult> {
        let spec = wire::QuerySpecification {
            query: self.query.query,
        };
        self.rm
            .query_page(
                &spec,
                self.continuation_token.as_deref(),
                self.max_item_count,
            )
            .await
    }
}

impl<'a> IntoFuture for QueryRequest<'a> {
    type Output = Result<QueryResult>;
    type IntoFuture = BoxFuture<'a, Result<QueryResult>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A lazy stream of the items a query returns: twins (see [`RegistryManager::query`]) or
/// JSON values (see [`RegistryManager::query_raw`]).
#[must_use = "streams do nothing unless polled"]
pub struct Query<T: QueryItem = Twin> {
    rm: RegistryManager,
    query: QuerySpecification,
    page_size: Option<u32>,
    items: Option<BoxStream<'static, Result<T>>>,
}

impl<T: QueryItem> std::fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("query", &self.query)
            .field("page_size", &self.page_size)
            .field("started", &self.items.is_some())
            .finish()
    }
}

enum PageState {
    Next(Option<String>),
    Done,
}

impl<T: QueryItem> Query<T> {
    fn new(rm: RegistryManager, query: QuerySpecification) -> Self {
        Query {
            rm,
            query,
            page_size: None,
            items: None,
        }
    }

    /// Requested page size (`x-ms-max-item-count`); defaults to the service's choice.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// The pages instead of the items: each item is one [`QueryResult`].
    pub fn pages(self) -> impl Stream<Item = Result<QueryResult<T>>> + Send + 'static {
        let Query {
            rm,
            query,
            page_size,
            ..
        } = self;
        let spec = wire::QuerySpecification { query: query.query };
        let seen = HashSet::<String>::new();
        stream::unfold(
            (PageState::Next(None), rm, spec, seen),
            move |(state, rm, spec, mut seen)| async move {
                let PageState::Next(token) = state else {
                    return None;
                };
                match rm.query_page(&spec, token.as_deref(), page_size).await {
                    Ok(page) => {
                        let next = match &page.continuation_token {
                            Some(t) if seen.insert(t.clone()) => PageState::Next(Some(t.clone())),
                            Some(t) => {
                                tracing::warn!(
                                    token = t.as_str(),
                                    "query continuation token repeated; stopping"
                                );
                                PageState::Done
                            }
                            None => PageState::Done,
                        };
                        Some((Ok(page), (next, rm, spec, seen)))
                    }
                    Err(e) => Some((Err(e), (PageState::Done, rm, spec, seen))),
                }
            },
        )
    }

    fn start(&mut self) -> BoxStream<'static, Result<T>> {
        let query = Query::<T> {
            rm: self.rm.clone(),
            query: self.query.clone(),
            page_size: self.page_size,
            items: None,
        };
        query
            .pages()
            .flat_map(|page| match page {
                Ok(page) => stream::iter(page.items.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => stream::iter(vec![Err(e)]),
            })
            .boxed()
    }
}

impl<T: QueryItem> Stream for Query<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.items.is_none() {
            this.items = Some(this.start());
        }
        match this.items.as_mut() {
            Some(items) => items.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}
