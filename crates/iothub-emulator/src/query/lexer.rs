//! Tokenizer for the IoT Hub query language.
//!
//! Produces a flat token list with byte offsets into the query text. Keywords
//! are not distinguished here: they are identifiers that the parser compares
//! case-insensitively.

use super::QueryError;

/// A numeric literal as written in the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    /// An integer that fits in `i64` (decimal or `0x` hexadecimal).
    Int(i64),
    /// Any other number (fraction, exponent, or an integer too large for `i64`).
    Float(f64),
}

/// The kind of a token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// A bare identifier or keyword: `devices`, `tags`, `$version`, `SELECT`.
    Ident(String),
    /// A property name written as `[[name]]` (only lexed right after a `.`).
    QuotedIdent(String),
    /// A string literal with escapes already decoded.
    Str(String),
    /// A numeric literal.
    Number(Number),
    /// `*`
    Star,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// End of the query text.
    Eof,
}

/// A token and where it starts and ends (byte offsets into the query).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// Converts a byte offset into the 1-based character position used in error messages.
pub(crate) fn char_position(src: &str, byte: usize) -> usize {
    let byte = byte.min(src.len());
    // Offsets always come from token boundaries, which are char boundaries;
    // `get` keeps this total even if that ever stopped being true.
    src.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

/// Shortens a token's source text for use in an error message.
pub(crate) fn snippet(text: &str) -> String {
    const MAX: usize = 24;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

/// Builds a syntax error pointing at a byte offset of the query.
pub(crate) fn error_at(src: &str, start: usize, end: usize, message: &str) -> QueryError {
    let position = char_position(src, start);
    let message = if start >= src.len() {
        format!("Syntax error at position {position} (end of query): {message}")
    } else {
        let end = end.clamp(start, src.len());
        let near = src
            .get(start..end)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                // Fall back to the single character at `start`.
                src.get(start..)
                    .and_then(|rest| rest.chars().next().map(|c| &rest[..c.len_utf8()]))
                    .unwrap_or("")
            });
        format!(
            "Syntax error at position {position} near '{}': {message}",
            snippet(near)
        )
    };
    QueryError::Syntax { message }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c == '$' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c == '$' || c.is_alphanumeric()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek_at(&self, offset_bytes: usize) -> Option<char> {
        self.src
            .get(self.pos + offset_bytes..)
            .and_then(|s| s.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            start,
            end: self.pos,
        });
    }

    fn prev_is_dot(&self) -> bool {
        matches!(
            self.tokens.last(),
            Some(Token {
                kind: TokenKind::Dot,
                ..
            })
        )
    }

    fn run(mut self) -> Result<Vec<Token>, QueryError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.bump();
                continue;
            }
            if is_ident_start(c) {
                while self.peek().is_some_and(is_ident_continue) {
                    self.bump();
                }
                let text = self.src[start..self.pos].to_owned();
                self.push(TokenKind::Ident(text), start);
                continue;
            }
            if c.is_ascii_digit() {
                let number = self.number()?;
                self.push(TokenKind::Number(number), start);
                continue;
            }
            if c == '\'' || c == '"' {
                let s = self.string(c)?;
                self.push(TokenKind::Str(s), start);
                continue;
            }
            if c == '[' && self.peek_at(1) == Some('[') && self.prev_is_dot() {
                let name = self.quoted_ident()?;
                self.push(TokenKind::QuotedIdent(name), start);
                continue;
            }
            self.bump();
            let kind = match c {
                '*' => TokenKind::Star,
                ',' => TokenKind::Comma,
                '.' => TokenKind::Dot,
                '(' => TokenKind::LParen,
                ')' => TokenKind::RParen,
                '[' => TokenKind::LBracket,
                ']' => TokenKind::RBracket,
                '=' => TokenKind::Eq,
                '+' => TokenKind::Plus,
                '-' => TokenKind::Minus,
                '/' => TokenKind::Slash,
                '%' => TokenKind::Percent,
                '!' if self.peek() == Some('=') => {
                    self.bump();
                    TokenKind::Ne
                }
                '<' => match self.peek() {
                    Some('=') => {
                        self.bump();
                        TokenKind::Le
                    }
                    Some('>') => {
                        self.bump();
                        TokenKind::Ne
                    }
                    _ => TokenKind::Lt,
                },
                '>' => {
                    if self.peek() == Some('=') {
                        self.bump();
                        TokenKind::Ge
                    } else {
                        TokenKind::Gt
                    }
                }
                _ => {
                    return Err(error_at(self.src, start, self.pos, "unexpected character"));
                }
            };
            self.push(kind, start);
        }
        let end = self.src.len();
        self.tokens.push(Token {
            kind: TokenKind::Eof,
            start: end,
            end,
        });
        Ok(self.tokens)
    }

    fn number(&mut self) -> Result<Number, QueryError> {
        let start = self.pos;
        if self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X')) {
            self.pos += 2;
            let digits_start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.bump();
            }
            let digits = &self.src[digits_start..self.pos];
            if digits.is_empty() {
                return Err(error_at(
                    self.src,
                    start,
                    self.pos,
                    "expected hexadecimal digits after '0x'",
                ));
            }
            self.reject_trailing_ident(start)?;
            return match i64::from_str_radix(digits, 16) {
                Ok(v) => Ok(Number::Int(v)),
                Err(_) => Err(error_at(
                    self.src,
                    start,
                    self.pos,
                    "hexadecimal number is too large",
                )),
            };
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let after = self.peek_at(1);
            let exp_digits_at = if matches!(after, Some('+' | '-')) {
                2
            } else {
                1
            };
            if self
                .peek_at(exp_digits_at)
                .is_some_and(|c| c.is_ascii_digit())
            {
                is_float = true;
                self.pos += exp_digits_at;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
        }
        self.reject_trailing_ident(start)?;
        let text = &self.src[start..self.pos];
        if !is_float && let Ok(v) = text.parse::<i64>() {
            return Ok(Number::Int(v));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Number::Float(v)),
            _ => Err(error_at(
                self.src,
                start,
                self.pos,
                "number is out of range",
            )),
        }
    }

    /// `123abc` is neither a number nor an identifier.
    fn reject_trailing_ident(&mut self, start: usize) -> Result<(), QueryError> {
        if self.peek().is_some_and(is_ident_continue) {
            while self.peek().is_some_and(is_ident_continue) {
                self.bump();
            }
            return Err(error_at(self.src, start, self.pos, "malformed number"));
        }
        Ok(())
    }

    fn string(&mut self, quote: char) -> Result<String, QueryError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(error_at(
                    self.src,
                    start,
                    self.pos,
                    "unterminated string literal",
                ));
            };
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let esc_start = self.pos - 1;
            let Some(e) = self.bump() else {
                return Err(error_at(
                    self.src,
                    start,
                    self.pos,
                    "unterminated string literal",
                ));
            };
            match e {
                '\'' | '"' | '\\' | '/' => out.push(e),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let c = self.unicode_escape(esc_start)?;
                    out.push(c);
                }
                _ => {
                    return Err(error_at(
                        self.src,
                        esc_start,
                        self.pos,
                        "invalid escape sequence (allowed: \\' \\\" \\\\ \\uXXXX)",
                    ));
                }
            }
        }
    }

    fn hex4(&mut self, esc_start: usize) -> Result<u32, QueryError> {
        let digits = self
            .src
            .get(self.pos..self.pos + 4)
            .filter(|d| d.len() == 4 && d.chars().all(|c| c.is_ascii_hexdigit()));
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(error_at(
                self.src,
                esc_start,
                self.pos,
                "expected four hexadecimal digits after \\u",
            )),
        }
    }

    fn unicode_escape(&mut self, esc_start: usize) -> Result<char, QueryError> {
        let hi = self.hex4(esc_start)?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            // A high surrogate must be followed by `\uXXXX` with a low surrogate.
            let lo = if self.src.get(self.pos..self.pos + 2) == Some("\\u") {
                self.pos += 2;
                self.hex4(esc_start)?
            } else {
                0
            };
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(error_at(
                    self.src,
                    esc_start,
                    self.pos,
                    "unpaired UTF-16 surrogate in \\u escape",
                ));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| {
            error_at(
                self.src,
                esc_start,
                self.pos,
                "unpaired UTF-16 surrogate in \\u escape",
            )
        })
    }

    fn quoted_ident(&mut self) -> Result<String, QueryError> {
        let start = self.pos;
        self.pos += 2;
        let rest = &self.src[self.pos..];
        match rest.find("]]") {
            Some(0) => Err(error_at(
                self.src,
                start,
                self.pos + 2,
                "empty property name in [[ ]]",
            )),
            Some(i) => {
                let name = rest[..i].to_owned();
                self.pos += i + 2;
                Ok(name)
            }
            None => Err(error_at(
                self.src,
                start,
                self.src.len(),
                "unterminated [[ property name",
            )),
        }
    }
}

/// Splits a query into tokens; the last token is always [`TokenKind::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, QueryError> {
    Lexer {
        src,
        pos: 0,
        tokens: Vec::new(),
    }
    .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        tokenize(src)
            .expect("tokenizes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn err(src: &str) -> String {
        tokenize(src).expect_err("should fail").to_string()
    }

    #[test]
    fn identifiers_and_punctuation() {
        assert_eq!(
            kinds("SELECT * FROM devices.modules WHERE a.$b != 1"),
            vec![
                TokenKind::Ident("SELECT".into()),
                TokenKind::Star,
                TokenKind::Ident("FROM".into()),
                TokenKind::Ident("devices".into()),
                TokenKind::Dot,
                TokenKind::Ident("modules".into()),
                TokenKind::Ident("WHERE".into()),
                TokenKind::Ident("a".into()),
                TokenKind::Dot,
                TokenKind::Ident("$b".into()),
                TokenKind::Ne,
                TokenKind::Number(Number::Int(1)),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn operators() {
        assert_eq!(
            kinds("= != <> < <= > >= + - * / %"),
            vec![
                TokenKind::Eq,
                TokenKind::Ne,
                TokenKind::Ne,
                TokenKind::Lt,
                TokenKind::Le,
                TokenKind::Gt,
                TokenKind::Ge,
                TokenKind::Plus,
                TokenKind::Minus,
                TokenKind::Star,
                TokenKind::Slash,
                TokenKind::Percent,
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("0 42 3.5 1e3 2.5E-1 0x1F 0XfF 99999999999999999999"),
            vec![
                TokenKind::Number(Number::Int(0)),
                TokenKind::Number(Number::Int(42)),
                TokenKind::Number(Number::Float(3.5)),
                TokenKind::Number(Number::Float(1000.0)),
                TokenKind::Number(Number::Float(0.25)),
                TokenKind::Number(Number::Int(31)),
                TokenKind::Number(Number::Int(255)),
                TokenKind::Number(Number::Float(1e20)),
                TokenKind::Eof,
            ]
        );
        assert!(err("0x").contains("hexadecimal digits"));
        assert!(err("0x10000000000000000").contains("too large"));
        assert!(err("12abc").contains("malformed number"));
        assert!(err("1e999").contains("out of range"));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#"'it\'s' "say \"hi\"" 'a\\b' '\u00e9\uD83D\uDE00' "x'y" '\n\t\/'"#),
            vec![
                TokenKind::Str("it's".into()),
                TokenKind::Str("say \"hi\"".into()),
                TokenKind::Str("a\\b".into()),
                TokenKind::Str("é😀".into()),
                TokenKind::Str("x'y".into()),
                TokenKind::Str("\n\t/".into()),
                TokenKind::Eof,
            ]
        );
        assert!(err("'abc").contains("unterminated string"));
        assert!(err("'abc\\").contains("unterminated string"));
        assert!(err("'\\q'").contains("invalid escape"));
        assert!(err("'\\u12'").contains("four hexadecimal digits"));
        assert!(err("'\\uD83D'").contains("surrogate"));
        assert!(err("'\\uDE00'").contains("surrogate"));
    }

    #[test]
    fn double_bracket_names_only_after_dot() {
        assert_eq!(
            kinds("configurations.[[my config]].status IN [['a']]"),
            vec![
                TokenKind::Ident("configurations".into()),
                TokenKind::Dot,
                TokenKind::QuotedIdent("my config".into()),
                TokenKind::Dot,
                TokenKind::Ident("status".into()),
                TokenKind::Ident("IN".into()),
                TokenKind::LBracket,
                TokenKind::LBracket,
                TokenKind::Str("a".into()),
                TokenKind::RBracket,
                TokenKind::RBracket,
                TokenKind::Eof,
            ]
        );
        assert!(err("a.[[b").contains("unterminated [["));
        assert!(err("a.[[]]").contains("empty property name"));
    }

    #[test]
    fn positions_are_one_based_characters() {
        let e = err("SELECT é ; x");
        assert!(e.starts_with("Syntax error at position 10 near ';'"), "{e}");
        let tokens = tokenize("ab  cd").expect("tokenizes");
        assert_eq!((tokens[1].start, tokens[1].end), (4, 6));
        assert_eq!(char_position("héllo", 3), 3);
    }

    #[test]
    fn unicode_identifiers() {
        assert_eq!(
            kinds("tags.température"),
            vec![
                TokenKind::Ident("tags".into()),
                TokenKind::Dot,
                TokenKind::Ident("température".into()),
                TokenKind::Eof,
            ]
        );
    }
}
