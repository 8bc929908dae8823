//! DynamoDB expressions: condition, filter, key condition, update and projection.
//!
//! A hand-written tokenizer and recursive-descent parser turn the text into a small AST;
//! `#name` and `:value` placeholders are resolved while parsing, and every placeholder used is
//! recorded, because DynamoDB rejects requests with unused or undefined ones. Evaluation works
//! on items in DynamoDB JSON.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use super::value::{compare, equal, type_of, AttrValue, Decimal, Item};
use crate::error::{ApiError, ApiResult};

/// One step of a document path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Attr(String),
    Index(usize),
}

/// A document path such as `a.b[2].c`.
pub(crate) type Path = Vec<Step>;

/// A value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Path(Path),
    Value(AttrValue),
    Size(Path),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition (ConditionExpression, FilterExpression, KeyConditionExpression).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Compare(Operand, Cmp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SetValue {
    Operand(Operand),
    IfNotExists(Path, Box<SetValue>),
    ListAppend(Box<SetValue>, Box<SetValue>),
    Plus(Box<SetValue>, Box<SetValue>),
    Minus(Box<SetValue>, Box<SetValue>),
}

/// A parsed UpdateExpression.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Update {
    pub(crate) set: Vec<(Path, SetValue)>,
    pub(crate) remove: Vec<Path>,
    pub(crate) add: Vec<(Path, AttrValue)>,
    pub(crate) delete: Vec<(Path, AttrValue)>,
}

/// The placeholders of a request, and which of them the expressions used.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    names: Map<String, Json>,
    values: Map<String, Json>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl Placeholders {
    pub(crate) fn new(names: Option<&Json>, values: Option<&Json>) -> ApiResult<Placeholders> {
        let names = match names {
            None => Map::new(),
            Some(Json::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ApiError::serialization(
                    "ExpressionAttributeNames must be a map",
                ))
            }
        };
        let mut values = match values {
            None => Map::new(),
            Some(Json::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ApiError::serialization(
                    "ExpressionAttributeValues must be a map",
                ))
            }
        };
        for value in values.values_mut() {
            super::value::validate(value)?;
        }
        Ok(Placeholders {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        })
    }

    /// Fails if a placeholder was provided but no expression used it.
    pub(crate) fn check_all_used(&self) -> ApiResult<()> {
        let unused: Vec<&String> = self
            .values
            .keys()
            .filter(|k| !self.used_values.contains(*k))
            .collect();
        if !unused.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                unused
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let unused: Vec<&String> = self
            .names
            .keys()
            .filter(|k| !self.used_names.contains(*k))
            .collect();
        if !unused.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                unused
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Name(String),
    Value(String),
    Number(usize),
    Sym(&'static str),
}

fn tokenize(kind: &str, text: &str) -> ApiResult<Vec<Token>> {
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

fn syntax(kind: &str, text: &str, why: &str) -> ApiError {
    ApiError::validation(format!(
        "Invalid {kind}: Syntax error; {why}; expression: {text}"
    ))
}

/// DynamoDB's reserved words, upper case and sorted, one a line, as its developer guide lists
/// them ("Reserved words in DynamoDB"). Expressions must name such attributes through `#name`
/// placeholders; the list is not case-sensitive.
const RESERVED_WORDS: &str = include_str!("reserved_words.txt");

fn is_reserved(word: &str) -> bool {
    static WORDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| RESERVED_WORDS.lines().collect());
    words
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok()
}

/// Most operators and functions DynamoDB accepts in one expression ("Expression parameters"
/// in its limits). Counted: AND, OR, NOT, comparators, BETWEEN, IN, functions, `+` and `-`.
const MAX_OPERATORS: usize = 300;
/// Most operands DynamoDB accepts on the right of one IN.
const MAX_IN_OPERANDS: usize = 100;

/// Longest expression string DynamoDB accepts (4 KB each).
const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of parentheses, NOTs and functions the parser follows. Each level is a
/// few stack frames (in parsing, evaluation and drop), so unbounded nesting would let one
/// request overflow a server thread's stack; no sensible expression comes near this.
const MAX_NESTING: usize = 64;

struct Parser<'a> {
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
fn check_no_overlap(paths: &[&Path], expression: &str) -> ApiResult<()> {
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

/// The value at `path` in `item`.
pub(crate) fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a AttrValue> {
    let mut steps = path.iter();
    let Some(Step::Attr(first)) = steps.next() else {
        return None;
    };
    let mut current = item.get(first)?;
    for step in steps {
        current = match step {
            Step::Attr(name) => current.get("M")?.get(name)?,
            Step::Index(i) => current.get("L")?.get(*i)?,
        };
    }
    Some(current)
}

fn operand_value(item: &Item, operand: &Operand) -> Option<AttrValue> {
    match operand {
        Operand::Path(path) => resolve(item, path).cloned(),
        Operand::Value(value) => Some(value.clone()),
        Operand::Size(path) => {
            let value = resolve(item, path)?;
            let size = match type_of(value)? {
                "S" => value["S"].as_str()?.len(),
                "B" => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(value["B"].as_str()?)
                        .ok()?
                        .len()
                }
                "L" | "SS" | "NS" | "BS" => value.as_object()?.values().next()?.as_array()?.len(),
                "M" => value["M"].as_object()?.len(),
                _ => return None,
            };
            Some(serde_json::json!({ "N": size.to_string() }))
        }
    }
}

/// Evaluates `cond` against `item` (an absent item is an empty one).
pub(crate) fn evaluate(cond: &Cond, item: &Item) -> bool {
    match cond {
        Cond::And(a, b) => evaluate(a, item) && evaluate(b, item),
        Cond::Or(a, b) => evaluate(a, item) || evaluate(b, item),
        Cond::Not(a) => !evaluate(a, item),
        Cond::Compare(a, op, b) => {
            let (Some(a), Some(b)) = (operand_value(item, a), operand_value(item, b)) else {
                return false;
            };
            match op {
                Cmp::Eq => equal(&a, &b),
                Cmp::Ne => !equal(&a, &b),
                _ => match compare(&a, &b) {
                    Some(order) => match op {
                        Cmp::Lt => order == Ordering::Less,
                        Cmp::Le => order != Ordering::Greater,
                        Cmp::Gt => order == Ordering::Greater,
                        _ => order != Ordering::Less,
                    },
                    None => false,
                },
            }
        }
        Cond::Between(v, low, high) => {
            let (Some(v), Some(low), Some(high)) = (
                operand_value(item, v),
                operand_value(item, low),
                operand_value(item, high),
            ) else {
                return false;
            };
            compare(&v, &low).is_some_and(|o| o != Ordering::Less)
                && compare(&v, &high).is_some_and(|o| o != Ordering::Greater)
        }
        Cond::In(v, options) => {
            let Some(v) = operand_value(item, v) else {
                return false;
            };
            options
                .iter()
                .any(|o| operand_value(item, o).is_some_and(|o| equal(&v, &o)))
        }
        Cond::Exists(path) => resolve(item, path).is_some(),
        Cond::NotExists(path) => resolve(item, path).is_none(),
        Cond::Type(path, kind) => {
            let expected = operand_value(item, kind)
                .and_then(|k| k.get("S").and_then(Json::as_str).map(str::to_owned));
            resolve(item, path)
                .and_then(type_of)
                .zip(expected)
                .is_some_and(|(t, e)| t == e)
        }
        Cond::BeginsWith(a, b) => {
            let (Some(a), Some(b)) = (operand_value(item, a), operand_value(item, b)) else {
                return false;
            };
            match (type_of(&a), type_of(&b)) {
                (Some("S"), Some("S")) => a["S"]
                    .as_str()
                    .zip(b["S"].as_str())
                    .is_some_and(|(a, b)| a.starts_with(b)),
                (Some("B"), Some("B")) => {
                    use base64::Engine as _;
                    let engine = base64::engine::general_purpose::STANDARD;
                    let decode =
                        |v: &AttrValue| v["B"].as_str().and_then(|s| engine.decode(s).ok());
                    decode(&a)
                        .zip(decode(&b))
                        .is_some_and(|(a, b)| a.starts_with(&b))
                }
                _ => false,
            }
        }
        Cond::Contains(a, b) => {
            let (Some(a), Some(b)) = (operand_value(item, a), operand_value(item, b)) else {
                return false;
            };
            match type_of(&a) {
                Some("S") => a["S"]
                    .as_str()
                    .zip(b.get("S").and_then(Json::as_str))
                    .is_some_and(|(a, b)| a.contains(b)),
                Some(set @ ("SS" | "NS" | "BS")) => {
                    let member = match set {
                        "SS" => b.get("S"),
                        "NS" => b.get("N"),
                        _ => b.get("B"),
                    };
                    let Some(member) = member else { return false };
                    a[set].as_array().is_some_and(|items| {
                        items.iter().any(|i| {
                            if set == "NS" {
                                equal(
                                    &serde_json::json!({"N": i}),
                                    &serde_json::json!({"N": member}),
                                )
                            } else {
                                i == member
                            }
                        })
                    })
                }
                Some("L") => a["L"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| equal(i, &b))),
                _ => false,
            }
        }
    }
}

fn eval_set(item: &Item, value: &SetValue) -> ApiResult<AttrValue> {
    let missing = |path: &Path| {
        ApiError::validation(format!(
            "The provided expression refers to an attribute that does not exist in the item: {}",
            display_path(path)
        ))
    };
    match value {
        SetValue::Operand(Operand::Path(path)) => {
            resolve(item, path).cloned().ok_or_else(|| missing(path))
        }
        SetValue::Operand(operand) => {
            operand_value(item, operand).ok_or_else(|| ApiError::validation("Invalid operand"))
        }
        SetValue::IfNotExists(path, fallback) => match resolve(item, path) {
            Some(existing) => Ok(existing.clone()),
            None => eval_set(item, fallback),
        },
        SetValue::ListAppend(a, b) => {
            let (a, b) = (eval_set(item, a)?, eval_set(item, b)?);
            match (a.get("L").and_then(Json::as_array), b.get("L").and_then(Json::as_array)) {
                (Some(a), Some(b)) => Ok(serde_json::json!({"L": a.iter().chain(b).cloned().collect::<Vec<_>>()})),
                _ => Err(ApiError::validation("An operand in the update expression has an incorrect data type; list_append needs two lists")),
            }
        }
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            let (a, b) = (eval_set(item, a)?, eval_set(item, b)?);
            let number = |v: &AttrValue| v.get("N").and_then(Json::as_str).and_then(Decimal::parse);
            let (Some(x), Some(y)) = (number(&a), number(&b)) else {
                return Err(ApiError::validation(
                    "An operand in the update expression has an incorrect data type",
                ));
            };
            let y = if matches!(value, SetValue::Minus(..)) {
                y.negate()
            } else {
                y
            };
            let sum = x.add(&y).ok_or_else(|| ApiError::validation("Number overflow. Attempting to store a number with magnitude larger than supported range"))?;
            Ok(serde_json::json!({"N": sum.to_string()}))
        }
    }
}

/// The container holding the last step of `path`, created along the way only for the
/// top-level attribute.
fn parent_mut<'a>(item: &'a mut Item, path: &Path) -> ApiResult<Option<&'a mut Json>> {
    let invalid = || {
        ApiError::validation(
            "The document path provided in the update expression is invalid for update",
        )
    };
    if path.len() == 1 {
        return Ok(None);
    }
    let Some(Step::Attr(first)) = path.first() else {
        return Err(invalid());
    };
    let mut current = item.get_mut(first).ok_or_else(invalid)?;
    for step in &path[1..path.len() - 1] {
        current = match step {
            Step::Attr(name) => current
                .get_mut("M")
                .and_then(|m| m.get_mut(name))
                .ok_or_else(invalid)?,
            Step::Index(i) => current
                .get_mut("L")
                .and_then(|l| l.get_mut(*i))
                .ok_or_else(invalid)?,
        };
    }
    Ok(Some(current))
}

fn put_at(item: &mut Item, path: &Path, value: AttrValue) -> ApiResult<()> {
    let invalid = || {
        ApiError::validation(
            "The document path provided in the update expression is invalid for update",
        )
    };
    match (parent_mut(item, path)?, path.last()) {
        (None, Some(Step::Attr(name))) => {
            item.insert(name.clone(), value);
        }
        (Some(parent), Some(Step::Attr(name))) => {
            parent
                .get_mut("M")
                .and_then(Json::as_object_mut)
                .ok_or_else(invalid)?
                .insert(name.clone(), value);
        }
        (Some(parent), Some(Step::Index(i))) => {
            let list = parent
                .get_mut("L")
                .and_then(Json::as_array_mut)
                .ok_or_else(invalid)?;
            if *i < list.len() {
                list[*i] = value;
            } else {
                list.push(value);
            }
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

fn remove_at(item: &mut Item, path: &Path) -> ApiResult<()> {
    match (parent_mut(item, path)?, path.last()) {
        (None, Some(Step::Attr(name))) => {
            item.remove(name);
        }
        (Some(parent), Some(Step::Attr(name))) => {
            if let Some(map) = parent.get_mut("M").and_then(Json::as_object_mut) {
                map.remove(name);
            }
        }
        (Some(parent), Some(Step::Index(i))) => {
            if let Some(list) = parent.get_mut("L").and_then(Json::as_array_mut) {
                if *i < list.len() {
                    list.remove(*i);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Refuses an update that acts on a key attribute. Callers check this before evaluating a
/// condition, since DynamoDB refuses such a request whatever the item holds.
pub(crate) fn check_key_untouched(update: &Update, key_names: &[&str]) -> ApiResult<()> {
    for path in update
        .set
        .iter()
        .map(|(p, _)| p)
        .chain(&update.remove)
        .chain(update.add.iter().map(|(p, _)| p))
        .chain(update.delete.iter().map(|(p, _)| p))
    {
        if let Some(Step::Attr(first)) = path.first() {
            if path.len() == 1 && key_names.contains(&first.as_str()) {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Cannot update attribute {first}. This attribute is part of the key"
                )));
            }
        }
    }
    Ok(())
}

/// Applies `update` to `item`. Right-hand sides see the item as it was before the update.
pub(crate) fn apply_update(item: &mut Item, update: &Update, key_names: &[&str]) -> ApiResult<()> {
    check_key_untouched(update, key_names)?;
    let before = item.clone();
    let mut sets = Vec::with_capacity(update.set.len());
    for (path, value) in &update.set {
        sets.push((path, eval_set(&before, value)?));
    }
    for (path, value) in sets {
        put_at(item, path, value)?;
    }
    // Every REMOVE index refers to the list as it was: removing from the highest index
    // down keeps the lower ones in place.
    let mut removes: Vec<&Path> = update.remove.iter().collect();
    removes.sort_by(|a, b| path_order(b, a));
    for path in removes {
        remove_at(item, path)?;
    }
    for (path, value) in &update.add {
        let current = resolve(item, path).cloned();
        let next = match (type_of(value), current) {
            (Some("N"), None) => value.clone(),
            (Some("N"), Some(existing)) if type_of(&existing) == Some("N") => {
                let sum = Decimal::parse(existing["N"].as_str().unwrap_or("0"))
                    .zip(Decimal::parse(value["N"].as_str().unwrap_or("0")))
                    .and_then(|(a, b)| a.add(&b))
                    .ok_or_else(|| ApiError::validation("Number overflow in ADD"))?;
                serde_json::json!({"N": sum.to_string()})
            }
            (Some(set @ ("SS" | "NS" | "BS")), None) => {
                serde_json::json!({ set: value[set].clone() })
            }
            (Some(set @ ("SS" | "NS" | "BS")), Some(existing))
                if type_of(&existing) == Some(set) =>
            {
                let mut members: Vec<Json> = existing[set].as_array().cloned().unwrap_or_default();
                for m in value[set].as_array().into_iter().flatten() {
                    if !members.contains(m) {
                        members.push(m.clone());
                    }
                }
                serde_json::json!({ set: members })
            }
            _ => {
                return Err(ApiError::validation(
                    "An operand in the update expression has an incorrect data type",
                ))
            }
        };
        put_at(item, path, next)?;
    }
    for (path, value) in &update.delete {
        let Some(existing) = resolve(item, path).cloned() else {
            continue;
        };
        let set = type_of(value)
            .filter(|t| matches!(*t, "SS" | "NS" | "BS") && type_of(&existing) == Some(t));
        let Some(set) = set else {
            return Err(ApiError::validation(
                "An operand in the update expression has an incorrect data type",
            ));
        };
        let remove: Vec<&Json> = value[set].as_array().into_iter().flatten().collect();
        let kept: Vec<Json> = existing[set]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| !remove.contains(m))
            .cloned()
            .collect();
        if kept.is_empty() {
            remove_at(item, path)?;
        } else {
            put_at(item, path, serde_json::json!({ set: kept }))?;
        }
    }
    Ok(())
}

/// Orders paths step by step, list indexes numerically.
fn path_order(a: &Path, b: &Path) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (Step::Attr(x), Step::Attr(y)) => x.cmp(y),
            (Step::Index(x), Step::Index(y)) => x.cmp(y),
            (Step::Attr(_), Step::Index(_)) => Ordering::Less,
            (Step::Index(_), Step::Attr(_)) => Ordering::Greater,
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Keeps only the projected paths of `item`.
pub(crate) fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        if let Some(value) = resolve(item, path) {
            // Nested projections keep the enclosing maps (lists are kept whole at their first index).
            let mut value = value.clone();
            for step in path[1..].iter().rev() {
                value = match step {
                    Step::Attr(name) => serde_json::json!({"M": { name.clone(): value }}),
                    Step::Index(_) => serde_json::json!({"L": [value]}),
                };
            }
            if let Some(Step::Attr(first)) = path.first() {
                merge(&mut out, first, value);
            }
        }
    }
    out
}

fn merge(out: &mut Item, name: &str, value: Json) {
    match (out.get_mut(name), &value) {
        (Some(Json::Object(existing)), Json::Object(incoming))
            if existing.contains_key("M") && incoming.contains_key("M") =>
        {
            if let (Some(Json::Object(a)), Some(Json::Object(b))) =
                (existing.get_mut("M"), incoming.get("M"))
            {
                for (k, v) in b {
                    let mut tmp = a.clone();
                    merge(&mut tmp, k, v.clone());
                    *a = tmp;
                }
            }
        }
        _ => {
            out.insert(name.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn placeholders(names: Json, values: Json) -> Placeholders {
        Placeholders::new(Some(&names), Some(&values)).unwrap()
    }

    fn item(v: Json) -> Item {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn lease_renewal_condition_and_update() {
        let mut p = placeholders(
            json!({}),
            json!({":c": {"N": "3"}, ":o": {"S": "w1"}, ":n": {"N": "4"}}),
        );
        let cond = parse_condition(
            "ConditionExpression",
            "leaseCounter = :c AND leaseOwner = :o",
            &mut p,
        )
        .unwrap();
        let update = parse_update("SET leaseCounter = :n", &mut p).unwrap();
        p.check_all_used().unwrap();
        let mut lease = item(
            json!({"leaseKey": {"S": "s"}, "leaseCounter": {"N": "3"}, "leaseOwner": {"S": "w1"}}),
        );
        assert!(evaluate(&cond, &lease));
        apply_update(&mut lease, &update, &["leaseKey"]).unwrap();
        assert_eq!(lease["leaseCounter"], json!({"N": "4"}));
        assert!(!evaluate(&cond, &lease));
    }

    #[test]
    fn every_update_action_kind() {
        let mut p = placeholders(
            json!({"#c": "count"}),
            json!({":one": {"N": "1"}, ":l": {"L": [{"S": "z"}]}, ":s": {"SS": ["a", "b"]}, ":d": {"SS": ["a"]}, ":zero": {"N": "0"}}),
        );
        let update = parse_update(
            "SET #c = if_not_exists(#c, :zero) + :one, tags = list_append(tags, :l), m.nested = :one REMOVE gone ADD tally :one, letters :s DELETE discard :d",
            &mut p,
        )
        .unwrap();
        p.check_all_used().unwrap();
        let mut it = item(
            json!({"k": {"S": "x"}, "tags": {"L": [{"S": "y"}]}, "m": {"M": {}}, "gone": {"BOOL": true}, "discard": {"SS": ["a", "c"]}}),
        );
        apply_update(&mut it, &update, &["k"]).unwrap();
        assert_eq!(it["count"], json!({"N": "1"}));
        assert_eq!(it["tags"], json!({"L": [{"S": "y"}, {"S": "z"}]}));
        assert_eq!(it["m"], json!({"M": {"nested": {"N": "1"}}}));
        assert!(!it.contains_key("gone"));
        assert_eq!(it["tally"], json!({"N": "1"}));
        assert_eq!(it["letters"], json!({"SS": ["a", "b"]}));
        assert_eq!(it["discard"], json!({"SS": ["c"]}));
        let err = apply_update(
            &mut it,
            &parse_update(
                "SET k = :v",
                &mut placeholders(json!({}), json!({":v": {"S": "q"}})),
            )
            .unwrap(),
            &["k"],
        )
        .unwrap_err();
        assert!(err.message.contains("part of the key"));
    }

    #[test]
    fn functions_comparisons_and_logic() {
        let it = item(
            json!({"s": {"S": "hello"}, "n": {"N": "5"}, "tagset": {"SS": ["x"]}, "l": {"L": [{"N": "1"}]}}),
        );
        let mut p = placeholders(
            json!({}),
            json!({":h": {"S": "he"}, ":lo": {"N": "1"}, ":hi": {"N": "9"}, ":x": {"S": "x"}, ":t": {"S": "SS"}, ":three": {"N": "3"}}),
        );
        let text = "begins_with(s, :h) AND n BETWEEN :lo AND :hi AND contains(tagset, :x) AND attribute_type(tagset, :t) AND size(s) > :three AND NOT attribute_exists(absent) AND (n IN (:lo, :hi) OR n <> :lo)";
        let cond = parse_condition("ConditionExpression", text, &mut p).unwrap();
        assert!(evaluate(&cond, &it));
    }

    #[test]
    fn bad_expressions_are_validation_errors() {
        for bad in [
            "a = ",
            "a == :v",
            "attribute_exists(",
            "a = :undefined",
            "#undefined = :v",
            "AND = :v",
            "a = :v extra",
            "",
            "foo(a)",
            "a = :v AND",
        ] {
            let mut p = placeholders(json!({}), json!({":v": {"S": "x"}}));
            let err = parse_condition("ConditionExpression", bad, &mut p).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Validation, "{bad}: {err}");
        }
        let mut p = placeholders(
            json!({"#n": "x"}),
            json!({":v": {"S": "x"}, ":unused": {"S": "y"}}),
        );
        parse_condition("ConditionExpression", "#n = :v", &mut p).unwrap();
        assert!(p.check_all_used().unwrap_err().message.contains(":unused"));
        for bad in [
            "SET a = :v SET b = :v",
            "SET a = :v, a = :v",
            "REMOVE",
            "SET a :v",
        ] {
            let mut p = placeholders(json!({}), json!({":v": {"S": "x"}}));
            assert!(parse_update(bad, &mut p).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_words_are_refused_bare_in_every_expression_kind() {
        let refused = |result: ApiResult<()>, kind: &str, word: &str| {
            let err = result.unwrap_err();
            assert_eq!(
                err.message,
                format!(
                    "Invalid {kind}: Attribute name is a reserved keyword; reserved keyword: {word}"
                )
            );
        };
        let values = || json!({":v": {"S": "x"}});
        let mut p = placeholders(json!({}), values());
        refused(
            parse_condition("ConditionExpression", "owner = :v", &mut p).map(drop),
            "ConditionExpression",
            "owner",
        );
        refused(
            parse_condition("FilterExpression", "a.Status = :v", &mut p).map(drop),
            "FilterExpression",
            "Status",
        );
        refused(
            parse_condition("KeyConditionExpression", "begins_with(KEY, :v)", &mut p).map(drop),
            "KeyConditionExpression",
            "KEY",
        );
        refused(
            parse_update("SET a = :v REMOVE ttl", &mut p).map(drop),
            "UpdateExpression",
            "ttl",
        );
        refused(
            parse_projection("a, b[0].comment", &mut p).map(drop),
            "ProjectionExpression",
            "comment",
        );
        // Through a placeholder the same name is fine.
        let mut p = placeholders(json!({"#o": "owner"}), values());
        parse_condition("ConditionExpression", "#o = :v", &mut p).unwrap();
        // The list holds whole words only, in upper case and sorted for the lookup.
        let words: Vec<&str> = RESERVED_WORDS.lines().collect();
        assert_eq!(words.len(), 573);
        assert!(words.windows(2).all(|w| w[0] < w[1]));
        assert!(words
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
        assert!(!is_reserved("leaseOwner"));
    }

    #[test]
    fn operator_and_in_operand_limits() {
        let values = json!({":v": {"N": "1"}});
        // 150 comparisons joined by 149 ORs: 299 operators.
        let many = vec!["a < :v"; 150].join(" OR ");
        let mut p = placeholders(json!({}), values.clone());
        parse_condition("ConditionExpression", &format!("NOT ({many})"), &mut p).unwrap();
        let err = parse_condition("ConditionExpression", &format!("{many} OR b < :v"), &mut p)
            .unwrap_err();
        assert_eq!(
            err.message,
            "Invalid ConditionExpression: The expression contains too many operators; operator count: 301"
        );
        // Each action's `+` counts; 300 parse (and then fail only on the overlapping paths).
        let sums = |n: usize| format!("SET {}", vec!["a=a+:v"; n].join(","));
        let err = parse_update(&sums(300), &mut p).unwrap_err();
        assert!(err.message.contains("Two document paths overlap"), "{err}");
        let err = parse_update(&sums(301), &mut p).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid UpdateExpression: The expression contains too many operators; operator count: 301"
        );

        let hundred = vec![":v"; 100].join(", ");
        parse_condition("FilterExpression", &format!("a IN ({hundred})"), &mut p).unwrap();
        let err = parse_condition("FilterExpression", &format!("a IN ({hundred}, :v)"), &mut p)
            .unwrap_err();
        assert_eq!(
            err.message,
            "Invalid FilterExpression: The IN operator is provided with too many operands; number of operands: 101"
        );
    }

    fn path_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("#n".to_owned()),
            Just("a.b".to_owned()),
            Just("l[0]".to_owned()),
            Just("m.#n[1]".to_owned())
        ]
    }

    fn operand_text() -> impl Strategy<Value = String> {
        prop_oneof![
            path_text(),
            Just(":v".to_owned()),
            Just(":w".to_owned()),
            path_text().prop_map(|p| format!("size({p})"))
        ]
    }

    fn condition_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (
                operand_text(),
                prop_oneof![
                    Just("="),
                    Just("<>"),
                    Just("<"),
                    Just("<="),
                    Just(">"),
                    Just(">=")
                ],
                operand_text()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            path_text().prop_map(|p| format!("attribute_exists({p})")),
            path_text().prop_map(|p| format!("attribute_not_exists({p})")),
            (operand_text(), operand_text()).prop_map(|(a, b)| format!("begins_with({a}, {b})")),
            (operand_text(), operand_text()).prop_map(|(a, b)| format!("contains({a}, {b})")),
            (operand_text(), operand_text(), operand_text())
                .prop_map(|(a, b, c)| format!("{a} BETWEEN {b} AND {c}")),
            (operand_text(), operand_text()).prop_map(|(a, b)| format!("{a} IN ({b}, :v)")),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
                inner.prop_map(|a| format!("NOT ({a})")),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_valid_conditions_parse_and_evaluate_without_panicking(text in condition_text()) {
            let mut p = placeholders(json!({"#n": "n"}), json!({":v": {"N": "1"}, ":w": {"S": "x"}}));
            let cond = parse_condition("ConditionExpression", &text, &mut p).unwrap();
            let it = item(json!({"a": {"M": {"b": {"S": "x"}}}, "n": {"N": "2"}, "l": {"L": [{"S": "q"}]}, "m": {"M": {"n": {"L": [{"N": "1"}, {"N": "2"}]}}}}));
            let _ = evaluate(&cond, &it);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
            let mut p = placeholders(json!({"#n": "n"}), json!({":v": {"N": "1"}}));
            if let Err(err) = parse_condition("ConditionExpression", &text, &mut p) {
                prop_assert_eq!(err.kind, crate::ErrorKind::Validation);
            }
            let mut p = placeholders(json!({"#n": "n"}), json!({":v": {"N": "1"}}));
            let _ = parse_update(&text, &mut p);
        }
    }
}
