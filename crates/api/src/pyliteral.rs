//! A reader for Python literals (`{'key': 'value'}`, `['a', 1]`, `True`,
//! `None`), the form python-magnumclient sends map-valued attributes in
//! when it patches them and upstream reads with `ast.literal_eval`; and
//! the other way, JSON values shown as Python's `str()` shows them, as
//! upstream's error texts do.

use serde_json::{Map, Number, Value};

/// Why a text is not a Python literal; the texts are `ast.literal_eval`'s
/// opening words with where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("malformed node or string: nested too deeply")]
    TooDeep,
    #[error("malformed node or string: unexpected end")]
    UnexpectedEnd,
    #[error("malformed node or string: unexpected text at offset {0}")]
    Trailing(usize),
    #[error("malformed node or string: expected '{expected}' at offset {at}")]
    Expected { expected: char, at: usize },
    #[error("malformed node or string: unhashable dict key")]
    UnhashableKey,
    #[error("malformed node or string: dangling escape")]
    DanglingEscape,
    #[error("malformed node or string: unterminated string")]
    Unterminated,
    /// A number or a name that is not one of Python's literals.
    #[error("malformed node or string: {0}")]
    NotALiteral(String),
    #[error(transparent)]
    NotUtf8(#[from] std::string::FromUtf8Error),
}

/// Parse a Python literal of dicts, lists, tuples, strings, numbers,
/// booleans and `None` into JSON.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(ParseError::Trailing(p.i));
    }
    Ok(v)
}

/// `value` as Python's `str()` shows the object `json.loads` makes of it:
/// `None`, `True`, `5.5`, a bare string, `{'a': [1, 'b']}`.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr()` of the object `json.loads` makes of `value`.
fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float_repr(f),
            _ => n.to_string(),
        },
        Value::String(s) => str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr()` of a float: the shortest round-trip digits, in
/// exponent form from 1e16 up and below 1e-4.
fn float_repr(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust: `1e20`, `1.5e-7`; Python: `1e+20`, `1.5e-07`.
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = f.to_string();
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a
/// single quote and no double one.
fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(ParseError::TooDeep);
        }
        self.ws();
        let v = match self.peek() {
            Some(b'{') => self.dict(),
            Some(b'[') => self.seq(b']'),
            Some(b'(') => self.seq(b')'),
            Some(b'\'') | Some(b'"') => self.string().map(Value::String),
            Some(c) if c == b'-' || c == b'+' || c.is_ascii_digit() || c == b'.' => self.number(),
            Some(_) => self.word(),
            None => Err(ParseError::UnexpectedEnd),
        };
        self.depth -= 1;
        v
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(ParseError::Expected {
                expected: c as char,
                at: self.i,
            })
        }
    }

    fn dict(&mut self) -> Result<Value, ParseError> {
        self.i += 1;
        let mut map = Map::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
                _ => return Err(ParseError::UnhashableKey),
            };
            self.expect(b':')?;
            let v = self.value()?;
            map.insert(key, v);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => {
                    return Err(ParseError::Expected {
                        expected: ',',
                        at: self.i,
                    })
                }
            }
        }
    }

    fn seq(&mut self, close: u8) -> Result<Value, ParseError> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(ParseError::Expected {
                        expected: ',',
                        at: self.i,
                    })
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == quote {
                return Ok(String::from_utf8(out)?);
            }
            if c == b'\\' {
                let e = self.peek().ok_or(ParseError::DanglingEscape)?;
                self.i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'0' => out.push(0),
                    other => out.push(other),
                }
            } else {
                out.push(c);
            }
        }
        Err(ParseError::Unterminated)
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'+' || c == b'_' {
                self.i += 1;
            } else {
                break;
            }
        }
        // Only ASCII was taken, so the text is the bytes as they are.
        let text = String::from_utf8_lossy(&self.s[start..self.i]).replace('_', "");
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or(ParseError::NotALiteral(text))
    }

    fn word(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.i += 1;
            } else {
                break;
            }
        }
        match &self.s[start..self.i] {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::Null),
            other => Err(ParseError::NotALiteral(
                String::from_utf8_lossy(if other.is_empty() {
                    &self.s[start..]
                } else {
                    other
                })
                .into_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn python_literals() {
        assert_eq!(
            parse("{'a': 'b', \"c\": 1, 'd': True, 'e': None, 'f': [1, 2.5], 'g': (1,)}").unwrap(),
            json!({"a": "b", "c": 1, "d": true, "e": null, "f": [1, 2.5], "g": [1]})
        );
        assert_eq!(parse(" {} ").unwrap(), json!({}));
        assert_eq!(parse("'it\\'s'").unwrap(), json!("it's"));
        assert!(parse("{'a': }").is_err());
        assert!(parse("{'a': 'b'").is_err());
        assert!(parse("os.system('x')").is_err());
        assert!(parse("key=value").is_err());
        assert!(parse(&"[".repeat(1000)).is_err());
        let shown = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            shown("{'a': 'b'"),
            "malformed node or string: expected ',' at offset 9"
        );
        assert_eq!(
            shown("[1] x"),
            "malformed node or string: unexpected text at offset 4"
        );
        assert_eq!(shown("key=value"), "malformed node or string: key");
        assert_eq!(shown("1.2.3"), "malformed node or string: 1.2.3");
        assert_eq!(
            shown("'open"),
            "malformed node or string: unterminated string"
        );
    }

    #[test]
    fn shows_values_as_python_does() {
        use super::show;
        use serde_json::json;
        assert_eq!(show(&json!("plain")), "plain");
        assert_eq!(show(&json!(5)), "5");
        assert_eq!(show(&json!(5.5)), "5.5");
        assert_eq!(show(&json!(3.0)), "3.0");
        assert_eq!(show(&json!(1e20)), "1e+20");
        assert_eq!(show(&json!(1.5e-7)), "1.5e-07");
        assert_eq!(show(&json!(true)), "True");
        assert_eq!(show(&json!(null)), "None");
        assert_eq!(show(&json!(["a", 1, false])), "['a', 1, False]");
        assert_eq!(show(&json!({"dns-zone": 5})), "{'dns-zone': 5}");
        assert_eq!(show(&json!(["it's"])), "[\"it's\"]");
        assert_eq!(show(&json!(["a\nb\\"])), "['a\\nb\\\\']");
    }
}
