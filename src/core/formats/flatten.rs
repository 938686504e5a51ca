//! Flattening of the metadata block for the dotenv and INI stores (spec §6.4):
//! `age__list_0__map_recipient`-style keys, nulls dropped, newlines escaped.

use crate::core::number;
use crate::core::secret::Text;
use crate::core::tree::{MapEntry, Mapping, SeqEntry, Sequence, Value};

fn flatten_into(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null => {}
        Value::Map(m) => {
            for (k, v) in m.pairs() {
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}__map_{k}")
                };
                flatten_into(&key, v, out);
            }
        }
        Value::Seq(s) => {
            let mut i = 0;
            for item in &s.items {
                if let SeqEntry::Value(v) = item {
                    flatten_into(&format!("{prefix}__list_{i}"), v, out);
                    i += 1;
                }
            }
        }
        Value::Str(t) => out.push((
            prefix.to_string(),
            String::from_utf8_lossy(t.expose_secret()).replace('\n', "\\n"),
        )),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Int(i) => out.push((prefix.to_string(), i.to_string())),
        Value::Float(f) => out.push((prefix.to_string(), number::format_f(*f))),
        Value::Time(t) => out.push((prefix.to_string(), t.to_rfc3339_nano())),
    }
}

/// Flattens a metadata mapping into `(flat key, value)` pairs, sorted by key
/// (bytewise), with newlines in values written as `\n`.
pub fn flatten(meta: &Mapping) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_into("", &Value::Map(meta.clone()), &mut out);
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out
}

enum Step {
    Map(String),
    List(usize),
}

fn parse_steps(flat: &str) -> Option<(String, Vec<Step>)> {
    let mut parts = flat.split("__");
    let top = parts.next()?.to_string();
    let mut steps = Vec::new();
    for p in parts {
        if let Some(k) = p.strip_prefix("map_") {
            steps.push(Step::Map(k.to_string()));
        } else if let Some(i) = p.strip_prefix("list_") {
            steps.push(Step::List(i.parse().ok()?));
        } else {
            return None;
        }
    }
    Some((top, steps))
}

fn empty_for(step: Option<&Step>) -> Value {
    match step {
        Some(Step::Map(_)) => Value::Map(Mapping::new()),
        Some(Step::List(_)) => Value::Seq(Sequence::default()),
        None => Value::Null,
    }
}

/// Puts `leaf` at `steps` under `slot`. `budget` is how many list entries may still be
/// created: a list is padded up to the index it is given, and an index is only text in
/// the file, so without a bound one line could ask for billions of entries. Returns
/// false, having created no list entry for it, when the index is past the budget.
fn insert(slot: &mut Value, steps: &[Step], leaf: &str, budget: &mut usize) -> bool {
    let Some((first, rest)) = steps.split_first() else {
        *slot = Value::Str(Text::from(leaf));
        return true;
    };
    match first {
        Step::Map(k) => {
            if !matches!(slot, Value::Map(_)) {
                *slot = Value::Map(Mapping::new());
            }
            let Value::Map(m) = slot else {
                unreachable!("just set")
            };
            if m.get(k).is_none() {
                m.push(k.clone(), empty_for(rest.first()));
            }
            insert(m.get_mut(k).expect("just inserted"), rest, leaf, budget)
        }
        Step::List(i) => {
            if !matches!(slot, Value::Seq(_)) {
                *slot = Value::Seq(Sequence::default());
            }
            let Value::Seq(s) = slot else {
                unreachable!("just set")
            };
            // Saturating: `list_18446744073709551615` is a valid usize.
            let missing = i.saturating_add(1).saturating_sub(s.items.len());
            if missing > *budget {
                return false;
            }
            *budget -= missing;
            while s.items.len() <= *i {
                s.items.push(SeqEntry::Value(empty_for(rest.first())));
            }
            match &mut s.items[*i] {
                SeqEntry::Value(v) => insert(v, rest, leaf, budget),
                SeqEntry::Comment(_) => true,
            }
        }
    }
}

/// Rebuilds the metadata mapping from flat pairs (any order). `unescape` turns `\n`
/// back into newlines (INI; dotenv's line parser already did it).
///
/// Every list entry sops writes holds at least one pair, so all the lists together
/// never need more entries than there are pairs: that is the budget. A pair whose list
/// index is past it is kept as a flat key, like a name that does not parse.
pub fn unflatten(pairs: &[(String, String)], unescape: bool) -> Mapping {
    let mut m = Mapping::new();
    let mut budget = pairs.len();
    for (flat, value) in pairs {
        let value = if unescape {
            value.replace("\\n", "\n")
        } else {
            value.clone()
        };
        let Some((top, steps)) = parse_steps(flat) else {
            m.push(flat.clone(), Value::Str(Text::from(value)));
            continue;
        };
        let fresh = m.get(&top).is_none();
        if fresh {
            m.push(top.clone(), empty_for(steps.first()));
        }
        let slot = m.get_mut(&top).expect("just inserted");
        if !insert(slot, &steps, &value, &mut budget) {
            if fresh {
                m.remove(&top);
            }
            m.push(flat.clone(), Value::Str(Text::from(value)));
        }
    }
    // Keep entries in a stable order for readers.
    m.entries.sort_by(|a, b| match (a, b) {
        (MapEntry::Pair { key: x, .. }, MapEntry::Pair { key: y, .. }) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_and_unflatten_round_trip() {
        let mut age = Mapping::new();
        age.push("recipient", Value::str("age1x"));
        age.push("enc", Value::str("-----BEGIN\nabc\n-----END\n"));
        let mut meta = Mapping::new();
        meta.push(
            "age",
            Value::Seq(Sequence {
                items: vec![SeqEntry::Value(Value::Map(age))],
            }),
        );
        meta.push("lastmodified", Value::str("2026-01-01T00:00:00Z"));
        meta.push("hc_vault", Value::Null);
        let flat = flatten(&meta);
        assert_eq!(
            flat[0],
            (
                "age__list_0__map_enc".to_string(),
                "-----BEGIN\\nabc\\n-----END\\n".to_string()
            )
        );
        assert_eq!(flat.len(), 3);
        let back = unflatten(&flat, true);
        let age = back.get("age").unwrap();
        let Value::Seq(s) = age else {
            panic!("age must be a list")
        };
        let SeqEntry::Value(Value::Map(entry)) = &s.items[0] else {
            panic!("entry")
        };
        assert_eq!(
            entry.get("enc").unwrap().as_str(),
            Some("-----BEGIN\nabc\n-----END\n")
        );
    }

    /// Issue 16 (found by scripts/fuzz, parser `ini`): `age__list_<huge>__…` in a
    /// dotenv or INI file made the un-flattening pad the list up to that index, so one
    /// line of a repository file took gigabytes. An index past what the pairs can fill
    /// now stays a flat key like any other unparsable name.
    #[test]
    fn r16_a_list_index_past_the_pairs_allocates_no_padding_and_stays_a_flat_key() {
        let pairs = [
            (
                "age__list_0__map_recipient".to_string(),
                "age1x".to_string(),
            ),
            ("age__list_100000__map_enc".to_string(), "e".to_string()),
            (
                "age__list_09999999999999999999__map_recipient".to_string(),
                "age1y".to_string(),
            ),
            (
                "age__list_18446744073709551615__map_enc".to_string(),
                "f".to_string(),
            ),
        ];
        let back = unflatten(&pairs, true);
        let Some(Value::Seq(s)) = back.get("age") else {
            panic!("age must be a list")
        };
        assert_eq!(s.items.len(), 1, "only the entry the pairs fill");
        assert_eq!(
            back.get("age__list_100000__map_enc")
                .and_then(Value::as_str),
            Some("e")
        );
        assert!(back
            .get("age__list_09999999999999999999__map_recipient")
            .is_some());
        assert!(back
            .get("age__list_18446744073709551615__map_enc")
            .is_some());
    }
}
