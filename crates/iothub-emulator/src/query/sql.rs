//! Translation of a parsed query into SQLite SQL over the `twin` JSON column.
//!
//! Every query expression is compiled to SQL that SQLite evaluates with its
//! JSON functions, so filtering and aggregation happen inside the database.
//!
//! The language rules implemented here are described in the parent module.
//! Undefined is represented by SQL `NULL` and booleans by `1`/`0`, which
//! makes SQLite's three-valued `AND`/`OR`/`NOT` match IoT Hub's. Each
//! property reference is evaluated with `json_type` (to check the JSON type)
//! and `json_extract` (for the value); SQLite caches the parsed twin between
//! those calls within a row. Literal values are bound as parameters.

use rusqlite::types::Value as SqlValue;

use super::QueryError;
use super::lexer::{Number, char_position, error_at};
use super::parser::{
    AggFunc, ArithOp, CmpOp, Collection, Expr, ExprKind, Func, ItemKind, Literal, Path, Query,
    Segment, Select,
};

/// The table alias used for the twin collection in generated SQL.
pub(crate) const TABLE_ALIAS: &str = "t";

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
    pub sql: String,
    pub kind: ColumnKind,
}

/// What the query returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// `SELECT *`: whole twin documents, one per row.
    Twins,
    /// A projection list without aggregates: one object per row.
    Projection(Vec<Column>),
    /// Aggregates, optionally grouped: one object per group (or exactly one
    /// object without `GROUP BY`). `group_by` holds SQL expressions.
    Aggregate {
        columns: Vec<Column>,
        group_by: Vec<String>,
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
    /// An array constant (only usable with the `IS_*` functions).
    Array,
    /// A property of the twin; the string is the quoted SQL JSON path literal.
    Json(String),
}

fn json_type(path: &str) -> String {
    format!("json_type({TABLE_ALIAS}.twin, {path})")
}

fn json_value(path: &str) -> String {
    format!("json_extract({TABLE_ALIAS}.twin, {path})")
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
        Val::Json(p) => Some(format!("({} IS 'null')", json_type(p))),
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
        Val::Json(p) => {
            let list = types
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("(COALESCE({}, '') IN ({list}))", json_type(p))
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
            let v = tr.expr(e)?;
            Some(as_bool(&v).unwrap_or_else(|| "NULL".to_owned()))
        }
        None => None,
    };
    let shape = tr.shape(query)?;
    Ok(Plan {
        collection: query.from,
        shape,
        filter,
        params: tr.params,
        top: query.top,
    })
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
        Ok(Resolved {
            sql_path: sql_string(&json_path),
            json_path,
            last_name,
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

    fn expr(&mut self, e: &Expr) -> Result<Val, QueryError> {
        let v = self.expr_unchecked(e)?;
        let len = match &v {
            Val::Bool(s) | Val::Num(s) | Val::Str(s) | Val::Json(s) => s.len(),
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
                    None => Val::Json(resolved.sql_path),
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
            ExprKind::And(parts) | ExprKind::Or(parts) => {
                let op = if matches!(e.kind, ExprKind::And(_)) {
                    "AND"
                } else {
                    "OR"
                };
                let mut sqls = Vec::with_capacity(parts.len());
                for p in parts {
                    let v = self.expr(p)?;
                    sqls.push(as_bool(&v).unwrap_or_else(|| "NULL".to_owned()));
                }
                Val::Bool(balanced(&sqls, op))
            }
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
                Val::Bool(call(*func, &vals))
            }
        })
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
        let mut group_sql = Vec::new();
        let mut group_paths = Vec::new();
        for g in &query.group_by {
            let r = self.resolve(g)?;
            group_sql.push(format!("({TABLE_ALIAS}.twin -> {})", r.sql_path));
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
                    if grouped && !group_paths.contains(&r.json_path) {
                        let what = if query.group_by.is_empty() {
                            "cannot mix properties and aggregates without GROUP BY"
                        } else {
                            "property must appear in GROUP BY"
                        };
                        return Err(self.semantic_error(p.start, p.end, what));
                    }
                    let sql = format!("({TABLE_ALIAS}.twin -> {})", r.sql_path);
                    (r.last_name, sql, ColumnKind::JsonText)
                }
                ItemKind::Aggregate(func, arg) => {
                    let sql = match (func, arg) {
                        (AggFunc::Count, _) => "COUNT(*)".to_owned(),
                        (_, None) => {
                            return Err(self.semantic_error(
                                item.start,
                                item.end,
                                "aggregate needs a property path",
                            ));
                        }
                        (f, Some(p)) => {
                            let v = Val::Json(self.resolve(p)?.sql_path);
                            aggregate(*f, &v)
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
                columns,
                group_by: group_sql,
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
            Val::Json(p) => format!("({} IS NOT NULL)", json_type(&p)),
        },
        Func::IsNull => type_test(&arg(0), &["null"]),
        Func::IsBool => type_test(&arg(0), &["true", "false"]),
        Func::IsNumber => type_test(&arg(0), &["integer", "real"]),
        Func::IsString => type_test(&arg(0), &["text"]),
        Func::IsObject => type_test(&arg(0), &["object"]),
        Func::IsArray => type_test(&arg(0), &["array"]),
        Func::IsPrimitive => type_test(&arg(0), PRIMITIVE_TYPES),
        Func::StartsWith | Func::EndsWith | Func::Contains => {
            let (Some(s), Some(x)) = (as_str(&arg(0)), as_str(&arg(1))) else {
                return "NULL".to_owned();
            };
            match func {
                Func::StartsWith => format!("(substr({s}, 1, length({x})) = {x})"),
                Func::EndsWith => format!(
                    "(length({s}) >= length({x}) AND substr({s}, length({s}) - length({x}) + 1) = {x})"
                ),
                _ => format!("(instr({s}, {x}) > 0)"),
            }
        }
        Func::ArrayContains => array_contains(&arg(0), &arg(1)),
    }
}

/// `ARRAY_CONTAINS(array, value)` as 1 / 0 / NULL: undefined unless the first argument is a
/// twin property holding an array; true when one top-level element has the value's type and
/// value (nested arrays are not searched).
fn array_contains(array: &Val, value: &Val) -> String {
    let Val::Json(p) = array else {
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
        "(CASE WHEN {} = 'array' THEN EXISTS (SELECT 1 FROM json_each({TABLE_ALIAS}.twin, {p}) AS je WHERE {element}) END)",
        json_type(p)
    )
}

/// An aggregate over a property; values of other types are ignored.
fn aggregate(func: AggFunc, v: &Val) -> String {
    let num = as_num(v).unwrap_or_else(|| "NULL".to_owned());
    match func {
        AggFunc::Count => "COUNT(*)".to_owned(),
        AggFunc::Sum => format!("COALESCE(SUM({num}), 0)"),
        AggFunc::Avg => format!("AVG({num})"),
        AggFunc::Min | AggFunc::Max => {
            // Numbers and strings; SQLite orders numbers before text, as
            // Cosmos DB does.
            let Val::Json(p) = v else {
                return "NULL".to_owned();
            };
            let f = if func == AggFunc::Min { "MIN" } else { "MAX" };
            format!(
                "{f}(CASE WHEN {} IN ('integer', 'real', 'text') THEN {} END)",
                json_type(p),
                json_value(p)
            )
        }
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

    /// SQLite's plan for the filter of `src` over a table shaped like the store's.
    fn query_plan(src: &str) -> String {
        let plan = plan_of(src);
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        conn.execute_batch(
            "CREATE TABLE devices(device_id TEXT PRIMARY KEY, twin TEXT NOT NULL);
             CREATE TABLE modules(device_id TEXT NOT NULL, module_id TEXT NOT NULL, twin TEXT NOT NULL,
                                  PRIMARY KEY(device_id, module_id));",
        )
        .expect("tables");
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT 1 FROM {} AS {TABLE_ALIAS} WHERE {}",
            plan.table(),
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
        // A tag condition still scans (no index on twin paths).
        assert!(query_plan("SELECT * FROM devices WHERE tags.a = 1").contains("SCAN"));
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
    fn count_is_a_single_sql_aggregate() {
        let p = plan_of("SELECT COUNT() AS numberOfDevices FROM devices");
        assert_eq!(p.filter, None);
        assert_eq!(
            p.shape,
            Shape::Aggregate {
                columns: vec![Column {
                    key: "numberOfDevices".into(),
                    sql: "COUNT(*)".into(),
                    kind: ColumnKind::Scalar,
                }],
                group_by: vec![],
            }
        );
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
        assert_eq!(cols[0].sql, r#"(t.twin -> '$."deviceId"')"#);
        assert_eq!(cols[4].sql, r#"(t.twin -> '$."tags"."arr"[1]')"#);
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
        let p = plan_of("SELECT tags.r AS r, COUNT() AS n FROM devices GROUP BY tags.r");
        let Shape::Aggregate { group_by, .. } = &p.shape else {
            panic!("aggregate expected")
        };
        assert_eq!(group_by, &[r#"(t.twin -> '$."tags"."r"')"#.to_owned()]);
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
    fn statically_undefined_comparisons() {
        let p = plan_of("SELECT * FROM devices WHERE 1 = 'a'");
        assert_eq!(p.filter.as_deref(), Some("NULL"));
        let p = plan_of("SELECT * FROM devices WHERE tags.a");
        assert_eq!(
            p.filter.as_deref(),
            Some(
                r#"(CASE json_type(t.twin, '$."tags"."a"') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"#
            )
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
