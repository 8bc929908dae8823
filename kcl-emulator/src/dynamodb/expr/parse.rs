//! The tokenizer and recursive-descent parser, with the limits DynamoDB puts on expressions.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::*;
use crate::dynamodb::value::AttrValue;
use crate::wire::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    Ident(String),
    Name(String),
    Value(String),
    Number(usize),
    Sym(&'static str),
}

pub(crate) fn tokenize(kind: &str, text: &str) -> ApiResult<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let word = |start: usize| {
            let mut end = start;
            while end < chars.len()
                && (chars[end].is_alphanumeric() || chars[end] == '_' || chars[end] == '-')
            {
                end += 1;
            }
            end
        };
        match c {
            '#' | ':' => {
                let end = word(i + 1);
                if end == i + 1 {
                    return Err(syntax(kind, text, &format!("a name must follow '{c}'")));
                }
                let token: String = chars[i..end].iter().collect();
                tokens.push(if c == '#' {
                    Token::Name(token)
                } else {
                    Token::Value(token)
                });
                i = end;
            }
            c if c.is_ascii_digit() => {
                let mut end = i;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                let digits: String = chars[i..end].iter().collect();
                tokens.push(Token::Number(
                    digits
                        .parse()
                        .map_err(|_| syntax(kind, text, "list index too large"))?,
                ));
                i = end;
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = word(i);
                tokens.push(Token::Ident(chars[i..end].iter().collect()));
                i = end;
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let sym = match two.as_str() {
                    "<>" => Some("<>"),
                    "<=" => Some("<="),
                    ">=" => Some(">="),
                    _ => None,
                };
                if let Some(sym) = sym {
                    tokens.push(Token::Sym(sym));
                    i += 2;
                    continue;
                }
                let sym = match c {
                    '(' => "(",
                    ')' => ")",
                    '[' => "[",
                    ']' => "]",
                    ',' => ",",
                    '.' => ".",
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    '+' => "+",
                    '-' => "-",
                    other => {
                        return Err(syntax(
                            kind,
                            text,
                            &format!("unexpected character '{other}'"),
                        ))
                    }
                };
                tokens.push(Token::Sym(sym));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

pub(crate) fn syntax(kind: &str, text: &str, why: &str) -> ApiError {
    ApiError::validation(format!(
        "Invalid {kind}: Syntax error; {why}; expression: {text}"
    ))
}

/// DynamoDB's reserved words, upper case and sorted, one a line, as its developer guide lists
/// them ("Reserved words in DynamoDB"). Expressions must name such attributes through `#name`
/// placeholders; the list is not case-sensitive.
pub(crate) const RESERVED_WORDS: &str = include_str!("../reserved_words.txt");

pub(crate) fn is_reserved(word: &str) -> bool {
    static WORDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| RESERVED_WORDS.lines().collect());
    words
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok()
}

/// Most operators and functions DynamoDB accepts in one expression ("Expression parameters"
/// in its limits). Counted: AND, OR, NOT, comparators, BETWEEN, IN, functions, `+` and `-`.
pub(crate) const MAX_OPERATORS: usize = 300;
/// Most operands DynamoDB accepts on the right of one IN.
pub(crate) const MAX_IN_OPERANDS: usize = 100;

/// Longest expression string DynamoDB accepts (4 KB each).
pub(crate) const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of parentheses, NOTs and functions the parser follows. Each level is a
/// few stack frames (in parsing, evaluation and drop), so unbounded nesting would let one
/// request overflow a server thread's stack; no sensible expression comes near this.
pub(crate) const MAX_NESTING: usize = 64;

pub(crate) struct Parser<'a> {
    /// The request member the expression came in (`ConditionExpression`, ...), which names
    /// it in errors.
    kind: &'static str,
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    placeholders: &'a mut Placeholders,
    /// Current nesting depth, bounded by [`MAX_NESTING`].
    depth: usize,
    /// Operators and functions seen so far, bounded by [`MAX_OPERATORS`].
    operators: usize,
}

impl<'a> Parser<'a> {
    fn new(
        kind: &'static str,
        text: &'a str,
        placeholders: &'a mut Placeholders,
    ) -> ApiResult<Parser<'a>> {
        if text.trim().is_empty() {
            return Err(ApiError::validation(format!(
                "Invalid {kind}: The expression can not be empty;"
            )));
        }
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(ApiError::validation(format!(
                "Invalid {kind}: Expression size has exceeded the maximum allowed size of {MAX_EXPRESSION_BYTES} bytes; expression size: {}",
                text.len()
            )));
        }
        Ok(Parser {
            kind,
            text,
            tokens: tokenize(kind, text)?,
            at: 0,
            placeholders,
            depth: 0,
            operators: 0,
        })
    }

    /// Counts one operator or function against [`MAX_OPERATORS`].
    fn operator(&mut self) -> ApiResult<()> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(ApiError::validation(format!(
                "Invalid {}: The expression contains too many operators; operator count: {}",
                self.kind, self.operators
            )));
        }
        Ok(())
    }

    /// Runs `parse` one nesting level deeper, refusing expressions nested too deep.
    fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> ApiResult<T>) -> ApiResult<T> {
        if self.depth >= MAX_NESTING {
            return Err(syntax(
                self.kind,
                self.text,
                &format!("the expression is nested deeper than {MAX_NESTING} levels"),
            ));
        }
        self.depth += 1;
        let parsed = parse(self);
        self.depth -= 1;
        parsed
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Some(Token::Sym(s)) if *s == sym)
    }

    fn expect_sym(&mut self, sym: &str) -> ApiResult<()> {
        if self.sym(sym) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{sym}'")))
        }
    }

    fn error(&self, why: &str) -> ApiError {
        let near = match self.peek() {
            Some(Token::Ident(w) | Token::Name(w) | Token::Value(w)) => w.clone(),
            Some(Token::Number(n)) => n.to_string(),
            Some(Token::Sym(s)) => (*s).to_owned(),
            None => "<end>".to_owned(),
        };
        syntax(
            self.kind,
            self.text,
            &format!("{why} near token: \"{near}\""),
        )
    }

    fn done(&self) -> ApiResult<()> {
        if self.at == self.tokens.len() {
            Ok(())
        } else {
            Err(self.error("unexpected token"))
        }
    }

    fn name(&mut self) -> ApiResult<String> {
        match self.peek().cloned() {
            Some(Token::Ident(word)) => {
                if is_reserved(&word) {
                    return Err(ApiError::validation(format!(
                        "Invalid {}: Attribute name is a reserved keyword; reserved keyword: {word}",
                        self.kind
                    )));
                }
                self.at += 1;
                Ok(word)
            }
            Some(Token::Name(placeholder)) => {
                self.at += 1;
                let resolved = self.placeholders.names.get(&placeholder).and_then(Json::as_str).map(str::to_owned).ok_or_else(|| {
                    ApiError::validation(format!(
                        "Invalid {}: An expression attribute name used in the document path is not defined; attribute name: {placeholder}",
                        self.kind
                    ))
                })?;
                self.placeholders.used_names.insert(placeholder);
                Ok(resolved)
            }
            _ => Err(self.error("expected an attribute name")),
        }
    }

    fn path(&mut self) -> ApiResult<Path> {
        let mut path = vec![Step::Attr(self.name()?)];
        loop {
            if self.sym(".") {
                self.at += 1;
                path.push(Step::Attr(self.name()?));
            } else if self.sym("[") {
                self.at += 1;
                match self.peek().cloned() {
                    Some(Token::Number(n)) => {
                        self.at += 1;
                        path.push(Step::Index(n));
                    }
                    _ => return Err(self.error("expected a list index")),
                }
                self.expect_sym("]")?;
            } else {
                return Ok(path);
            }
        }
    }

    fn value(&mut self) -> ApiResult<AttrValue> {
        match self.peek().cloned() {
            Some(Token::Value(placeholder)) => {
                self.at += 1;
                let value = self.placeholders.values.get(&placeholder).cloned().ok_or_else(|| {
                    ApiError::validation(format!(
                        "Invalid {}: An expression attribute value used in expression is not defined; attribute value: {placeholder}",
                        self.kind
                    ))
                })?;
                self.placeholders.used_values.insert(placeholder);
                Ok(value)
            }
            _ => Err(self.error("expected an expression attribute value")),
        }
    }

    fn function_name(&self) -> Option<String> {
        match (self.peek(), self.tokens.get(self.at + 1)) {
            (Some(Token::Ident(name)), Some(Token::Sym("("))) => Some(name.clone()),
            _ => None,
        }
    }

    fn operand(&mut self) -> ApiResult<Operand> {
        if let Some(function) = self.function_name() {
            if function == "size" {
                self.operator()?;
                self.at += 2;
                let path = self.path()?;
                self.expect_sym(")")?;
                return Ok(Operand::Size(path));
            }
            return Err(ApiError::validation(format!(
                "Invalid {}: The function is not allowed to be used this way in an expression; function: {function}",
                self.kind
            )));
        }
        match self.peek() {
            Some(Token::Value(_)) => Ok(Operand::Value(self.value()?)),
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    fn condition(&mut self) -> ApiResult<Cond> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            self.operator()?;
            self.at += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> ApiResult<Cond> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            self.operator()?;
            self.at += 1;
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> ApiResult<Cond> {
        if self.keyword("NOT") {
            self.operator()?;
            self.at += 1;
            return Ok(Cond::Not(Box::new(self.nested(Self::not)?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> ApiResult<Cond> {
        if self.sym("(") {
            self.at += 1;
            let inner = self.nested(Self::condition)?;
            self.expect_sym(")")?;
            return Ok(inner);
        }
        if let Some(function) = self.function_name() {
            let function = function.as_str();
            if function != "size" {
                self.operator()?;
                self.at += 2;
                let cond = match function {
                    "attribute_exists" => Cond::Exists(self.path()?),
                    "attribute_not_exists" => Cond::NotExists(self.path()?),
                    "attribute_type" => {
                        let path = self.path()?;
                        self.expect_sym(",")?;
                        Cond::Type(path, self.operand()?)
                    }
                    "begins_with" => {
                        let a = self.operand()?;
                        self.expect_sym(",")?;
                        Cond::BeginsWith(a, self.operand()?)
                    }
                    "contains" => {
                        let a = self.operand()?;
                        self.expect_sym(",")?;
                        Cond::Contains(a, self.operand()?)
                    }
                    other => {
                        return Err(ApiError::validation(format!(
                            "Invalid {}: Invalid function name; function: {other}",
                            self.kind
                        )));
                    }
                };
                self.expect_sym(")")?;
                return Ok(cond);
            }
        }
        let left = self.operand()?;
        if self.keyword("BETWEEN") {
            self.operator()?;
            self.at += 1;
            let low = self.operand()?;
            if !self.keyword("AND") {
                return Err(self.error("expected AND in BETWEEN"));
            }
            self.at += 1;
            let high = self.operand()?;
            return Ok(Cond::Between(left, low, high));
        }
        if self.keyword("IN") {
            self.operator()?;
            self.at += 1;
            self.expect_sym("(")?;
            let mut options = vec![self.operand()?];
            while self.sym(",") {
                self.at += 1;
                options.push(self.operand()?);
            }
            self.expect_sym(")")?;
            if options.len() > MAX_IN_OPERANDS {
                return Err(ApiError::validation(format!(
                    "Invalid {}: The IN operator is provided with too many operands; number of operands: {}",
                    self.kind,
                    options.len()
                )));
            }
            return Ok(Cond::In(left, options));
        }
        let op = match self.peek() {
            Some(Token::Sym("=")) => Cmp::Eq,
            Some(Token::Sym("<>")) => Cmp::Ne,
            Some(Token::Sym("<")) => Cmp::Lt,
            Some(Token::Sym("<=")) => Cmp::Le,
            Some(Token::Sym(">")) => Cmp::Gt,
            Some(Token::Sym(">=")) => Cmp::Ge,
            _ => return Err(self.error("expected a comparison")),
        };
        self.operator()?;
        self.at += 1;
        Ok(Cond::Compare(left, op, self.operand()?))
    }

    fn set_value(&mut self) -> ApiResult<SetValue> {
        let left = self.set_term()?;
        if self.sym("+") {
            self.operator()?;
            self.at += 1;
            return Ok(SetValue::Plus(Box::new(left), Box::new(self.set_term()?)));
        }
        if self.sym("-") {
            self.operator()?;
            self.at += 1;
            return Ok(SetValue::Minus(Box::new(left), Box::new(self.set_term()?)));
        }
        Ok(left)
    }

    fn set_term(&mut self) -> ApiResult<SetValue> {
        match self.function_name().as_deref() {
            Some("if_not_exists") => {
                self.operator()?;
                self.at += 2;
                let path = self.path()?;
                self.expect_sym(",")?;
                let fallback = self.nested(Self::set_value)?;
                self.expect_sym(")")?;
                Ok(SetValue::IfNotExists(path, Box::new(fallback)))
            }
            Some("list_append") => {
                self.operator()?;
                self.at += 2;
                let a = self.nested(Self::set_value)?;
                self.expect_sym(",")?;
                let b = self.nested(Self::set_value)?;
                self.expect_sym(")")?;
                Ok(SetValue::ListAppend(Box::new(a), Box::new(b)))
            }
            Some(other) => Err(ApiError::validation(format!(
                "Invalid UpdateExpression: Invalid function name; function: {other}"
            ))),
            None => match self.peek() {
                Some(Token::Value(_)) => Ok(SetValue::Operand(Operand::Value(self.value()?))),
                _ => Ok(SetValue::Operand(Operand::Path(self.path()?))),
            },
        }
    }

    fn update(&mut self) -> ApiResult<Update> {
        let mut update = Update::default();
        let mut seen = BTreeSet::new();
        while self.peek().is_some() {
            let clause = match self.peek() {
                Some(Token::Ident(word)) => word.to_ascii_uppercase(),
                _ => return Err(self.error("expected SET, REMOVE, ADD or DELETE")),
            };
            if !seen.insert(clause.clone()) {
                return Err(ApiError::validation(format!(
                    "Invalid UpdateExpression: The \"{clause}\" section can only be used once in an update expression;"
                )));
            }
            self.at += 1;
            loop {
                match clause.as_str() {
                    "SET" => {
                        let path = self.path()?;
                        self.expect_sym("=")?;
                        update.set.push((path, self.set_value()?));
                    }
                    "REMOVE" => update.remove.push(self.path()?),
                    "ADD" => {
                        let path = self.path()?;
                        update.add.push((path, self.value()?));
                    }
                    "DELETE" => {
                        let path = self.path()?;
                        update.delete.push((path, self.value()?));
                    }
                    _ => return Err(self.error("expected SET, REMOVE, ADD or DELETE")),
                }
                if self.sym(",") {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        Ok(update)
    }
}

/// Parses a condition-like expression; `kind` is the member it came in
/// (`ConditionExpression`, `FilterExpression` or `KeyConditionExpression`).
pub(crate) fn parse_condition(
    kind: &'static str,
    text: &str,
    placeholders: &mut Placeholders,
) -> ApiResult<Cond> {
    let mut parser = Parser::new(kind, text, placeholders)?;
    let cond = parser.condition()?;
    parser.done()?;
    Ok(cond)
}

/// Parses an UpdateExpression.
pub(crate) fn parse_update(text: &str, placeholders: &mut Placeholders) -> ApiResult<Update> {
    let mut parser = Parser::new("UpdateExpression", text, placeholders)?;
    let update = parser.update()?;
    parser.done()?;
    // Two actions on overlapping paths are refused, as DynamoDB does.
    let mut paths: Vec<&Path> = update
        .set
        .iter()
        .map(|(p, _)| p)
        .chain(&update.remove)
        .collect();
    paths.extend(update.add.iter().map(|(p, _)| p));
    paths.extend(update.delete.iter().map(|(p, _)| p));
    check_no_overlap(&paths, "UpdateExpression")?;
    Ok(update)
}

/// Parses a ProjectionExpression.
pub(crate) fn parse_projection(
    text: &str,
    placeholders: &mut Placeholders,
) -> ApiResult<Vec<Path>> {
    let mut parser = Parser::new("ProjectionExpression", text, placeholders)?;
    let mut paths = vec![parser.path()?];
    while parser.sym(",") {
        parser.at += 1;
        paths.push(parser.path()?);
    }
    parser.done()?;
    check_no_overlap(&paths.iter().collect::<Vec<_>>(), "ProjectionExpression")?;
    Ok(paths)
}

/// Refuses two paths of one expression where one is the other or lies inside it.
pub(crate) fn check_no_overlap(paths: &[&Path], expression: &str) -> ApiResult<()> {
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let n = a.len().min(b.len());
            if a[..n] == b[..n] {
                return Err(ApiError::validation(format!(
                    "Invalid {expression}: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    display_path(a),
                    display_path(b)
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn display_path(path: &Path) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Attr(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}
