//! Recursive-descent parser producing the query AST.
//!
//! Grammar (keywords are case-insensitive):
//!
//! ```text
//! query       := SELECT [TOP int] select_list FROM collection
//!                [WHERE expr] [GROUP BY path {, path}]
//! select_list := '*' | item {, item}
//! item        := (path | aggregate) [AS identifier]
//! aggregate   := COUNT '(' ['*'] ')' | (SUM | AVG | MIN | MAX) '(' path ')'
//! collection  := devices | devices.modules | devices.jobs
//! expr        := and {OR and}
//! and         := not {AND not}
//! not         := NOT not | comparison
//! comparison  := additive [(= | != | <> | < | <= | > | >=) additive
//!                          | [NOT] IN array | NIN array]
//! additive    := term {(+ | -) term}
//! term        := unary {(* | / | %) unary}
//! unary       := (- | +) unary | primary
//! primary     := literal | array | '(' expr ')' | function '(' [expr {, expr}] ')' | path
//! array       := '[' [constant {, constant}] ']'
//! path        := identifier {'.' (identifier | '[[' name ']]') | '[' (string | int) ']'}
//! literal     := string | number | true | false | null | undefined
//! ```

use super::QueryError;
use super::lexer::{Number, Token, TokenKind, error_at, tokenize};

/// Deepest expression nesting accepted, counted in AST levels and in
/// parser recursion (parentheses, `NOT`, unary signs, function arguments).
/// Keeps both the parser's stack and the generated SQL's expression depth
/// (SQLite allows 1000) bounded.
const MAX_DEPTH: u32 = 64;

/// The collection named in the `FROM` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collection {
    /// `FROM devices`: device twins.
    Devices,
    /// `FROM devices.modules`: module twins.
    Modules,
    /// `FROM devices.jobs`: per-device job records (not supported by the emulator).
    Jobs,
}

/// One step of a property path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// A property name. `quoted` is true for `[[name]]` and `['name']`, which
    /// are taken verbatim (no case folding of well-known twin fields).
    Name { name: String, quoted: bool },
    /// An array element: `[3]`.
    Index(u32),
}

/// A property path such as `properties.reported.temp`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub segments: Vec<Segment>,
    /// Byte offsets of the path in the query text.
    pub start: usize,
    pub end: usize,
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Undefined,
    Null,
    Bool(bool),
    Number(Number),
    Str(String),
}

/// Binary arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Built-in scalar functions usable in `WHERE`: the ones IoT Hub accepts in twin queries
/// (see the parent module for where each comes from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    IsDefined,
    StartsWith,
    EndsWith,
    ArrayContains,
}

/// The function names of twin queries, in the order error messages list them.
pub(crate) const FUNCTION_NAMES: &str = "IS_DEFINED, STARTSWITH, ENDSWITH and ARRAY_CONTAINS";

/// Functions of IoT Hub's message routing conditions that twin queries do not have. IoT Hub
/// answers a twin query using one with "The query is invalid".
const ROUTING_ONLY: &[&str] = &[
    "ABS",
    "EXP",
    "POWER",
    "SQUARE",
    "CEILING",
    "FLOOR",
    "SIGN",
    "SQRT",
    "AS_NUMBER",
    "IS_ARRAY",
    "IS_BOOL",
    "IS_NULL",
    "IS_NUMBER",
    "IS_OBJECT",
    "IS_PRIMITIVE",
    "IS_STRING",
    "CONCAT",
    "LENGTH",
    "LOWER",
    "UPPER",
    "SUBSTRING",
    "INDEX_OF",
    "STARTS_WITH",
    "ENDS_WITH",
    "CONTAINS",
];

impl Func {
    fn lookup(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "IS_DEFINED" => Self::IsDefined,
            "STARTSWITH" => Self::StartsWith,
            "ENDSWITH" => Self::EndsWith,
            "ARRAY_CONTAINS" => Self::ArrayContains,
            _ => return None,
        })
    }

    fn arity(self) -> usize {
        match self {
            Self::StartsWith | Self::EndsWith | Self::ArrayContains => 2,
            Self::IsDefined => 1,
        }
    }
}

/// Why `name` is not a twin query function, for the error message.
fn unknown_function(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    let hint = match upper.as_str() {
        "STARTS_WITH" => " (use STARTSWITH)",
        "ENDS_WITH" => " (use ENDSWITH)",
        _ => "",
    };
    if ROUTING_ONLY.contains(&upper.as_str()) {
        format!(
            "{upper} is a message routing function, not a twin query function{hint}; twin queries support {FUNCTION_NAMES}"
        )
    } else {
        format!("unknown function; twin queries support {FUNCTION_NAMES}")
    }
}

/// Aggregate functions usable in the `SELECT` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFunc {
    fn lookup(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" => Self::Count,
            "SUM" => Self::Sum,
            "AVG" => Self::Avg,
            "MIN" => Self::Min,
            "MAX" => Self::Max,
            _ => return None,
        })
    }
}

/// An expression node with its source offset (for messages) and depth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub start: usize,
    depth: u32,
}

/// Expression variants.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Literal(Literal),
    Array(Vec<Literal>),
    Path(Path),
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Literal>,
        negated: bool,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Call(Func, Vec<Expr>),
}

impl Expr {
    fn new(kind: ExprKind, start: usize) -> Self {
        let child_depth = match &kind {
            ExprKind::Literal(_) | ExprKind::Array(_) | ExprKind::Path(_) => 0,
            ExprKind::Neg(e) | ExprKind::Not(e) | ExprKind::In { expr: e, .. } => e.depth,
            ExprKind::Arith(_, l, r) | ExprKind::Cmp(_, l, r) => l.depth.max(r.depth),
            ExprKind::And(v) | ExprKind::Or(v) | ExprKind::Call(_, v) => {
                v.iter().map(|e| e.depth).max().unwrap_or(0)
            }
        };
        Self {
            kind,
            start,
            depth: child_depth + 1,
        }
    }
}

/// What one `SELECT` list item computes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ItemKind {
    Path(Path),
    /// An aggregate; the path is `None` only for `COUNT()`.
    Aggregate(AggFunc, Option<Path>),
}

/// One `SELECT` list item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SelectItem {
    pub kind: ItemKind,
    pub alias: Option<String>,
    /// Byte offsets of the item in the query text.
    pub start: usize,
    pub end: usize,
}

/// The `SELECT` list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Select {
    Star,
    Items(Vec<SelectItem>),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub top: Option<u64>,
    pub select: Select,
    pub from: Collection,
    /// Byte offsets of the collection name (for messages).
    pub from_span: (usize, usize),
    pub filter: Option<Expr>,
    pub group_by: Vec<Path>,
}

/// Words that cannot start a property path.
const RESERVED: &[&str] = &[
    "SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY", "AS", "AND", "OR", "NOT", "IN", "NIN",
];

/// Parses a query into its AST.
pub(crate) fn parse(src: &str) -> Result<Query, QueryError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    parser.query()
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_kind_at(&self, ahead: usize) -> &TokenKind {
        let i = (self.pos + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].kind
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != TokenKind::Eof {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, message: &str) -> QueryError {
        let t = self.peek();
        error_at(self.src, t.start, t.end, message)
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.is_keyword(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.eat_keyword(kw) {
            Ok(())
        } else {
            Err(self.error_here(&format!("expected {kw}")))
        }
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if &self.peek().kind == kind {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Result<Token, QueryError> {
        if &self.peek().kind == kind {
            Ok(self.advance())
        } else {
            Err(self.error_here(&format!("expected {what}")))
        }
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(0, |t| t.end)
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(&format!(
                "expression is nested too deeply (limit {MAX_DEPTH})"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn check_depth(&self, e: Expr) -> Result<Expr, QueryError> {
        if e.depth > MAX_DEPTH {
            let t = self.peek();
            return Err(error_at(
                self.src,
                t.start,
                t.end,
                &format!("expression is too complex (nesting limit {MAX_DEPTH})"),
            ));
        }
        Ok(e)
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        self.expect_keyword("SELECT")?;
        let top = if self.eat_keyword("TOP") {
            match self.peek().kind {
                TokenKind::Number(Number::Int(n)) if n >= 0 => {
                    self.advance();
                    Some(n.unsigned_abs())
                }
                _ => return Err(self.error_here("expected a non-negative integer after TOP")),
            }
        } else {
            None
        };
        let select = self.select_list()?;
        self.expect_keyword("FROM")?;
        let from_start = self.peek().start;
        let from = self.collection()?;
        let from_span = (from_start, self.prev_end());
        let filter = if self.eat_keyword("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_keyword("GROUP") {
            self.expect_keyword("BY")?;
            loop {
                group_by.push(self.path_expecting("a property path in GROUP BY")?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        if self.peek().kind != TokenKind::Eof {
            let what = if group_by.is_empty() && filter.is_none() {
                "expected WHERE, GROUP BY or end of query"
            } else if group_by.is_empty() {
                "expected an operator, GROUP BY or end of query"
            } else {
                "expected end of query"
            };
            return Err(self.error_here(what));
        }
        Ok(Query {
            top,
            select,
            from,
            from_span,
            filter,
            group_by,
        })
    }

    fn select_list(&mut self) -> Result<Select, QueryError> {
        if self.eat(&TokenKind::Star) {
            return Ok(Select::Star);
        }
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        Ok(Select::Items(items))
    }

    fn select_item(&mut self) -> Result<SelectItem, QueryError> {
        let start = self.peek().start;
        let agg = match (&self.peek().kind, self.peek_kind_at(1)) {
            (TokenKind::Ident(name), TokenKind::LParen) => {
                let name = name.clone();
                match AggFunc::lookup(&name) {
                    Some(f) => Some(f),
                    None => {
                        return Err(self.error_here(
                            "expected a property path or an aggregate (COUNT, SUM, AVG, MIN, MAX)",
                        ));
                    }
                }
            }
            _ => None,
        };
        let kind = match agg {
            Some(func) => {
                self.advance();
                self.advance();
                let arg = if func == AggFunc::Count {
                    self.eat(&TokenKind::Star);
                    None
                } else {
                    Some(self.path_expecting("a property path")?)
                };
                self.expect(&TokenKind::RParen, "')'")?;
                ItemKind::Aggregate(func, arg)
            }
            None => ItemKind::Path(self.path_expecting(
                "'*', a property path or an aggregate (COUNT, SUM, AVG, MIN, MAX)",
            )?),
        };
        let alias = if self.eat_keyword("AS") {
            match &self.peek().kind {
                TokenKind::Ident(name) if !is_reserved(name) => {
                    let name = name.clone();
                    self.advance();
                    Some(name)
                }
                _ => return Err(self.error_here("expected an alias name after AS")),
            }
        } else {
            None
        };
        Ok(SelectItem {
            kind,
            alias,
            start,
            end: self.prev_end(),
        })
    }

    fn collection(&mut self) -> Result<Collection, QueryError> {
        if !self.eat_keyword("devices") {
            return Err(self.error_here("expected devices, devices.modules or devices.jobs"));
        }
        if !self.eat(&TokenKind::Dot) {
            return Ok(Collection::Devices);
        }
        if self.eat_keyword("modules") {
            Ok(Collection::Modules)
        } else if self.eat_keyword("jobs") {
            Ok(Collection::Jobs)
        } else {
            Err(self.error_here("expected modules or jobs after 'devices.'"))
        }
    }

    fn path_expecting(&mut self, what: &str) -> Result<Path, QueryError> {
        match &self.peek().kind {
            TokenKind::Ident(name) if !is_reserved(name) && !is_constant_word(name) => self.path(),
            _ => Err(self.error_here(&format!("expected {what}"))),
        }
    }

    /// Parses a path; the current token is its first identifier.
    fn path(&mut self) -> Result<Path, QueryError> {
        let first = self.advance();
        let TokenKind::Ident(name) = first.kind else {
            return Err(error_at(
                self.src,
                first.start,
                first.end,
                "expected a property name",
            ));
        };
        let mut segments = vec![Segment::Name {
            name,
            quoted: false,
        }];
        loop {
            if self.eat(&TokenKind::Dot) {
                let t = self.advance();
                match t.kind {
                    TokenKind::Ident(name) => segments.push(Segment::Name {
                        name,
                        quoted: false,
                    }),
                    TokenKind::QuotedIdent(name) => {
                        segments.push(Segment::Name { name, quoted: true })
                    }
                    _ => {
                        return Err(error_at(
                            self.src,
                            t.start,
                            t.end,
                            "expected a property name after '.'",
                        ));
                    }
                }
            } else if self.peek().kind == TokenKind::LBracket {
                self.advance();
                let t = self.advance();
                match t.kind {
                    TokenKind::Str(name) => segments.push(Segment::Name { name, quoted: true }),
                    TokenKind::Number(Number::Int(i)) if (0..=i64::from(u32::MAX)).contains(&i) => {
                        segments.push(Segment::Index(u32::try_from(i).unwrap_or(u32::MAX)));
                    }
                    _ => {
                        return Err(error_at(
                            self.src,
                            t.start,
                            t.end,
                            "expected a quoted property name or an array index inside [ ]",
                        ));
                    }
                }
                self.expect(&TokenKind::RBracket, "']'")?;
            } else {
                break;
            }
        }
        Ok(Path {
            segments,
            start: first.start,
            end: self.prev_end(),
        })
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        let mut operands = vec![self.and_expr()?];
        while self.eat_keyword("OR") {
            operands.push(self.and_expr()?);
        }
        self.fold_logical(operands, start, ExprKind::Or)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        let mut operands = vec![self.not_expr()?];
        while self.eat_keyword("AND") {
            operands.push(self.not_expr()?);
        }
        self.fold_logical(operands, start, ExprKind::And)
    }

    fn fold_logical(
        &self,
        mut operands: Vec<Expr>,
        start: usize,
        make: fn(Vec<Expr>) -> ExprKind,
    ) -> Result<Expr, QueryError> {
        if operands.len() == 1
            && let Some(only) = operands.pop()
        {
            return Ok(only);
        }
        self.check_depth(Expr::new(make(operands), start))
    }

    fn not_expr(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        if self.eat_keyword("NOT") {
            self.enter()?;
            let inner = self.not_expr()?;
            self.leave();
            return self.check_depth(Expr::new(ExprKind::Not(Box::new(inner)), start));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        let left = self.additive()?;
        let op = match self.peek().kind {
            TokenKind::Eq => Some(CmpOp::Eq),
            TokenKind::Ne => Some(CmpOp::Ne),
            TokenKind::Lt => Some(CmpOp::Lt),
            TokenKind::Le => Some(CmpOp::Le),
            TokenKind::Gt => Some(CmpOp::Gt),
            TokenKind::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let right = self.additive()?;
            return self.check_depth(Expr::new(
                ExprKind::Cmp(op, Box::new(left), Box::new(right)),
                start,
            ));
        }
        let negated = if self.eat_keyword("IN") {
            false
        } else if self.eat_keyword("NIN") {
            true
        } else if self.is_keyword("NOT")
            && matches!(self.peek_kind_at(1), TokenKind::Ident(s) if s.eq_ignore_ascii_case("IN"))
        {
            self.advance();
            self.advance();
            true
        } else {
            return Ok(left);
        };
        if self.peek().kind != TokenKind::LBracket {
            return Err(self.error_here("expected '[' starting a list of constants"));
        }
        let list = self.array()?;
        self.check_depth(Expr::new(
            ExprKind::In {
                expr: Box::new(left),
                list,
                negated,
            },
            start,
        ))
    }

    fn additive(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        let mut left = self.term()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => ArithOp::Add,
                TokenKind::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.term()?;
            left = self.check_depth(Expr::new(
                ExprKind::Arith(op, Box::new(left), Box::new(right)),
                start,
            ))?;
        }
    }

    fn term(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        let mut left = self.unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => ArithOp::Mul,
                TokenKind::Slash => ArithOp::Div,
                TokenKind::Percent => ArithOp::Rem,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.unary()?;
            left = self.check_depth(Expr::new(
                ExprKind::Arith(op, Box::new(left), Box::new(right)),
                start,
            ))?;
        }
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let start = self.peek().start;
        match self.peek().kind {
            TokenKind::Minus => {
                self.advance();
                self.enter()?;
                let inner = self.unary()?;
                self.leave();
                // Fold `-<number>` into a literal.
                let kind = match inner.kind {
                    ExprKind::Literal(Literal::Number(n)) => {
                        ExprKind::Literal(Literal::Number(negate(n)))
                    }
                    other => ExprKind::Neg(Box::new(Expr {
                        kind: other,
                        ..inner
                    })),
                };
                self.check_depth(Expr::new(kind, start))
            }
            TokenKind::Plus => {
                self.advance();
                self.enter()?;
                let inner = self.unary()?;
                self.leave();
                // Unary plus is numeric identity: keep it as `-(-x)` so that
                // non-numbers still become undefined.
                match inner.kind {
                    ExprKind::Literal(Literal::Number(_)) => Ok(inner),
                    _ => {
                        let neg =
                            self.check_depth(Expr::new(ExprKind::Neg(Box::new(inner)), start))?;
                        self.check_depth(Expr::new(ExprKind::Neg(Box::new(neg)), start))
                    }
                }
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let t = self.peek().clone();
        match &t.kind {
            TokenKind::Str(_) | TokenKind::Number(_) => {
                let lit = self.constant()?;
                Ok(Expr::new(ExprKind::Literal(lit), t.start))
            }
            TokenKind::LBracket => {
                let list = self.array()?;
                Ok(Expr::new(ExprKind::Array(list), t.start))
            }
            TokenKind::LParen => {
                self.advance();
                self.enter()?;
                let inner = self.expr()?;
                self.leave();
                self.expect(&TokenKind::RParen, "')'")?;
                Ok(inner)
            }
            TokenKind::Ident(name) => {
                if is_constant_word(name) {
                    let lit = self.constant()?;
                    return Ok(Expr::new(ExprKind::Literal(lit), t.start));
                }
                if self.peek_kind_at(1) == &TokenKind::LParen {
                    return self.call();
                }
                if is_reserved(name) {
                    return Err(self.error_here("expected an expression"));
                }
                let path = self.path()?;
                Ok(Expr::new(ExprKind::Path(path), t.start))
            }
            TokenKind::Eof => {
                Err(self.error_here("unexpected end of query, expected an expression"))
            }
            _ => Err(self.error_here("expected an expression")),
        }
    }

    fn call(&mut self) -> Result<Expr, QueryError> {
        let name_tok = self.advance();
        let TokenKind::Ident(name) = &name_tok.kind else {
            return Err(error_at(
                self.src,
                name_tok.start,
                name_tok.end,
                "expected a function name",
            ));
        };
        if AggFunc::lookup(name).is_some() {
            return Err(error_at(
                self.src,
                name_tok.start,
                name_tok.end,
                "aggregate functions are only allowed in the SELECT list",
            ));
        }
        let Some(func) = Func::lookup(name) else {
            return Err(error_at(
                self.src,
                name_tok.start,
                name_tok.end,
                &unknown_function(name),
            ));
        };
        self.advance(); // '('
        self.enter()?;
        let mut args = Vec::new();
        if self.peek().kind != TokenKind::RParen {
            loop {
                args.push(self.expr()?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        self.leave();
        self.expect(&TokenKind::RParen, "')' or ','")?;
        if args.len() != func.arity() {
            return Err(error_at(
                self.src,
                name_tok.start,
                self.prev_end(),
                &format!(
                    "{} expects {} argument{}, got {}",
                    name.to_ascii_uppercase(),
                    func.arity(),
                    if func.arity() == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        self.check_depth(Expr::new(ExprKind::Call(func, args), name_tok.start))
    }

    /// `[c1, c2, ...]`; the current token is `[`.
    fn array(&mut self) -> Result<Vec<Literal>, QueryError> {
        self.expect(&TokenKind::LBracket, "'['")?;
        let mut items = Vec::new();
        if self.eat(&TokenKind::RBracket) {
            return Ok(items);
        }
        loop {
            items.push(self.constant()?);
            if self.eat(&TokenKind::RBracket) {
                return Ok(items);
            }
            self.expect(&TokenKind::Comma, "',' or ']'")?;
        }
    }

    fn constant(&mut self) -> Result<Literal, QueryError> {
        let t = self.peek().clone();
        let lit = match &t.kind {
            TokenKind::Str(s) => Literal::Str(s.clone()),
            TokenKind::Number(n) => Literal::Number(*n),
            TokenKind::Minus => {
                if let TokenKind::Number(n) = self.peek_kind_at(1) {
                    let n = negate(*n);
                    self.advance();
                    Literal::Number(n)
                } else {
                    return Err(self.error_here("expected a constant"));
                }
            }
            TokenKind::Ident(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            TokenKind::Ident(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            TokenKind::Ident(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            TokenKind::Ident(w) if w.eq_ignore_ascii_case("undefined") => Literal::Undefined,
            _ => {
                return Err(
                    self.error_here("expected a constant (string, number, true, false, null)")
                );
            }
        };
        self.advance();
        Ok(lit)
    }
}

fn negate(n: Number) -> Number {
    match n {
        Number::Int(i) => i
            .checked_neg()
            .map_or(Number::Float(-(i as f64)), Number::Int),
        Number::Float(f) => Number::Float(-f),
    }
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

fn is_constant_word(word: &str) -> bool {
    ["true", "false", "null", "undefined"]
        .iter()
        .any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Query {
        match parse(src) {
            Ok(q) => q,
            Err(e) => panic!("{src:?} failed: {e}"),
        }
    }

    fn err(src: &str) -> String {
        match parse(src) {
            Ok(q) => panic!("{src:?} parsed: {q:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn names(p: &Path) -> Vec<String> {
        p.segments
            .iter()
            .map(|s| match s {
                Segment::Name { name, .. } => name.clone(),
                Segment::Index(i) => format!("[{i}]"),
            })
            .collect()
    }

    #[test]
    fn select_star_variants() {
        let q = ok("select * from DEVICES");
        assert_eq!(q.select, Select::Star);
        assert_eq!(q.from, Collection::Devices);
        assert_eq!(q.top, None);
        assert_eq!(
            ok("SELECT * FROM devices.modules").from,
            Collection::Modules
        );
        assert_eq!(ok("SELECT * FROM devices.Jobs").from, Collection::Jobs);
        assert_eq!(ok("SELECT TOP 5 * FROM devices").top, Some(5));
    }

    #[test]
    fn projections_and_aliases() {
        let q = ok(
            "SELECT deviceId, tags.location.region AS r, COUNT() AS n, max(properties.reported.t) FROM devices",
        );
        let Select::Items(items) = q.select else {
            panic!("expected items")
        };
        assert_eq!(items.len(), 4);
        assert!(matches!(&items[0].kind, ItemKind::Path(p) if names(p) == ["deviceId"]));
        assert_eq!(items[1].alias.as_deref(), Some("r"));
        assert!(matches!(
            items[2].kind,
            ItemKind::Aggregate(AggFunc::Count, None)
        ));
        assert!(
            matches!(&items[3].kind, ItemKind::Aggregate(AggFunc::Max, Some(p)) if names(p) == ["properties", "reported", "t"])
        );
        assert!(matches!(
            ok("SELECT COUNT(*) FROM devices").select,
            Select::Items(ref v) if matches!(v[0].kind, ItemKind::Aggregate(AggFunc::Count, None))
        ));
    }

    #[test]
    fn bracket_paths() {
        let q = ok(
            "SELECT * FROM devices WHERE tags['a b'].c = 1 AND configurations.[[my.config]].status = 'x' AND tags.arr[2] = 3",
        );
        let Some(Expr {
            kind: ExprKind::And(parts),
            ..
        }) = q.filter
        else {
            panic!("expected AND")
        };
        let paths: Vec<Vec<String>> = parts
            .iter()
            .map(|p| match &p.kind {
                ExprKind::Cmp(_, l, _) => match &l.kind {
                    ExprKind::Path(p) => names(p),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            paths,
            vec![
                vec!["tags", "a b", "c"],
                vec!["configurations", "my.config", "status"],
                vec!["tags", "arr", "[2]"],
            ]
        );
    }

    #[test]
    fn precedence() {
        let q = ok("SELECT * FROM devices WHERE a = 1 OR b = 2 AND NOT c = 3 + 4 * 5");
        let Some(Expr {
            kind: ExprKind::Or(ors),
            ..
        }) = q.filter
        else {
            panic!("expected OR")
        };
        assert_eq!(ors.len(), 2);
        let ExprKind::And(ands) = &ors[1].kind else {
            panic!("expected AND")
        };
        let ExprKind::Not(inner) = &ands[1].kind else {
            panic!("expected NOT")
        };
        let ExprKind::Cmp(CmpOp::Eq, _, rhs) = &inner.kind else {
            panic!("expected =")
        };
        let ExprKind::Arith(ArithOp::Add, _, mul) = &rhs.kind else {
            panic!("expected +")
        };
        assert!(matches!(mul.kind, ExprKind::Arith(ArithOp::Mul, _, _)));
    }

    #[test]
    fn in_nin_and_literals() {
        let q = ok(
            "SELECT * FROM devices WHERE x IN ['a', 1, -2.5, true, null] AND y NIN [] AND z NOT IN [0x10]",
        );
        let Some(Expr {
            kind: ExprKind::And(parts),
            ..
        }) = q.filter
        else {
            panic!("expected AND")
        };
        assert!(
            matches!(&parts[0].kind, ExprKind::In { list, negated: false, .. } if list == &vec![
                Literal::Str("a".into()),
                Literal::Number(Number::Int(1)),
                Literal::Number(Number::Float(-2.5)),
                Literal::Bool(true),
                Literal::Null,
            ])
        );
        assert!(
            matches!(&parts[1].kind, ExprKind::In { list, negated: true, .. } if list.is_empty())
        );
        assert!(
            matches!(&parts[2].kind, ExprKind::In { list, negated: true, .. } if list == &vec![Literal::Number(Number::Int(16))])
        );
    }

    #[test]
    fn group_by_multiple() {
        let q = ok("SELECT tags.a, tags.b, COUNT() FROM devices GROUP BY tags.a, tags.b");
        assert_eq!(q.group_by.len(), 2);
        assert_eq!(names(&q.group_by[1]), ["tags", "b"]);
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        assert_eq!(
            err("SELECT * FORM devices"),
            "Syntax error at position 10 near 'FORM': expected FROM"
        );
        assert_eq!(
            err("SELECT deviceId FROM devices WHERE"),
            "Syntax error at position 35 (end of query): unexpected end of query, expected an expression"
        );
        assert_eq!(
            err("SELEC * FROM devices"),
            "Syntax error at position 1 near 'SELEC': expected SELECT"
        );
        assert!(err("SELECT * FROM things").contains("near 'things': expected devices"));
        assert!(err("SELECT * FROM devices WHERE a = ").contains("end of query"));
        assert!(err("SELECT * FROM devices WHERE (a = 1").contains("expected ')'"));
        assert!(err("SELECT * FROM devices WHERE a IN 'x'").contains("expected '['"));
        assert!(err("SELECT * FROM devices WHERE a IN [b]").contains("expected a constant"));
        assert!(err("SELECT * FROM devices ORDER BY a").contains("near 'ORDER'"));
        assert!(err("SELECT TOP -1 * FROM devices").contains("non-negative integer"));
        assert!(err("SELECT a AS FROM devices").contains("alias"));
        assert!(
            err("SELECT * FROM devices WHERE COUNT() > 1")
                .contains("only allowed in the SELECT list")
        );
        assert!(
            err("SELECT * FROM devices WHERE STARTSWITH(a)").contains("expects 2 arguments, got 1")
        );
        assert!(err("SELECT FOO(a) FROM devices").contains("aggregate"));
        assert!(err("SELECT * FROM devices WHERE a. = 1").contains("property name after '.'"));
        assert!(err("SELECT * FROM devices WHERE a[x] = 1").contains("inside [ ]"));
    }

    #[test]
    fn unknown_and_routing_only_functions_are_invalid() {
        let e = parse("SELECT * FROM devices WHERE LOWER(a) = 'x'").expect_err("invalid");
        assert!(matches!(e, QueryError::Syntax { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Syntax error at position 29 near 'LOWER': LOWER is a message routing function, not a twin query function; twin queries support IS_DEFINED, STARTSWITH, ENDSWITH and ARRAY_CONTAINS"
        );
        let e = err("SELECT * FROM devices WHERE starts_with(deviceId, 'x')");
        assert!(e.contains("near 'starts_with': STARTS_WITH is a message routing function, not a twin query function (use STARTSWITH)"), "{e}");
        let e = err("SELECT * FROM devices WHERE FOO(a)");
        assert!(
            e.contains("near 'FOO': unknown function; twin queries support"),
            "{e}"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "SELECT * FROM devices WHERE {}a = 1{}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert!(err(&deep).contains("nested too deeply"));
        let nots = format!("SELECT * FROM devices WHERE {}a", "NOT ".repeat(2000));
        assert!(err(&nots).contains("nested too deeply"));
        let sum = format!(
            "SELECT * FROM devices WHERE a = {}",
            vec!["1"; 3000].join(" + ")
        );
        assert!(err(&sum).contains("too complex"));
        // Long flat AND/OR chains are fine: they are n-ary nodes.
        let ors = format!(
            "SELECT * FROM devices WHERE {}",
            (0..1000)
                .map(|i| format!("a = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        ok(&ors);
    }

    #[test]
    fn negative_numbers_fold() {
        let q = ok("SELECT * FROM devices WHERE a > -5 AND b = -(-9223372036854775808)");
        let Some(Expr {
            kind: ExprKind::And(parts),
            ..
        }) = q.filter
        else {
            panic!("expected AND")
        };
        let rhs = |e: &Expr| match &e.kind {
            ExprKind::Cmp(_, _, r) => r.kind.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            rhs(&parts[0]),
            ExprKind::Literal(Literal::Number(Number::Int(-5)))
        );
        // i64::MIN does not fit once negated back: it becomes a float.
        assert_eq!(
            rhs(&parts[1]),
            ExprKind::Literal(Literal::Number(Number::Float(9_223_372_036_854_775_808.0)))
        );
        // `-` on a path stays an operator.
        let q = ok("SELECT * FROM devices WHERE -a = 1");
        assert!(matches!(
            q.filter.map(|f| f.kind),
            Some(ExprKind::Cmp(_, l, _)) if matches!(l.kind, ExprKind::Neg(_))
        ));
    }
}
