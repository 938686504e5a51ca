//! The object store: one global resourceVersion counter, objects keyed by
//! (group, resource, namespace, name), a bounded history of changes for watches,
//! and the write rules kube-apiserver applies to every object (system metadata,
//! generation, status subresource, finalizers, garbage collection).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::apply::{self, Entry};
use super::errors::{ApiError, ApiResult};
use super::fields::Scope;
use super::resources::{self, ResourceType};
use super::schema;
use super::validation;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace, `""` for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated (including getting a deletionTimestamp).
    Modified,
    /// Removed from storage.
    Deleted,
}

/// One entry of the change history that watches replay.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of this change.
    pub rv: u64,
    /// Where the object lives.
    pub key: Key,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for Deleted: its last state, with the deletion's RV).
    pub object: Value,
    /// The object before the change (None for Added).
    pub old: Option<Value>,
}

/// Options of a DELETE.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `propagationPolicy`: Orphan keeps dependents; Background/Foreground delete them.
    pub orphan: bool,
}

/// Who writes and through which endpoint.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// Field manager recorded in managedFields.
    pub manager: String,
    /// `Some("status")` for the status subresource.
    pub sub: Option<String>,
    /// managedFields computed by server-side apply (None: track as an Update).
    pub applied: Option<Vec<Entry>>,
}

struct Watcher {
    group: String,
    plural: String,
    tx: UnboundedSender<Arc<Change>>,
}

/// The whole state of the fake API server.
pub struct Store {
    /// The last resourceVersion handed out.
    pub rv: u64,
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// How many changes the history keeps.
    pub history_cap: usize,
    /// A watch from resourceVersion R is complete iff R >= history_start.
    pub history_start: u64,
    watchers: Vec<Watcher>,
    seq: u64,
    seed: u64,
    /// Pod-template changes per workload (creation not counted): how many rollouts a
    /// workload was asked for (`FakeApiServer::template_changes`).
    pub template_changes: BTreeMap<Key, usize>,
}

/// RFC 3339 UTC time with the given number of fractional digits (0 or 6).
pub fn timestamp(micros: bool) -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if micros {
        format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:06}Z",
            d.subsec_micros()
        )
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// The object without the fields every write changes, for no-op detection and generation.
fn without(obj: &Value, drop_meta: bool, drop_status: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        if drop_status {
            m.remove("status");
        }
        if drop_meta {
            m.remove("metadata");
        } else if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
    }
    o
}

impl Store {
    /// A store with the built-in kinds and the namespaces every cluster has.
    pub fn new(history_cap: usize) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
            ^ u64::from(std::process::id()) << 32;
        let mut s = Store {
            rv: 0,
            types: resources::builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_cap,
            history_start: 0,
            watchers: Vec::new(),
            seq: 0,
            seed,
            template_changes: BTreeMap::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            s.ensure_namespace(ns);
        }
        s
    }

    /// Every served kind.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The kind served at group/version/plural.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        Key {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                ns.into()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64 over a per-server seed: unique enough for uids and generateName.
        self.seq += 1;
        let mut z = self
            .seed
            .wrapping_add(self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn new_uid(&mut self) -> String {
        let (a, b) = (self.next_random(), self.next_random());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    /// An object with apiVersion/kind as served by this resource type.
    pub fn present(rt: &ResourceType, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
        o
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&Self::key(rt, ns, name))
            .map(|o| Self::present(rt, o))
    }

    /// Objects of a kind, in key order, optionally in one namespace.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<(Key, Value)> {
        let lo = Key {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range(lo..)
            .take_while(|(k, _)| k.group == rt.group && k.plural == rt.plural)
            .filter(|(k, _)| ns.is_none_or(|n| !rt.namespaced || k.namespace == n))
            .map(|(k, v)| (k.clone(), Self::present(rt, v)))
            .collect()
    }

    /// Creates a namespace if it does not exist.
    pub fn ensure_namespace(&mut self, ns: &str) {
        let rt = self
            .resource("", "v1", "namespaces")
            .expect("namespaces is built in");
        if self.get(&rt, "", ns).is_none() {
            let obj =
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } });
            self.create(
                &rt,
                "",
                obj,
                &WriteCtx {
                    manager: "fake-apiserver".into(),
                    sub: None,
                    applied: None,
                },
            )
            .expect("a valid namespace");
        }
    }

    fn emit(&mut self, rv: u64, key: Key, kind: ChangeKind, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            rv,
            key,
            kind,
            object,
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_cap {
            if let Some(c) = self.history.pop_front() {
                self.history_start = c.rv;
            }
        }
        self.watchers.retain(|w| {
            if w.group != change.key.group || w.plural != change.key.plural {
                return !w.tx.is_closed();
            }
            w.tx.send(change.clone()).is_ok()
        });
    }

    /// Starts a watch. With `from = Some(rv)`: the changes after rv (410 if the history no
    /// longer has them); with None: synthetic ADDED events for every current object.
    /// Returns the backlog, the receiver of later changes, and the store's RV at that moment.
    #[allow(clippy::type_complexity)]
    pub fn subscribe(
        &mut self,
        rt: &ResourceType,
        from: Option<u64>,
    ) -> ApiResult<(
        Vec<Arc<Change>>,
        tokio::sync::mpsc::UnboundedReceiver<Arc<Change>>,
        u64,
    )> {
        let backlog: Vec<Arc<Change>> = match from {
            Some(rv) if rv < self.history_start => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    self.history_start
                )))
            }
            Some(rv) if rv > self.rv => {
                // kube-apiserver waits for a future RV; we have none coming, so say so.
                return Err(ApiError::from_code(
                    504,
                    format!("Too large resource version: {rv}, current: {}", self.rv),
                ));
            }
            Some(rv) => self
                .history
                .iter()
                .filter(|c| c.rv > rv && c.key.group == rt.group && c.key.plural == rt.plural)
                .cloned()
                .collect(),
            None => self
                .list(rt, None)
                .into_iter()
                .map(|(key, object)| {
                    let rv = object["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    Arc::new(Change {
                        rv,
                        key,
                        kind: ChangeKind::Added,
                        object,
                        old: None,
                    })
                })
                .collect(),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.watchers.push(Watcher {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            tx,
        });
        Ok((backlog, rx, self.rv))
    }

    /// Closes every open watch's feed (the HTTP side then drops the connections).
    pub fn drop_watchers(&mut self) -> usize {
        let n = self.watchers.len();
        self.watchers.clear();
        n
    }

    /// Number of open watches.
    pub fn watcher_count(&mut self) -> usize {
        self.watchers.retain(|w| !w.tx.is_closed());
        self.watchers.len()
    }

    /// Forgets the change history, as an etcd compaction does: the RV moves on (as any
    /// write elsewhere in a cluster would) and watches from older RVs get 410 Gone.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.history.clear();
        self.history_start = self.rv;
    }

    /// POST: a new object.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        self.check_type(rt, &obj)?;
        if obj["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if obj.get("metadata").is_none() {
            obj["metadata"] = json!({});
        }
        let mut name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            if let Some(prefix) = obj["metadata"]["generateName"].as_str() {
                const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let mut r = self.next_random();
                let suffix: String = (0..5)
                    .map(|_| {
                        let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                        r /= ALPHABET.len() as u64;
                        c
                    })
                    .collect();
                name = format!("{prefix}{suffix}");
                obj["metadata"]["name"] = json!(name);
            }
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                rt,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        self.check_names(rt, ns, &name, &mut obj)?;
        if rt.namespaced {
            let nsrt = self.resource("", "v1", "namespaces").expect("built in");
            match self.get(&nsrt, "", ns) {
                None => return Err(ApiError::namespace_not_found(ns)),
                Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        rt.qualified()
                    )))
                }
                Some(_) => {}
            }
        }
        if rt.status_subresource && rt.kind != "Namespace" {
            // Status is reset on create for kinds with a status subresource.
            obj.as_object_mut().expect("object").remove("status");
        }
        // Validation (rest.BeforeCreate) runs before storage finds the name taken.
        self.normalize(rt, None, &mut obj, &name)?;
        resources::prepare_for_create(rt, &mut obj);
        let key = Self::key(rt, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        let now = timestamp(false);
        let uid = self.new_uid();
        {
            let meta = obj["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            meta.insert("uid".into(), json!(uid));
            meta.insert("creationTimestamp".into(), json!(now));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
            if rt.generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        let scope = scope_of(rt, ctx.sub.as_deref());
        let managed = match &ctx.applied {
            // settle: a field the schema pruned is owned by nobody.
            Some(e) => apply::settle(e.clone(), &obj, &[]),
            None => apply::track_update(rt, &[], None, &obj, &ctx.manager, scope, None, &now),
        };
        apply::write_entries(&mut obj, &managed);
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let obj = Self::present(rt, &obj);
        self.objects.insert(key.clone(), obj.clone());
        self.after_write(rt, &obj);
        self.emit(self.rv, key, ChangeKind::Added, obj.clone(), None);
        Ok(obj)
    }

    /// PUT / PATCH / apply onto an existing object: `new` is the full desired object.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut new: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let key = Self::key(rt, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        self.check_type(rt, &new)?;
        if new.get("metadata").is_none() {
            new["metadata"] = json!({});
        }
        if new["metadata"]["name"].is_null() {
            new["metadata"]["name"] = json!(name);
        }
        self.check_names(rt, ns, name, &mut new)?;
        if let Some(rv) = new["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            if rv
                != old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            {
                return Err(ApiError::conflict(rt, name));
            }
        }
        let status_write = ctx.sub.as_deref() == Some("status");
        if rt.status_subresource {
            if status_write {
                // The status subresource changes status and nothing else (a
                // Deployment's also its annotations: see the resources.rs rule).
                let status = new.get("status").cloned();
                let annotations = new["metadata"]["annotations"].clone();
                new = old.clone();
                if resources::status_update_keeps_annotations(rt) {
                    new["metadata"]["annotations"] = annotations;
                }
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        new.as_object_mut().expect("object").remove("status");
                    }
                }
            } else {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().expect("object").remove("status");
                    }
                }
            }
        }
        {
            let old_meta = old["metadata"]
                .as_object()
                .expect("stored objects have metadata")
                .clone();
            let meta = new["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
            if old_meta.contains_key("deletionTimestamp") {
                let before: Vec<&Value> = old_meta
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                let added = meta
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|f| !before.contains(&f)));
                if added {
                    return Err(ApiError::invalid(
                        rt,
                        name,
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    ));
                }
            }
        }
        self.normalize(rt, Some(&old), &mut new, name)?;
        // A status write goes through the status strategy, which never bumps the generation.
        let template_changed =
            rt.generation && !status_write && resources::prepare_for_update(rt, &old, &mut new);
        let now = timestamp(false);
        let before = apply::entries(&old);
        let managed = match &ctx.applied {
            Some(e) => apply::settle(e.clone(), &new, &before),
            None => apply::track_update(
                rt,
                &before,
                Some(&old),
                &new,
                &ctx.manager,
                scope_of(rt, ctx.sub.as_deref()),
                ctx.sub.as_deref(),
                &now,
            ),
        };
        apply::write_entries(&mut new, &managed);
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let new = Self::present(rt, &new);
        if without(&new, false, false) == without(&Self::present(rt, &old), false, false) {
            // Nothing changed: kube-apiserver neither bumps the RV nor sends an event.
            return Ok(new);
        }
        self.rv += 1;
        let mut new = new;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let finalizers_left = new["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if new["metadata"]["deletionTimestamp"].is_string() && !finalizers_left {
            self.objects.remove(&key);
            self.emit(self.rv, key, ChangeKind::Deleted, new.clone(), Some(old));
            self.after_delete(rt, &new, false);
            return Ok(new);
        }
        self.objects.insert(key.clone(), new.clone());
        if template_changed {
            *self.template_changes.entry(key.clone()).or_default() += 1;
        }
        self.after_write(rt, &new);
        self.emit(self.rv, key, ChangeKind::Modified, new.clone(), Some(old));
        Ok(new)
    }

    /// DELETE: removes the object, or marks it for deletion while finalizers remain.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let key = Self::key(rt, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        let uid = old["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(want) = &opts.uid {
            if want != uid {
                return Err(ApiError::conflict_msg(
                    rt,
                    name,
                    &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
                ));
            }
        }
        let rv = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if let Some(want) = &opts.resource_version {
            if want != rv {
                return Err(ApiError::conflict_msg(rt, name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
                )));
            }
        }
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if has_finalizers {
            if old["metadata"]["deletionTimestamp"].is_string() {
                return Ok(old);
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(timestamp(false));
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            self.rv += 1;
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.objects.insert(key.clone(), new.clone());
            self.emit(self.rv, key, ChangeKind::Modified, new.clone(), Some(old));
            return Ok(new);
        }
        self.objects.remove(&key);
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(self.rv, key, ChangeKind::Deleted, gone.clone(), Some(old));
        self.after_delete(rt, &gone, opts.orphan);
        Ok(gone)
    }

    fn find_uid(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| o["metadata"]["uid"].as_str() == Some(uid))
    }

    /// Garbage collection (background propagation, done at once) and cascades of
    /// namespace and CRD deletion.
    fn after_delete(&mut self, rt: &ResourceType, gone: &Value, orphan: bool) {
        let uid = gone["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = gone["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if rt.group.is_empty() && rt.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.namespace == name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(t) = self
                    .types
                    .iter()
                    .find(|t| t.group == k.group && t.plural == k.plural)
                    .cloned()
                {
                    let _ = self.force_remove(&t, &k);
                }
            }
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            let defined = resources::from_crd(gone);
            if let Some(t) = defined.first() {
                let keys: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.group == t.group && k.plural == t.plural)
                    .cloned()
                    .collect();
                for k in keys {
                    let _ = self.force_remove(t, &k);
                }
                self.types
                    .retain(|x| !(x.group == t.group && x.plural == t.plural));
            }
        }
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(&uid)))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in dependents {
            let Some(t) = self
                .types
                .iter()
                .find(|t| t.group == k.group && t.plural == k.plural)
                .cloned()
            else {
                continue;
            };
            let Some(dep) = self.objects.get(&k).cloned() else {
                continue;
            };
            let refs = dep["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let remaining: Vec<Value> = refs
                .iter()
                .filter(|r| r["uid"].as_str() != Some(&uid))
                .filter(|r| r["uid"].as_str().is_some_and(|u| self.find_uid(u)))
                .cloned()
                .collect();
            if !orphan && remaining.is_empty() {
                let _ = self.delete(&t, &k.namespace, &k.name, &DeleteOptions::default());
            } else {
                let mut new = dep.clone();
                let kept: Vec<Value> = refs
                    .into_iter()
                    .filter(|r| r["uid"].as_str() != Some(&uid))
                    .collect();
                if kept.is_empty() {
                    new["metadata"]
                        .as_object_mut()
                        .expect("metadata")
                        .remove("ownerReferences");
                } else {
                    new["metadata"]["ownerReferences"] = Value::Array(kept);
                }
                new["metadata"]
                    .as_object_mut()
                    .expect("metadata")
                    .remove("resourceVersion");
                let _ = self.update(
                    &t,
                    &k.namespace,
                    &k.name,
                    new,
                    &WriteCtx {
                        manager: "garbage-collector".into(),
                        sub: None,
                        applied: None,
                    },
                );
            }
        }
    }

    /// Removes an object regardless of finalizers (namespace and CRD cascades).
    fn force_remove(&mut self, rt: &ResourceType, key: &Key) -> Option<()> {
        let old = self.objects.remove(key)?;
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(
            self.rv,
            key.clone(),
            ChangeKind::Deleted,
            gone.clone(),
            Some(old),
        );
        self.after_delete(rt, &gone, false);
        Some(())
    }

    /// Side effects of storing an object: a CRD registers (or updates) its kinds.
    fn after_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            for t in resources::from_crd(obj) {
                self.types.retain(|x| {
                    !(x.group == t.group && x.version == t.version && x.plural == t.plural)
                });
                self.types.push(t);
            }
        }
    }

    /// The structural schema of a kind a stored CRD defines (schema.rs applies it).
    fn crd_schema(&self, rt: &ResourceType) -> Option<Value> {
        let crd = self.objects.get(&Key {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: format!("{}.{}", rt.plural, rt.group),
        })?;
        schema::of(crd, &rt.version).cloned()
    }

    fn check_type(&self, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        if let Some(kind) = obj["kind"].as_str() {
            if !kind.is_empty() && kind != rt.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
        }
        if let Some(av) = obj["apiVersion"].as_str() {
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if !av.is_empty() && group != rt.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        Ok(())
    }

    fn check_names(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: &mut Value,
    ) -> ApiResult<()> {
        let body_name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        // ValidateObjectMeta: most kinds' names are DNS subdomains ("Object Names and IDs").
        let causes: Vec<validation::Cause> = validation::dns1123_subdomain(name)
            .iter()
            .map(|m| validation::Cause::invalid("metadata.name", name, m))
            .collect();
        if !causes.is_empty() {
            return Err(ApiError::invalid_causes(rt, name, &causes));
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    /// Per-kind defaulting and validation.
    fn normalize(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        obj: &mut Value,
        name: &str,
    ) -> ApiResult<()> {
        let core = rt.group.is_empty();
        resources::default_fields(rt, obj);
        if core && rt.plural == "secrets" {
            let m = obj.as_object_mut().expect("object");
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                let data = m.entry("data").or_insert_with(|| json!({}));
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    data[k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                }
            }
            let mut sizes = Vec::new();
            if let Some(data) = m.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    let s = v.as_str().unwrap_or_default();
                    match base64::engine::general_purpose::STANDARD.decode(s) {
                        Ok(b) => sizes.push((k.clone(), b.len())),
                        Err(e) => {
                            return Err(ApiError::bad_request(format!(
                                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at key {k:?}: {e}"
                            )))
                        }
                    }
                }
            }
            if m.get("type").is_none_or(|t| t.as_str() == Some("")) {
                m.insert("type".into(), json!("Opaque"));
            }
            let mut causes = validation::secret(old, obj, &sizes);
            // ValidateSecretUpdate: the type, then the immutable rules, then the rest.
            let at = usize::from(causes.first().is_some_and(|c| c.field == "type"));
            for (i, c) in immutable_causes(old, obj, &["data"])
                .into_iter()
                .enumerate()
            {
                causes.insert(at + i, c);
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid_causes(rt, name, &causes));
            }
        } else {
            let mut causes = Vec::new();
            if core && rt.plural == "configmaps" {
                causes = immutable_causes(old, obj, &["data", "binaryData"]);
            }
            causes.extend(validation::object_meta(obj));
            if rt.custom {
                causes.extend(
                    self.crd_schema(rt)
                        .map_or_else(Vec::new, |s| schema::admit(&s, obj)),
                );
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid_causes(rt, name, &causes));
            }
        }
        if core && rt.plural == "namespaces" && obj["status"]["phase"].is_null() {
            obj["status"] = json!({ "phase": "Active" });
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            let names = obj["spec"]["names"].clone();
            obj["status"] = json!({
                "acceptedNames": names,
                "storedVersions": obj["spec"]["versions"].as_array().map(|vs| vs.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
                "conditions": [
                    { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": timestamp(false) },
                    { "type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": timestamp(false) }
                ]
            });
            if let Some(old) = old {
                if old["status"]["conditions"].is_array() {
                    obj["status"]["conditions"] = old["status"]["conditions"].clone();
                }
            }
        }
        Ok(())
    }
}

/// The rules of an immutable Secret or ConfigMap (`ValidateSecretUpdate`,
/// `ValidateConfigMapUpdate`): once `immutable` is true it stays true and `fields` keep
/// their value, each change a `field.Forbidden` of its own. Secrets are checked after
/// `stringData` is folded into `data` (as the conversion does before validation), so
/// restating the same value is no change.
fn immutable_causes(old: Option<&Value>, new: &Value, fields: &[&str]) -> Vec<validation::Cause> {
    let Some(old) = old.filter(|o| o["immutable"].as_bool() == Some(true)) else {
        return Vec::new();
    };
    let forbidden = |field: &str| validation::Cause {
        reason: "FieldValueForbidden",
        field: field.into(),
        message: "Forbidden: field is immutable when `immutable` is set".into(),
    };
    let mut causes = Vec::new();
    if new["immutable"].as_bool() != Some(true) {
        causes.push(forbidden("immutable"));
    }
    for f in fields {
        if old[*f] != new[*f] {
            causes.push(forbidden(f));
        }
    }
    causes
}

/// Which part of the object a write through `sub` covers for this kind.
pub fn scope_of(rt: &ResourceType, sub: Option<&str>) -> Scope {
    match (rt.status_subresource, sub) {
        (_, Some("status")) => Scope::StatusOnly,
        (true, _) => Scope::NoStatus,
        (false, _) => Scope::All,
    }
}
