//! The dotenv store (spec §7.3, §6.3): `KEY=value` lines kept verbatim (quotes,
//! `export `, CR), `#` comment lines, `\n` escapes, and the metadata as sorted
//! `sops_*` lines.

use super::flatten;
use super::{Codec, FormatError, FormatOptions};
use crate::core::number;
use crate::core::secret::Text;
use crate::core::tree::{MapEntry, Mapping, Value};

/// The dotenv codec.
#[derive(Debug, Clone, Default)]
pub struct DotenvCodec;

impl DotenvCodec {
    /// A codec (dotenv has no options).
    pub fn new(_opts: &FormatOptions) -> Self {
        DotenvCodec
    }
}

/// A parsed line: `Some(key)` with its value, or `None` with a comment's text.
type Line = (Option<String>, Vec<u8>);

fn parse_lines(input: &[u8]) -> Result<Vec<Line>, FormatError> {
    let mut out = Vec::new();
    for (n, line) in input.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if line[0] == b'#' {
            out.push((None, line[1..].to_vec()));
            continue;
        }
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            return Err(FormatError::Parse {
                format: "dotenv",
                line: Some(n + 1),
                reason: "a line must be KEY=value or a # comment".into(),
            });
        };
        let key = String::from_utf8(line[..eq].to_vec()).map_err(|_| FormatError::Parse {
            format: "dotenv",
            line: Some(n + 1),
            reason: "the key is not valid UTF-8".into(),
        })?;
        // Every literal `\n` in a value is a newline (§7.3).
        let mut value = Vec::with_capacity(line.len() - eq);
        let raw = &line[eq + 1..];
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'n') {
                value.push(b'\n');
                i += 2;
            } else {
                value.push(raw[i]);
                i += 1;
            }
        }
        out.push((Some(key), value));
    }
    Ok(out)
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b == b'\n' {
            out.extend_from_slice(b"\\n");
        } else {
            out.push(b);
        }
    }
}

fn scalar_text(v: &Value) -> Result<Vec<u8>, FormatError> {
    Ok(match v {
        Value::Str(t) => t.expose_secret().to_vec(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Null => b"<nil>".to_vec(),
        Value::Float(f) => number::format_dotenv(*f).into_bytes(),
        Value::Time(t) => t.to_rfc3339().into_bytes(),
        Value::Map(_) | Value::Seq(_) => {
            return Err(FormatError::Emit {
                format: "dotenv",
                reason: "cannot use complex value in dotenv file".into(),
            })
        }
    })
}

fn write_doc(doc: &Mapping, out: &mut Vec<u8>) -> Result<(), FormatError> {
    for e in &doc.entries {
        match e {
            MapEntry::Comment(c) => {
                out.push(b'#');
                out.extend_from_slice(c.expose_secret());
                out.push(b'\n');
            }
            MapEntry::Pair { key, value } => {
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                escape(&scalar_text(value)?, out);
                out.push(b'\n');
            }
        }
    }
    Ok(())
}

impl Codec for DotenvCodec {
    fn parse_plain(&self, input: &[u8]) -> Result<Vec<Mapping>, FormatError> {
        let mut m = Mapping::new();
        for (key, value) in parse_lines(input)? {
            match key {
                Some(k) => m.push(k, Value::Str(Text::new(value))),
                None => m.entries.push(MapEntry::Comment(Text::new(value))),
            }
        }
        Ok(vec![m])
    }

    fn parse_encrypted(
        &self,
        input: &[u8],
    ) -> Result<(Vec<Mapping>, Option<Mapping>), FormatError> {
        let mut m = Mapping::new();
        let mut meta = Vec::new();
        for (key, value) in parse_lines(input)? {
            match key {
                Some(k) if k.starts_with("sops_") => meta.push((
                    k["sops_".len()..].to_string(),
                    String::from_utf8_lossy(&value).into_owned(),
                )),
                Some(k) => m.push(k, Value::Str(Text::new(value))),
                None => m.entries.push(MapEntry::Comment(Text::new(value))),
            }
        }
        let meta = (!meta.is_empty()).then(|| flatten::unflatten(&meta, false));
        Ok((vec![m], meta))
    }

    fn emit_plain(&self, docs: &[Mapping]) -> Result<Vec<u8>, FormatError> {
        // sops writes only the first document of a multi-document YAML as dotenv.
        let mut out = Vec::new();
        if let Some(d) = docs.first() {
            write_doc(d, &mut out)?;
        }
        Ok(out)
    }

    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError> {
        let mut out = self.emit_plain(docs)?;
        for (k, v) in flatten::flatten(metadata) {
            out.extend_from_slice(b"sops_");
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        Ok(out)
    }

    fn emit_value(&self, value: &Value) -> Result<Vec<u8>, FormatError> {
        match value {
            Value::Str(t) => Ok(t.expose_secret().to_vec()),
            _ => Err(FormatError::Emit {
                format: "dotenv",
                reason: "only strings can be extracted from a dotenv file".into(),
            }),
        }
    }
}
