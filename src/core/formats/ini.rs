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

/// sops' `stripCommentChar`: a comment that starts with `;` loses every leading `;`
/// and space, one that starts with `#` every leading `#` and space; the rest
/// (later lines included) is kept as go-ini read it.
fn strip_comment_char(raw: &str) -> String {
    if raw.starts_with(';') {
        raw.trim_start_matches([';', ' ']).to_string()
    } else if raw.starts_with('#') {
        raw.trim_start_matches(['#', ' ']).to_string()
    } else {
        raw.to_string()
    }
}

struct Section {
    name: String,
    items: Mapping,
}

impl Section {
    fn new(name: &str, comment: &str) -> Section {
        let mut items = Mapping::new();
        if !comment.is_empty() {
            // A section's own comment comes first in its branch.
            items
                .entries
                .push(MapEntry::Comment(Text::from(strip_comment_char(comment))));
        }
        Section {
            name: name.to_string(),
            items,
        }
    }

    /// go-ini's `NewKey` then `key.Comment = ...`: a repeated key keeps its place and
    /// takes the new value and the new comment (or loses its comment).
    fn set(&mut self, key: String, value: String, comment: &str) {
        let entries = &mut self.items.entries;
        let pos = entries
            .iter()
            .position(|e| matches!(e, MapEntry::Pair { key: k, .. } if *k == key));
        let at = match pos {
            Some(i) => {
                entries[i] = MapEntry::Pair {
                    key,
                    value: Value::Str(Text::from(value)),
                };
                if matches!(entries.get(i + 1), Some(MapEntry::Comment(_))) {
                    entries.remove(i + 1);
                }
                i + 1
            }
            None => {
                entries.push(MapEntry::Pair {
                    key,
                    value: Value::Str(Text::from(value)),
                });
                entries.len()
            }
        };
        if !comment.is_empty() {
            entries.insert(
                at,
                MapEntry::Comment(Text::from(strip_comment_char(comment))),
            );
        }
    }
}

/// go-ini's `cleanComment`: from the first `#` or `;` on.
fn clean_comment(rest: &str) -> Option<&str> {
    rest.find(['#', ';']).map(|i| &rest[i..])
}

/// go-ini's `hasSurroundedQuote`: quoted at both ends and nowhere in between.
fn has_surrounded_quote(v: &str, q: char) -> bool {
    v.len() >= 2 && v.starts_with(q) && v.ends_with(q) && !v[1..v.len() - 1].contains(q)
}

/// The parser state: the lines with their line breaks (go-ini reads up to and
/// including each `\n`) and the pending comment buffer.
struct Reader<'a> {
    lines: Vec<&'a str>,
    next: usize,
    comment: String,
}

impl<'a> Reader<'a> {
    fn read_line(&mut self) -> Option<&'a str> {
        let l = self.lines.get(self.next).copied();
        self.next += 1;
        l
    }

    /// go-ini's `readKeyName`: the key (trimmed, quotes removed) and the offset of
    /// the value after the `=`/`:` delimiter.
    fn key_name(line: &str, n: usize) -> Result<(String, usize), FormatError> {
        let quote = if line.starts_with("\"\"\"") && line.len() > 6 {
            Some("\"\"\"")
        } else if line.starts_with('"') {
            Some("\"")
        } else if line.starts_with('`') {
            Some("`")
        } else {
            None
        };
        if let Some(q) = quote {
            let start = q.len();
            let pos = line[start..]
                .find(q)
                .ok_or_else(|| perr(n, "missing closing key quote"))?
                + start;
            let delim = line
                .get(pos + start..)
                .and_then(|r| r.find(['=', ':']))
                .ok_or_else(|| perr(n, "key-value delimiter not found"))?;
            let end = pos + delim;
            return Ok((line[start..pos].trim().to_string(), end + start + 1));
        }
        let end = line
            .find(['=', ':'])
            .ok_or_else(|| perr(n, "key-value delimiter not found"))?;
        Ok((line[..end].trim().to_string(), end + 1))
    }

    /// go-ini's `readValue` with sops' (default) options: `"""`/backtick quoting
    /// (text after the closing quote is ignored, multi-line when not closed on the
    /// line), `\` continuation lines, inline comments cut at the first `#`/`;`
    /// into the comment buffer, and one pair of surrounding `"`/`'` removed.
    fn value(&mut self, raw: &str, n: usize) -> Result<String, FormatError> {
        let line = raw.trim_start();
        if line.is_empty() {
            return Ok(String::new());
        }
        let quote = if line.len() > 3 && line.starts_with("\"\"\"") {
            Some("\"\"\"")
        } else if line.starts_with('`') {
            Some("`")
        } else {
            None
        };
        if let Some(q) = quote {
            let start = q.len();
            if let Some(pos) = line[start..].rfind(q) {
                return Ok(line[start..start + pos].to_string());
            }
            let mut value = line[start..].to_string();
            loop {
                let Some(next) = self.read_line() else {
                    return Err(perr(n, "missing closing quote of a multi-line value"));
                };
                if let Some(pos) = next.rfind(q) {
                    value.push_str(&next[..pos]);
                    if let Some(c) = clean_comment(&next[pos..]) {
                        self.comment.push_str(c.trim());
                    }
                    return Ok(value);
                }
                value.push_str(next);
                if self.next >= self.lines.len() {
                    return Err(perr(n, "missing closing quote of a multi-line value"));
                }
            }
        }
        let mut line = line.trim().to_string();
        if let Some(head) = line.strip_suffix('\\') {
            let mut value = head.to_string();
            while let Some(next) = self.read_line() {
                let next = next.trim();
                if next.is_empty() {
                    break;
                }
                value.push_str(next);
                match value.strip_suffix('\\') {
                    Some(v) => value = v.to_string(),
                    None => break,
                }
            }
            return Ok(value);
        }
        if let Some(i) = line.find(['#', ';']) {
            self.comment.push_str(&line[i..]);
            line = line[..i].trim().to_string();
        }
        if has_surrounded_quote(&line, '\'') || has_surrounded_quote(&line, '"') {
            line = line[1..line.len() - 1].to_string();
        }
        Ok(line)
    }
}

/// Parses INI as go-ini v1.67 does with sops' options (spec §7.4): an implicit
/// `DEFAULT` section first, a new section for every header (names repeat), keys
/// and their comments as described on [`Reader`]. A comment with no key or section
/// after it is dropped, as go-ini does.
fn parse(input: &[u8]) -> Result<Vec<Section>, FormatError> {
    let text = std::str::from_utf8(input).map_err(|_| perr(1, "the input is not valid UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = Reader {
        lines: text.split_inclusive('\n').collect(),
        next: 0,
        comment: String::new(),
    };
    let mut sections = vec![Section::new(DEFAULT_SECTION, "")];
    while let Some(raw) = r.read_line() {
        let n = r.next;
        let line = raw.trim_start();
        if line.is_empty() {
            continue;
        }
        if line.starts_with(['#', ';']) {
            // Kept with its line break: go-ini trims only the ends of the whole buffer.
            r.comment.push_str(line);
            continue;
        }
        if line.starts_with('[') {
            let close = line
                .rfind(']')
                .ok_or_else(|| perr(n, "unclosed section header"))?;
            let name = &line[1..close];
            if name.is_empty() {
                return Err(perr(n, "empty section name"));
            }
            if let Some(c) = clean_comment(&line[close + 1..]) {
                r.comment.push_str(c);
            }
            let comment = std::mem::take(&mut r.comment);
            sections.push(Section::new(name, comment.trim()));
            continue;
        }
        let (key, offset) = Reader::key_name(line, n)?;
        if key.is_empty() {
            return Err(perr(n, "empty key name"));
        }
        let value = r.value(&line[offset..], n)?;
        let comment = std::mem::take(&mut r.comment);
        sections
            .last_mut()
            .expect("DEFAULT exists")
            .set(key, value, comment.trim());
    }
    Ok(sections)
}

fn to_documents(sections: Vec<Section>) -> Vec<Mapping> {
    let mut doc = Mapping::new();
    for s in sections {
        doc.push(s.name, Value::Map(s.items));
    }
    vec![doc]
}

/// Go's `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`, the zone
/// name being `UTC` at offset zero and the numeric offset otherwise (a parsed
/// fixed zone has no name).
fn go_time_string(t: &crate::core::tree::Timestamp) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    if t.nanos != 0 {
        s.push('.');
        s.push_str(format!("{:09}", t.nanos).trim_end_matches('0'));
    }
    let off = t.offset_seconds;
    let sign = if off < 0 { '-' } else { '+' };
    let zone = format!("{sign}{:02}{:02}", off.abs() / 3600, off.abs() % 3600 / 60);
    let name = if off == 0 {
        "UTC".to_string()
    } else {
        zone.clone()
    };
    format!("{s} {zone} {name}")
}

/// Go's `%v` of a value inside a nested INI value: lists as `[a b]`, mappings as
/// `[{key value} ...]` (sops' `TreeBranch` of `TreeItem`s), floats as `%g`.
fn go_v(v: &Value, out: &mut String) {
    use crate::core::tree::SeqEntry;
    match v {
        Value::Str(t) => out.push_str(&String::from_utf8_lossy(t.expose_secret())),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Float(f) => out.push_str(&crate::core::number::format_g(*f)),
        Value::Null => out.push_str("<nil>"),
        Value::Time(t) => out.push_str(&go_time_string(t)),
        Value::Seq(s) => {
            out.push('[');
            for (n, item) in s.items.iter().enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                match item {
                    SeqEntry::Value(v) => go_v(v, out),
                    SeqEntry::Comment(c) => {
                        out.push('{');
                        out.push_str(&String::from_utf8_lossy(c.expose_secret()));
                        out.push('}');
                    }
                }
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('[');
            for (n, e) in m.entries.iter().enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                out.push('{');
                match e {
                    MapEntry::Pair { key, value } => {
                        out.push_str(key);
                        out.push(' ');
                        go_v(value, out);
                    }
                    MapEntry::Comment(c) => {
                        out.push('{');
                        out.push_str(&String::from_utf8_lossy(c.expose_secret()));
                        out.push_str("} <nil>");
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
    }
}

/// sops 3.11's text of a value in an INI section (checked against `sops decrypt
/// --output-type ini`): scalars as in dotenv (spec §7.3: `%G` floats with `.0`,
/// `<nil>`, RFC 3339 times without fraction), nested values as Go's `%v`.
fn text_of(v: &Value) -> Result<String, FormatError> {
    Ok(match v {
        Value::Str(t) => String::from_utf8_lossy(t.expose_secret()).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => crate::core::number::format_dotenv(*f),
        Value::Time(t) => t.to_rfc3339(),
        Value::Null => "<nil>".into(),
        Value::Map(_) | Value::Seq(_) => {
            let mut s = String::new();
            go_v(v, &mut s);
            s
        }
    })
}

/// go-ini's key quoting when writing.
fn quote_key(k: &str) -> String {
    if k.contains(['"', '=', ':']) {
        format!("`{k}`")
    } else if k.contains('`') {
        format!("\"\"\"{k}\"\"\"")
    } else {
        k.to_string()
    }
}

/// go-ini's value quoting when writing.
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

/// go-ini writes a comment line by line: a line starting with `#`/`;` keeps that
/// character, then one space and the trimmed rest; any other line gets `; ` (for
/// a key's comment the line is trimmed too, for a section's it is not).
fn write_comment(out: &mut String, comment: &str, trim_plain: bool) {
    for line in comment.split('\n') {
        match line.chars().next() {
            Some(c @ ('#' | ';')) => {
                out.push(c);
                out.push(' ');
                out.push_str(line[1..].trim());
            }
            _ => {
                out.push_str("; ");
                out.push_str(if trim_plain { line.trim() } else { line });
            }
        }
        out.push('\n');
    }
}

/// One section as go-ini holds it after sops' `encodeTree`.
struct OutSection<'a> {
    name: &'a str,
    comment: Option<String>,
    /// (key, value, comment); a repeated key is updated in place.
    keys: Vec<(&'a str, String, Option<String>)>,
}

fn out_section<'a>(name: &'a str, items: &'a Mapping) -> Result<OutSection<'a>, FormatError> {
    let mut sec = OutSection {
        name,
        comment: None,
        keys: Vec::new(),
    };
    let mut entries = items.entries.iter().peekable();
    // Only a comment in first place is the section's own (sops `encodeTree`).
    if let Some(MapEntry::Comment(c)) = entries.peek() {
        sec.comment = Some(String::from_utf8_lossy(c.expose_secret()).into_owned());
        entries.next();
    }
    let mut last: Option<usize> = None;
    for e in entries {
        match e {
            // A comment belongs to the key before it; a later one replaces it, and
            // one before any key is lost, as in sops.
            MapEntry::Comment(c) => {
                if let Some(i) = last {
                    sec.keys[i].2 = Some(String::from_utf8_lossy(c.expose_secret()).into_owned());
                }
            }
            MapEntry::Pair { key, value } => {
                let text = text_of(value)?;
                match sec.keys.iter().position(|(k, _, _)| k == key) {
                    Some(i) => {
                        sec.keys[i].1 = text;
                        last = Some(i);
                    }
                    None => {
                        sec.keys.push((key, text, None));
                        last = Some(sec.keys.len() - 1);
                    }
                }
            }
        }
    }
    Ok(sec)
}

/// go-ini's pretty writer (spec §7.4). `index` is the section's place in the file:
/// only a first section named `DEFAULT` is written without a header, and not at
/// all when it has no keys. Returns whether anything but its comment was written.
fn write_out_section(out: &mut String, index: usize, sec: &OutSection) -> bool {
    if let Some(c) = sec.comment.as_deref().filter(|c| !c.is_empty()) {
        write_comment(out, c, false);
    }
    if index > 0 || !sec.name.eq_ignore_ascii_case(DEFAULT_SECTION) {
        out.push('[');
        out.push_str(sec.name);
        out.push_str("]\n");
    } else if sec.keys.is_empty() {
        return false;
    }
    let width = sec
        .keys
        .iter()
        .map(|(k, _, _)| quote_key(k).len())
        .max()
        .unwrap_or(0);
    for (key, value, comment) in &sec.keys {
        if let Some(c) = comment.as_deref().filter(|c| !c.is_empty()) {
            write_comment(out, c, true);
        }
        let k = quote_key(key);
        out.push_str(&k);
        out.extend(std::iter::repeat_n(' ', width - k.len()));
        out.push_str(" = ");
        out.push_str(&quote_value(value));
        out.push('\n');
    }
    true
}

fn write(docs: &[Mapping], metadata: Option<&Mapping>) -> Result<Vec<u8>, FormatError> {
    let mut sections = Vec::new();
    for doc in docs {
        for e in &doc.entries {
            match e {
                MapEntry::Pair {
                    key,
                    value: Value::Map(m),
                } => sections.push(out_section(key, m)?),
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
    let mut meta_items = Mapping::new();
    if let Some(meta) = metadata {
        // Written sorted for determinism; sops' own order is random (spec §6.3).
        for (k, v) in flatten::flatten(meta) {
            meta_items.push(k, Value::Str(Text::from(v)));
        }
        sections.push(out_section("sops", &meta_items)?);
    }
    let mut out = String::new();
    let mut written = false;
    for (i, sec) in sections.iter().enumerate() {
        let mut one = String::new();
        let body = write_out_section(&mut one, i, sec);
        // A blank line between sections, none after the last.
        if written && !one.is_empty() {
            out.push('\n');
        }
        out.push_str(&one);
        written |= body;
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
                write_out_section(&mut out, 0, &out_section(DEFAULT_SECTION, m)?);
                Ok(out.into_bytes())
            }
            other => Ok(text_of(other)?.into_bytes()),
        }
    }
}
