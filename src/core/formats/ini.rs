//! The INI store (spec §7.4): gopkg.in/ini.v1 as sops 3.11 configures it. Sections
//! are branches (AAD `section:key:`); keys before any section live in `DEFAULT`;
//! comments follow the key they describe in the tree and are written before it;
//! the metadata is a final `[sops]` section of flattened keys.

use super::flatten;
use super::{Codec, FormatError, FormatOptions};
use crate::core::secret::Text;
use crate::core::tree::{MapEntry, Mapping, Value};

/// The section holding keys that come before any `[section]`.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// The INI codec.
#[derive(Debug, Clone, Default)]
pub struct IniCodec;

impl IniCodec {
    /// A codec (INI has no options).
    pub fn new(_opts: &FormatOptions) -> Self {
        IniCodec
    }
}

fn perr(line: usize, reason: &str) -> FormatError {
    FormatError::Parse {
        format: "ini",
        line: Some(line),
        reason: reason.to_string(),
    }
}

/// Removes one leading `;`/`#` and the spaces after it (the rest is kept as is).
fn comment_text(raw: &str) -> String {
    raw.strip_prefix([';', '#'])
        .unwrap_or(raw)
        .trim_start()
        .to_string()
}

struct Section {
    name: String,
    items: Mapping,
}

fn strip_quotes(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2
        && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\''))
    {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn parse(input: &[u8]) -> Result<Vec<Section>, FormatError> {
    let text = std::str::from_utf8(input).map_err(|_| perr(1, "the input is not valid UTF-8"))?;
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut sections = vec![Section {
        name: DEFAULT_SECTION.to_string(),
        items: Mapping::new(),
    }];
    let mut pending: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending.push(line.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| perr(n, "a section header must end with `]`"))?
                .trim();
            let mut items = Mapping::new();
            if !pending.is_empty() {
                // A section's own comment comes first in its branch.
                items
                    .entries
                    .push(MapEntry::Comment(Text::from(comment_text(
                        &pending.join("\n"),
                    ))));
                pending.clear();
            }
            sections.push(Section {
                name: name.to_string(),
                items,
            });
            continue;
        }
        let delim = line
            .find(['=', ':'])
            .ok_or_else(|| perr(n, "a line must be `key = value`, `[section]` or a comment"))?;
        let key = line[..delim].trim();
        let key = key
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .unwrap_or(key)
            .to_string();
        let raw = line[delim + 1..].trim();
        let mut inline = None;
        let value: String = if let Some(rest) = raw.strip_prefix("\"\"\"") {
            // A value spanning lines until the closing `"""`.
            if let Some(v) = rest.strip_suffix("\"\"\"") {
                v.to_string()
            } else {
                let mut v = rest.to_string();
                loop {
                    let next = lines
                        .get(i)
                        .ok_or_else(|| perr(n, "unterminated \"\"\" value"))?;
                    i += 1;
                    v.push('\n');
                    if let Some(end) = next.strip_suffix("\"\"\"") {
                        v.push_str(end);
                        break;
                    }
                    v.push_str(next);
                }
                v
            }
        } else if let Some(rest) = raw.strip_prefix('`') {
            let end = rest
                .find('`')
                .ok_or_else(|| perr(n, "unterminated ` value"))?;
            rest[..end].to_string()
        } else {
            // An unquoted value is cut at the first `#` or `;` (go-ini's inline comment).
            let cut = raw.find(['#', ';']);
            let (v, c) = match cut {
                Some(p) => (raw[..p].trim_end(), Some(raw[p..].to_string())),
                None => (raw, None),
            };
            inline = c;
            strip_quotes(v).to_string()
        };
        let section = sections.last_mut().expect("DEFAULT exists");
        section.items.push(key, Value::Str(Text::from(value)));
        let comment = match (inline, pending.is_empty()) {
            (Some(c), _) => Some(comment_text(&c)),
            (None, false) => Some(comment_text(&pending.join("\n"))),
            (None, true) => None,
        };
        pending.clear();
        if let Some(c) = comment {
            section.items.entries.push(MapEntry::Comment(Text::from(c)));
        }
    }
    if !pending.is_empty() {
        let last = sections.last_mut().expect("DEFAULT exists");
        last.items
            .entries
            .push(MapEntry::Comment(Text::from(comment_text(
                &pending.join("\n"),
            ))));
    }
    Ok(sections)
}

fn to_documents(sections: Vec<Section>) -> Vec<Mapping> {
    let mut doc = Mapping::new();
    for s in sections {
        if s.name == DEFAULT_SECTION && s.items.entries.is_empty() {
            continue;
        }
        doc.push(s.name, Value::Map(s.items));
    }
    vec![doc]
}

fn text_of(v: &Value) -> Result<String, FormatError> {
    match v {
        Value::Str(t) => Ok(String::from_utf8_lossy(t.expose_secret()).into_owned()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Float(f) => Ok(crate::core::number::format_f(*f)),
        Value::Time(t) => Ok(t.to_rfc3339_nano()),
        Value::Null => Ok(String::new()),
        Value::Map(_) | Value::Seq(_) => Err(FormatError::Emit {
            format: "ini",
            reason: "INI values must be scalars inside sections".into(),
        }),
    }
}

fn quote_key(k: &str) -> String {
    if k.contains(['"', '=', ':']) {
        format!("`{k}`")
    } else if k.contains('`') {
        format!("\"\"\"{k}\"\"\"")
    } else {
        k.to_string()
    }
}

fn quote_value(v: &str) -> String {
    if v.contains(['\n', '`']) {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains(['#', ';']) {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn write_comment(out: &mut String, c: &Text) {
    let text = String::from_utf8_lossy(c.expose_secret());
    if !text.starts_with(['#', ';']) {
        out.push_str("; ");
    }
    out.push_str(&text);
    out.push('\n');
}

fn write_section(
    out: &mut String,
    name: &str,
    items: &Mapping,
    first: bool,
) -> Result<(), FormatError> {
    if !first {
        out.push('\n');
    }
    let mut entries = items.entries.iter().peekable();
    // Leading comments are the section's own, written before the header.
    while let Some(MapEntry::Comment(c)) = entries.peek() {
        write_comment(out, c);
        entries.next();
    }
    if name != DEFAULT_SECTION {
        out.push('[');
        out.push_str(name);
        out.push_str("]\n");
    }
    let width = items
        .pairs()
        .map(|(k, _)| quote_key(k).chars().count())
        .max()
        .unwrap_or(0);
    let rest: Vec<&MapEntry> = entries.collect();
    let mut idx = 0;
    while idx < rest.len() {
        if let MapEntry::Pair { key, value } = rest[idx] {
            // Comments that follow a key in the tree belong to it: written before it.
            let mut j = idx + 1;
            while let Some(MapEntry::Comment(c)) = rest.get(j) {
                write_comment(out, c);
                j += 1;
            }
            let k = quote_key(key);
            out.push_str(&k);
            for _ in k.chars().count()..width {
                out.push(' ');
            }
            out.push_str(" = ");
            out.push_str(&quote_value(&text_of(value)?));
            out.push('\n');
            idx = j;
        } else {
            if let MapEntry::Comment(c) = rest[idx] {
                write_comment(out, c);
            }
            idx += 1;
        }
    }
    Ok(())
}

fn write(docs: &[Mapping], metadata: Option<&Mapping>) -> Result<Vec<u8>, FormatError> {
    let mut out = String::new();
    let mut first = true;
    for doc in docs {
        for e in &doc.entries {
            match e {
                MapEntry::Pair {
                    key,
                    value: Value::Map(m),
                } => {
                    if key == DEFAULT_SECTION && m.entries.is_empty() {
                        continue;
                    }
                    write_section(&mut out, key, m, first)?;
                    first = false;
                }
                MapEntry::Pair { key, .. } => {
                    return Err(FormatError::Emit {
                        format: "ini",
                        reason: format!(
                            "top-level key `{key}` is not a section; INI needs [section] mappings"
                        ),
                    })
                }
                MapEntry::Comment(_) => {}
            }
        }
    }
    if let Some(meta) = metadata {
        let mut m = Mapping::new();
        for (k, v) in flatten::flatten(meta) {
            m.push(k, Value::Str(Text::from(v)));
        }
        if !first {
            out.push('\n');
        }
        out.push_str("[sops]\n");
        let width = m.pairs().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (k, v) in m.pairs() {
            out.push_str(k);
            for _ in k.chars().count()..width {
                out.push(' ');
            }
            out.push_str(" = ");
            out.push_str(v.as_str().unwrap_or_default());
            out.push('\n');
        }
    }
    Ok(out.into_bytes())
}

impl Codec for IniCodec {
    fn parse_plain(&self, input: &[u8]) -> Result<Vec<Mapping>, FormatError> {
        Ok(to_documents(parse(input)?))
    }

    fn parse_encrypted(
        &self,
        input: &[u8],
    ) -> Result<(Vec<Mapping>, Option<Mapping>), FormatError> {
        let mut sections = parse(input)?;
        let mut meta = None;
        if let Some(pos) = sections.iter().position(|s| s.name == "sops") {
            let s = sections.remove(pos);
            let pairs: Vec<(String, String)> = s
                .items
                .pairs()
                .map(|(k, v)| (k.to_string(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            // Metadata values carry `\n` escapes (spec §6.4); data values do not.
            meta = Some(flatten::unflatten(&pairs, true));
        }
        Ok((to_documents(sections), meta))
    }

    fn emit_plain(&self, docs: &[Mapping]) -> Result<Vec<u8>, FormatError> {
        write(docs, None)
    }

    fn emit_encrypted(&self, docs: &[Mapping], metadata: &Mapping) -> Result<Vec<u8>, FormatError> {
        write(docs, Some(metadata))
    }

    fn emit_value(&self, value: &Value) -> Result<Vec<u8>, FormatError> {
        match value {
            Value::Map(m) => {
                let mut out = String::new();
                write_section(&mut out, DEFAULT_SECTION, m, true)?;
                Ok(out.into_bytes())
            }
            other => Ok(text_of(other)?.into_bytes()),
        }
    }
}
