//! A small, strict JSON reader (RFC 8259) for a bundle's config.json and the
//! process.json of `exec`.
//!
//! Strict, because a runtime should refuse what it does not understand rather
//! than guess: no comments, no trailing commas, no byte-order mark, no lone
//! surrogates, and no duplicate object keys (of two "uid" members, which one
//! would a reader of the file expect to win?). Numbers keep their literal text,
//! so a 64-bit id or limit stays exact; the config.json mapper decides which
//! range each field accepts. Nesting is capped at 64 levels, which bounds the
//! recursion of the reader (and of dropping the tree), and the input at 4 MiB:
//! real config.json files are a few KiB.

use std::collections::HashSet;
use std::fmt;

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 64;
/// The largest input accepted, in bytes.
pub const MAX_INPUT: usize = 4 << 20;

/// A JSON value. Object members keep the order of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// A number as its literal text (already validated as JSON number grammar), so
/// integers of any size are exact.
#[derive(Debug, Clone, PartialEq)]
pub struct Number(String);

impl Number {
    /// The value, if the literal is an integer (no fraction, no exponent) that
    /// fits; `-0` is 0.
    pub fn as_u64(&self) -> Option<u64> {
        match self.integer_digits()? {
            (false, digits) => digits.parse().ok(),
            (true, "0") => Some(0),
            (true, _) => None,
        }
    }

    /// The value, if the literal is an integer (no fraction, no exponent) that
    /// fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.integer_digits()?;
        self.0.parse().ok()
    }

    /// The literal as written in the input.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The sign and the digits, if the literal is an integer.
    fn integer_digits(&self) -> Option<(bool, &str)> {
        let (negative, digits) = match self.0.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, self.0.as_str()),
        };
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then_some((negative, digits))
    }
}

/// Why the input is not one acceptable JSON value, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The byte offset in the input where the problem was found.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Value {
    /// The JSON name of this value's kind, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The member named `key`, if this is an object that has one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let members = self.as_object()?;
        members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// See [`Number::as_u64`]; `None` for anything but a number.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// See [`Number::as_i64`]; `None` for anything but a number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
}

/// Reads `input` as exactly one JSON value, with optional whitespace around it.
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    if input.len() > MAX_INPUT {
        return Err(ParseError {
            offset: MAX_INPUT,
            message: format!("input is {} bytes, larger than 4 MiB", input.len()),
        });
    }
    // Validating all of it first lets the reader work on bytes and cut strings
    // at ASCII delimiters, which are always character boundaries.
    let text = std::str::from_utf8(input).map_err(|e| ParseError {
        offset: e.valid_up_to(),
        message: "invalid UTF-8".to_string(),
    })?;
    let mut reader = Reader { text, pos: 0 };
    reader.skip_whitespace();
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.pos < input.len() {
        return Err(reader.unexpected("end of input after the JSON value"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            offset,
            message: message.into(),
        }
    }

    /// "expected X, found Y" at the current position.
    fn unexpected(&self, expected: &str) -> ParseError {
        let found = match self.text.get(self.pos..).and_then(|s| s.chars().next()) {
            Some(c) => format!("{c:?}"),
            None => "end of input".to_string(),
        };
        self.error_at(self.pos, format!("expected {expected}, found {found}"))
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A value at the current position (no whitespace before it); `depth` is
    /// the number of arrays and objects it is inside.
    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => Ok(Value::Number(self.number()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            _ => Err(self.unexpected("a JSON value")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, ParseError> {
        let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
        if !rest.starts_with(word.as_bytes()) {
            return Err(self.error_at(self.pos, format!("invalid literal, expected '{word}'")));
        }
        self.pos += word.len();
        Ok(value)
    }

    fn enter(&self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_whitespace();
            let comma = self.pos;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected("',' or ']' after an array element")),
            }
            self.skip_whitespace();
            if self.peek() == Some(b']') {
                return Err(self.error_at(comma, "trailing comma before ']'"));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.enter(depth)?;
        self.pos += 1;
        let mut members = Vec::new();
        let mut keys = HashSet::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        // Where the comma before this member was, for the trailing-comma error.
        let mut comma = None;
        loop {
            match (self.peek(), comma) {
                (Some(b'"'), _) => {}
                (Some(b'}'), Some(comma)) => {
                    return Err(self.error_at(comma, "trailing comma before '}'"));
                }
                _ => return Err(self.unexpected("a string key")),
            }
            let key_offset = self.pos;
            let key = self.string()?;
            if !keys.insert(key.clone()) {
                return Err(self.error_at(key_offset, format!("duplicate key {key:?}")));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.unexpected("':' after an object key"));
            }
            self.pos += 1;
            self.skip_whitespace();
            members.push((key, self.value(depth)?));
            self.skip_whitespace();
            comma = Some(self.pos);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected("',' or '}' after an object member")),
            }
            self.skip_whitespace();
        }
    }

    /// A string at the current position (on its opening quote). The slices of
    /// `text` start and end next to ASCII bytes ('"', '\\'), so on character
    /// boundaries: they cannot panic.
    fn string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some(b'"') => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.text[run..self.pos]);
                    out.push(self.escape(open)?);
                    run = self.pos;
                }
                Some(b @ 0..=0x1f) => {
                    let c = char::from(b);
                    let message = format!("unescaped control character {c:?} in a string");
                    return Err(self.error_at(self.pos, message));
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// The character of the escape sequence at the current position (on its
    /// backslash), in a string that opened at `open`.
    fn escape(&mut self, open: usize) -> Result<char, ParseError> {
        let start = self.pos;
        self.pos += 2;
        let c = match self.text.as_bytes().get(start + 1) {
            None => return Err(self.error_at(open, "unterminated string")),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let unit = self.hex4(start)?;
                let mut low = None;
                if (0xd800..=0xdbff).contains(&unit)
                    && self.text.as_bytes().get(self.pos..self.pos + 2) == Some(b"\\u")
                {
                    self.pos += 2;
                    low = Some(self.hex4(self.pos - 2)?);
                }
                let code = match (unit, low) {
                    (0xd800..=0xdbff, Some(low @ 0xdc00..=0xdfff)) => {
                        0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                    }
                    _ => unit,
                };
                // Only a surrogate that is not part of a pair is not a char.
                let lone = || self.error_at(start, format!("lone surrogate \\u{unit:04x}"));
                char::from_u32(code).ok_or_else(lone)?
            }
            Some(_) => return Err(self.error_at(start, "invalid escape sequence")),
        };
        Ok(c)
    }

    /// The four hex digits at the current position, of the `\u` escape at `start`.
    fn hex4(&mut self, start: usize) -> Result<u32, ParseError> {
        let mut unit = 0;
        for _ in 0..4 {
            let digit = self.peek().and_then(|b| char::from(b).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error_at(start, "expected 4 hex digits after \\u"));
            };
            unit = unit * 16 + digit;
            self.pos += 1;
        }
        Ok(unit)
    }

    /// A number at the current position: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<Number, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error_at(start, "leading zeros are not allowed in a number"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("a digit after '-'")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.required_digits("a digit after the decimal point")?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.required_digits("a digit in the exponent")?;
        }
        Ok(Number(self.text[start..self.pos].to_string()))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn required_digits(&mut self, expected: &str) -> Result<(), ParseError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.unexpected(expected));
        }
        self.digits();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Value {
        match parse(input.as_bytes()) {
            Ok(value) => value,
            Err(err) => panic!("{input:?}: {err}"),
        }
    }

    fn err(input: &[u8]) -> ParseError {
        match parse(input) {
            Ok(value) => panic!("{:?} accepted as {value:?}", String::from_utf8_lossy(input)),
            Err(err) => err,
        }
    }

    fn num(text: &str) -> Value {
        Value::Number(Number(text.to_string()))
    }

    fn string(s: &str) -> Value {
        Value::String(s.to_string())
    }

    #[test]
    fn scalars_of_each_kind() {
        assert_eq!(ok("null"), Value::Null);
        assert_eq!(ok("true"), Value::Bool(true));
        assert_eq!(ok(" \t\r\nfalse\n"), Value::Bool(false));
        assert_eq!(ok("\"hi\""), string("hi"));
        assert_eq!(ok("\"\""), string(""));
        assert_eq!(ok("0"), num("0"));
        assert_eq!(ok("-0"), num("-0"));
        for text in [
            "12", "-7", "1.5", "-0.25", "1e9", "1E+9", "2e-3", "0.0e0", "1e400",
        ] {
            assert_eq!(ok(text), num(text));
        }
    }

    #[test]
    fn arrays_and_objects_keep_their_order() {
        assert_eq!(ok("[]"), Value::Array(vec![]));
        assert_eq!(ok(" { } "), Value::Object(vec![]));
        assert_eq!(
            ok("[1, \"a\", [true, null], {}]"),
            Value::Array(vec![
                num("1"),
                string("a"),
                Value::Array(vec![Value::Bool(true), Value::Null]),
                Value::Object(vec![]),
            ])
        );
        let config = ok(r#"{
            "ociVersion": "1.0.2",
            "process": {"args": ["sh", "-c", "true"], "terminal": false, "user": {"uid": 0}},
            "root": {"path": "rootfs", "readonly": true}
        }"#);
        let keys: Vec<&str> = config
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["ociVersion", "process", "root"]);
        let process = config.get("process");
        let args = process
            .and_then(|p| p.get("args"))
            .and_then(Value::as_array);
        let args: Vec<_> = args
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(args, ["sh", "-c", "true"]);
        let user = process.and_then(|p| p.get("user"));
        assert_eq!(
            user.and_then(|u| u.get("uid")).and_then(Value::as_u64),
            Some(0)
        );
        assert_eq!(
            process
                .and_then(|p| p.get("terminal"))
                .and_then(Value::as_bool),
            Some(false)
        );
        assert_eq!(config.get("missing"), None);
        assert_eq!(num("1").get("x"), None);
    }

    #[test]
    fn accessors_answer_only_for_their_kind() {
        let kinds = [
            (ok("null"), "null"),
            (ok("true"), "boolean"),
            (ok("1"), "number"),
            (ok("\"1\""), "string"),
            (ok("[1]"), "array"),
            (ok("{\"a\":1}"), "object"),
        ];
        for (value, name) in &kinds {
            assert_eq!(value.type_name(), *name);
            assert_eq!(value.as_str().is_some(), *name == "string");
            assert_eq!(value.as_bool().is_some(), *name == "boolean");
            assert_eq!(value.as_array().is_some(), *name == "array");
            assert_eq!(value.as_object().is_some(), *name == "object");
            assert_eq!(value.as_u64().is_some(), *name == "number");
            assert_eq!(value.as_i64().is_some(), *name == "number");
        }
    }

    #[test]
    fn integers_are_exact_at_any_size() {
        let max = ok("18446744073709551615");
        assert_eq!(max.as_u64(), Some(u64::MAX));
        assert_eq!(max.as_i64(), None);
        let over = ok("18446744073709551616");
        assert_eq!((over.as_u64(), over.as_i64()), (None, None));
        let big = ok("123456789012345678901234567890");
        assert_eq!(big, num("123456789012345678901234567890"));
        let Value::Number(n) = &big else {
            panic!("{big:?}")
        };
        assert_eq!(n.text(), "123456789012345678901234567890");
        assert_eq!(ok("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(ok("-9223372036854775809").as_i64(), None);
        assert_eq!(ok("9223372036854775807").as_i64(), Some(i64::MAX));
        assert_eq!(ok("-1").as_u64(), None);
        assert_eq!(ok("-1").as_i64(), Some(-1));
        assert_eq!((ok("-0").as_u64(), ok("-0").as_i64()), (Some(0), Some(0)));
        for text in ["1.0", "1e2", "1E2", "0.5", "-2.0"] {
            assert_eq!(
                (ok(text).as_u64(), ok(text).as_i64()),
                (None, None),
                "{text}"
            );
        }
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            ok(r#""\" \\ \/ \b \f \n \r \t""#),
            string("\" \\ / \u{8} \u{c} \n \r \t")
        );
        assert_eq!(ok(r#""\u0041\u00e9\u4E2D\u0000""#), string("Aé中\0"));
        assert_eq!(ok(r#""a\nb""#), string("a\nb"));
        assert_eq!(ok("\"héllo → 中文 😀\""), string("héllo → 中文 😀"));
        assert_eq!(ok("\"\u{7f}\""), string("\u{7f}"));
    }

    #[test]
    fn surrogate_pairs_decode() {
        assert_eq!(ok(r#""\ud83d\ude00""#), string("😀"));
        assert_eq!(ok(r#""\uD834\uDD1E!""#), string("𝄞!"));
        assert_eq!(ok(r#""\ud800\udc00""#), string("\u{10000}"));
        assert_eq!(ok(r#""\udbff\udfff""#), string("\u{10ffff}"));
    }

    #[test]
    fn depth_64_is_accepted_and_65_is_not() {
        let nested = |n: usize, open: &str, inner: &str, close: &str| {
            format!("{}{inner}{}", open.repeat(n), close.repeat(n))
        };
        ok(&nested(64, "[", "1", "]"));
        ok(&nested(64, "{\"a\":", "1", "}"));
        ok(&nested(63, "[", "{}", "]"));
        let e = err(nested(65, "[", "", "]").as_bytes());
        assert_eq!(
            (e.offset, e.message.as_str()),
            (64, "nested deeper than 64")
        );
        let e = err(nested(65, "{\"a\":", "1", "}").as_bytes());
        assert_eq!(e.message, "nested deeper than 64");
        let e = err(nested(64, "[", "{}", "]").as_bytes());
        assert_eq!(e.message, "nested deeper than 64");
        // Far deeper is refused as quickly, without recursing further.
        assert_eq!(err("[".repeat(100_000).as_bytes()).offset, 64);
    }

    #[test]
    fn input_larger_than_4_mib_is_refused() {
        let mut big = vec![b' '; MAX_INPUT - 1];
        big.push(b'0');
        assert_eq!(parse(&big), Ok(num("0")));
        big.push(b' ');
        let e = err(&big);
        assert_eq!(e.offset, MAX_INPUT);
        assert!(e.message.contains("larger than 4 MiB"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_by_name() {
        let e = err(br#"{"uid": 0, "gid": 0, "uid": 1}"#);
        assert_eq!(e.to_string(), "at byte 21: duplicate key \"uid\"");
        // Equal after unescaping is equal.
        let e = err(br#"{"a": 1, "\u0061": 2}"#);
        assert_eq!(e.message, "duplicate key \"a\"");
        // The same key in different objects is fine.
        ok(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#);
        let e = err(br#"[{"a": {"x": 1, "x": 2}}]"#);
        assert_eq!(e.message, "duplicate key \"x\"");
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"", 0, "expected a JSON value, found end of input"),
            (b"   ", 3, "expected a JSON value, found end of input"),
            (
                b"1 2",
                2,
                "expected end of input after the JSON value, found '2'",
            ),
            (
                b"{} x",
                3,
                "expected end of input after the JSON value, found 'x'",
            ),
            (b"[1,]", 2, "trailing comma before ']'"),
            (b"[1 , ]", 3, "trailing comma before ']'"),
            (b"{\"a\":1 ,\n}", 7, "trailing comma before '}'"),
            (
                b"[1 2]",
                3,
                "expected ',' or ']' after an array element, found '2'",
            ),
            (
                b"{\"a\":1 \"b\":2}",
                7,
                "expected ',' or '}' after an object member, found '\"'",
            ),
            (
                b"{\"a\" 1}",
                5,
                "expected ':' after an object key, found '1'",
            ),
            (b"{1:2}", 1, "expected a string key, found '1'"),
            (b"{,}", 1, "expected a string key, found ','"),
            (b"[,1]", 1, "expected a JSON value, found ','"),
            (b"\"abc", 0, "unterminated string"),
            (b"[\"abc\\", 1, "unterminated string"),
            (b"01", 0, "leading zeros are not allowed in a number"),
            (b"-", 1, "expected a digit after '-', found end of input"),
            (
                b"1.",
                2,
                "expected a digit after the decimal point, found end of input",
            ),
            (
                b"1e",
                2,
                "expected a digit in the exponent, found end of input",
            ),
            (b"\"\\x\"", 1, "invalid escape sequence"),
            (b"\"\\u12\"", 1, "expected 4 hex digits after \\u"),
            (b"\"\\ud800\"", 1, "lone surrogate \\ud800"),
            (b"\"a\\udc00\"", 2, "lone surrogate \\udc00"),
            (
                b"\"a\x01\"",
                2,
                "unescaped control character '\\u{1}' in a string",
            ),
            (b"\"a\xff\"", 2, "invalid UTF-8"),
            (b"nul", 0, "invalid literal, expected 'null'"),
            (
                b"{\"a\":1",
                6,
                "expected ',' or '}' after an object member, found end of input",
            ),
            (
                b"\xef\xbb\xbf{}",
                0,
                "expected a JSON value, found '\\u{feff}'",
            ),
        ];
        for &(input, offset, message) in cases {
            let e = err(input);
            assert_eq!(
                (e.offset, e.message.as_str()),
                (offset, message),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            err(b"[1,]").to_string(),
            "at byte 2: trailing comma before ']'"
        );
    }

    #[test]
    fn malformed_documents_are_refused() {
        let cases: &[&[u8]] = &[
            // Trailing garbage and structure.
            b"nulll",
            b"true false",
            b"[]]",
            b"{}}",
            b"[",
            b"]",
            b"{",
            b"}",
            b"[1",
            b"[1,",
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":1,",
            b"{\"a\":1,}",
            b"[1,,2]",
            b"{\"a\"::1}",
            b"{\"a\",1}",
            b"{a:1}",
            b"{'a':1}",
            b"['a']",
            b"[1;2]",
            b"[1]x",
            b"\"a\"\"b\"",
            b"/* c */ 1",
            b"1 // c",
            b"#1",
            // Literals.
            b"tru",
            b"True",
            b"NULL",
            b"fals",
            b"nan",
            b"NaN",
            b"Infinity",
            b"-Infinity",
            b"undefined",
            // Numbers.
            b"+1",
            b"00",
            b"-01",
            b"012",
            b"1.e5",
            b".5",
            b"-.5",
            b"1e+",
            b"1e-",
            b"1.5e",
            b"0x10",
            b"1_000",
            b"--1",
            b"-",
            b"1..2",
            b"1.2.3",
            b"1e5e5",
            b"- 1",
            b"\xd9\xa1",
            // Strings.
            b"\"",
            b"\"\\\"",
            b"\"\\",
            b"\"\\a\"",
            b"\"\\U0041\"",
            b"\"\\u\"",
            b"\"\\u004\"",
            b"\"\\u004g\"",
            b"\"\\u{41}\"",
            b"\"\\ud83d\"",
            b"\"\\ud83d\\u0041\"",
            b"\"\\ud83dx\"",
            b"\"\\ud83d\\\"",
            b"\"\\ud83d\\n\"",
            b"\"\\ude00\\ud83d\"",
            b"\"\\udfff\"",
            b"\"\\ud83d\\ud83d\"",
            b"\"\t\"",
            b"\"\n\"",
            b"\"\r\"",
            b"\"\x00\"",
            b"\"\x1f\"",
            b"'a'",
            // Invalid UTF-8: a bare continuation byte, overlong, a surrogate, truncated.
            b"\"\x80\"",
            b"\"\xc0\xaf\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xe4\xb8\"",
            b"\"\xf4\x90\x80\x80\"",
            b"[1]\xff",
            // Whitespace JSON does not allow.
            b"\x0b1",
            b"\x0c1",
            b"1\x00",
            b"\xc2\xa01",
            b"\xe3\x80\x801",
        ];
        for &input in cases {
            err(input);
        }
    }
}
