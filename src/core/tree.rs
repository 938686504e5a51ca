//! The ordered document tree shared by every format (spec §1).
//!
//! A file is a list of documents; each document is a [`Mapping`]. Order is kept
//! everywhere because the MAC, the output and comment handling depend on it.
//! Comments are items of their own ([`MapEntry::Comment`], [`SeqEntry::Comment`]).
//!
//! Security: strings and comments are [`Text`] (zeroized, redacted `Debug`); the
//! `Debug` of [`Value`] never prints a scalar's content.

use super::secret::Text;
use std::fmt;

/// One document: an ordered mapping (spec §1.1 "branch").
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Mapping {
    /// Entries in file order; duplicate keys are possible (JSON, dotenv).
    pub entries: Vec<MapEntry>,
}

/// An item of a mapping.
#[derive(Clone, PartialEq, Debug)]
pub enum MapEntry {
    /// `key: value`.
    Pair {
        /// The key (always a string; other key types are refused by the codecs).
        key: String,
        /// The value.
        value: Value,
    },
    /// A comment, text after `#` with leading spaces kept (spec §1.1).
    Comment(Text),
}

/// An item of a sequence.
#[derive(Clone, PartialEq, Debug)]
pub enum SeqEntry {
    /// An element.
    Value(Value),
    /// A comment between elements.
    Comment(Text),
}

/// A sequence of values and comments.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Sequence {
    /// Items in file order.
    pub items: Vec<SeqEntry>,
}

/// A node of the tree.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// YAML `null`/`~`/empty, JSON `null`: never encrypted, never in the MAC (spec §1.4).
    Null,
    /// A boolean (`True`/`False` in the canonical bytes, spec §1.2).
    Bool(bool),
    /// A Go int64.
    Int(i64),
    /// A float64 (canonical bytes: shortest digits, fixed notation, spec §1.3).
    Float(f64),
    /// A YAML timestamp (`type:time`).
    Time(Timestamp),
    /// A byte string (type `str`).
    Str(Text),
    /// A nested mapping.
    Map(Mapping),
    /// A sequence.
    Seq(Sequence),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(_) => f.write_str("Bool([REDACTED])"),
            Value::Int(_) => f.write_str("Int([REDACTED])"),
            Value::Float(_) => f.write_str("Float([REDACTED])"),
            Value::Time(_) => f.write_str("Time([REDACTED])"),
            Value::Str(_) => f.write_str("Str([REDACTED])"),
            Value::Map(m) => f.debug_tuple("Map").field(m).finish(),
            Value::Seq(s) => f.debug_tuple("Seq").field(s).finish(),
        }
    }
}

impl Value {
    /// A string value from `&str`.
    pub fn str(s: &str) -> Value {
        Value::Str(Text::from(s))
    }

    /// The mapping inside, if this is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string as `&str`, if this is a UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(t) => t.as_str(),
            _ => None,
        }
    }
}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key: value`.
    pub fn push(&mut self, key: impl Into<String>, value: Value) {
        self.entries.push(MapEntry::Pair {
            key: key.into(),
            value,
        });
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find_map(|e| match e {
            MapEntry::Pair { key: k, value } if k == key => Some(value),
            _ => None,
        })
    }

    /// Mutable access to the first value stored under `key`.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries.iter_mut().find_map(|e| match e {
            MapEntry::Pair { key: k, value } if k == key => Some(value),
            _ => None,
        })
    }

    /// Removes every pair with this key (comments stay), returning the first value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let mut found = None;
        let mut kept = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            match e {
                MapEntry::Pair { key: k, value } if k == key => {
                    if found.is_none() {
                        found = Some(value);
                    }
                }
                other => kept.push(other),
            }
        }
        self.entries = kept;
        found
    }

    /// Iterates over `(key, value)` pairs, skipping comments.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().filter_map(|e| match e {
            MapEntry::Pair { key, value } => Some((key.as_str(), value)),
            MapEntry::Comment(_) => None,
        })
    }
}

/// A point in time as go-yaml reads it: local date and time, nanoseconds and a UTC
/// offset (spec §1.6). Formats as Go's RFC 3339 with nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timestamp {
    /// Year (four digits in sops files).
    pub year: i32,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=59 (60 is folded by Go; we keep what was read).
    pub second: u8,
    /// Fraction of a second in nanoseconds.
    pub nanos: u32,
    /// Offset from UTC in seconds (0 is written `Z`).
    pub offset_seconds: i32,
}

impl Timestamp {
    /// Go's `time.RFC3339Nano`: fraction without trailing zeros, `Z` for UTC.
    pub fn to_rfc3339_nano(&self) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push_str(&self.offset_suffix());
        s
    }

    /// Go's `time.RFC3339`: whole seconds.
    pub fn to_rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.offset_suffix()
        )
    }

    fn offset_suffix(&self) -> String {
        if self.offset_seconds == 0 {
            return "Z".to_string();
        }
        let sign = if self.offset_seconds < 0 { '-' } else { '+' };
        let abs = self.offset_seconds.unsigned_abs();
        format!("{}{:02}:{:02}", sign, abs / 3600, (abs % 3600) / 60)
    }

    /// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)`), as Go's
    /// `time.Time.UnmarshalText` accepts it.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let year = num(0..4)? as i32;
        let month = num(5..7)? as u8;
        let day = num(8..10)? as u8;
        let hour = num(11..13)? as u8;
        let minute = num(14..16)? as u8;
        let second = num(17..19)? as u8;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return None;
            }
            nanos = format!("{digits:0<9}").parse().ok()?;
        }
        let rest = &s[i..];
        let offset_seconds = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || rb[3] != b':' || !(rb[0] == b'+' || rb[0] == b'-') {
                    return None;
                }
                let h: i32 = rest[1..3].parse().ok()?;
                let m: i32 = rest[4..6].parse().ok()?;
                if h > 23 || m > 59 {
                    return None;
                }
                let v = h * 3600 + m * 60;
                if rb[0] == b'-' {
                    -v
                } else {
                    v
                }
            }
        };
        Some(Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset_seconds,
        })
    }
}

/// The list of mapping keys from the document root to a value (spec §2.2).
/// Array elements add nothing.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct KeyPath(pub Vec<String>);

impl KeyPath {
    /// The AES-GCM additional data: keys joined with `:` plus a trailing `:`.
    pub fn aad(&self) -> String {
        aad_of(&self.0)
    }
}

/// The AES-GCM additional data of the key path `keys` (see [`KeyPath::aad`]), without
/// building a `KeyPath` first: the walks call this once per value.
pub fn aad_of(keys: &[String]) -> String {
    let mut s = String::with_capacity(keys.iter().map(|k| k.len() + 1).sum::<usize>() + 1);
    for k in keys {
        s.push_str(k);
        s.push(':');
    }
    if keys.is_empty() {
        // A top-level comment has the AAD ":" (spec §2.2).
        s.push(':');
    }
    s
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths are shown like sops' --extract syntax: ["a"]["b"].
        if self.0.is_empty() {
            return f.write_str("(document root)");
        }
        for k in &self.0 {
            write!(f, "[{k:?}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_joins_keys_with_trailing_colon() {
        let p = KeyPath(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(p.aad(), "a:b:c:");
        assert_eq!(KeyPath::default().aad(), ":");
    }

    #[test]
    fn timestamp_round_trips_go_rfc3339_nano() {
        let t = Timestamp::parse_rfc3339("2001-12-14T21:59:43.10-05:00").unwrap();
        assert_eq!(t.to_rfc3339_nano(), "2001-12-14T21:59:43.1-05:00");
        assert_eq!(t.to_rfc3339(), "2001-12-14T21:59:43-05:00");
        let z = Timestamp::parse_rfc3339("2026-11-24T13:26:18Z").unwrap();
        assert_eq!(z.to_rfc3339_nano(), "2026-11-24T13:26:18Z");
        assert!(Timestamp::parse_rfc3339("2026-11-24 13:26:18Z").is_none());
    }

    #[test]
    fn value_debug_hides_scalars() {
        let mut m = Mapping::new();
        m.push("password", Value::str("hunter2"));
        let dbg = format!("{:?}", Value::Map(m));
        assert!(dbg.contains("password"));
        assert!(!dbg.contains("hunter2"));
    }
}
