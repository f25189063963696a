//! The IoT Hub query language (`POST /devices/query`), executed in SQLite.
//!
//! [`execute`] parses a query, translates it into one SQL statement over the
//! `twin` JSON column of the `devices` or `modules` table (using SQLite's
//! `json_extract`/`json_type`/`->` functions), and returns one page of
//! results. Filtering, grouping and aggregation run inside SQLite; Rust only
//! turns the selected rows into JSON values. The statement reads the twins
//! from the store's query indexes, which hold them in SQLite's binary JSON
//! form (the private `sql` module explains how); the results are
//! those of the stored twins.
//!
//! # Supported language
//!
//! ```text
//! SELECT [TOP n] * | item [AS alias] {, item [AS alias]}
//! FROM devices | devices.modules
//! [WHERE condition]
//! [GROUP BY path {, path}]
//! ```
//!
//! * Keywords, function names and collection names are case-insensitive.
//! * An item is a property path (`deviceId`, `tags.location.region`,
//!   `properties.reported.temp`, `tags['a b']`, `configurations.[[name]].status`,
//!   `tags.list[0]`) or an aggregate: `COUNT()`, `SUM(path)`, `AVG(path)`,
//!   `MIN(path)`, `MAX(path)`.
//! * Conditions: `= != <> < <= > >=`, `AND OR NOT`, parentheses,
//!   `IN [..]`, `NIN [..]` (also `NOT IN`), `+ - * / %`, and the functions
//!   `IS_DEFINED`, `STARTSWITH`, `ENDSWITH` and `ARRAY_CONTAINS` (see
//!   [Functions](#functions)).
//! * Literals: strings in single or double quotes with `\' \" \\ \uXXXX`
//!   escapes (and `\/ \b \f \n \r \t`), integers, decimals with optional
//!   exponent, `0x` hexadecimal integers, `true`, `false`, `null`,
//!   `undefined`, and constant arrays in `IN`/`NIN`.
//! * Queries are limited to 8192 characters, like IoT Hub's.
//! * `FROM devices.jobs` is rejected with [`QueryError::Unsupported`].
//!
//! # Functions
//!
//! The engine accepts the functions IoT Hub accepts in twin queries and no
//! others; any other function is a [`QueryError::Syntax`] error (HTTP 400,
//! where IoT Hub answers "The query is invalid"). Sources:
//!
//! * `IS_DEFINED`: the only function Microsoft's query-language article
//!   ("IoT Hub query language for device and module twins, jobs, and message
//!   routing", section Functions) lists for twin and job queries.
//! * `STARTSWITH`, `ENDSWITH`: not in that list, but what the hub accepts.
//!   IoT Hub answered `SELECT * FROM devices WHERE STARTS_WITH(deviceId,
//!   'test')` with "The query is invalid. Please check the format of the query
//!   and try again." while `STARTSWITH` works (MicrosoftDocs/azure-docs
//!   issue 110329; also issue 85381, and pull request 110421, which changed
//!   the article to these spellings). Microsoft's tools send `STARTSWITH` in
//!   twin queries (Azure IoT Explorer's device search, the .NET service SDK
//!   samples). The underscored `STARTS_WITH`/`ENDS_WITH` are the spellings of
//!   message routing conditions, so they are refused here.
//! * `ARRAY_CONTAINS`: Microsoft's Azure CLI lists the children of an edge
//!   device with `array_contains(parentScopes, '<scope>')`.
//! * Refused: the functions the article lists for message routing conditions
//!   only. That covers the type checks `IS_NULL`, `IS_BOOL`, `IS_NUMBER`,
//!   `IS_STRING`, `IS_OBJECT`, `IS_ARRAY`, `IS_PRIMITIVE` and `AS_NUMBER`, the
//!   math functions, and the string functions `CONCAT`, `LENGTH`, `LOWER`,
//!   `UPPER`, `SUBSTRING`, `INDEX_OF`, `STARTS_WITH`, `ENDS_WITH` and
//!   `CONTAINS`. For `CONTAINS`, a user also reported that it fails in twin
//!   queries while `STARTSWITH` works (MicrosoftDocs/azure-docs issue 105649).
//!
//! The rest of the grammar follows the article's (`SELECT [TOP n]`, `AS`,
//! `FROM devices | devices.modules`, `WHERE`, `GROUP BY`, the operators,
//! `IN`/`NIN`, decimal and `0x` numbers, quoted strings, `undefined`, `null`).
//! A few forms the article does not mention are accepted because nothing shows
//! the hub refusing them: `NOT IN`, `COUNT(*)`, the JSON escapes `\/ \b \f
//! \n \r \t`, exponents, several `GROUP BY` paths, and `['name']` paths.
//!
//! # Semantics
//!
//! As in IoT Hub (which follows Cosmos DB), an expression may be
//! *undefined*: a missing property, a comparison between different types,
//! arithmetic on a non-number, ... `AND`, `OR` and `NOT` use three-valued
//! logic (`false AND undefined` is false, `true OR undefined` is true,
//! `NOT undefined` is undefined), and a twin is returned only when the
//! `WHERE` condition is exactly `true` (a bare `WHERE tags.flag` needs the
//! boolean `true`).
//!
//! * Comparisons are defined between two strings, two numbers, two booleans
//!   (`false < true`) or two nulls; anything else (different types, objects,
//!   arrays, missing properties) is undefined, for `!=` too. String
//!   comparison is ordinal and case-sensitive.
//! * `x IN [..]` is undefined when `x` is missing or not a primitive;
//!   otherwise it is true if `x` equals (same type and value) one of the
//!   constants. `NIN` and `NOT IN` negate it, so they are undefined for a
//!   missing property as well.
//! * Arithmetic works on numbers only; `/` is floating-point division, `%`
//!   the truncated remainder, and division by zero is undefined.
//! * `STARTSWITH` and `ENDSWITH` take two strings (else undefined) and are
//!   case-sensitive (ordinal). `IS_DEFINED` is always true or false.
//! * `ARRAY_CONTAINS(array, value)` is undefined unless `array` is a property
//!   holding an array; it is true when a top-level element equals `value`
//!   (same type and value, as for `=`), else false.
//!
//! # Property paths
//!
//! The `devices.` prefix (in `FROM devices`) and the `devices.modules.`
//! prefix (in `FROM devices.modules`) are accepted and ignored; other
//! references to device twins from a module query are rejected as
//! unsupported. The first path segment is matched case-insensitively against
//! the twin's top-level fields (`deviceId`, `moduleId`, `status`,
//! `connectionState`, `tags`, `properties`, ...) and used in its canonical
//! spelling, so `DeviceId` filters and projects as `deviceId`; the same goes
//! for `desired`/`reported` under `properties`. All other names (tags,
//! desired and reported properties) are case-sensitive, like twin keys.
//! Names that are not plain identifiers can be written `tags['a b']` or
//! `tags.[[a b]]`, at any depth; `[n]` selects an array element.
//!
//! # Results
//!
//! * `SELECT *` returns the twin documents as stored, with item type
//!   `"Twin"` (for device and module twins alike).
//! * Projections return one object per twin whose keys are the alias, or
//!   else the last property name of the path (`tags.location.region` →
//!   `region`); properties missing from a twin are left out of its object.
//!   Item type `"Raw"`.
//! * Aggregates return one object (one per group with `GROUP BY`) holding the
//!   group keys and aggregate values; an aggregate without alias is named
//!   `$1`, `$2`, ... in order (as is a path ending in an array index).
//!   Item type `"Raw"`. `COUNT()` counts twins; `SUM` and `AVG` use numeric
//!   values only, `MIN`/`MAX` numbers and strings (numbers sort first).
//!   `SUM` of nothing is `0`; `AVG`, `MIN`, `MAX` of nothing are left out.
//!   A twin where a grouped property is missing falls in a group whose
//!   object has no key for it.
//!
//! # Performance
//!
//! Conditions and aggregates read the twins from the store's query indexes,
//! which hold each twin as binary JSON without the `$metadata` of its
//! properties and without a few identity fields (`etag`, `deviceEtag`,
//! `version`, `statusUpdateTime`, `authenticationType`, `x509Thumbprint`,
//! `cloudToDeviceMessageCount`). Conditions on `deviceId` (`=`, `IN`,
//! `STARTSWITH`; for modules also `moduleId`) and `status = '…'` /
//! `connectionState = '…'` on device twins search an index; other conditions
//! scan the query index in id order and stop once the page is full; `GROUP BY`
//! scans it once (a grouped `COUNT()` counts its groups in a hash map instead of
//! sorting the scanned rows, up to 100,000 groups). Paths into `$metadata` or
//! those identity fields, and the output of the objects holding `$metadata`,
//! read the stored twin text instead: slower, same results.
//!
//! # Paging
//!
//! Twins are returned ordered by device id (then module id), groups by their
//! group keys (a missing key first). Pages hold `max_item_count` items: 100
//! when absent or 0, at most 1000 (larger values are clamped; IoT Hub
//! documents pages of up to 1000 items). `TOP n` caps the total across all
//! pages. A page carries a continuation token only when more items follow.
//!
//! The token is opaque: base64 of a small JSON document holding a hash of
//! the query text and the position reached: the ids of the last returned
//! twin, or the keys of the last returned group. The next page resumes after
//! that key (keyset paging). Ids never change and a twin update rewrites its
//! row in place, so twins or groups created, updated or deleted between pages
//! never cause another twin or group to be repeated or skipped: whatever
//! exists from the first page to the last is returned exactly once (what is
//! created meanwhile appears if it sorts after the position reached). A token
//! that is malformed or was issued for a different query text yields
//! [`QueryError::BadContinuation`].

mod lexer;
mod parser;
mod sql;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::types::Value as SqlValue;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use sql::{Column, ColumnKind, Plan, Shape, TABLE_ALIAS};

/// Page size used when the caller does not ask for one (or asks for 0).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Largest page size; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 8192;

/// Item type of pages holding whole twin documents (`SELECT *`).
pub const ITEM_TYPE_TWIN: &str = "Twin";

/// Item type of pages holding projections or aggregates.
pub const ITEM_TYPE_RAW: &str = "Raw";

/// One page of query results, each item as the JSON text the hub sends (see
/// [`execute_raw`]).
#[derive(Debug)]
pub struct RawQueryPage {
    /// The results on this page, in order.
    pub items: Vec<Box<RawValue>>,
    /// Token for the next page (the `x-ms-continuation` header), or `None`
    /// when this is the last page.
    pub continuation: Option<String>,
    /// The `x-ms-item-type` header value: [`ITEM_TYPE_TWIN`] or [`ITEM_TYPE_RAW`].
    pub item_type: &'static str,
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// The results on this page, in order.
    pub items: Vec<Value>,
    /// Token for the next page (the `x-ms-continuation` header), or `None`
    /// when this is the last page.
    pub continuation: Option<String>,
    /// The `x-ms-item-type` header value: [`ITEM_TYPE_TWIN`] or [`ITEM_TYPE_RAW`].
    pub item_type: &'static str,
}

/// Why a query could not be run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is malformed or inconsistent (for example a projected
    /// property missing from `GROUP BY`, a function twin queries do not have,
    /// or more than 8192 characters); the message gives the position and the
    /// token at fault.
    #[error("{message}")]
    Syntax {
        /// Human-readable description, e.g.
        /// `Syntax error at position 10 near 'FORM': expected FROM`.
        message: String,
    },
    /// The query uses something the emulator does not support: `FROM
    /// devices.jobs`, or an expression too complex to evaluate. (Functions
    /// that twin queries do not have are [`QueryError::Syntax`] errors, as
    /// IoT Hub refuses them.)
    #[error("{message}")]
    Unsupported {
        /// Human-readable description of the unsupported feature.
        message: String,
    },
    /// The continuation token is malformed or belongs to another query.
    #[error("invalid continuation token: it is malformed or was issued for a different query")]
    BadContinuation,
    /// The database failed while running the translated query.
    #[error("database error while running the query")]
    Sql(#[from] rusqlite::Error),
}

/// Counts every result of `query`, page by page (used for configuration metrics, whose
/// queries select one row per counted twin).
pub fn count(conn: &rusqlite::Connection, query: &str) -> Result<u64, QueryError> {
    let mut total = 0u64;
    let mut continuation: Option<String> = None;
    loop {
        let page = execute(conn, query, Some(MAX_PAGE_SIZE), continuation.as_deref())?;
        total += page.items.len() as u64;
        match page.continuation {
            Some(next) => continuation = Some(next),
            None => return Ok(total),
        }
    }
}

/// Runs `query` against the `devices` / `modules` tables and returns one page.
///
/// `max_item_count` is the requested page size (`x-ms-max-item-count`):
/// `None` or `0` means [`DEFAULT_PAGE_SIZE`], values above
/// [`MAX_PAGE_SIZE`] are clamped. `continuation` is the token from the
/// previous page (`x-ms-continuation`); an empty or blank token is treated as
/// absent.
///
/// The connection is only read from. It must hold the store's schema
/// (`store::SCHEMA`): the `devices` and `modules` tables, with `twin` holding
/// the JSON twin document, and the query indexes the statements name.
pub fn execute(
    conn: &rusqlite::Connection,
    query: &str,
    max_item_count: Option<u32>,
    continuation: Option<&str>,
) -> Result<QueryPage, QueryError> {
    let (items, continuation, item_type) = run(conn, query, max_item_count, continuation)?;
    Ok(QueryPage {
        items: items
            .into_iter()
            .map(Item::into_value)
            .collect::<Result<_, _>>()?,
        continuation,
        item_type,
    })
}

/// [`execute`], with each item as JSON text: a twin whose stored text needs no change is
/// passed through as stored, without being parsed into a value and written out again (a
/// full scan of a large registry spends most of its time there otherwise).
///
/// # Errors
/// As [`execute`].
pub fn execute_raw(
    conn: &rusqlite::Connection,
    query: &str,
    max_item_count: Option<u32>,
    continuation: Option<&str>,
) -> Result<RawQueryPage, QueryError> {
    let (items, continuation, item_type) = run(conn, query, max_item_count, continuation)?;
    Ok(RawQueryPage {
        items: items
            .into_iter()
            .map(Item::into_raw)
            .collect::<Result<_, _>>()?,
        continuation,
        item_type,
    })
}

/// One item of a page: a value the engine built, or a stored twin's text.
#[derive(Debug)]
enum Item {
    Value(Value),
    Text(Box<RawValue>),
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Item::Value(a), Item::Value(b)) => a == b,
            (Item::Text(a), Item::Text(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl Item {
    fn into_value(self) -> Result<Value, QueryError> {
        match self {
            Item::Value(v) => Ok(v),
            Item::Text(t) => parse_json(t.get(), 0),
        }
    }

    fn into_raw(self) -> Result<Box<RawValue>, QueryError> {
        match self {
            Item::Value(v) => serde_json::value::to_raw_value(&v).map_err(|e| conversion(0, e)),
            Item::Text(t) => Ok(t),
        }
    }
}

/// A JSON failure on the result column `column`.
fn conversion(column: usize, e: serde_json::Error) -> QueryError {
    QueryError::Sql(rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        Box::new(e),
    ))
}

type PageItems = (Vec<Item>, Option<String>, &'static str);

fn run(
    conn: &rusqlite::Connection,
    query: &str,
    max_item_count: Option<u32>,
    continuation: Option<&str>,
) -> Result<PageItems, QueryError> {
    let length = query.chars().count();
    if length > MAX_QUERY_CHARS {
        return Err(QueryError::Syntax {
            message: format!(
                "Query is too long: {length} characters (the limit is {MAX_QUERY_CHARS})"
            ),
        });
    }
    let ast = parser::parse(query)?;
    let plan = sql::plan(query, &ast)?;
    let page_size = effective_page_size(max_item_count);
    let fingerprint = fingerprint(query);
    let key_count = match &plan.shape {
        Shape::Aggregate { group_by, .. } => *group_by,
        _ => plan.key_columns().len(),
    };
    let position = match continuation.map(str::trim).filter(|t| !t.is_empty()) {
        None => Position::default(),
        Some(token) => decode_token(token, &fingerprint, key_count)?,
    };
    let remaining = plan
        .top
        .map_or(u64::MAX, |top| top.saturating_sub(position.returned));
    let item_type = match plan.shape {
        Shape::Twins => ITEM_TYPE_TWIN,
        _ => ITEM_TYPE_RAW,
    };
    let limit = u64::from(page_size).min(remaining);
    if limit == 0 {
        return Ok((Vec::new(), None, item_type));
    }
    let (items, last_key, more) = match &plan.shape {
        Shape::Aggregate { .. } => run_aggregate(conn, &plan, &position, limit)?,
        _ => run_keyset(conn, &plan, &position, limit)?,
    };
    let returned = position.returned.saturating_add(items.len() as u64);
    let continuation = if more && returned < plan.top.unwrap_or(u64::MAX) {
        Some(encode_token(&fingerprint, returned, last_key.as_deref()))
    } else {
        None
    };
    Ok((items, continuation, item_type))
}

/// The page size actually used for a requested `x-ms-max-item-count`.
fn effective_page_size(requested: Option<u32>) -> u32 {
    match requested {
        None | Some(0) => DEFAULT_PAGE_SIZE,
        Some(n) => n.min(MAX_PAGE_SIZE),
    }
}

/// Where a continuation token says to resume.
#[derive(Debug, Default, Clone, PartialEq)]
struct Position {
    /// Items returned by earlier pages (counted against `TOP`).
    returned: u64,
    /// Key of the last returned item, `None` at the start: the ids of a twin, or the group
    /// keys of a group (each the JSON text of the value, `""` when missing).
    after: Option<Vec<String>>,
}

/// Version tag inside continuation tokens.
const TOKEN_VERSION: u64 = 1;

/// Identifies the query text a token was issued for.
fn fingerprint(query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_token(fingerprint: &str, returned: u64, key: Option<&[String]>) -> String {
    let mut doc = serde_json::json!({
        "v": TOKEN_VERSION,
        "q": fingerprint,
        "n": returned,
    });
    if let (Some(key), Some(obj)) = (key, doc.as_object_mut()) {
        obj.insert("k".to_owned(), Value::from(key.to_vec()));
    }
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

fn decode_token(token: &str, fingerprint: &str, key_count: usize) -> Result<Position, QueryError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| QueryError::BadContinuation)?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| QueryError::BadContinuation)?;
    let obj = doc.as_object().ok_or(QueryError::BadContinuation)?;
    if obj.get("v").and_then(Value::as_u64) != Some(TOKEN_VERSION)
        || obj.get("q").and_then(Value::as_str) != Some(fingerprint)
    {
        return Err(QueryError::BadContinuation);
    }
    let returned = obj
        .get("n")
        .and_then(Value::as_u64)
        .ok_or(QueryError::BadContinuation)?;
    // Tokens carry the last returned key, except for aggregates without groups (which have a
    // single page and no tokens).
    let after = match (obj.get("k"), key_count) {
        (None, 0) => None,
        (Some(Value::Array(parts)), n) if n > 0 && parts.len() == n => Some(
            parts
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(QueryError::BadContinuation)?,
        ),
        _ => return Err(QueryError::BadContinuation),
    };
    Ok(Position { returned, after })
}

fn sql_limit(n: u64) -> SqlValue {
    SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

type PageRows = (Vec<Item>, Option<Vec<String>>, bool);

/// Twin and projection queries: ordered by key, resuming after the last key.
fn run_keyset(
    conn: &rusqlite::Connection,
    plan: &Plan,
    position: &Position,
    limit: u64,
) -> Result<PageRows, QueryError> {
    let keys = plan.key_columns();
    let mut params = plan.params.clone();
    let mut conditions = Vec::new();
    if let Some(f) = &plan.filter {
        conditions.push(f.clone());
    }
    if let Some(after) = &position.after {
        let cols: Vec<String> = keys.iter().map(|k| format!("{TABLE_ALIAS}.{k}")).collect();
        let mut placeholders = Vec::new();
        for k in after {
            params.push(SqlValue::Text(k.clone()));
            placeholders.push(format!("?{}", params.len()));
        }
        conditions.push(format!(
            "({}) > ({})",
            cols.join(", "),
            placeholders.join(", ")
        ));
    }
    let select_cols: Vec<String> = keys
        .iter()
        .map(|k| format!("{TABLE_ALIAS}.{k}"))
        .chain(match &plan.shape {
            Shape::Projection(cols) => cols.iter().map(|c| c.sql.clone()).collect(),
            _ => vec![
                format!("{TABLE_ALIAS}.twin"),
                match plan.collection {
                    parser::Collection::Modules => crate::store::MODULE_QUEUE_DEPTH.to_owned(),
                    _ => crate::store::DEVICE_QUEUE_DEPTH.to_owned(),
                },
            ],
        })
        .collect();
    params.push(sql_limit(limit.saturating_add(1)));
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY {} LIMIT ?{}",
        select_cols.join(", "),
        plan.source(),
        where_clause(&conditions),
        keys.iter()
            .map(|k| format!("{TABLE_ALIAS}.{k}"))
            .collect::<Vec<_>>()
            .join(", "),
        params.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if items.len() as u64 == limit {
            more = true;
            break;
        }
        let key = (0..keys.len())
            .map(|i| row.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()?;
        let item = match &plan.shape {
            Shape::Projection(cols) => Item::Value(project(row, keys.len(), cols)?),
            _ => {
                let text: String = row.get(keys.len())?;
                // The queue depth is counted from the queue; stored twins hold 0 (see
                // `store`), so only a twin with messages waiting is rewritten.
                let depth: i64 = row.get(keys.len() + 1)?;
                if depth == 0 {
                    Item::Text(RawValue::from_string(text).map_err(|e| conversion(keys.len(), e))?)
                } else {
                    let mut twin = parse_json(&text, keys.len())?;
                    if let Some(obj) = twin.as_object_mut() {
                        obj.insert("cloudToDeviceMessageCount".to_owned(), Value::from(depth));
                    }
                    Item::Value(twin)
                }
            }
        };
        items.push(item);
        last_key = Some(key);
    }
    Ok((items, last_key, more))
}

/// Aggregate queries: grouped counts in memory ([`count_groups`]), the others in SQL
/// ([`sql_aggregate`]).
fn run_aggregate(
    conn: &rusqlite::Connection,
    plan: &Plan,
    position: &Position,
    limit: u64,
) -> Result<PageRows, QueryError> {
    if let Some(page) = count_groups(conn, plan, position, limit)? {
        return Ok(page);
    }
    sql_aggregate(conn, plan, position, limit)
}

/// Aggregate queries in SQL: one scan computes the group keys and aggregate inputs of every
/// matching twin (materialized, so that SQLite reads them from the pinned index alone), then
/// the groups are formed, ordered by group keys and resumed after the last returned one.
fn sql_aggregate(
    conn: &rusqlite::Connection,
    plan: &Plan,
    position: &Position,
    limit: u64,
) -> Result<PageRows, QueryError> {
    let Shape::Aggregate {
        inputs,
        columns,
        group_by,
    } = &plan.shape
    else {
        return Ok((Vec::new(), None, false));
    };
    let mut params = plan.params.clone();
    let filter: Vec<String> = plan.filter.iter().cloned().collect();
    // Group keys are JSON text or NULL (missing); NULL sorts first, like "".
    let keys: Vec<String> = (0..*group_by)
        .map(|i| format!("COALESCE(r.c{i}, '')"))
        .collect();
    let mut outer = Vec::new();
    if let Some(after) = &position.after {
        let mut placeholders = Vec::new();
        for k in after {
            params.push(SqlValue::Text(k.clone()));
            placeholders.push(format!("?{}", params.len()));
        }
        outer.push(format!(
            "({}) > ({})",
            keys.join(", "),
            placeholders.join(", ")
        ));
    }
    let grouping = if *group_by == 0 {
        String::new()
    } else {
        let g = (0..*group_by)
            .map(|i| format!("r.c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(" GROUP BY {g} ORDER BY {g}")
    };
    let select = keys
        .iter()
        .cloned()
        .chain(columns.iter().map(|c| c.sql.clone()))
        .collect::<Vec<_>>()
        .join(", ");
    params.push(sql_limit(limit.saturating_add(1)));
    let sql = if inputs.is_empty() {
        // Only COUNT(): no per-twin values to compute.
        format!(
            "SELECT {select} FROM {}{} LIMIT ?{}",
            plan.source(),
            where_clause(&filter),
            params.len()
        )
    } else {
        format!(
            "WITH r AS MATERIALIZED (SELECT {} FROM {}{}) SELECT {select} FROM r{}{grouping} LIMIT ?{}",
            inputs
                .iter()
                .enumerate()
                .map(|(i, sql)| format!("{sql} AS c{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            plan.source(),
            where_clause(&filter),
            where_clause(&outer),
            params.len()
        )
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if items.len() as u64 == limit {
            more = true;
            break;
        }
        let key = (0..*group_by)
            .map(|i| row.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()?;
        items.push(Item::Value(project(row, *group_by, columns)?));
        last_key = Some(key);
    }
    Ok((items, last_key.filter(|k| !k.is_empty()), more))
}

/// Most groups [`count_groups`] keeps in memory; a query with more groups is left to SQLite,
/// which sorts on disk.
const MAX_COUNTED_GROUPS: usize = 100_000;

/// `GROUP BY` queries whose only aggregate is `COUNT()` (the usual "how many devices per
/// value" question): one scan of the query index counts the rows of each group in a hash map,
/// where SQLite would sort every scanned row first. Groups, their order (a missing key
/// first, then JSON text in byte order, as SQLite's `ORDER BY`) and paging are the same as
/// the SQL path's. Returns `None`, having read nothing it keeps, when the query has more than
/// [`MAX_COUNTED_GROUPS`] groups.
fn count_groups(
    conn: &rusqlite::Connection,
    plan: &Plan,
    position: &Position,
    limit: u64,
) -> Result<Option<PageRows>, QueryError> {
    let Shape::Aggregate {
        inputs,
        columns,
        group_by,
    } = &plan.shape
    else {
        return Ok(None);
    };
    // Grouped, with no aggregate inputs besides the group keys, and every column a group
    // key or COUNT().
    if *group_by == 0
        || inputs.len() != *group_by
        || columns
            .iter()
            .any(|c| !c.is_count() && c.group_key().is_none_or(|k| k >= *group_by))
    {
        return Ok(None);
    }
    let filter: Vec<String> = plan.filter.iter().cloned().collect();
    let sql = format!(
        "SELECT {} FROM {}{}",
        inputs.join(", "),
        plan.source(),
        where_clause(&filter)
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(plan.params.iter()))?;
    // Each group's keys packed into one string, so that a row's lookup needs no allocation:
    // per key, 0x00 when missing, or 0x01 followed by the key's JSON text and a 0x00
    // separator (JSON text never holds a raw 0x00 or 0x01).
    let mut counts: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut packed = String::new();
    while let Some(row) = rows.next()? {
        packed.clear();
        for i in 0..*group_by {
            if let rusqlite::types::ValueRef::Text(text) = row.get_ref(i)? {
                packed.push('\u{1}');
                packed.push_str(
                    std::str::from_utf8(text)
                        .map_err(|e| QueryError::Sql(rusqlite::Error::Utf8Error(i, e)))?,
                );
            }
            packed.push('\0');
        }
        if let Some(n) = counts.get_mut(packed.as_str()) {
            *n += 1;
        } else {
            if counts.len() == MAX_COUNTED_GROUPS {
                return Ok(None);
            }
            counts.insert(packed.clone(), 1);
        }
    }
    let mut groups: Vec<(Vec<Option<String>>, u64)> = counts
        .into_iter()
        .map(|(packed, n)| {
            let keys = packed
                .split_terminator('\0')
                .map(|k| k.strip_prefix('\u{1}').map(str::to_owned))
                .collect();
            (keys, n)
        })
        .collect();
    groups.sort_unstable();
    let coalesced = |keys: &[Option<String>]| -> Vec<String> {
        keys.iter().map(|k| k.clone().unwrap_or_default()).collect()
    };
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (keys, n) in groups {
        let key = coalesced(&keys);
        if position.after.as_ref().is_some_and(|after| key <= *after) {
            continue;
        }
        if items.len() as u64 == limit {
            more = true;
            break;
        }
        let mut obj = Map::new();
        for col in columns {
            let value = match col.group_key() {
                Some(k) => match &keys[k] {
                    Some(text) => Some(parse_json(text, k)?),
                    None => None,
                },
                None => Some(Value::from(n)),
            };
            if let Some(v) = value {
                obj.insert(col.key.clone(), v);
            }
        }
        items.push(Item::Value(Value::Object(obj)));
        last_key = Some(key);
    }
    Ok(Some((items, last_key.filter(|k| !k.is_empty()), more)))
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

fn parse_json(text: &str, column: usize) -> Result<Value, QueryError> {
    serde_json::from_str(text).map_err(|e| conversion(column, e))
}

/// Builds the output object of one row; `offset` is the first output column.
fn project(
    row: &rusqlite::Row<'_>,
    offset: usize,
    columns: &[Column],
) -> Result<Value, QueryError> {
    let mut obj = Map::new();
    for (i, col) in columns.iter().enumerate() {
        let idx = offset + i;
        let value = match col.kind {
            ColumnKind::JsonText => match row.get::<_, Option<String>>(idx)? {
                Some(text) => Some(parse_json(&text, idx)?),
                None => None,
            },
            ColumnKind::Scalar => match row.get::<_, SqlValue>(idx)? {
                SqlValue::Integer(n) => Some(Value::from(n)),
                SqlValue::Real(f) => serde_json::Number::from_f64(f).map(Value::Number),
                SqlValue::Text(s) => Some(Value::String(s)),
                SqlValue::Null | SqlValue::Blob(_) => None,
            },
        };
        if let Some(v) = value {
            obj.insert(col.key.clone(), v);
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests;
