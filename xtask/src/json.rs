//! A small JSON reader, enough for `cargo metadata` and `cargo --message-format=json` (keeps xtask
//! free of dependencies). Numbers are kept as their text; xtask never needs their values.

use std::iter::Peekable;
use std::str::CharIndices;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, keys in document order.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array (empty otherwise).
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }

    /// The keys, if this is an object (empty otherwise).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let members: &[(String, Value)] = match self {
            Value::Object(members) => members,
            _ => &[],
        };
        members.iter().map(|(k, _)| k.as_str())
    }
}

/// Parses one JSON document; `None` if it is not valid JSON.
pub fn parse(text: &str) -> Option<Value> {
    let mut parser = Parser {
        text,
        chars: text.char_indices().peekable(),
    };
    let value = parser.value()?;
    parser.skip_space();
    parser.chars.peek().is_none().then_some(value)
}

struct Parser<'a> {
    text: &'a str,
    chars: Peekable<CharIndices<'a>>,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    }

    fn expect(&mut self, wanted: char) -> Option<()> {
        self.skip_space();
        self.chars.next_if(|&(_, c)| c == wanted).map(|_| ())
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_space();
        let &(start, first) = self.chars.peek()?;
        match first {
            '{' => self.object(),
            '[' => self.array(),
            '"' => self.string().map(Value::String),
            't' => self.word("true", Value::Bool(true)),
            'f' => self.word("false", Value::Bool(false)),
            'n' => self.word("null", Value::Null),
            '-' | '0'..='9' => {
                let mut end = start;
                while let Some((i, c)) = self
                    .chars
                    .next_if(|(_, c)| c.is_ascii_digit() || "+-.eE".contains(*c))
                {
                    end = i + c.len_utf8();
                }
                Some(Value::Number(self.text[start..end].to_string()))
            }
            _ => None,
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Option<Value> {
        for wanted in word.chars() {
            self.chars.next_if(|&(_, c)| c == wanted)?;
        }
        Some(value)
    }

    fn object(&mut self) -> Option<Value> {
        self.expect('{')?;
        let mut members = Vec::new();
        if self.expect('}').is_some() {
            return Some(Value::Object(members));
        }
        loop {
            self.skip_space();
            let key = self.string()?;
            self.expect(':')?;
            members.push((key, self.value()?));
            if self.expect(',').is_none() {
                self.expect('}')?;
                return Some(Value::Object(members));
            }
        }
    }

    fn array(&mut self) -> Option<Value> {
        self.expect('[')?;
        let mut items = Vec::new();
        if self.expect(']').is_some() {
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.expect(',').is_none() {
                self.expect(']')?;
                return Some(Value::Array(items));
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.chars.next_if(|&(_, c)| c == '"')?;
        let mut out = String::new();
        loop {
            let (_, c) = self.chars.next()?;
            match c {
                '"' => return Some(out),
                '\\' => {
                    let (_, escape) = self.chars.next()?;
                    out.push(match escape {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'u' => self.unicode_escape()?,
                        other => other, // '"', '\\', '/'
                    });
                }
                c => out.push(c),
            }
        }
    }

    /// The part after `\u`, including a following low surrogate when needed.
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if (0xD800..0xDC00).contains(&high) {
            self.chars.next_if(|&(_, c)| c == '\\')?;
            self.chars.next_if(|&(_, c)| c == 'u')?;
            let low = self.hex4()?;
            let code = 0x10000 + ((high - 0xD800) << 10) + (low.checked_sub(0xDC00)?);
            char::from_u32(code)
        } else {
            Some(char::from_u32(high).unwrap_or('\u{FFFD}'))
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut value = 0;
        for _ in 0..4 {
            let (_, c) = self.chars.next()?;
            value = value * 16 + c.to_digit(16)?;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_documents() {
        let doc = parse(
            r#" {"a": [1, -2.5e3, true, null], "b": {"c": "x\"y\\n\u00e9\ud83d\ude00"}, "d": []} "#,
        )
        .unwrap();
        assert_eq!(
            doc.get("a").unwrap().items(),
            &[
                Value::Number("1".into()),
                Value::Number("-2.5e3".into()),
                Value::Bool(true),
                Value::Null
            ]
        );
        let c = doc
            .get("b")
            .and_then(|b| b.get("c"))
            .and_then(Value::as_str);
        assert_eq!(c, Some("x\"y\\n\u{e9}\u{1F600}"));
        assert!(doc.get("d").unwrap().items().is_empty());
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["a", "b", "d"]);
    }

    #[test]
    fn rejects_broken_documents() {
        for bad in ["", "{", r#"{"a" 1}"#, "[1,]", r#""open"#, "tru", "{} x"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
