//! The three classic PATCH bodies: JSON merge patch (RFC 7386), strategic merge
//! patch (merge with keyed lists and `$patch` directives) and JSON patch (RFC 6902).

use serde_json::{Map, Value};

use super::fields::item_key;
use super::resources::{ListType, ResourceType};

/// RFC 7386: objects merge, `null` removes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge patch for the built-in kinds: like a merge patch, but lists
/// with a merge strategy merge by key (or by value for sets) and honour
/// `$patch: delete|replace`, `$deleteFromPrimitiveList/<field>` and `$retainKeys`-free forms.
pub fn strategic_merge(rt: &ResourceType, target: &mut Value, patch: &Value) -> Result<(), String> {
    let mut at = Vec::new();
    strategic(rt, target, patch, &mut at)
}

fn strategic(
    rt: &ResourceType,
    target: &mut Value,
    patch: &Value,
    at: &mut Vec<String>,
) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = p.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k == "$patch" || k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(del)) = (t.get_mut(field), v) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        at.push(k.clone());
        let refs: Vec<&str> = at.iter().map(String::as_str).collect();
        let lt = rt.list_type(&refs);
        match (v, lt) {
            (Value::Array(items), ListType::Map(keys)) => {
                let cur = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if !cur.is_array() {
                    *cur = Value::Array(vec![]);
                }
                let list = cur.as_array_mut().expect("array");
                for item in items {
                    let key = item_key(item, &keys);
                    let pos = list.iter().position(|i| item_key(i, &keys) == key);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic(rt, &mut list[i], item, at)?,
                        (None, false) => {
                            let mut fresh = Value::Object(Map::new());
                            strategic(rt, &mut fresh, item, at)?;
                            list.push(fresh);
                        }
                    }
                }
            }
            (Value::Array(items), ListType::Set) => {
                let cur = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if !cur.is_array() {
                    *cur = Value::Array(vec![]);
                }
                let list = cur.as_array_mut().expect("array");
                for item in items {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                }
            }
            (Value::Object(_), _) => {
                strategic(rt, t.entry(k.clone()).or_insert(Value::Null), v, at)?;
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
        at.pop();
    }
    Ok(())
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(ptr: &str) -> Result<Vec<String>, String> {
    if ptr.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = ptr.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer {ptr:?}"));
    };
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, parts: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(p)
                .ok_or_else(|| format!("missing path segment {p:?}"))?,
            Value::Array(a) => {
                let i: usize = p.parse().map_err(|_| format!("bad array index {p:?}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("array index {i} out of range"))?
            }
            _ => return Err(format!("cannot traverse into a scalar at {p:?}")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, ptr: &str, value: Value) -> Result<(), String> {
    let parts = pointer_parts(ptr)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| format!("bad array index {last:?}"))?;
                if i > a.len() {
                    return Err(format!("array index {i} out of range"));
                }
                a.insert(i, value);
            }
        }
        _ => return Err(format!("cannot add to a scalar at {ptr:?}")),
    }
    Ok(())
}

fn remove(doc: &mut Value, ptr: &str) -> Result<Value, String> {
    let parts = pointer_parts(ptr)?;
    let Some((last, parent)) = parts.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("path {ptr:?} does not exist")),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("bad array index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("array index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("path {ptr:?} does not exist")),
    }
}

/// RFC 6902: add, remove, replace, move, copy and test, all or nothing.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut work = doc.clone();
    for op in ops {
        let path = op["path"].as_str().ok_or("operation without a path")?;
        match op["op"].as_str() {
            Some("add") => add(
                &mut work,
                path,
                op.get("value").cloned().ok_or("add without a value")?,
            )?,
            Some("remove") => {
                remove(&mut work, path)?;
            }
            Some("replace") => {
                remove(&mut work, path)?;
                add(
                    &mut work,
                    path,
                    op.get("value").cloned().ok_or("replace without a value")?,
                )?;
            }
            Some("move") => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let v = remove(&mut work, from)?;
                add(&mut work, path, v)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let v = work
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("path {from:?} does not exist"))?;
                add(&mut work, path, v)?;
            }
            Some("test") => {
                let want = op.get("value").ok_or("test without a value")?;
                if work.pointer(path) != Some(want) {
                    return Err(format!("test operation failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    *doc = work;
    Ok(())
}
