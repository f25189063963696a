//! Translation of a parsed query into SQLite SQL over the `twin` JSON column.
//!
//! Every query expression is compiled to SQL that SQLite evaluates with its
//! JSON functions, so filtering and aggregation happen inside the database.
//!
//! The language rules implemented here are described in the parent module.
//! Undefined is represented by SQL `NULL` and booleans by `1`/`0`, which
//! makes SQLite's three-valued `AND`/`OR`/`NOT` match IoT Hub's. Each
//! property reference is evaluated with `json_type` (to check the JSON type)
//! and `json_extract` (for the value). Literal values are bound as parameters.
//!
//! # Where the values come from
//!
//! Property references read [`QUERY_DOC`]: the twin as JSONB without the `$metadata` of its
//! desired and reported properties and without the identity fields that queries rarely use
//! ([`STRIPPED_FIELDS`]). That is the expression of the `devices_query` and `modules_query`
//! indexes (`store::SCHEMA`), keyed by the table's ids, so SQLite reads it from the index,
//! already in binary form, instead of parsing the JSON text of every twin: conditions and
//! aggregates scan a narrow index in id order and only the twins returned are read from the
//! table. The statement names the index (`INDEXED BY`), because the planner would otherwise
//! prefer the primary-key index, which is narrower but holds no twin.
//!
//! References to what the document leaves out read the stored twin text instead (slower,
//! same results): paths into `properties.desired.$metadata` / `properties.reported.$metadata`
//! or a stripped field, and the output of `properties`, `properties.desired` and
//! `properties.reported` (which hold metadata). Conditions on those three objects may use the
//! document, as an object's type is all a condition can test about it.
//!
//! A condition in a position where only `true` selects a twin (the `WHERE` condition itself
//! and the operands of `AND`/`OR` under it, but not under `NOT`) can treat false and undefined
//! alike. There, `path = 'text'` and `path IN ['text', ...]` read the value with a single
//! `->>` instead of testing its type first: a number, boolean or null never equals a string,
//! and an object or array (whose text starts with `{` or `[`) cannot equal a literal that
//! does not start with one.
//!
//! `status = '…'` and `connectionState = '…'` on device twins (in those positions) read the
//! `status` / `connection_state` columns, which repeat the twin's strings, through their
//! indexes `devices_by_status` / `devices_by_connection_state`, so equality is a search and the
//! rows come out in id order.
//! `deviceId` (and a module's `moduleId`) use the key columns, and
//! `STARTSWITH(deviceId, '…')` adds a key range to its exact test.

use rusqlite::types::Value as SqlValue;

use super::QueryError;
use super::lexer::{Number, char_position, error_at};
use super::parser::{
    AggFunc, ArithOp, CmpOp, Collection, Expr, ExprKind, Func, ItemKind, Literal, Path, Query,
    Segment, Select,
};

/// The table alias used for the twin collection in generated SQL.
pub(crate) const TABLE_ALIAS: &str = "t";

/// The twin document that conditions and aggregates read: the twin as JSONB without the
/// `$metadata` of its desired and reported properties and without [`STRIPPED_FIELDS`]. It is
/// the expression of the `devices_query` / `modules_query` indexes, with `t.twin` for `twin`;
/// SQLite reads it from those indexes only if the two texts match exactly.
pub(crate) const QUERY_DOC: &str = "jsonb_remove(t.twin, '$.properties.desired.$metadata', '$.properties.reported.$metadata', '$.etag', '$.deviceEtag', '$.statusUpdateTime', '$.authenticationType', '$.x509Thumbprint', '$.version', '$.cloudToDeviceMessageCount')";

/// Top-level twin fields left out of [`QUERY_DOC`] (read from the stored twin when a query
/// refers to them).
const STRIPPED_FIELDS: &[&str] = &[
    "etag",
    "deviceEtag",
    "statusUpdateTime",
    "authenticationType",
    "x509Thumbprint",
    "version",
    "cloudToDeviceMessageCount",
];

/// The stored twin text, for the paths whose value includes `$metadata`.
const FULL_DOC: &str = "t.twin";

/// The twin field counted from the cloud-to-device queue instead of read from the stored
/// twin (see `store`).
const COUNTER_FIELD: &str = "cloudToDeviceMessageCount";

/// A document holding a device twin's [`COUNTER_FIELD`].
const DEVICE_COUNTER_DOC: &str = "json_object('cloudToDeviceMessageCount', (SELECT COUNT(*) FROM c2d_messages AS q WHERE q.device_id = t.device_id AND q.module_id = ''))";

/// A document holding a module twin's [`COUNTER_FIELD`].
const MODULE_COUNTER_DOC: &str = "json_object('cloudToDeviceMessageCount', (SELECT COUNT(*) FROM c2d_messages AS q WHERE q.device_id = t.device_id AND q.module_id = t.module_id))";

/// The indexes a statement can be pinned to.
pub(crate) mod index {
    /// `devices(device_id, <QUERY_DOC>)`.
    pub(crate) const DEVICES_QUERY: &str = "devices_query";
    /// `modules(device_id, module_id, <QUERY_DOC>)`.
    pub(crate) const MODULES_QUERY: &str = "modules_query";
    /// `devices(status, device_id)`.
    pub(crate) const DEVICES_BY_STATUS: &str = "devices_by_status";
    /// `devices(connection_state, device_id)`.
    pub(crate) const DEVICES_BY_CONNECTION_STATE: &str = "devices_by_connection_state";
    /// `modules(module_id, device_id)`: a module id without a device id.
    pub(crate) const MODULES_BY_MODULE_ID: &str = "modules_by_module_id";
}

/// Top-level string fields of device twins that the `devices` table repeats in an indexed
/// column: the field, its column, and the column's index.
const INDEXED_FIELDS: &[(&str, &str, &str)] = &[
    ("status", "status", index::DEVICES_BY_STATUS),
    (
        "connectionState",
        "connection_state",
        index::DEVICES_BY_CONNECTION_STATE,
    ),
];

/// Largest SQL text generated for one expression. Some operators (`%`)
/// repeat their operands, so deeply nested expressions could otherwise grow
/// exponentially.
const MAX_SQL_LEN: usize = 1 << 20;

/// Top-level twin fields, in their canonical spelling.
const TOP_LEVEL_FIELDS: &[&str] = &[
    "deviceId",
    "moduleId",
    "etag",
    "deviceEtag",
    "status",
    "statusReason",
    "statusUpdateTime",
    "connectionState",
    "lastActivityTime",
    "cloudToDeviceMessageCount",
    "authenticationType",
    "x509Thumbprint",
    "modelId",
    "version",
    "tags",
    "properties",
    "capabilities",
    "configurations",
    "deviceScope",
    "parentScopes",
];

/// How the values of an output column are turned into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// The SQL yields JSON text (or `NULL` for a missing property).
    JsonText,
    /// The SQL yields a plain SQL scalar (aggregate results).
    Scalar,
}

/// One key of the objects a projection or aggregate query returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub key: String,
    /// For aggregate queries, SQL over the scanned values (`r.c0`, `r.c1`, ...).
    pub sql: String,
    pub kind: ColumnKind,
}

/// SQL of the `COUNT()` aggregate over the scanned rows.
const COUNT_SQL: &str = "COUNT(*)";

impl Column {
    /// For a grouped property of an aggregate query, the index of its group key (`r.c{k}`).
    pub(crate) fn group_key(&self) -> Option<usize> {
        self.sql.strip_prefix("r.c")?.parse().ok()
    }

    /// Whether the column is `COUNT()`.
    pub(crate) fn is_count(&self) -> bool {
        self.sql == COUNT_SQL
    }
}

/// What the query returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// `SELECT *`: whole twin documents, one per row.
    Twins,
    /// A projection list without aggregates: one object per row.
    Projection(Vec<Column>),
    /// Aggregates, optionally grouped: one object per group (or exactly one
    /// object without `GROUP BY`).
    Aggregate {
        /// The values computed for each twin, scanned once into `r(c0, c1, ...)`: the
        /// `group_by` group keys first, then the inputs of the aggregates.
        inputs: Vec<String>,
        /// The outer columns, over `r`.
        columns: Vec<Column>,
        /// How many of `inputs` are group keys (`r.c0` ... `r.c{n-1}`).
        group_by: usize,
    },
}

/// A query translated to SQL fragments.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `Devices` or `Modules` (jobs are rejected while planning).
    pub collection: Collection,
    pub shape: Shape,
    /// The `WHERE` condition as SQL yielding 1 / 0 / NULL, if any.
    pub filter: Option<String>,
    /// Values for `?1`, `?2`, ... used in `filter` and the columns.
    pub params: Vec<SqlValue>,
    /// `TOP n`.
    pub top: Option<u64>,
    /// The index the scan must use (`INDEXED BY`), if any.
    pub index: Option<&'static str>,
}

impl Plan {
    /// The table holding the collection.
    pub(crate) fn table(&self) -> &'static str {
        match self.collection {
            Collection::Modules => "modules",
            Collection::Devices | Collection::Jobs => "devices",
        }
    }

    /// The key columns that order the collection (and drive keyset paging).
    pub(crate) fn key_columns(&self) -> &'static [&'static str] {
        match self.collection {
            Collection::Modules => &["device_id", "module_id"],
            Collection::Devices | Collection::Jobs => &["device_id"],
        }
    }

    /// `<table> AS t`, with the index the statement is pinned to.
    pub(crate) fn source(&self) -> String {
        match self.index {
            Some(index) => format!("{} AS {TABLE_ALIAS} INDEXED BY {index}", self.table()),
            None => format!("{} AS {TABLE_ALIAS}", self.table()),
        }
    }
}

/// A compiled expression with what is statically known about its type.
///
/// For the static variants, SQL `NULL` means undefined.
#[derive(Debug, Clone)]
enum Val {
    Undefined,
    Null,
    /// SQL yielding 1 / 0 / NULL.
    Bool(String),
    /// SQL yielding a number or NULL.
    Num(String),
    /// SQL yielding text or NULL.
    Str(String),
    /// An array constant (only usable with `IS_DEFINED`).
    Array,
    /// A property of the twin.
    Json(JsonRef),
}

/// A property of the twin: the document SQL and the quoted SQL JSON path literal.
#[derive(Debug, Clone)]
struct JsonRef {
    doc: &'static str,
    path: String,
}

fn json_type(r: &JsonRef) -> String {
    format!("json_type({}, {})", r.doc, r.path)
}

fn json_value(r: &JsonRef) -> String {
    format!("json_extract({}, {})", r.doc, r.path)
}

/// The value at `r` as JSON text (`NULL` when missing).
fn json_text(r: &JsonRef) -> String {
    format!("({} -> {})", r.doc, r.path)
}

/// The value as a string, or `None` when it can never be a string.
fn as_str(v: &Val) -> Option<String> {
    match v {
        Val::Str(s) => Some(s.clone()),
        Val::Json(p) => Some(format!(
            "(CASE WHEN {} = 'text' THEN {} END)",
            json_type(p),
            json_value(p)
        )),
        _ => None,
    }
}

/// The value as a number, or `None` when it can never be a number.
fn as_num(v: &Val) -> Option<String> {
    match v {
        Val::Num(s) => Some(s.clone()),
        Val::Json(p) => Some(format!(
            "(CASE WHEN {} IN ('integer', 'real') THEN {} END)",
            json_type(p),
            json_value(p)
        )),
        _ => None,
    }
}

/// The value as a boolean (1/0), or `None` when it can never be a boolean.
fn as_bool(v: &Val) -> Option<String> {
    match v {
        Val::Bool(s) => Some(s.clone()),
        Val::Json(p) => Some(format!(
            "(CASE {} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)",
            json_type(p)
        )),
        _ => None,
    }
}

/// SQL yielding 1 when the value is JSON `null`, or `None` when it never is.
fn null_test(v: &Val) -> Option<String> {
    match v {
        Val::Null => Some("1".to_owned()),
        Val::Json(r) => Some(format!("({} IS 'null')", json_type(r))),
        _ => None,
    }
}

/// SQL yielding 1/0 (never NULL): is the value of one of the given JSON types?
/// `types` uses SQLite's `json_type` names.
fn type_test(v: &Val, types: &[&str]) -> String {
    let static_match = |name: &str| types.contains(&name);
    match v {
        Val::Undefined => "0".to_owned(),
        Val::Null => bool_sql(static_match("null")),
        Val::Array => bool_sql(static_match("array")),
        Val::Bool(s) if static_match("true") => format!("({s} IS NOT NULL)"),
        Val::Num(s) if static_match("integer") => format!("({s} IS NOT NULL)"),
        Val::Str(s) if static_match("text") => format!("({s} IS NOT NULL)"),
        Val::Bool(_) | Val::Num(_) | Val::Str(_) => "0".to_owned(),
        Val::Json(r) => {
            let list = types
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("(COALESCE({}, '') IN ({list}))", json_type(r))
        }
    }
}

const PRIMITIVE_TYPES: &[&str] = &["null", "true", "false", "integer", "real", "text"];

fn bool_sql(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

/// Joins operands with AND/OR as a balanced tree so that long chains do not
/// exceed SQLite's expression depth limit.
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [] => "NULL".to_owned(),
        [one] => one.clone(),
        _ => {
            let (l, r) = parts.split_at(parts.len() / 2);
            format!("({} {op} {})", balanced(l, op), balanced(r, op))
        }
    }
}

/// Quotes a string as an SQL literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct Translator<'a> {
    src: &'a str,
    collection: Collection,
    params: Vec<SqlValue>,
}

/// A path resolved against the collection.
struct Resolved {
    /// The quoted SQL literal of the SQLite JSON path, e.g. `'$."tags"."x"'`.
    sql_path: String,
    /// The canonical JSON path text, used to compare paths.
    json_path: String,
    /// The last property name, used to name projected fields.
    last_name: Option<String>,
    /// [`QUERY_DOC`] leaves the value out: the path leads into the `$metadata` of desired or
    /// reported properties or into a stripped field.
    stripped: bool,
    /// The value contains parts that [`QUERY_DOC`] leaves out (`properties`,
    /// `properties.desired`, `properties.reported` hold `$metadata`).
    holds_stripped: bool,
    /// The path leads into [`COUNTER_FIELD`]: the document that holds it.
    counter: Option<&'static str>,
}

impl Resolved {
    /// The property, read for a condition or an aggregate input.
    fn for_condition(&self) -> JsonRef {
        JsonRef {
            doc: if let Some(doc) = self.counter {
                doc
            } else if self.stripped {
                FULL_DOC
            } else {
                QUERY_DOC
            },
            path: self.sql_path.clone(),
        }
    }

    /// The property, read to return its value.
    fn for_output(&self) -> JsonRef {
        JsonRef {
            doc: if let Some(doc) = self.counter {
                doc
            } else if self.stripped || self.holds_stripped {
                FULL_DOC
            } else {
                QUERY_DOC
            },
            path: self.sql_path.clone(),
        }
    }
}

/// Translates a parsed query into a [`Plan`].
pub(crate) fn plan(src: &str, query: &Query) -> Result<Plan, QueryError> {
    if query.from == Collection::Jobs {
        return Err(QueryError::Unsupported {
            message: format!(
                "Unsupported collection 'devices.jobs' at position {}: the emulator supports queries FROM devices and FROM devices.modules only",
                char_position(src, query.from_span.0)
            ),
        });
    }
    let mut tr = Translator {
        src,
        collection: query.from,
        params: Vec::new(),
    };
    let filter = match &query.filter {
        Some(e) => {
            let v = tr.condition(e)?;
            Some(as_bool(&v).unwrap_or_else(|| "NULL".to_owned()))
        }
        None => None,
    };
    let shape = tr.shape(query)?;
    let reads_doc = filter.as_deref().is_some_and(|f| f.contains(QUERY_DOC))
        || match &shape {
            Shape::Twins => false,
            Shape::Projection(cols) => cols.iter().any(|c| c.sql.contains(QUERY_DOC)),
            Shape::Aggregate { inputs, .. } => inputs.iter().any(|i| i.contains(QUERY_DOC)),
        };
    let index = tr.choose_index(query.filter.as_ref(), reads_doc)?;
    Ok(Plan {
        collection: query.from,
        shape,
        filter,
        params: tr.params,
        top: query.top,
        index,
    })
}

/// Whether an equality with the string `s` can read the value with `->>` alone in a
/// position where only `true` selects: objects and arrays, which `->>` turns into their JSON
/// text, start with `{` or `[`.
fn plain_string(s: &str) -> bool {
    !s.starts_with(['{', '['])
}

/// The top-level `AND` operands of a condition.
fn conjuncts(e: &Expr) -> &[Expr] {
    match &e.kind {
        ExprKind::And(parts) => parts,
        _ => std::slice::from_ref(e),
    }
}

/// The smallest string greater than every string starting with `prefix` (in UTF-8 byte order,
/// which is code point order), or `None` when there is none (`prefix` is empty or only
/// U+10FFFF characters).
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
        // U+10FFFF has no successor: increment the character before it instead.
    }
    None
}

impl Translator<'_> {
    fn param(&mut self, v: SqlValue) -> String {
        self.params.push(v);
        format!("?{}", self.params.len())
    }

    fn semantic_error(&self, start: usize, end: usize, message: &str) -> QueryError {
        error_at(self.src, start, end, message)
    }

    fn resolve(&self, path: &Path) -> Result<Resolved, QueryError> {
        let unquoted = |seg: &Segment, word: &str| matches!(seg, Segment::Name { name, quoted: false } if name.eq_ignore_ascii_case(word));
        let mut segs: &[Segment] = &path.segments;
        if segs.len() > 1 && unquoted(&segs[0], "devices") {
            match self.collection {
                Collection::Modules => {
                    if segs.len() > 2 && unquoted(&segs[1], "modules") {
                        segs = &segs[2..];
                    } else {
                        return Err(QueryError::Unsupported {
                            message: format!(
                                "Unsupported reference at position {}: queries FROM devices.modules cannot refer to device twins (use 'devices.modules.<property>' or just '<property>')",
                                char_position(self.src, path.start)
                            ),
                        });
                    }
                }
                Collection::Devices | Collection::Jobs => segs = &segs[1..],
            }
        }
        let mut names: Vec<Segment> = segs.to_vec();
        if let Some(Segment::Name {
            name,
            quoted: false,
        }) = names.first_mut()
            && let Some(canon) = TOP_LEVEL_FIELDS
                .iter()
                .find(|f| f.eq_ignore_ascii_case(name))
        {
            *name = (*canon).to_owned();
        }
        let is_properties =
            matches!(names.first(), Some(Segment::Name { name, .. }) if name == "properties");
        if is_properties
            && let Some(Segment::Name {
                name,
                quoted: false,
            }) = names.get_mut(1)
            && let Some(canon) = ["desired", "reported"]
                .into_iter()
                .find(|c| name.eq_ignore_ascii_case(c))
        {
            *name = canon.to_owned();
        }
        let mut json_path = String::from("$");
        for seg in &names {
            match seg {
                Segment::Name { name, .. } => {
                    // SQLite reads a double-quoted path label as a JSON string.
                    let label = serde_json::to_string(name).map_err(|_| {
                        self.semantic_error(path.start, path.end, "invalid property name")
                    })?;
                    json_path.push('.');
                    json_path.push_str(&label);
                }
                Segment::Index(i) => {
                    json_path.push_str(&format!("[{i}]"));
                }
            }
        }
        let last_name = match names.last() {
            Some(Segment::Name { name, .. }) => Some(name.clone()),
            _ => None,
        };
        let name_at = |i: usize| match names.get(i) {
            Some(Segment::Name { name, .. }) => Some(name.as_str()),
            _ => None,
        };
        let in_properties = name_at(0) == Some("properties");
        let section = matches!(name_at(1), Some("desired" | "reported"));
        let in_metadata = in_properties && section && name_at(2) == Some("$metadata");
        let stripped_field = name_at(0).is_some_and(|n| STRIPPED_FIELDS.contains(&n));
        let holds_metadata = in_properties && (names.len() == 1 || (section && names.len() == 2));
        Ok(Resolved {
            sql_path: sql_string(&json_path),
            json_path,
            last_name,
            stripped: in_metadata || stripped_field,
            holds_stripped: holds_metadata,
            counter: (name_at(0) == Some(COUNTER_FIELD)).then_some(match self.collection {
                Collection::Modules => MODULE_COUNTER_DOC,
                Collection::Devices | Collection::Jobs => DEVICE_COUNTER_DOC,
            }),
        })
    }

    fn literal(&mut self, lit: &Literal) -> Val {
        match lit {
            Literal::Undefined => Val::Undefined,
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(bool_sql(*b)),
            Literal::Number(Number::Int(i)) => Val::Num(self.param(SqlValue::Integer(*i))),
            Literal::Number(Number::Float(f)) => Val::Num(self.param(SqlValue::Real(*f))),
            Literal::Str(s) => Val::Str(self.param(SqlValue::Text(s.clone()))),
        }
    }

    /// `AND` / `OR` (as `e` says) over `parts`, each translated with `part`.
    fn junction(
        &mut self,
        e: &Expr,
        parts: &[Expr],
        part: fn(&mut Self, &Expr) -> Result<Val, QueryError>,
    ) -> Result<Val, QueryError> {
        let op = if matches!(e.kind, ExprKind::And(_)) {
            "AND"
        } else {
            "OR"
        };
        let mut sqls = Vec::with_capacity(parts.len());
        for p in parts {
            let v = part(self, p)?;
            sqls.push(as_bool(&v).unwrap_or_else(|| "NULL".to_owned()));
        }
        Ok(Val::Bool(balanced(&sqls, op)))
    }

    /// A condition in a position where only `true` selects a twin (see the module docs):
    /// `AND` and `OR` keep that position for their operands, string equality and `IN` read
    /// their property with one `->>`, and everything else is an ordinary expression.
    fn condition(&mut self, e: &Expr) -> Result<Val, QueryError> {
        match &e.kind {
            ExprKind::And(parts) | ExprKind::Or(parts) => self.junction(e, parts, Self::condition),
            ExprKind::Cmp(CmpOp::Eq, l, r) => {
                let (path, text) = match (&l.kind, &r.kind) {
                    (ExprKind::Path(p), ExprKind::Literal(Literal::Str(s)))
                    | (ExprKind::Literal(Literal::Str(s)), ExprKind::Path(p)) => (p, s),
                    _ => return self.expr(e),
                };
                match self.plain_property(path, std::slice::from_ref(text))? {
                    Some(value) => {
                        let x = self.param(SqlValue::Text(text.clone()));
                        Ok(Val::Bool(format!("({value} = {x})")))
                    }
                    None => self.expr(e),
                }
            }
            ExprKind::In {
                expr,
                list,
                negated: false,
            } => {
                let ExprKind::Path(path) = &expr.kind else {
                    return self.expr(e);
                };
                let texts: Option<Vec<String>> = list
                    .iter()
                    .map(|l| match l {
                        Literal::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                let Some(texts) = texts.filter(|t| !t.is_empty()) else {
                    return self.expr(e);
                };
                match self.plain_property(path, &texts)? {
                    Some(value) => {
                        let set: Vec<String> = texts
                            .into_iter()
                            .map(|t| self.param(SqlValue::Text(t)))
                            .collect();
                        Ok(Val::Bool(format!("({value} IN ({}))", set.join(", "))))
                    }
                    None => self.expr(e),
                }
            }
            _ => self.expr(e),
        }
    }

    /// `(<doc> ->> <path>)` for comparing a twin property with `texts` where only `true`
    /// selects, or `None` when the general translation is needed (key columns, or a text
    /// starting with `{` or `[`).
    fn plain_property(&self, path: &Path, texts: &[String]) -> Result<Option<String>, QueryError> {
        let resolved = self.resolve(path)?;
        if self.key_column(&resolved.json_path).is_some() || !texts.iter().all(|t| plain_string(t))
        {
            return Ok(None);
        }
        if self.collection == Collection::Devices
            && let Some((_, column, _)) = INDEXED_FIELDS
                .iter()
                .find(|(field, _, _)| resolved.json_path == format!("$.\"{field}\""))
        {
            // The column repeats the twin's string, and is what its index holds.
            return Ok(Some(format!("{TABLE_ALIAS}.{column}")));
        }
        let r = resolved.for_condition();
        Ok(Some(format!("({} ->> {})", r.doc, r.path)))
    }

    fn expr(&mut self, e: &Expr) -> Result<Val, QueryError> {
        let v = self.expr_unchecked(e)?;
        let len = match &v {
            Val::Bool(s) | Val::Num(s) | Val::Str(s) => s.len(),
            Val::Json(r) => r.path.len(),
            Val::Undefined | Val::Null | Val::Array => 0,
        };
        if len > MAX_SQL_LEN {
            return Err(QueryError::Unsupported {
                message: format!(
                    "Unsupported query at position {}: the expression is too complex to evaluate",
                    char_position(self.src, e.start)
                ),
            });
        }
        Ok(v)
    }

    fn expr_unchecked(&mut self, e: &Expr) -> Result<Val, QueryError> {
        Ok(match &e.kind {
            ExprKind::Literal(lit) => self.literal(lit),
            ExprKind::Array(_) => Val::Array,
            ExprKind::Path(p) => {
                let resolved = self.resolve(p)?;
                match self.key_column(&resolved.json_path) {
                    // Ids are also the table's key columns: a condition on them is answered
                    // from the primary-key index instead of a scan of every twin.
                    Some(column) => Val::Str(format!("{TABLE_ALIAS}.{column}")),
                    None => Val::Json(resolved.for_condition()),
                }
            }
            ExprKind::Neg(inner) => {
                let v = self.expr(inner)?;
                match as_num(&v) {
                    Some(x) => Val::Num(format!("(-{x})")),
                    None => Val::Undefined,
                }
            }
            ExprKind::Arith(op, l, r) => {
                let (l, r) = (self.expr(l)?, self.expr(r)?);
                match (as_num(&l), as_num(&r)) {
                    (Some(x), Some(y)) => Val::Num(arith(*op, &x, &y)),
                    _ => Val::Undefined,
                }
            }
            ExprKind::Cmp(op, l, r) => {
                let (l, r) = (self.expr(l)?, self.expr(r)?);
                Val::Bool(compare(*op, &l, &r))
            }
            ExprKind::In {
                expr,
                list,
                negated,
            } => {
                let v = self.expr(expr)?;
                let sql = self.membership(&v, list);
                Val::Bool(if *negated {
                    format!("(NOT {sql})")
                } else {
                    sql
                })
            }
            ExprKind::And(parts) | ExprKind::Or(parts) => self.junction(e, parts, Self::expr)?,
            ExprKind::Not(inner) => {
                let v = self.expr(inner)?;
                Val::Bool(match as_bool(&v) {
                    Some(b) => format!("(NOT {b})"),
                    None => "NULL".to_owned(),
                })
            }
            ExprKind::Call(func, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.expr(a)?);
                }
                let exact = call(*func, &vals);
                Val::Bool(match self.key_prefix(*func, args)? {
                    Some((column, prefix)) => self.key_range(column, &prefix, exact),
                    None => exact,
                })
            }
        })
    }

    /// `STARTSWITH(<key column>, '<literal>')`: the column and the prefix.
    fn key_prefix(
        &self,
        func: Func,
        args: &[Expr],
    ) -> Result<Option<(&'static str, String)>, QueryError> {
        let (Func::StartsWith, [target, prefix]) = (func, args) else {
            return Ok(None);
        };
        let (ExprKind::Path(p), ExprKind::Literal(Literal::Str(prefix))) =
            (&target.kind, &prefix.kind)
        else {
            return Ok(None);
        };
        let resolved = self.resolve(p)?;
        Ok(self
            .key_column(&resolved.json_path)
            .map(|column| (column, prefix.clone())))
    }

    /// `exact` (the prefix test on a key column) preceded by the key range holding every
    /// string that starts with `prefix`, so that SQLite searches the key index instead of
    /// scanning. Outside the range `exact` is false too, so the value is unchanged.
    fn key_range(&mut self, column: &str, prefix: &str, exact: String) -> String {
        if prefix.is_empty() {
            return exact;
        }
        let col = format!("{TABLE_ALIAS}.{column}");
        let low = self.param(SqlValue::Text(prefix.to_owned()));
        match prefix_successor(prefix) {
            Some(high) => {
                let high = self.param(SqlValue::Text(high));
                format!("({col} >= {low} AND {col} < {high} AND {exact})")
            }
            None => format!("({col} >= {low} AND {exact})"),
        }
    }

    /// The index the statement is pinned to: an id condition searches the query index; an
    /// equality on a device's `status` or `connectionState` searches its expression index;
    /// otherwise a statement reading [`QUERY_DOC`] scans the query index.
    fn choose_index(
        &self,
        filter: Option<&Expr>,
        reads_doc: bool,
    ) -> Result<Option<&'static str>, QueryError> {
        let query_index = match self.collection {
            Collection::Modules => index::MODULES_QUERY,
            Collection::Devices | Collection::Jobs => index::DEVICES_QUERY,
        };
        let mut field_index = None;
        let mut module_key = false;
        for part in filter.map(conjuncts).unwrap_or_default() {
            let path = match &part.kind {
                ExprKind::Cmp(CmpOp::Eq, l, r) => match (&l.kind, &r.kind) {
                    (ExprKind::Path(p), ExprKind::Literal(Literal::Str(s)))
                    | (ExprKind::Literal(Literal::Str(s)), ExprKind::Path(p))
                        if plain_string(s) =>
                    {
                        p
                    }
                    _ => continue,
                },
                ExprKind::In { expr, .. } => match &expr.kind {
                    ExprKind::Path(p) => p,
                    _ => continue,
                },
                ExprKind::Call(Func::StartsWith, args) => match args.first().map(|a| &a.kind) {
                    Some(ExprKind::Path(p)) => p,
                    _ => continue,
                },
                _ => continue,
            };
            let resolved = self.resolve(path)?;
            match self.key_column(&resolved.json_path) {
                // A module id alone searches `modules(module_id, device_id)` (NIN cannot).
                Some("module_id") => {
                    module_key |= !matches!(part.kind, ExprKind::In { negated: true, .. });
                    continue;
                }
                Some(_) => return Ok(reads_doc.then_some(query_index)),
                None => {}
            }
            if self.collection == Collection::Devices
                && matches!(part.kind, ExprKind::Cmp(..))
                && field_index.is_none()
            {
                field_index = INDEXED_FIELDS
                    .iter()
                    .find(|(field, _, _)| resolved.json_path == format!("$.\"{field}\""))
                    .map(|(_, _, index)| *index);
            }
        }
        if module_key {
            return Ok(Some(index::MODULES_BY_MODULE_ID));
        }
        Ok(field_index.or(reads_doc.then_some(query_index)))
    }

    /// The key column holding the value at `json_path`, for the ids every twin carries (always
    /// strings, equal to the row's key).
    fn key_column(&self, json_path: &str) -> Option<&'static str> {
        match (self.collection, json_path) {
            (Collection::Devices | Collection::Modules, r#"$."deviceId""#) => Some("device_id"),
            (Collection::Modules, r#"$."moduleId""#) => Some("module_id"),
            _ => None,
        }
    }

    /// `v IN [list]` as 1 / 0 / NULL.
    fn membership(&mut self, v: &Val, list: &[Literal]) -> String {
        let mut strs = Vec::new();
        let mut nums = Vec::new();
        let mut bools = Vec::new();
        let mut has_null = false;
        for lit in list {
            match lit {
                Literal::Str(s) => strs.push(self.param(SqlValue::Text(s.clone()))),
                Literal::Number(Number::Int(i)) => nums.push(self.param(SqlValue::Integer(*i))),
                Literal::Number(Number::Float(f)) => nums.push(self.param(SqlValue::Real(*f))),
                Literal::Bool(b) => bools.push(bool_sql(*b)),
                Literal::Null => has_null = true,
                Literal::Undefined => {}
            }
        }
        // A value of a statically known type is used once: `x IN (..)` is
        // already NULL when `x` is undefined.
        let static_set = match v {
            Val::Str(_) => Some(&strs),
            Val::Num(_) => Some(&nums),
            Val::Bool(_) => Some(&bools),
            _ => None,
        };
        if let (Val::Str(x) | Val::Num(x) | Val::Bool(x), Some(set)) = (v, static_set) {
            return if set.is_empty() {
                format!("(CASE WHEN {x} IS NOT NULL THEN 0 END)")
            } else {
                format!("({x} IN ({}))", set.join(", "))
            };
        }
        let mut hits = Vec::new();
        for (value, set) in [(as_str(v), &strs), (as_num(v), &nums), (as_bool(v), &bools)] {
            if let (Some(x), false) = (value, set.is_empty()) {
                hits.push(format!("COALESCE({x} IN ({}), 0)", set.join(", ")));
            }
        }
        if has_null && let Some(n) = null_test(v) {
            hits.push(n);
        }
        let defined = type_test(v, PRIMITIVE_TYPES);
        let any = if hits.is_empty() {
            "0".to_owned()
        } else {
            balanced(&hits, "OR")
        };
        format!("(CASE WHEN {defined} THEN {any} END)")
    }

    fn shape(&mut self, query: &Query) -> Result<Shape, QueryError> {
        let items = match &query.select {
            Select::Star => {
                if let Some(g) = query.group_by.first() {
                    return Err(self.semantic_error(
                        g.start,
                        g.end,
                        "GROUP BY cannot be used with SELECT *; list the grouped properties and aggregates instead",
                    ));
                }
                return Ok(Shape::Twins);
            }
            Select::Items(items) => items,
        };
        let mut inputs = Vec::new();
        let mut group_paths = Vec::new();
        for g in &query.group_by {
            let r = self.resolve(g)?;
            inputs.push(json_text(&r.for_output()));
            group_paths.push(r.json_path);
        }
        let has_aggregates = items
            .iter()
            .any(|i| matches!(i.kind, ItemKind::Aggregate(..)));
        let grouped = has_aggregates || !query.group_by.is_empty();
        let mut columns: Vec<Column> = Vec::with_capacity(items.len());
        let mut unnamed = 0usize;
        for item in items {
            let (default_key, sql, kind) = match &item.kind {
                ItemKind::Path(p) => {
                    let r = self.resolve(p)?;
                    let sql = if grouped {
                        let Some(k) = group_paths.iter().position(|g| *g == r.json_path) else {
                            let what = if query.group_by.is_empty() {
                                "cannot mix properties and aggregates without GROUP BY"
                            } else {
                                "property must appear in GROUP BY"
                            };
                            return Err(self.semantic_error(p.start, p.end, what));
                        };
                        format!("r.c{k}")
                    } else {
                        json_text(&r.for_output())
                    };
                    (r.last_name, sql, ColumnKind::JsonText)
                }
                ItemKind::Aggregate(func, arg) => {
                    let sql = match (func, arg) {
                        (AggFunc::Count, _) => COUNT_SQL.to_owned(),
                        (_, None) => {
                            return Err(self.semantic_error(
                                item.start,
                                item.end,
                                "aggregate needs a property path",
                            ));
                        }
                        (f, Some(p)) => {
                            let v = Val::Json(self.resolve(p)?.for_condition());
                            inputs.push(aggregate_input(*f, &v));
                            aggregate(*f, &format!("r.c{}", inputs.len() - 1))
                        }
                    };
                    (None, sql, ColumnKind::Scalar)
                }
            };
            let key = match (&item.alias, default_key) {
                (Some(alias), _) => alias.clone(),
                (None, Some(name)) => name,
                (None, None) => {
                    unnamed += 1;
                    format!("${unnamed}")
                }
            };
            if columns.iter().any(|c| c.key == key) {
                return Err(self.semantic_error(
                    item.start,
                    item.end,
                    &format!("duplicate output name '{key}'; use AS to give it another name"),
                ));
            }
            columns.push(Column { key, sql, kind });
        }
        Ok(if grouped {
            Shape::Aggregate {
                inputs,
                columns,
                group_by: query.group_by.len(),
            }
        } else {
            Shape::Projection(columns)
        })
    }
}

fn arith(op: ArithOp, x: &str, y: &str) -> String {
    match op {
        ArithOp::Add => format!("({x} + {y})"),
        ArithOp::Sub => format!("({x} - {y})"),
        ArithOp::Mul => format!("({x} * {y})"),
        ArithOp::Div => format!("(CAST({x} AS REAL) / {y})"),
        // Truncated remainder that also works for non-integers (SQLite's `%`
        // truncates its operands to integers first).
        ArithOp::Rem => format!("({x} - {y} * CAST(CAST({x} AS REAL) / {y} AS INTEGER))"),
    }
}

/// `l op r` as 1 / 0 / NULL.
fn compare(op: CmpOp, l: &Val, r: &Val) -> String {
    let sql_op = match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    };
    let mut parts = Vec::new();
    for (x, y) in [
        (as_str(l), as_str(r)),
        (as_num(l), as_num(r)),
        (as_bool(l), as_bool(r)),
    ] {
        if let (Some(x), Some(y)) = (x, y) {
            parts.push(format!("({x} {sql_op} {y})"));
        }
    }
    if let (Some(x), Some(y)) = (null_test(l), null_test(r)) {
        let equal = matches!(op, CmpOp::Eq | CmpOp::Le | CmpOp::Ge);
        parts.push(format!(
            "(CASE WHEN {x} AND {y} THEN {} END)",
            bool_sql(equal)
        ));
    }
    match parts.len() {
        0 => "NULL".to_owned(),
        1 => parts.swap_remove(0),
        _ => format!("COALESCE({})", parts.join(", ")),
    }
}

/// A built-in function call as 1 / 0 / NULL.
fn call(func: Func, args: &[Val]) -> String {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Val::Undefined);
    match func {
        Func::IsDefined => match arg(0) {
            Val::Undefined => "0".to_owned(),
            Val::Null | Val::Array => "1".to_owned(),
            Val::Bool(s) | Val::Num(s) | Val::Str(s) => format!("({s} IS NOT NULL)"),
            Val::Json(r) => format!("({} IS NOT NULL)", json_type(&r)),
        },
        Func::StartsWith | Func::EndsWith => {
            let (Some(s), Some(x)) = (as_str(&arg(0)), as_str(&arg(1))) else {
                return "NULL".to_owned();
            };
            if func == Func::StartsWith {
                format!("(substr({s}, 1, length({x})) = {x})")
            } else {
                format!(
                    "(length({s}) >= length({x}) AND substr({s}, length({s}) - length({x}) + 1) = {x})"
                )
            }
        }
        Func::ArrayContains => array_contains(&arg(0), &arg(1)),
    }
}

/// `ARRAY_CONTAINS(array, value)` as 1 / 0 / NULL: undefined unless the first argument is a
/// twin property holding an array; true when one top-level element has the value's type and
/// value (nested arrays are not searched).
fn array_contains(array: &Val, value: &Val) -> String {
    let Val::Json(a) = array else {
        return "NULL".to_owned();
    };
    let element = match value {
        Val::Null => "je.type = 'null'".to_owned(),
        Val::Str(x) => format!("(je.type = 'text' AND je.value = {x})"),
        Val::Num(x) => format!("(je.type IN ('integer', 'real') AND je.value = {x})"),
        Val::Bool(x) => format!("(je.type IN ('true', 'false') AND je.value = {x})"),
        Val::Json(q) => format!(
            "(je.type = {t} AND je.type NOT IN ('object', 'array') \
             AND (je.type = 'null' OR je.value = {v}))",
            t = json_type(q),
            v = json_value(q)
        ),
        // Nothing equals an undefined value or an array constant: false for an array.
        Val::Undefined | Val::Array => "0".to_owned(),
    };
    format!(
        "(CASE WHEN {} = 'array' THEN EXISTS (SELECT 1 FROM json_each({}, {}) AS je WHERE {element}) END)",
        json_type(a),
        a.doc,
        a.path
    )
}

/// The value an aggregate over a property reads from each twin: numbers for `SUM`/`AVG`,
/// numbers and strings for `MIN`/`MAX` (`NULL` otherwise, which aggregates skip).
fn aggregate_input(func: AggFunc, v: &Val) -> String {
    match func {
        AggFunc::Count => "1".to_owned(),
        AggFunc::Sum | AggFunc::Avg => as_num(v).unwrap_or_else(|| "NULL".to_owned()),
        AggFunc::Min | AggFunc::Max => {
            let Val::Json(r) = v else {
                return "NULL".to_owned();
            };
            format!(
                "(CASE WHEN {} IN ('integer', 'real', 'text') THEN {} END)",
                json_type(r),
                json_value(r)
            )
        }
    }
}

/// An aggregate over the scanned `input` column. SQLite orders numbers before text, as
/// Cosmos DB does, for `MIN`/`MAX`.
fn aggregate(func: AggFunc, input: &str) -> String {
    match func {
        AggFunc::Count => COUNT_SQL.to_owned(),
        AggFunc::Sum => format!("COALESCE(SUM({input}), 0)"),
        AggFunc::Avg => format!("AVG({input})"),
        AggFunc::Min => format!("MIN({input})"),
        AggFunc::Max => format!("MAX({input})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parser::parse;

    fn plan_of(src: &str) -> Plan {
        let q = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        plan(src, &q).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    /// SQLite's plan for the filter of `src` over the store's schema, selecting the key and
    /// the twin in key order (the first page of a twin query).
    fn query_plan(src: &str) -> String {
        let plan = plan_of(src);
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        conn.execute_batch(crate::store::SCHEMA).expect("schema");
        let keys = plan
            .key_columns()
            .iter()
            .map(|k| format!("{TABLE_ALIAS}.{k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {keys}, {TABLE_ALIAS}.twin FROM {} WHERE {} ORDER BY {keys} LIMIT 101",
            plan.source(),
            plan.filter.as_deref().unwrap_or("1")
        );
        let mut stmt = conn.prepare(&sql).expect("prepare");
        let rows = stmt
            .query_map(rusqlite::params_from_iter(plan.params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .expect("explain");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn id_conditions_use_the_primary_key() {
        for src in [
            "SELECT * FROM devices WHERE deviceId = 'sc-050000'",
            "SELECT * FROM devices WHERE deviceid IN ['a', 'b', 'c']",
            "SELECT * FROM devices.modules WHERE deviceId = 'd1' AND moduleId = 'm1'",
        ] {
            let plan = query_plan(src);
            assert!(
                plan.starts_with("SEARCH") && plan.contains("INDEX"),
                "{src}: {plan}"
            );
        }
    }

    #[test]
    fn prefix_successor_is_the_least_upper_bound() {
        assert_eq!(prefix_successor("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_successor("a~").as_deref(), Some("a\u{7f}"));
        assert_eq!(prefix_successor("a\u{7f}").as_deref(), Some("a\u{80}"));
        assert_eq!(prefix_successor("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        assert_eq!(prefix_successor("x\u{10FFFF}").as_deref(), Some("y"));
        assert_eq!(
            prefix_successor("x\u{10FFFF}\u{10FFFF}").as_deref(),
            Some("y")
        );
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("a\0").as_deref(), Some("a\u{1}"));
        // Every string starting with the prefix sorts between it and its successor, in byte
        // order (SQLite's BINARY collation).
        for prefix in ["d", "dev-0", "é", "\u{7ff}", "\u{ffff}", "a\u{10FFFF}"] {
            let high = prefix_successor(prefix).expect("successor");
            for tail in ["", "\0", "z", "\u{10FFFF}", "\u{10FFFF}\u{10FFFF}x"] {
                let s = format!("{prefix}{tail}");
                assert!(
                    prefix.as_bytes() <= s.as_bytes() && s.as_bytes() < high.as_bytes(),
                    "{s:?}"
                );
            }
            assert!(!high.starts_with(prefix));
        }
    }

    #[test]
    fn prefix_conditions_on_ids_search_the_key_index() {
        for src in [
            "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'sc-05')",
            "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'sc-05') AND tags.a = 1",
            "SELECT * FROM devices.modules WHERE deviceId = 'd1' AND STARTSWITH(moduleId, 'm')",
        ] {
            let plan = query_plan(src);
            assert!(plan.starts_with("SEARCH"), "{src}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{src}: {plan}");
        }
        // A module id without a device id searches modules(module_id, device_id).
        for src in [
            "SELECT * FROM devices.modules WHERE moduleId = '$edgeAgent'",
            "SELECT deviceId FROM devices.modules WHERE moduleId IN ['a', 'b'] AND tags.x = 1",
            "SELECT * FROM devices.modules WHERE STARTSWITH(moduleId, 'm')",
        ] {
            let plan = query_plan(src);
            assert!(
                plan.starts_with("SEARCH t USING INDEX modules_by_module_id"),
                "{src}: {plan}"
            );
        }
        let plan = query_plan("SELECT * FROM devices.modules WHERE moduleId = 'm'");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        // No range for an empty prefix (every id matches) or a non-literal one.
        let p = plan_of("SELECT * FROM devices WHERE STARTSWITH(deviceId, '')");
        assert!(!p.filter.unwrap_or_default().contains(">="));
        let p = plan_of("SELECT * FROM devices WHERE STARTSWITH(deviceId, tags.p)");
        assert!(!p.filter.unwrap_or_default().contains(">="));
    }

    #[test]
    fn twin_conditions_read_the_query_index() {
        // The first page stops at the LIMIT: the index is scanned in key order, no sort.
        for src in [
            "SELECT * FROM devices WHERE tags.fleet = 'f7'",
            "SELECT * FROM devices WHERE properties.reported.temp > 3 OR IS_DEFINED(tags.x)",
            "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'",
            "SELECT * FROM devices WHERE ARRAY_CONTAINS(parentScopes, 'x')",
        ] {
            let plan = query_plan(src);
            assert!(
                plan.starts_with("SCAN t USING INDEX devices_query")
                    || plan.starts_with("SCAN t USING INDEX modules_query"),
                "{src}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{src}: {plan}");
        }
        // Equality on status and connectionState searches their columns' indexes.
        for (src, index) in [
            (
                "SELECT * FROM devices WHERE status = 'disabled'",
                "devices_by_status",
            ),
            (
                "SELECT * FROM devices WHERE 'Connected' = connectionState AND tags.a = 1",
                "devices_by_connection_state",
            ),
        ] {
            let plan = query_plan(src);
            assert!(
                plan.starts_with(&format!("SEARCH t USING INDEX {index} (")),
                "{src}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{src}: {plan}");
        }
        // Paths into $metadata or a stripped field read the stored twin.
        for src in [
            "SELECT * FROM devices WHERE properties.reported.$metadata.$lastUpdated > '2024'",
            "SELECT * FROM devices WHERE etag = 'AAAAAAAAAAE='",
            "SELECT * FROM devices WHERE Version > 2",
        ] {
            let p = plan_of(src);
            let f = p.filter.unwrap_or_default();
            assert!(f.contains("t.twin") && !f.contains(QUERY_DOC), "{f}");
            assert_eq!(p.index, None);
        }
    }

    /// The index expressions of the store's schema are the SQL the translator generates, so
    /// that SQLite reads them from the indexes.
    #[test]
    fn store_indexes_match_the_generated_sql() {
        let in_table = |sql: &str| sql.replace("t.twin", "twin");
        let doc = in_table(QUERY_DOC);
        let schema = crate::store::SCHEMA;
        for (table, keys, index) in [
            ("devices", "device_id", index::DEVICES_QUERY),
            ("modules", "device_id, module_id", index::MODULES_QUERY),
        ] {
            let ddl =
                format!("CREATE INDEX IF NOT EXISTS {index} ON {table} ({keys},\n    {doc});");
            assert!(schema.contains(&ddl), "{ddl}");
        }
        for (field, column, index) in INDEXED_FIELDS {
            let value = format!("t.{column}");
            let ddl =
                format!("CREATE INDEX IF NOT EXISTS {index} ON devices ({column}, device_id);");
            assert!(schema.contains(&ddl), "{ddl}");
            let p = plan_of(&format!("SELECT * FROM devices WHERE {field} = 'x'"));
            assert_eq!(p.filter, Some(format!("({value} = ?1)")));
            assert_eq!(p.index, Some(*index));
        }
        // Under NOT the type matters: the general form, and no search.
        let p = plan_of("SELECT * FROM devices WHERE NOT (status = 'x')");
        assert!(p.filter.unwrap_or_default().contains("CASE WHEN json_type"));
        assert_eq!(p.index, Some(index::DEVICES_QUERY));
    }

    fn plan_err(src: &str) -> QueryError {
        let q = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        match plan(src, &q) {
            Ok(p) => panic!("{src} planned: {p:?}"),
            Err(e) => e,
        }
    }

    fn keys(shape: &Shape) -> Vec<String> {
        match shape {
            Shape::Projection(c) | Shape::Aggregate { columns: c, .. } => {
                c.iter().map(|c| c.key.clone()).collect()
            }
            Shape::Twins => vec![],
        }
    }

    #[test]
    fn counter_documents_count_the_store_queues() {
        assert!(DEVICE_COUNTER_DOC.contains(crate::store::DEVICE_QUEUE_DEPTH));
        assert!(MODULE_COUNTER_DOC.contains(crate::store::MODULE_QUEUE_DEPTH));
    }

    #[test]
    fn count_is_a_single_sql_aggregate() {
        let p = plan_of("SELECT COUNT() AS numberOfDevices FROM devices");
        assert_eq!(p.filter, None);
        assert_eq!(
            p.shape,
            Shape::Aggregate {
                inputs: vec![],
                columns: vec![Column {
                    key: "numberOfDevices".into(),
                    sql: "COUNT(*)".into(),
                    kind: ColumnKind::Scalar,
                }],
                group_by: 0,
            }
        );
        // Nothing to read from the twins: no index is forced, so SQLite counts the
        // narrowest one.
        assert_eq!(p.index, None);
    }

    #[test]
    fn projected_keys() {
        let p = plan_of(
            "SELECT DeviceId, tags.location.region, properties.reported.temp AS t, tags['a b'], tags.arr[1] FROM devices",
        );
        assert_eq!(keys(&p.shape), ["deviceId", "region", "t", "a b", "$1"]);
        let Shape::Projection(cols) = &p.shape else {
            panic!("projection expected")
        };
        assert_eq!(cols[0].sql, format!(r#"({QUERY_DOC} -> '$."deviceId"')"#));
        assert_eq!(
            cols[4].sql,
            format!(r#"({QUERY_DOC} -> '$."tags"."arr"[1]')"#)
        );
        // Objects holding $metadata are returned from the stored twin.
        let p = plan_of(
            "SELECT properties.reported, properties.desired.$metadata AS m, properties AS p, properties.reported.x FROM devices",
        );
        let Shape::Projection(cols) = &p.shape else {
            panic!("projection expected")
        };
        let sql: Vec<&str> = cols.iter().map(|c| c.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                r#"(t.twin -> '$."properties"."reported"')"#,
                r#"(t.twin -> '$."properties"."desired"."$metadata"')"#,
                r#"(t.twin -> '$."properties"')"#,
                &format!(r#"({QUERY_DOC} -> '$."properties"."reported"."x"')"#),
            ]
        );
        let p = plan_of("SELECT COUNT(), SUM(tags.x), AVG(tags.x) AS a, MIN(tags.x) FROM devices");
        assert_eq!(keys(&p.shape), ["$1", "$2", "a", "$3"]);
    }

    #[test]
    fn prefixes_and_canonical_case() {
        let a =
            plan_of("SELECT * FROM devices WHERE devices.Tags.x = 1 AND PROPERTIES.Reported.y = 2");
        let b = plan_of("SELECT * FROM devices WHERE tags.x = 1 AND properties.reported.y = 2");
        assert_eq!(a.filter, b.filter);
        let m = plan_of("SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'm'");
        let n = plan_of("SELECT * FROM devices.modules WHERE moduleid = 'm'");
        assert_eq!(m.filter, n.filter);
        // User-defined keys stay case-sensitive.
        let c = plan_of("SELECT * FROM devices WHERE tags.X = 1");
        assert_ne!(c.filter, b.filter);
        assert!(matches!(
            plan_err("SELECT * FROM devices.modules WHERE devices.tags.x = 1"),
            QueryError::Unsupported { .. }
        ));
    }

    #[test]
    fn quoted_names_are_json_escaped_in_paths() {
        let p = plan_of(r#"SELECT * FROM devices WHERE tags['it\'s "q"\\'] = 1"#);
        let f = p.filter.unwrap_or_default();
        assert!(f.contains(r#"'$."tags"."it''s \"q\"\\"'"#), "{f}");
    }

    #[test]
    fn grouping_rules() {
        let p =
            plan_of("SELECT tags.r AS r, COUNT() AS n, MAX(tags.x) FROM devices GROUP BY tags.r");
        let Shape::Aggregate {
            inputs,
            columns,
            group_by,
        } = &p.shape
        else {
            panic!("aggregate expected")
        };
        assert_eq!(*group_by, 1);
        assert_eq!(inputs[0], format!(r#"({QUERY_DOC} -> '$."tags"."r"')"#));
        let sql: Vec<&str> = columns.iter().map(|c| c.sql.as_str()).collect();
        assert_eq!(sql, ["r.c0", "COUNT(*)", "MAX(r.c1)"]);
        let e = plan_err("SELECT tags.x, COUNT() FROM devices GROUP BY tags.r").to_string();
        assert!(
            e.contains("near 'tags.x': property must appear in GROUP BY"),
            "{e}"
        );
        let e = plan_err("SELECT deviceId, COUNT() FROM devices").to_string();
        assert!(e.contains("without GROUP BY"), "{e}");
        let e = plan_err("SELECT * FROM devices GROUP BY tags.r").to_string();
        assert!(e.contains("SELECT *"), "{e}");
        let e = plan_err("SELECT tags.a.x, properties.reported.x FROM devices").to_string();
        assert!(e.contains("duplicate output name 'x'"), "{e}");
        // GROUP BY without aggregates lists the distinct values.
        assert!(matches!(
            plan_of("SELECT tags.r FROM devices GROUP BY tags.r").shape,
            Shape::Aggregate { .. }
        ));
    }

    #[test]
    fn jobs_are_unsupported() {
        let e = plan_err("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'x'");
        assert!(matches!(e, QueryError::Unsupported { .. }));
        assert!(e.to_string().contains("devices.jobs"), "{e}");
    }

    #[test]
    fn literals_become_parameters() {
        let p =
            plan_of("SELECT * FROM devices WHERE tags.a = 'x\\'y' AND tags.b IN [1, 2.5, 'z'] ");
        assert_eq!(
            p.params,
            vec![
                SqlValue::Text("x'y".into()),
                SqlValue::Integer(1),
                SqlValue::Real(2.5),
                SqlValue::Text("z".into()),
            ]
        );
    }

    #[test]
    fn string_equality_reads_one_value_where_only_true_selects() {
        let value = format!(r#"({QUERY_DOC} ->> '$."tags"."a"')"#);
        let p = plan_of(
            "SELECT * FROM devices WHERE tags.a = 'x' AND ('y' = tags.a OR tags.a IN ['p', 'q'])",
        );
        assert_eq!(
            p.filter,
            Some(format!(
                "(({value} = ?1) AND (({value} = ?2) OR ({value} IN (?3, ?4))))"
            ))
        );
        // Not under NOT, not for other literals, not for texts that could be an object's.
        for src in [
            "SELECT * FROM devices WHERE NOT tags.a = 'x'",
            "SELECT * FROM devices WHERE tags.a = 1",
            "SELECT * FROM devices WHERE tags.a = '{}'",
            "SELECT * FROM devices WHERE tags.a IN ['x', 1]",
            "SELECT * FROM devices WHERE tags.a NIN ['x']",
            "SELECT * FROM devices WHERE (tags.a = 'x') = true",
        ] {
            let f = plan_of(src).filter.unwrap_or_default();
            assert!(!f.contains(" ->> "), "{src}: {f}");
        }
    }

    #[test]
    fn statically_undefined_comparisons() {
        let p = plan_of("SELECT * FROM devices WHERE 1 = 'a'");
        assert_eq!(p.filter.as_deref(), Some("NULL"));
        let p = plan_of("SELECT * FROM devices WHERE tags.a");
        assert_eq!(
            p.filter,
            Some(format!(
                r#"(CASE json_type({QUERY_DOC}, '$."tags"."a"') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"#
            ))
        );
    }

    #[test]
    fn expansion_is_bounded() {
        let src = format!(
            "SELECT * FROM devices WHERE tags.a{} = 1",
            " % 2".repeat(40)
        );
        let q = parse(&src).expect("parses");
        let e = plan(&src, &q).expect_err("too complex");
        assert!(matches!(e, QueryError::Unsupported { .. }), "{e:?}");
        assert!(e.to_string().contains("too complex"), "{e}");
        // Nested IN uses its operand once.
        let src = format!(
            "SELECT * FROM devices WHERE {}tags.a IN [1]{}",
            "(".repeat(30),
            ") IN [true]".repeat(30)
        );
        let p = plan_of(&src);
        assert!(p.filter.map_or(0, |f| f.len()) < 10_000);
    }

    #[test]
    fn balanced_chains() {
        let parts: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
        assert_eq!(balanced(&parts, "OR"), "((p0 OR p1) OR (p2 OR (p3 OR p4)))");
    }
}
