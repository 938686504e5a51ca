//! Field paths and field sets, the unit of ownership in `metadata.managedFields`
//! (the `FieldsV1` encoding: `f:name`, `k:{"key":..}`, `v:value`, `.`).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::resources::{ListType, ResourceType};

/// One step in a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Elem {
    /// A field of an object (`f:name`).
    Field(String),
    /// An item of a map-list, by its key fields as compact JSON (`k:{"name":"a"}`).
    Key(String),
    /// An item of a set-list, by its value as JSON (`v:"x"`).
    Value(String),
}

/// A path from the object root.
pub type Path = Vec<Elem>;

/// A set of owned paths. A path that is a prefix of others is itself a member
/// only when listed (FieldsV1's `.`).
pub type FieldSet = BTreeSet<Path>;

/// The metadata fields kube-apiserver never records in managedFields.
const STRIPPED_META: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Which part of an object a write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (no status subresource).
    All,
    /// Everything but `status` (main resource of a kind with a status subresource).
    NoStatus,
    /// Only `status` (the `/status` subresource).
    StatusOnly,
}

fn field_names(path: &[Elem]) -> Vec<&str> {
    path.iter()
        .filter_map(|e| match e {
            Elem::Field(f) => Some(f.as_str()),
            _ => None,
        })
        .collect()
}

/// The key of a map-list item: the listed key fields as compact JSON.
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m).to_string()
}

/// The fields an object sets, as server-side apply owns them.
pub fn set_of(rt: &ResourceType, obj: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            match (scope, k == "status") {
                (Scope::NoStatus, true) | (Scope::StatusOnly, false) => continue,
                _ => {}
            }
            let p = vec![Elem::Field(k.clone())];
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta {
                        if STRIPPED_META.contains(&mk.as_str()) {
                            continue;
                        }
                        let mut mp = p.clone();
                        mp.push(Elem::Field(mk.clone()));
                        walk(rt, mv, &mut mp, &mut out);
                    }
                }
                continue;
            }
            let mut p = p;
            walk(rt, v, &mut p, &mut out);
        }
    }
    out
}

fn walk(rt: &ResourceType, v: &Value, at: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                at.push(Elem::Field(k.clone()));
                walk(rt, c, at, out);
                at.pop();
            }
        }
        Value::Array(items) => match rt.list_type(&field_names(at)) {
            ListType::Atomic => {
                out.insert(at.clone());
            }
            ListType::Map(keys) => {
                for item in items {
                    at.push(Elem::Key(item_key(item, &keys)));
                    out.insert(at.clone());
                    if let Some(m) = item.as_object() {
                        for (k, c) in m {
                            at.push(Elem::Field(k.clone()));
                            walk(rt, c, at, out);
                            at.pop();
                        }
                    }
                    at.pop();
                }
            }
            ListType::Set => {
                for item in items {
                    at.push(Elem::Value(item.to_string()));
                    out.insert(at.clone());
                    at.pop();
                }
            }
        },
        _ => {
            out.insert(at.clone());
        }
    }
}

fn find_item(items: &[Value], e: &Elem) -> Option<usize> {
    match e {
        Elem::Key(k) => {
            let want: Value = serde_json::from_str(k).ok()?;
            let keys: Vec<String> = want.as_object()?.keys().cloned().collect();
            let canonical = want.to_string();
            items.iter().position(|it| item_key(it, &keys) == canonical)
        }
        Elem::Value(v) => {
            let want: Value = serde_json::from_str(v).ok()?;
            items.iter().position(|it| *it == want)
        }
        Elem::Field(_) => None,
    }
}

/// The value at a path, if present.
pub fn get<'a>(obj: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut cur = obj;
    for e in path {
        cur = match (e, cur) {
            (Elem::Field(f), Value::Object(m)) => m.get(f)?,
            (_, Value::Array(items)) => &items[find_item(items, e)?],
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the value at a path; parents emptied by the removal go too (not metadata).
pub fn remove(obj: &mut Value, path: &[Elem]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *obj;
    for e in parent {
        let next = match (e, cur) {
            (Elem::Field(f), Value::Object(m)) => m.get_mut(f),
            (_, Value::Array(items)) => match find_item(items, e) {
                Some(i) => items.get_mut(i),
                None => None,
            },
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    let emptied = match (last, cur) {
        (Elem::Field(f), Value::Object(m)) => {
            m.remove(f);
            m.is_empty()
        }
        (_, Value::Array(items)) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
            items.is_empty()
        }
        _ => false,
    };
    if emptied && parent.len() > 1 {
        remove(obj, parent);
    }
}

/// The JSON form of one path element in FieldsV1.
fn encode_elem(e: &Elem) -> String {
    match e {
        Elem::Field(f) => format!("f:{f}"),
        Elem::Key(k) => format!("k:{k}"),
        Elem::Value(v) => format!("v:{v}"),
    }
}

fn decode_elem(s: &str) -> Option<Elem> {
    let (tag, rest) = s.split_at_checked(2)?;
    match tag {
        "f:" => Some(Elem::Field(rest.into())),
        "k:" => Some(Elem::Key(
            serde_json::from_str::<Value>(rest).ok()?.to_string(),
        )),
        "v:" => Some(Elem::Value(
            serde_json::from_str::<Value>(rest).ok()?.to_string(),
        )),
        _ => None,
    }
}

/// FieldsV1 JSON of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for p in set {
        let mut cur = &mut root;
        for e in p {
            cur = cur
                .as_object_mut()
                .expect("FieldsV1 node is an object")
                .entry(encode_elem(e))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    // A member with children of its own is marked with ".".
    for p in set {
        if set
            .range(p.clone()..)
            .nth(1)
            .is_some_and(|q| q.starts_with(p))
        {
            let mut cur = &mut root;
            for e in p {
                cur = cur.get_mut(encode_elem(e)).expect("inserted above");
            }
            cur.as_object_mut()
                .expect("object")
                .insert(".".into(), Value::Object(Map::new()));
        }
    }
    root
}

/// A set from FieldsV1 JSON (unknown entries are skipped).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, at: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() && !at.is_empty() {
            out.insert(at.clone());
            return;
        }
        for (k, c) in m {
            if k == "." {
                out.insert(at.clone());
                continue;
            }
            if let Some(e) = decode_elem(k) {
                at.push(e);
                rec(c, at, out);
                at.pop();
            }
        }
    }
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// kube-apiserver's dotted form of a path in conflict messages (`.data.key`, `.spec.list[name="a"]`).
pub fn display(path: &[Elem]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            Elem::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Elem::Key(k) => {
                let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = v
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Elem::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// Only the paths that still exist in `obj`.
pub fn prune(set: &FieldSet, obj: &Value) -> FieldSet {
    set.iter()
        .filter(|p| get(obj, p).is_some())
        .cloned()
        .collect()
}
