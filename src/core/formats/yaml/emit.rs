//! YAML output exactly like go-yaml v3 as sops 3.11 configures it (spec §7.1):
//! block style, indent W, sequences indented under keys, `- k:` compaction, comments
//! on their own lines, go-yaml's scalar style choice and escapes, no line folding.

use super::resolve;
use crate::core::number;
use crate::core::tree::{MapEntry, Mapping, SeqEntry, Value};
use base64::Engine;
use zeroize::Zeroize;

/// The output: plaintext, so when it grows the old allocation is wiped, not just freed.
struct Buf(Vec<u8>);

impl Buf {
    fn push_str(&mut self, s: &str) {
        if self.0.capacity() - self.0.len() < s.len() {
            let want = (self.0.capacity() * 2)
                .max(self.0.len() + s.len())
                .max(4096);
            let mut grown = Vec::with_capacity(want);
            grown.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = grown;
        }
        self.0.extend_from_slice(s.as_bytes());
    }

    fn push(&mut self, c: char) {
        let mut b = [0u8; 4];
        self.push_str(c.encode_utf8(&mut b));
    }
}

/// Writes YAML with indent `w`.
pub struct Emitter {
    w: usize,
    out: Buf,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank_or_end(c: Option<char>) -> bool {
    matches!(
        c,
        None | Some(' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
    )
}

struct Analysis {
    multiline: bool,
    block_plain: bool,
    single_ok: bool,
    block_ok: bool,
}

/// go-yaml's `yaml_emitter_analyze_scalar`, block context (flow level 0).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single_ok: true,
            block_ok: false,
        };
    }
    // Fast path for the common secret shape: letters, digits and `_`, with inner spaces
    // or `.-/+=` after the first character. Nothing there is an indicator, a break, a
    // special or a tab, so every style is allowed.
    if is_simple(s) {
        return Analysis {
            multiline: false,
            block_plain: true,
            single_ok: true,
            block_ok: true,
        };
    }
    analyze_full(s)
}

/// Letters, digits and `_` first; then also inner spaces and `.-/+=` (no trailing space).
fn is_simple(s: &str) -> bool {
    let b = s.as_bytes();
    b[0].is_ascii_alphanumeric()
        && b[b.len() - 1] != b' '
        && b[1..].iter().all(|&c| SIMPLE_INNER[usize::from(c)])
}

/// The bytes [`is_simple`] allows after the first, as a table (one load per byte: this
/// runs over every string of a file).
static SIMPLE_INNER: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b' ' | b'.' | b'-' | b'/' | b'+' | b'=');
        c += 1;
    }
    table
};

/// The character-by-character analysis (non-empty `s`).
fn analyze_full(s: &str) -> Analysis {
    let mut block_ind = s.starts_with("---") || s.starts_with("...");
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut tabs, mut special, mut line_breaks) =
        (false, false, false, false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_ws = true;
    // One pass over the characters with one character of lookahead (no allocation:
    // this runs for every string of a file).
    let mut it = s.chars().peekable();
    let mut first = true;
    while let Some(c) = it.next() {
        let next = it.peek().copied();
        let last = next.is_none();
        let followed_ws = is_blank_or_end(next);
        if first {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_ind = true,
                '?' | ':' | '-' if followed_ws => block_ind = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_ws => block_ind = true,
                '#' if preceded_ws => block_ind = true,
                _ => {}
            }
        }
        if c == '\t' {
            tabs = true;
        } else if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if first {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if first {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = is_blank_or_end(Some(c));
        first = false;
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single_ok: true,
        block_ok: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block_ok = false;
    }
    if break_space {
        a.block_plain = false;
        a.single_ok = false;
    }
    if space_break || tabs || special {
        a.block_plain = false;
        a.single_ok = false;
    }
    if space_break || special {
        a.block_ok = false;
    }
    if line_breaks {
        a.block_plain = false;
    }
    if block_ind {
        a.block_plain = false;
    }
    a
}

/// The style go-yaml picks for a string (spec §7.1 steps 1–3).
fn choose_style(s: &str, simple_key: bool) -> Style {
    let requested = if s.contains('\n') {
        Style::Literal
    } else if resolve::plain_rereads_as_string(s) {
        Style::Plain
    } else {
        Style::Double
    };
    let a = analyze(s);
    let mut style = requested;
    if simple_key && a.multiline {
        style = Style::Double;
    }
    if style == Style::Plain && (!a.block_plain || (s.is_empty() && simple_key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single_ok {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block_ok || simple_key) {
        style = Style::Double;
    }
    style
}

fn write_double(out: &mut Buf, s: &str) {
    out.push('"');
    // Observed in sops 3.11: after a leading BOM, go-yaml escapes every character.
    let escape_all = s.starts_with('\u{feff}');
    for c in s.chars() {
        if escape_all && c != '\u{feff}' && !matches!(c, '"' | '\\') {
            let u = c as u32;
            if u <= 0xFF {
                out.push_str(&format!("\\x{u:02X}"));
            } else if u <= 0xFFFF {
                out.push_str(&format!("\\u{u:04X}"));
            } else {
                out.push_str(&format!("\\U{u:08X}"));
            }
            continue;
        }
        match c {
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !is_printable(c) || c == '\u{feff}' => {
                let u = c as u32;
                if u <= 0xFF {
                    out.push_str(&format!("\\x{u:02X}"));
                } else if u <= 0xFFFF {
                    out.push_str(&format!("\\u{u:04X}"));
                } else {
                    out.push_str(&format!("\\U{u:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Emitter {
    /// An emitter with indent `w` (sops' default is 4).
    pub fn new(w: usize) -> Self {
        Emitter {
            w: w.max(1),
            out: Buf(Vec::new()),
        }
    }

    /// The text written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out.0
    }

    /// Starts a further document of a stream (`---`, spec §7.1).
    pub fn document_separator(&mut self) {
        self.out.push_str("---\n");
    }

    fn pad(&mut self, n: usize) {
        for _ in 0..n {
            self.out.push(' ');
        }
    }

    /// Indent of a block nested under something at column `i` (§7.1).
    fn nested(&self, i: usize) -> usize {
        self.w * ((i + self.w) / self.w)
    }

    /// A scalar after `key:` / `- ` (the caller wrote the prefix). `block_indent` is
    /// where literal block content goes. Ends the line.
    fn scalar(&mut self, v: &Value, block_indent: usize) {
        match v {
            Value::Null => self.out.push_str("null\n"),
            Value::Bool(b) => self.out.push_str(if *b { "true\n" } else { "false\n" }),
            Value::Int(i) => {
                self.out.push_str(&i.to_string());
                self.out.push('\n');
            }
            Value::Float(f) => {
                let s = if f.is_nan() {
                    ".nan".to_string()
                } else if f.is_infinite() {
                    if *f > 0.0 { ".inf" } else { "-.inf" }.to_string()
                } else {
                    number::format_g(*f)
                };
                self.out.push_str(&s);
                self.out.push('\n');
            }
            Value::Time(t) => {
                self.out.push_str(&t.to_rfc3339_nano());
                self.out.push('\n');
            }
            Value::Str(t) => match t.as_str() {
                Some(s) => {
                    if !self.string(s, block_indent) {
                        self.out.push('\n');
                    }
                }
                None => {
                    // Not UTF-8: go-yaml writes it as !!binary, its base64 broken into
                    // 70-character lines (each ending in a newline, so a literal block)
                    // once it reaches 70 characters.
                    self.out.push_str("!!binary ");
                    let b64 = base64::engine::general_purpose::STANDARD.encode(t.expose_secret());
                    if b64.len() < 70 {
                        self.out.push_str(&b64);
                        self.out.push('\n');
                    } else {
                        let mut lines = String::with_capacity(b64.len() + b64.len() / 70 + 1);
                        for chunk in b64.as_bytes().chunks(70) {
                            lines.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                            lines.push('\n');
                        }
                        self.literal(&lines, block_indent);
                    }
                }
            },
            Value::Map(_) | Value::Seq(_) => {
                unreachable!("collections are written by their own methods")
            }
        }
    }

    /// Writes a string scalar; returns true when it already ended the line (literal).
    fn string(&mut self, s: &str, block_indent: usize) -> bool {
        if s == "<<" {
            // go-yaml resolves a plain `<<` as the merge tag, so it tags it (seen in sops 3.11).
            self.out.push_str("!!merge <<");
            return false;
        }
        match choose_style(s, false) {
            Style::Plain => self.out.push_str(s),
            Style::Single => self.single(s, block_indent),
            Style::Double => write_double(&mut self.out, s),
            Style::Literal => {
                self.literal(s, block_indent);
                return true;
            }
        }
        false
    }

    /// A single-quoted scalar. U+2028/U+2029 are line breaks to go-yaml: after them it
    /// writes the scalar's indentation before the next character (spec §7.1 step 6). A
    /// space never follows a break here (that forces double quotes).
    fn single(&mut self, s: &str, indent: usize) {
        self.out.push('\'');
        let mut after_break = false;
        for c in s.chars() {
            if is_break(c) {
                after_break = true;
            } else if after_break {
                self.pad(indent);
                after_break = false;
            }
            if c == '\'' {
                self.out.push_str("''");
            } else {
                self.out.push(c);
            }
        }
        self.out.push('\'');
    }

    /// A literal block: header, then the text with each non-empty line indented.
    /// Always ends the line (the text's own trailing newlines are content, §7.1).
    fn literal(&mut self, s: &str, indent: usize) {
        self.out.push('|');
        if s.starts_with([' ', '\n']) {
            self.out.push_str(&self.w.to_string());
        }
        if !s.ends_with('\n') {
            self.out.push('-');
        } else if s == "\n" || s.ends_with("\n\n") {
            self.out.push('+');
        }
        self.out.push('\n');
        let mut at_line_start = true;
        for c in s.chars() {
            if at_line_start && c != '\n' {
                self.pad(indent);
            }
            self.out.push(c);
            at_line_start = c == '\n';
        }
        if !s.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn key(&mut self, k: &str) {
        if k == "<<" {
            // sops keeps the merge key literally; go-yaml writes its tag (§1.6).
            self.out.push_str("!!merge <<");
            return;
        }
        match choose_style(k, true) {
            Style::Plain => self.out.push_str(k),
            Style::Single => {
                self.out.push('\'');
                self.out.push_str(&k.replace('\'', "''"));
                self.out.push('\'');
            }
            _ => write_double(&mut self.out, k),
        }
    }

    /// A comment as sops hands it to go-yaml (`#` + text) and as go-yaml's
    /// `write_comment` writes it: a line break inside it (from an INI or dotenv
    /// comment) is copied as is (`\n` ends the line, a lone `\r` is written raw),
    /// each following line is indented and gets `# ` unless it starts with `#`, and
    /// a final newline is added only when the text does not end with a break.
    fn comment(&mut self, indent: usize, text: &[u8]) {
        self.pad(indent);
        self.out.push('#');
        let text = String::from_utf8_lossy(text);
        let (mut breaks, mut pound) = (false, true);
        for c in text.chars() {
            if is_break(c) {
                self.out.push(c);
                breaks = true;
                pound = false;
                continue;
            }
            if breaks {
                self.pad(indent);
            }
            if !pound && c != '#' {
                self.out.push_str("# ");
            }
            pound = true;
            self.out.push(c);
            breaks = false;
        }
        if !breaks {
            self.out.push('\n');
        }
    }

    /// Writes a mapping's entries at column `indent`. With `first_inline` the first
    /// entry continues a line that already holds `- ` (no padding).
    pub fn mapping(&mut self, entries: &[MapEntry], indent: usize, mut first_inline: bool) {
        for e in entries {
            match e {
                MapEntry::Comment(c) => {
                    // Only reached when not first_inline (leading comments are hoisted).
                    self.comment(indent, c.expose_secret());
                }
                MapEntry::Pair { key, value } => {
                    if !first_inline {
                        self.pad(indent);
                    }
                    first_inline = false;
                    // Explicit `? key` when the key is long or holds any YAML 1.1 line
                    // break (\n, \r, NEL, LS, PS), spec §7.1.
                    let long = key.len() > 128 || key.chars().any(is_break);
                    if long {
                        self.out.push_str("? ");
                        if !self.string(key, self.nested(indent)) {
                            self.out.push('\n');
                        }
                        self.pad(indent);
                        self.out.push(':');
                        // A collection value starts on the `:` line, padded to the child
                        // indent (`:   a: 1`, §7.1).
                        let child = self.nested(indent);
                        match value {
                            Value::Map(m) if !m.entries.is_empty() => {
                                self.pad(child - indent - 1);
                                self.mapping(&m.entries, child, true);
                            }
                            Value::Seq(s) if !s.items.is_empty() => {
                                self.pad(child - indent - 1);
                                self.sequence(&s.items, child, true);
                            }
                            _ => self.value_after_key(value, indent),
                        }
                    } else {
                        self.key(key);
                        self.out.push(':');
                        self.value_after_key(value, indent);
                    }
                }
            }
        }
    }

    fn value_after_key(&mut self, value: &Value, indent: usize) {
        let child = self.nested(indent);
        match value {
            Value::Map(m) if m.entries.is_empty() => self.out.push_str(" {}\n"),
            Value::Seq(s) if s.items.is_empty() => self.out.push_str(" []\n"),
            Value::Map(m) if !m.entries.iter().any(|e| matches!(e, MapEntry::Pair { .. })) => {
                // Only comments (from `a: {} # c`): go-yaml opens a flow mapping, writes the
                // comments at the child indent and closes it at column 0 (seen in sops 3.11).
                self.out.push_str(" {\n");
                for e in &m.entries {
                    if let MapEntry::Comment(c) = e {
                        self.comment(child, c.expose_secret());
                    }
                }
                self.out.push_str("}\n");
            }
            Value::Seq(s) if !s.items.iter().any(|e| matches!(e, SeqEntry::Value(_))) => {
                // Only comments (from `a: [] # c`): `[]`, then the comments at the key's
                // indent (seen in sops 3.11).
                self.out.push_str(" []\n");
                for e in &s.items {
                    if let SeqEntry::Comment(c) = e {
                        self.comment(indent, c.expose_secret());
                    }
                }
            }
            Value::Map(m) => {
                self.out.push('\n');
                self.mapping(&m.entries, child, false);
            }
            Value::Seq(s) => {
                self.out.push('\n');
                self.sequence(&s.items, child, false);
            }
            scalar => {
                self.out.push(' ');
                self.scalar(scalar, child);
            }
        }
    }

    /// Writes sequence items with the dash at column `dash`.
    fn sequence(&mut self, items: &[SeqEntry], dash: usize, mut first_inline: bool) {
        for item in items {
            match item {
                SeqEntry::Comment(c) => self.comment(dash, c.expose_secret()),
                SeqEntry::Value(v) => {
                    // Comments first in a mapping item go before the `- ` line (§7.1).
                    let mut skip = 0;
                    if let Value::Map(m) = v {
                        for e in &m.entries {
                            match e {
                                MapEntry::Comment(c) => {
                                    if first_inline {
                                        // Cannot hoist above a line already started; write at dash.
                                        self.out.push('\n');
                                        first_inline = false;
                                    }
                                    self.comment(dash, c.expose_secret());
                                    skip += 1;
                                }
                                MapEntry::Pair { .. } => break,
                            }
                        }
                    }
                    if !first_inline {
                        self.pad(dash);
                    }
                    first_inline = false;
                    self.out.push_str("- ");
                    match v {
                        Value::Map(m) if m.entries.len() == skip => {
                            if m.entries.is_empty() {
                                self.out.push_str("{}\n");
                            } else {
                                // Only comments: go-yaml writes an empty mapping.
                                self.out.push_str("{}\n");
                            }
                        }
                        Value::Seq(s) if s.items.is_empty() => self.out.push_str("[]\n"),
                        Value::Map(m) => {
                            self.mapping(&m.entries[skip..], dash + 2, true);
                        }
                        Value::Seq(s) => self.sequence(&s.items, dash + 2, true),
                        // A sequence item's scalar indent is the dash column + 2 (§7.1).
                        scalar => self.scalar(scalar, dash + 2),
                    }
                }
            }
        }
    }

    /// Writes one value for `--extract`: a scalar on its own line, or a collection.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Map(m) if m.entries.is_empty() => self.out.push_str("{}\n"),
            Value::Seq(s) if s.items.is_empty() => self.out.push_str("[]\n"),
            Value::Map(m) => self.mapping(&m.entries, 0, false),
            Value::Seq(s) => self.sequence(&s.items, 0, false),
            scalar => self.scalar(scalar, self.w),
        }
    }

    /// Writes a whole document (an empty one as `{}`).
    pub fn document(&mut self, m: &Mapping) {
        if !m.entries.iter().any(|e| matches!(e, MapEntry::Pair { .. })) {
            // Comments only: they are written, then the empty mapping (seen in sops 3.11).
            for e in &m.entries {
                if let MapEntry::Comment(c) = e {
                    self.comment(0, c.expose_secret());
                }
            }
            self.out.push_str("{}\n");
        } else {
            self.mapping(&m.entries, 0, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_styles_follow_go_yaml() {
        assert_eq!(choose_style("hello", false), Style::Plain);
        assert_eq!(choose_style("yes", false), Style::Double);
        assert_eq!(choose_style("", false), Style::Double);
        assert_eq!(choose_style(" ", false), Style::Single);
        assert_eq!(choose_style("a: b", false), Style::Single);
        assert_eq!(choose_style("a # not comment", false), Style::Single);
        assert_eq!(choose_style("tab\there", false), Style::Double);
        assert_eq!(choose_style("a\nb", false), Style::Literal);
        assert_eq!(choose_style("😀", false), Style::Double);
        assert_eq!(choose_style("é", false), Style::Plain);
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_analysis() {
        for s in [
            "a", "Z9", "abc def", "a.b", "a-b", "a/b", "a+b=", "x_y", "a - b", "a . b", "v1.2.3",
            "AKIA0123", "a  b",
        ] {
            assert!(is_simple(s), "{s}");
            let a = analyze_full(s);
            assert!(
                !a.multiline && a.block_plain && a.single_ok && a.block_ok,
                "{s}"
            );
        }
        for s in ["-a", ".a", " a", "a ", "_a", "a:b", "a#b", "a\tb", "é"] {
            assert!(!is_simple(s), "{s}");
        }
    }
}
