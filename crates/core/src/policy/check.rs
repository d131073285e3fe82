//! oslo.policy's check grammar: `@`, `!`, `rule:`, `role:` and generic
//! `kind:match` checks joined by `and`, `or`, `not` and parentheses
//! (`not` binds tightest, then `and`), and the legacy list-of-lists form.
//! Text that does not parse is a check that never holds, as in oslo.

use serde_json::Value;

/// Why an operator's rule is not one (the check strings themselves always
/// parse: what does not is a check that never holds).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("a list rule must be a list of lists of checks")]
    NotListOfLists,
    #[error("a list rule must hold check strings")]
    NotCheckString,
    #[error("a rule must be a string, not {0}")]
    NotAString(Value),
}

/// A parsed check.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Check {
    Always,
    Never,
    Rule(String),
    Role(String),
    /// `kind:match`: the credential at `kind` (dotted path) equals `match`
    /// after `%(attr)s` substitution from the target.
    Generic {
        kind: String,
        pattern: String,
    },
    And(Vec<Check>),
    Or(Vec<Check>),
    Not(Box<Check>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(Check),
}

fn parse_single(text: &str) -> Check {
    match text {
        "@" => return Check::Always,
        "!" => return Check::Never,
        _ => {}
    }
    let Some((kind, pattern)) = text.split_once(':') else {
        tracing::warn!(
            "policy check {text:?} is not of the form kind:match; treated as never true"
        );
        return Check::Never;
    };
    match kind {
        "rule" => Check::Rule(pattern.to_string()),
        "role" => Check::Role(pattern.to_string()),
        _ => Check::Generic {
            kind: kind.to_string(),
            pattern: pattern.to_string(),
        },
    }
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let mut word = word;
        let mut closes = 0;
        while let Some(rest) = word.strip_prefix('(') {
            tokens.push(Token::Open);
            word = rest;
        }
        while let Some(rest) = word.strip_suffix(')') {
            closes += 1;
            word = rest;
        }
        if !word.is_empty() {
            tokens.push(match word.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Check(parse_single(word)),
            });
        }
        tokens.extend(std::iter::repeat_n(Token::Close, closes));
    }
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Option<Check> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Some(if items.len() == 1 {
            items.remove(0)
        } else {
            Check::Or(items)
        })
    }

    fn and(&mut self) -> Option<Check> {
        let mut items = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            items.push(self.not()?);
        }
        Some(if items.len() == 1 {
            items.remove(0)
        } else {
            Check::And(items)
        })
    }

    fn not(&mut self) -> Option<Check> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Some(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Option<Check> {
        let token = self.tokens.get(self.pos)?.clone();
        self.pos += 1;
        match token {
            Token::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return None;
                }
                self.pos += 1;
                Some(inner)
            }
            Token::Check(c) => Some(c),
            _ => None,
        }
    }
}

/// Parse an oslo.policy check string; unparsable text never holds.
pub(super) fn parse(text: &str) -> Check {
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Check::Always;
    }
    let mut p = Parser { tokens, pos: 0 };
    match p.or() {
        Some(check) if p.pos == p.tokens.len() => check,
        _ => {
            tracing::warn!("policy check {text:?} cannot be parsed; treated as never true");
            Check::Never
        }
    }
}

/// A rule as an operator may write it: a check string, or oslo's legacy
/// list-of-lists (`[["a", "b"], ["c"]]` = `(a and b) or c`).
pub(super) fn parse_value(value: &Value) -> Result<Check, RuleError> {
    match value {
        Value::String(s) => Ok(parse(s)),
        Value::Array(alternatives) => {
            if alternatives.is_empty() {
                return Ok(Check::Always);
            }
            let mut ors = Vec::new();
            for alt in alternatives {
                let Value::Array(all) = alt else {
                    return Err(RuleError::NotListOfLists);
                };
                let mut ands = Vec::new();
                for c in all {
                    let Value::String(s) = c else {
                        return Err(RuleError::NotCheckString);
                    };
                    ands.push(parse_single(s));
                }
                ors.push(Check::And(ands));
            }
            Ok(Check::Or(ors))
        }
        other => Err(RuleError::NotAString(other.clone())),
    }
}
