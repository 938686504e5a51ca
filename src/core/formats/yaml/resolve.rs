//! go-yaml v3 scalar resolution as sops sees it (spec §1.6), shared by the parser
//! (plain scalars → typed values) and the emitter (can a string be written plain?).

use crate::core::tree::Timestamp;

/// What a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// null
    Null,
    /// bool
    Bool(bool),
    /// int64
    Int(i64),
    /// An integer that only fits uint64 (sops cannot encrypt it).
    Uint64,
    /// float64
    Float(f64),
    /// timestamp
    Time(Timestamp),
    /// The merge key `<<`.
    Merge,
    /// A string.
    Str,
}

/// Resolves a plain (unquoted, untagged) scalar like go-yaml v3.
pub fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        "<<" => return Resolved::Merge,
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first == b'.' {
        if let Some(f) = go_parse_float(s) {
            return Resolved::Float(f);
        }
        return Resolved::Str;
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return Resolved::Str;
    }
    // Numbers and times are made of digits, signs, `._: `, hex digits, the `x`/`o`/`b`
    // prefixes and the `T`/`t`/`Z` of times; any other byte makes a string. (Checking
    // the forms one by one for random text cost 2% of decrypting a large file.)
    let numeric = |c: u8| {
        c.is_ascii_hexdigit()
            || matches!(
                c,
                b'+' | b'-'
                    | b'.'
                    | b'_'
                    | b':'
                    | b' '
                    | b'x'
                    | b'X'
                    | b'o'
                    | b'O'
                    | b't'
                    | b'T'
                    | b'Z'
            )
    };
    if !s.bytes().all(numeric) {
        return Resolved::Str;
    }
    if let Some(t) = parse_timestamp(s) {
        return Resolved::Time(t);
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    if let Some(i) = go_parse_int(&plain) {
        return Resolved::Int(i);
    }
    if go_parse_uint(&plain) {
        return Resolved::Uint64;
    }
    if is_yaml_float(&plain) {
        if let Some(f) = go_parse_float(&plain) {
            return Resolved::Float(f);
        }
    }
    Resolved::Str
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go `strconv.ParseFloat(s, 64)` on the decimal forms YAML uses; `None` on syntax or
/// range errors.
pub fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.is_empty()
        || !t
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let f: f64 = t.parse().ok()?;
    if f.is_infinite() {
        return None;
    }
    Some(f)
}

/// Go `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b` prefixes, a leading `0` means octal.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mag = parse_magnitude(body)?;
    if neg {
        if mag <= (i64::MAX as u64) + 1 {
            Some((-(mag as i128)) as i64)
        } else {
            None
        }
    } else if mag <= i64::MAX as u64 {
        Some(mag as i64)
    } else {
        None
    }
}

fn go_parse_uint(s: &str) -> bool {
    !s.starts_with(['-', '+']) && parse_magnitude(s).is_some()
}

fn parse_magnitude(body: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (r, 16)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (r, 8)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (r, 2)
        } else if body.len() > 1 && body.starts_with('0') {
            (&body[1..], 8)
        } else {
            (body, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// go-yaml's timestamp forms: `2006-1-2T15:4:5.999999999Z07:00` (also `t`),
/// `2006-1-2 15:4:5.999999999` (UTC) and `2006-1-2`.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let mut i = 5;
    let num = |i: &mut usize, max: usize| -> Option<u32> {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - st < max {
            *i += 1;
        }
        if *i == st {
            return None;
        }
        s[st..*i].parse().ok()
    };
    let year: i32 = s[..4].parse().ok()?;
    let month = num(&mut i, 2)? as u8;
    if b.get(i) != Some(&b'-') {
        return None;
    }
    i += 1;
    let day = num(&mut i, 2)? as u8;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut t = Timestamp {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
        offset_seconds: 0,
    };
    if i == b.len() {
        return Some(t);
    }
    let sep = b[i];
    if !(sep == b'T' || sep == b't' || sep == b' ') {
        return None;
    }
    i += 1;
    t.hour = num(&mut i, 2)? as u8;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    t.minute = num(&mut i, 2)? as u8;
    if b.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    t.second = num(&mut i, 2)? as u8;
    if t.hour > 23 || t.minute > 59 || t.second > 59 {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[st..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        t.nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let rest = &s[i..];
    if sep == b' ' {
        return rest.is_empty().then_some(t);
    }
    match rest {
        "Z" => Some(t),
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !(rb[0] == b'+' || rb[0] == b'-') || rb[3] != b':' {
                return None;
            }
            let h: i32 = rest[1..3].parse().ok()?;
            let m: i32 = rest[4..6].parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            t.offset_seconds = if rb[0] == b'-' { -off } else { off };
            Some(t)
        }
    }
}

/// True when go-yaml would write `s` as a plain scalar: it re-reads as a string and is
/// not a YAML 1.1 sexagesimal float or boolean (spec §7.1 step 1).
pub fn plain_rereads_as_string(s: &str) -> bool {
    !s.is_empty() && resolve_plain(s) == Resolved::Str && !is_base60_float(s) && !is_old_bool(s)
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 2 {
            i += 1;
        }
        let g = &s[st..i];
        let ok = match g.len() {
            1 => true,
            2 => g.as_bytes()[0] <= b'5',
            _ => false,
        };
        if !ok {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_go_yaml_v3() {
        assert_eq!(resolve_plain("012"), Resolved::Int(10));
        assert_eq!(resolve_plain("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_plain("1_000"), Resolved::Int(1000));
        assert_eq!(resolve_plain("08"), Resolved::Float(8.0));
        assert_eq!(resolve_plain(".5"), Resolved::Float(0.5));
        assert_eq!(resolve_plain("1e400"), Resolved::Str);
        assert_eq!(resolve_plain("yes"), Resolved::Str);
        assert_eq!(resolve_plain("18446744073709551615"), Resolved::Uint64);
        assert!(matches!(resolve_plain("2001-12-14"), Resolved::Time(_)));
        assert!(matches!(
            resolve_plain("-9223372036854775808"),
            Resolved::Int(i64::MIN)
        ));
        assert!(!plain_rereads_as_string("yes"));
        assert!(!plain_rereads_as_string("1:20"));
        assert!(plain_rereads_as_string("hello"));
    }
}
