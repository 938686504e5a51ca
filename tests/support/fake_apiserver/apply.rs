//! Server-side apply and managedFields bookkeeping: who owns which field, conflicts
//! between managers, `force`, and removal of fields a manager stops applying.

use serde_json::{json, Map, Value};

use super::errors::{ApiError, ApiResult};
use super::fields::{self, FieldSet, Scope};
use super::resources::{ListType, ResourceType};

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion the manager wrote with.
    pub api_version: String,
    /// Last time this entry's field set changed.
    pub time: String,
    /// `Some("status")` for writes through the status subresource.
    pub subresource: Option<String>,
    /// The owned fields.
    pub set: FieldSet,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }

    /// How kube-apiserver names this manager in a conflict message.
    fn who(&self) -> String {
        if self.operation == "Apply" {
            format!("\"{}\"", self.manager)
        } else {
            format!("\"{}\" using {}", self.manager, self.api_version)
        }
    }
}

/// Reads `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().into(),
                    operation: e["operation"].as_str().unwrap_or("Update").into(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                    time: e["time"].as_str().unwrap_or_default().into(),
                    subresource: e["subresource"].as_str().map(str::to_string),
                    set: fields::from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `metadata.managedFields` (removed when empty).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let meta = obj
        .as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let meta = meta.as_object_mut().expect("metadata is an object");
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&e.set),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

/// Drops owned paths that no longer exist and entries left empty; keeps the old
/// timestamp of entries whose set did not change (so a no-op write stays a no-op).
pub fn settle(mut list: Vec<Entry>, obj: &Value, before: &[Entry]) -> Vec<Entry> {
    for e in &mut list {
        e.set = fields::prune(&e.set, obj);
        if let Some(old) = before
            .iter()
            .find(|o| o.same_owner(&e.manager, &e.operation, e.subresource.as_deref()))
        {
            if old.set == e.set {
                e.time = old.time.clone();
                e.api_version = old.api_version.clone();
            }
        }
    }
    list.retain(|e| !e.set.is_empty());
    list
}

/// Ownership after a non-apply write (create, update, patch): the writer takes every
/// field it changed, from everyone, without conflicts.
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    rt: &ResourceType,
    before: &[Entry],
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    scope: Scope,
    sub: Option<&str>,
    now: &str,
) -> Vec<Entry> {
    let new_set = fields::set_of(rt, new, scope);
    let changed: FieldSet = match old {
        None => new_set,
        Some(old) => new_set
            .into_iter()
            .filter(|p| {
                fields::get(old, p) != fields::get(new, p)
                    || is_item(p) && fields::get(old, p).is_none()
            })
            .collect(),
    };
    let mut list = before.to_vec();
    for e in &mut list {
        if !e.same_owner(manager, "Update", sub) {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match list
            .iter_mut()
            .find(|e| e.same_owner(manager, "Update", sub))
        {
            Some(e) => {
                e.set.extend(changed);
                e.time = now.into();
                e.api_version = rt.api_version();
            }
            None => list.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: rt.api_version(),
                time: now.into(),
                subresource: sub.map(str::to_string),
                set: changed,
            }),
        }
    }
    settle(list, new, before)
}

fn is_item(p: &[fields::Elem]) -> bool {
    !matches!(p.last(), Some(fields::Elem::Field(_)))
}

/// Keeps only the part of an applied/written object that a scope covers.
pub fn scoped(obj: &Value, scope: Scope) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        match scope {
            Scope::All => {}
            Scope::NoStatus => {
                m.remove("status");
            }
            Scope::StatusOnly => {
                m.retain(|k, _| {
                    k == "status" || k == "apiVersion" || k == "kind" || k == "metadata"
                });
            }
        }
    }
    out
}

/// The outcome of a server-side apply: the merged object and its new managedFields.
pub struct Applied {
    /// The object to store (system metadata is settled by the store).
    pub object: Value,
    /// managedFields after the apply.
    pub entries: Vec<Entry>,
}

/// Server-side apply of `applied` by `manager` onto `live` (None: create).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    rt: &ResourceType,
    name: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    sub: Option<&str>,
    now: &str,
) -> ApiResult<Applied> {
    let applied = scoped(applied, scope);
    let new_set = fields::set_of(rt, &applied, scope);
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    let before = entries(live_v);
    let mut list = before.clone();

    // Conflicts: fields another manager owns whose value this apply would change.
    let mut conflicts: Vec<(usize, fields::Path)> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if e.same_owner(manager, "Apply", sub) {
            continue;
        }
        for p in e.set.intersection(&new_set) {
            if is_item(p) {
                continue;
            }
            if fields::get(&applied, p) != fields::get(live_v, p) {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let named: Vec<(String, String)> = conflicts
                .iter()
                .map(|(i, p)| (list[*i].who(), fields::display(p)))
                .collect();
            return Err(ApiError::apply_conflicts(rt, name, &named));
        }
        for (i, p) in &conflicts {
            list[*i].set.remove(p);
        }
    }

    // Merge the applied configuration into the live object.
    let mut object = live_v.clone();
    if object.get("metadata").is_none() {
        object["metadata"] = json!({});
    }
    merge(rt, &mut object, &applied, &mut Vec::new());

    // Fields this manager applied before, applies no longer, and nobody else owns: removed.
    let prev: FieldSet = list
        .iter()
        .find(|e| e.same_owner(manager, "Apply", sub))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let dropped: Vec<&fields::Path> = prev.difference(&new_set).collect();
    for p in dropped.into_iter().rev() {
        let owned_elsewhere = list
            .iter()
            .any(|e| !e.same_owner(manager, "Apply", sub) && e.set.contains(p));
        if !owned_elsewhere {
            fields::remove(&mut object, p);
        }
    }

    match list
        .iter_mut()
        .find(|e| e.same_owner(manager, "Apply", sub))
    {
        Some(e) => {
            e.set = new_set;
            e.time = now.into();
            e.api_version = rt.api_version();
        }
        None => list.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: rt.api_version(),
            time: now.into(),
            subresource: sub.map(str::to_string),
            set: new_set,
        }),
    }
    let entries = settle(list, &object, &before);
    Ok(Applied { object, entries })
}

/// Merges an applied configuration: objects field by field, map-lists by key,
/// set-lists by value, everything else replaced; `null` removes a field.
fn merge(rt: &ResourceType, live: &mut Value, applied: &Value, at: &mut Vec<String>) {
    let Value::Object(a) = applied else {
        *live = applied.clone();
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    let l = live.as_object_mut().expect("made an object above");
    for (k, v) in a {
        if v.is_null() {
            l.remove(k);
            continue;
        }
        at.push(k.clone());
        let refs: Vec<&str> = at.iter().map(String::as_str).collect();
        match (v, rt.list_type(&refs)) {
            (Value::Array(items), ListType::Map(keys)) => {
                let cur = l.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if !cur.is_array() {
                    *cur = Value::Array(vec![]);
                }
                let list = cur.as_array_mut().expect("array");
                for item in items {
                    let key = fields::item_key(item, &keys);
                    match list.iter().position(|i| fields::item_key(i, &keys) == key) {
                        Some(i) => merge(rt, &mut list[i], item, at),
                        None => list.push(item.clone()),
                    }
                }
            }
            (Value::Array(items), ListType::Set) => {
                let cur = l.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
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
            (Value::Object(_), _) => merge(rt, l.entry(k.clone()).or_insert(Value::Null), v, at),
            _ => {
                l.insert(k.clone(), v.clone());
            }
        }
        at.pop();
    }
}
