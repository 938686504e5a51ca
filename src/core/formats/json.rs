//! The JSON store (spec §1.6 JSON, §6.3, §7.2): a hand-written parser that keeps key
//! order and duplicate keys and reads every number as a float (sops 3.11), and an
//! emitter that matches Go's `encoding/json` escaping and `json.Indent` layout.

use super::{Codec, FormatError, FormatOptions};
use crate::core::number;
use crate::core::secret::Text;
use crate::core::tree::{MapEntry, Mapping, SeqEntry, Sequence, Value};

/// Nesting limit: deeper input is refused rather than risking the stack.
pub const MAX_DEPTH: usize = 256;

/// The JSON codec.
#[derive(Debug, Clone)]
pub struct JsonCodec {
    indent: String,
}

impl JsonCodec {
    /// A codec with the given options (`json_indent`: `None` = TAB).
    pub fn new(opts: &FormatOptions) -> Self {
        JsonCodec {
            indent: match opts.json_indent {
                None => "\t".to_string(),
                Some(n) => " ".repeat(n),
            },
        }
    }
}

fn perr(line: usize, reason: impl Into<String>) -> FormatError {
    FormatError::Parse {
        format: "json",
        line: Some(line),
        reason: reason.into(),
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                b' ' | b'\t' | b'\r' => self.i += 1,
                _ => break,
            }
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), FormatError> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(perr(self.line, format!("expected `{}`", c as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, FormatError> {
        if depth > MAX_DEPTH {
            return Err(FormatError::Limit {
                format: "json",
                reason: format!(
                    "nesting deeper than {MAX_DEPTH} levels at line {}",
                    self.line
                ),
            });
        }
        self.ws();
        match self.b.get(self.i) {
            None => Err(perr(self.line, "unexpected end of input")),
            Some(b'{') => Ok(Value::Map(self.object(depth)?)),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::Seq(Sequence { items }));
                }
                loop {
                    items.push(SeqEntry::Value(self.value(depth + 1)?));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Seq(Sequence { items }));
                        }
                        _ => return Err(perr(self.line, "expected `,` or `]` in array")),
                    }
                }
            }
            Some(b'"') => Ok(Value::Str(Text::from(self.string()?))),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(perr(self.line, "unexpected character")),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, FormatError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(perr(self.line, "invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Value, FormatError> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - s
        };
        let int_start = self.i;
        if digits(self) == 0 {
            return Err(perr(self.line, "invalid number"));
        }
        if self.b[int_start] == b'0' && self.i - int_start > 1 {
            return Err(perr(self.line, "invalid number (leading zero)"));
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(perr(self.line, "invalid number"));
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(perr(self.line, "invalid number"));
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i])
            .map_err(|_| perr(self.line, "invalid number"))?;
        let f: f64 = text
            .parse()
            .map_err(|_| perr(self.line, "invalid number"))?;
        if f.is_infinite() {
            return Err(perr(self.line, "number out of range"));
        }
        // sops 3.11 decodes every JSON number as float64 (§1.6).
        Ok(Value::Float(f))
    }

    fn hex4(&mut self) -> Result<u32, FormatError> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| perr(self.line, "truncated \\u escape"))?;
        let s = std::str::from_utf8(h).map_err(|_| perr(self.line, "invalid \\u escape"))?;
        let v = u32::from_str_radix(s, 16).map_err(|_| perr(self.line, "invalid \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, FormatError> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(perr(self.line, "unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let e = *self
                        .b
                        .get(self.i)
                        .ok_or_else(|| perr(self.line, "unterminated string"))?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                        .unwrap_or('\u{FFFD}')
                                } else {
                                    self.i = save;
                                    '\u{FFFD}'
                                }
                            } else {
                                // A lone surrogate decodes to U+FFFD, as in Go.
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => return Err(perr(self.line, "invalid escape in string")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => return Err(perr(self.line, "control character in string")),
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        // Go replaces each byte of invalid UTF-8 with its own U+FFFD when decoding.
        let mut text = String::with_capacity(out.len());
        for_each_go_rune(&out, |r| match r {
            Ok(c) => text.push(c),
            Err(()) => text.push('\u{FFFD}'),
        });
        Ok(text)
    }

    fn object(&mut self, depth: usize) -> Result<Mapping, FormatError> {
        self.expect(b'{')?;
        let mut m = Mapping::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(m);
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(perr(self.line, "expected a string key"));
            }
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value(depth + 1)?;
            m.entries.push(MapEntry::Pair { key, value });
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(m);
                }
                _ => return Err(perr(self.line, "expected `,` or `}` in object")),
            }
        }
    }
}

/// Parses a JSON document whose top level must be an object. Whatever follows the
/// closing `}` is ignored: sops' token decoder stops there and never reads on
/// (`{"a": 1} x` encrypts and decrypts in sops 3.11).
pub fn parse_document(input: &[u8]) -> Result<Mapping, FormatError> {
    let mut p = Parser {
        b: input,
        i: 0,
        line: 1,
    };
    p.ws();
    if p.b.get(p.i) != Some(&b'{') {
        return Err(perr(p.line, "the top level must be an object"));
    }
    p.object(0)
}

/// Walks `bytes` the way Go ranges over a string: valid UTF-8 sequences give
/// their character, and every byte that does not start one gives `Err(())`
/// (Go's `utf8.RuneError` of width 1), so `\xe2\x82` is two errors, not one.
fn for_each_go_rune(bytes: &[u8], mut f: impl FnMut(Result<char, ()>)) {
    for chunk in bytes.utf8_chunks() {
        chunk.valid().chars().for_each(|c| f(Ok(c)));
        for _ in chunk.invalid() {
            f(Err(()));
        }
    }
}

/// Appends `bytes` as a Go `encoding/json` string literal (spec §7.2): Go 1.22+
/// escapes, HTML-safe, and `\ufffd` for every byte of invalid UTF-8.
pub fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for_each_go_rune(bytes, |r| {
        let Ok(ch) = r else {
            out.extend_from_slice(b"\\ufffd");
            return;
        };
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", ch as u32).as_bytes())
            }
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    });
    out.push(b'"');
}

impl JsonCodec {
    fn newline(&self, out: &mut Vec<u8>, level: usize) {
        out.push(b'\n');
        for _ in 0..level {
            out.extend_from_slice(self.indent.as_bytes());
        }
    }

    fn write_value(&self, out: &mut Vec<u8>, v: &Value, level: usize) -> Result<(), FormatError> {
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(f) => {
                let s = number::format_json(*f).ok_or_else(|| FormatError::Emit {
                    format: "json",
                    reason: "NaN and infinite numbers cannot be written as JSON".into(),
                })?;
                out.extend_from_slice(s.as_bytes());
            }
            Value::Time(t) => write_string(out, t.to_rfc3339_nano().as_bytes()),
            Value::Str(t) => write_string(out, t.expose_secret()),
            Value::Map(m) => self.write_map(out, m, level, None)?,
            Value::Seq(s) => {
                let items: Vec<&Value> = s
                    .items
                    .iter()
                    .filter_map(|i| match i {
                        SeqEntry::Value(v) => Some(v),
                        SeqEntry::Comment(_) => None,
                    })
                    .collect();
                if items.is_empty() {
                    out.extend_from_slice(b"[]");
                    return Ok(());
                }
                out.push(b'[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    self.newline(out, level + 1);
                    self.write_value(out, item, level + 1)?;
                }
                self.newline(out, level);
                out.push(b']');
            }
        }
        Ok(())
    }

    fn write_map(
        &self,
        out: &mut Vec<u8>,
        m: &Mapping,
        level: usize,
        extra: Option<(&str, &Mapping)>,
    ) -> Result<(), FormatError> {
        let mut pairs: Vec<(&str, &Value)> = m.pairs().collect();
        let extra_value = extra.map(|(k, v)| (k, Value::Map(v.clone())));
        if let Some((k, v)) = &extra_value {
            pairs.push((k, v));
        }
        if pairs.is_empty() {
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        out.push(b'{');
        for (n, (k, v)) in pairs.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            self.newline(out, level + 1);
            write_string(out, k.as_bytes());
            out.extend_from_slice(b": ");
            self.write_value(out, v, level + 1)?;
        }
        self.newline(out, level);
        out.push(b'}');
        Ok(())
    }

    /// Writes one document, with an optional extra last key (the `sops` block).
    pub fn write_document(
        &self,
        doc: &Mapping,
        extra: Option<(&str, &Mapping)>,
    ) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.write_map(&mut out, doc, 0, extra)?;
        out.push(b'\n');
        Ok(out)
    }
}

fn single(docs: &[Mapping]) -> Mapping {
    docs.first().cloned().unwrap_or_default()
}

impl Codec for JsonCodec {
    fn parse_plain(&self, input: &[u8]) -> Result<Vec<Mapping>, FormatError> {
        Ok(vec![parse_document(input)?])
    }

    fn parse_encrypted(
        &self,
        input: &[u8],
    ) -> Result<(Vec<Mapping>, Option<Mapping>), FormatError> {
        let mut doc = parse_document(input)?;
        let meta = match doc.remove("sops") {
            Some(Value::Map(m)) => Some(m),
            _ => None,
        };
        Ok((vec![doc], meta))
    }

    fn emit_plain(&self, docs: &[Mapping]) -> Result<Vec<u8>, FormatError> {
        self.write_document(&single(docs), None)
    }

    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError> {
        self.write_document(&single(docs), Some(("sops", metadata)))
    }

    fn emit_value(&self, value: &Value) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.write_value(&mut out, value, 0)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_duplicates_and_go_escaping() {
        let c = JsonCodec::new(&FormatOptions::default());
        let docs = c
            .parse_plain(br#"{"b": "<&>", "a": 1, "a": [1.5, true, null, {}], "e": []}"#)
            .unwrap();
        let out = c.emit_plain(&docs).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n\t\"b\": \"\\u003c\\u0026\\u003e\",\n\t\"a\": 1,\n\t\"a\": [\n\t\t1.5,\n\t\ttrue,\n\t\tnull,\n\t\t{}\n\t],\n\t\"e\": []\n}\n"
        );
    }

    #[test]
    fn lone_surrogate_becomes_replacement_character() {
        let c = JsonCodec::new(&FormatOptions::default());
        let docs = c.parse_plain(br#"{"s": "\ud800x"}"#).unwrap();
        assert_eq!(docs[0].get("s").unwrap().as_str(), Some("\u{FFFD}x"));
    }

    #[test]
    fn top_level_must_be_an_object() {
        let c = JsonCodec::new(&FormatOptions::default());
        assert!(matches!(
            c.parse_plain(b"[1]"),
            Err(FormatError::Parse { .. })
        ));
        assert!(matches!(c.parse_plain(b""), Err(FormatError::Parse { .. })));
    }
}
