//! The simulated workload controllers (kube-controller-manager's deployment, replicaset,
//! statefulset and daemonset controllers, and the kubelets behind them), so that a
//! rollout a test starts advances the way a real client watches it: a new ReplicaSet or
//! ControllerRevision, then `observedGeneration`, then the replica counters step by step,
//! then the conditions and revision history. A background task calls [`Simulator::step`]
//! every [`TICK`]; each step writes at most one change per workload, so a rollout of two
//! replicas completes in about ten ticks (a few hundred milliseconds) and every
//! intermediate state is visible to watchers.
//!
//! Sources: `pkg/controller/deployment/{sync,rolling,progress}.go` and
//! `deployment/util/deployment_util.go` (ReplicaSet names, revisions, conditions,
//! history cleanup), `pkg/controller/history/controller_history.go` (ControllerRevision
//! names and labels), `pkg/controller/statefulset/stateful_set_control.go` and
//! `pkg/controller/daemon/update.go` (revisions and status counters). Pods are not
//! objects here: the counters stand for them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::resources::ResourceType;
use super::store::{timestamp, DeleteOptions, Store, WriteCtx};

/// How often the simulated controllers run.
pub const TICK: Duration = Duration::from_millis(20);

/// The nodes a DaemonSet is scheduled on (`desiredNumberScheduled`).
pub const NODES: i64 = 2;

/// How a workload's new pods behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RolloutBehaviour {
    /// New pods become ready and available; the rollout completes.
    #[default]
    Completes,
    /// New pods never become ready (a crash loop): the rollout never completes, and a
    /// Deployment gets `ProgressDeadlineExceeded` after `spec.progressDeadlineSeconds`.
    NeverAvailable,
    /// The simulator leaves this workload alone: the test writes its status by hand.
    Manual,
}

/// The simulated controllers' own state (what the real ones keep in memory).
#[derive(Debug, Default)]
pub struct Simulator {
    behaviours: BTreeMap<(String, String, String), RolloutBehaviour>,
    /// When each Deployment (namespace, name) last made progress, for its deadline.
    last_progress: BTreeMap<(String, String), Instant>,
    /// The store's resourceVersion after the last step, and whether work was left then.
    seen_rv: u64,
    pending: bool,
    /// The revision each StatefulSet/DaemonSet (namespace, kind, name) is rolling to, and
    /// the one it last completed (the pods' `controller-revision-hash` labels).
    update_rev: BTreeMap<(String, String, String), String>,
    settled: BTreeMap<(String, String, String), String>,
    /// This round's ReplicaSets and ControllerRevisions by controller uid.
    sets: Owned,
    revisions: Owned,
}

fn manager(status: bool) -> WriteCtx {
    WriteCtx {
        manager: "kube-controller-manager".into(),
        sub: status.then(|| "status".to_string()),
        applied: None,
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn name_of(o: &Value) -> String {
    o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn uid_of(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or_default()
}

/// The names of the objects of a kind by the uid of their controller (ownerReference
/// with `controller: true`), listed once per round: looking them up per workload would
/// cost a list of the kind for each of thousands of workloads.
#[derive(Debug, Default)]
struct Owned(BTreeMap<String, Vec<String>>);

impl Owned {
    fn index(store: &Store, rt: &ResourceType) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, o) in store.list(rt, None) {
            let controller = o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == true)
                .and_then(|r| r["uid"].as_str());
            if let Some(uid) = controller {
                map.entry(uid.to_string()).or_default().push(key.name);
            }
        }
        Owned(map)
    }

    /// The objects `owner_uid` controls, as stored now (in namespace `ns`).
    fn get(&self, store: &Store, rt: &ResourceType, ns: &str, owner_uid: &str) -> Vec<Value> {
        self.0
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|n| store.get(rt, ns, n))
            .collect()
    }
}

fn controller_ref(kind: &str, owner: &Value) -> Value {
    json!([{
        "apiVersion": "apps/v1", "kind": kind, "name": name_of(owner), "uid": uid_of(owner),
        "controller": true, "blockOwnerDeletion": true,
    }])
}

/// FNV-1a, 32 bits (`hash/fnv`, as `controller.ComputeHash` uses it).
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `rand.SafeEncodeString(fmt.Sprint(hash))`: each decimal digit mapped into an alphabet
/// without vowels or look-alikes, as the `pod-template-hash` and revision names are.
fn safe_hash(v: &Value, collision: i64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    if collision > 0 {
        bytes.extend_from_slice(collision.to_string().as_bytes());
    }
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int, or a percentage of `total` rounded
/// up (maxSurge) or down (maxUnavailable).
fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    if let Some(n) = v.as_i64() {
        return n;
    }
    let pct: i64 = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if round_up {
        (pct * total + 99) / 100
    } else {
        pct * total / 100
    }
}

fn revision(o: &Value) -> i64 {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's template without the `pod-template-hash` label
/// (`EqualIgnoreHash`), to compare with its Deployment's template.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
        if labels.is_empty() {
            t["metadata"]
                .as_object_mut()
                .expect("labels sit in metadata")
                .remove("labels");
        }
    }
    t
}

fn condition(kind: &str, status: bool, reason: &str, message: String, old: &Value) -> Value {
    let now = timestamp(false);
    let st = if status { "True" } else { "False" };
    let before = old["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind);
    let transition = match before {
        Some(c) if c["status"] == st => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let update = match before {
        Some(c) if c["status"] == st && c["reason"] == reason && c["message"] == message => {
            c["lastUpdateTime"].clone()
        }
        _ => json!(now),
    };
    json!({ "type": kind, "status": st, "reason": reason, "message": message,
            "lastUpdateTime": update, "lastTransitionTime": transition })
}

impl Simulator {
    /// Sets how the new pods of workload `kind` `ns/name` behave from now on.
    pub fn set_behaviour(&mut self, ns: &str, kind: &str, name: &str, b: RolloutBehaviour) {
        self.behaviours
            .insert((ns.into(), kind.into(), name.into()), b);
        self.pending = true;
    }

    fn behaviour(&self, ns: &str, kind: &str, name: &str) -> RolloutBehaviour {
        self.behaviours
            .get(&(ns.to_string(), kind.to_string(), name.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// One round of every simulated controller. Does nothing when nothing changed in
    /// the store since the last round and no rollout was left in progress.
    pub fn step(&mut self, store: &mut Store) {
        if store.rv == self.seen_rv && !self.pending {
            return;
        }
        let mut pending = false;
        let (Some(deploy), Some(rs), Some(sts), Some(ds), Some(cr)) = (
            store.resource("apps", "v1", "deployments"),
            store.resource("apps", "v1", "replicasets"),
            store.resource("apps", "v1", "statefulsets"),
            store.resource("apps", "v1", "daemonsets"),
            store.resource("apps", "v1", "controllerrevisions"),
        ) else {
            return;
        };
        self.sets = Owned::index(store, &rs);
        self.revisions = Owned::index(store, &cr);
        for (key, d) in store.list(&deploy, None) {
            if d["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            let b = self.behaviour(&key.namespace, "Deployment", &key.name);
            if b != RolloutBehaviour::Manual {
                pending |= self.deployment(store, &deploy, &rs, &key.namespace, d, b);
            }
        }
        // ReplicaSets no Deployment controls: the replicaset controller alone.
        for (key, r) in store.list(&rs, None) {
            let controlled = r["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|o| o["controller"] == true));
            if !controlled {
                pending |= sync_replicaset(store, &rs, &key.namespace, &r, true);
            }
        }
        for (kind, rt) in [("StatefulSet", &sts), ("DaemonSet", &ds)] {
            for (key, w) in store.list(rt, None) {
                if w["metadata"]["deletionTimestamp"].is_string() {
                    continue;
                }
                let b = self.behaviour(&key.namespace, kind, &key.name);
                if b != RolloutBehaviour::Manual {
                    pending |= self.revisioned(store, rt, &cr, &key.namespace, w, b);
                }
            }
        }
        self.seen_rv = store.rv;
        self.pending = pending;
    }

    /// The deployment controller (and the replicaset controller under it) for one
    /// Deployment. Returns whether its rollout is still in progress.
    fn deployment(
        &mut self,
        store: &mut Store,
        deploy: &ResourceType,
        rs_rt: &ResourceType,
        ns: &str,
        d: Value,
        b: RolloutBehaviour,
    ) -> bool {
        let name = name_of(&d);
        let spec = &d["spec"];
        let want = spec["replicas"].as_i64().unwrap_or(1);
        let template = spec["template"].clone();
        let mut sets = self.sets.get(store, rs_rt, ns, uid_of(&d));
        sets.sort_by_key(revision);
        let max_revision = sets.iter().map(revision).max().unwrap_or(0);
        let progress_key = (ns.to_string(), name.clone());
        let new_idx = sets
            .iter()
            .position(|r| without_hash(&r["spec"]["template"]) == template);
        if spec["paused"] == true {
            // A paused Deployment is only observed, never rolled (sync.go, `sync`).
            let mut st = d["status"].clone();
            if st["observedGeneration"] != d["metadata"]["generation"] {
                st["observedGeneration"] = d["metadata"]["generation"].clone();
                write_status(store, deploy, ns, &d, st, None);
            }
            return false;
        }
        let Some(new_idx) = new_idx else {
            // getNewReplicaSet: `<name>-<pod-template-hash>`, revision = max + 1.
            let mut collision = int(&d["status"]["collisionCount"]);
            let (rs_name, hash) = loop {
                let hash = safe_hash(&template, collision);
                let n = format!("{name}-{hash}");
                if store.get(rs_rt, ns, &n).is_none() {
                    break (n, hash);
                }
                collision += 1;
            };
            let surge = scaled(&spec["strategy"]["rollingUpdate"]["maxSurge"], want, true);
            let mut t = template.clone();
            t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = spec["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let set = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/revision": (max_revision + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": want.to_string(),
                        "deployment.kubernetes.io/max-replicas": (want + surge).to_string(),
                    },
                    "ownerReferences": controller_ref("Deployment", &d),
                },
                "spec": { "replicas": 0, "minReadySeconds": spec["minReadySeconds"].as_i64().unwrap_or(0),
                          "selector": selector, "template": t },
            });
            let _ = store.create(rs_rt, ns, set, &manager(false));
            self.last_progress.insert(progress_key, Instant::now());
            // observedGeneration waits for the counters of the next round: observing the
            // new generation with the old counters would tell kubectl it is done.
            let mut st = d["status"].clone();
            if collision > 0 {
                st["collisionCount"] = json!(collision);
            }
            let c = condition(
                "Progressing",
                true,
                "NewReplicaSetCreated",
                format!("Created new replica set \"{rs_name}\""),
                &d["status"],
            );
            set_condition(&mut st, c);
            write_status(store, deploy, ns, &d, st, None);
            return true;
        };
        let new_rs = sets[new_idx].clone();
        let new_name = name_of(&new_rs);
        if revision(&new_rs) < max_revision {
            // A template equal to an old ReplicaSet's (rollout undo): that ReplicaSet
            // becomes the newest revision (SetNewReplicaSetAnnotations), its old number
            // kept in `revision-history`.
            let mut r = new_rs.clone();
            let old = revision(&new_rs);
            let mut history: Vec<String> = r["metadata"]["annotations"]
                ["deployment.kubernetes.io/revision-history"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            history.push(old.to_string());
            r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                json!((max_revision + 1).to_string());
            r["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] =
                json!(history.join(","));
            let _ = store.update(rs_rt, ns, &new_name, r, &manager(false));
            self.last_progress.insert(progress_key, Instant::now());
            let mut st = d["status"].clone();
            let c = condition(
                "Progressing",
                true,
                "FoundNewReplicaSet",
                format!("Found new replica set \"{new_name}\""),
                &d["status"],
            );
            set_condition(&mut st, c);
            write_status(store, deploy, ns, &d, st, None);
            return true;
        }
        // The replicaset controller and the kubelets: each ReplicaSet's pods follow its
        // spec.replicas; the new ones never become ready when the behaviour says so.
        let key = (ns.to_string(), "Deployment".to_string(), name.clone());
        let never =
            b == RolloutBehaviour::NeverAvailable && self.settled.get(&key) != Some(&new_name);
        for r in &sets {
            let ready = !(never && name_of(r) == new_name);
            sync_replicaset(store, rs_rt, ns, r, ready);
        }
        let mut sets = self.sets.get(store, rs_rt, ns, uid_of(&d));
        sets.sort_by_key(revision);
        let new_rs = sets
            .iter()
            .find(|r| name_of(r) == new_name)
            .cloned()
            .unwrap_or(new_rs);
        let olds: Vec<Value> = sets
            .iter()
            .filter(|r| name_of(r) != new_name)
            .cloned()
            .collect();
        // rolling.go: scale the new ReplicaSet up within maxSurge, the old ones down
        // within maxUnavailable, one pod per step.
        let rolling = spec["strategy"]["rollingUpdate"].clone();
        let recreate = spec["strategy"]["type"] == "Recreate";
        let surge = if recreate {
            0
        } else {
            scaled(&rolling["maxSurge"], want, true)
        };
        let mut unavailable = if recreate {
            want
        } else {
            scaled(&rolling["maxUnavailable"], want, false)
        };
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let new_spec = int(&new_rs["spec"]["replicas"]);
        let old_spec: i64 = olds.iter().map(|r| int(&r["spec"]["replicas"])).sum();
        let available: i64 = sets
            .iter()
            .map(|r| int(&r["status"]["availableReplicas"]))
            .sum();
        let mut progressed = false;
        if new_spec > want {
            progressed = scale(store, rs_rt, ns, &new_rs, want);
        } else if new_spec < want
            && new_spec + old_spec < want + surge
            && !(recreate && old_spec > 0)
        {
            progressed = scale(store, rs_rt, ns, &new_rs, new_spec + 1);
        } else if old_spec > 0 && available > want - unavailable {
            if let Some(oldest) = olds.iter().find(|r| int(&r["spec"]["replicas"]) > 0) {
                let n = int(&oldest["spec"]["replicas"]);
                progressed = scale(store, rs_rt, ns, oldest, n - 1);
            }
        } else if old_spec > 0 && recreate {
            for r in olds.iter().filter(|r| int(&r["spec"]["replicas"]) > 0) {
                progressed |= scale(store, rs_rt, ns, r, 0);
            }
        }
        if progressed {
            self.last_progress
                .insert(progress_key.clone(), Instant::now());
        }
        // syncRolloutStatus: counters from the ReplicaSets' status, then the conditions.
        let sets = self.sets.get(store, rs_rt, ns, uid_of(&d));
        let sum = |f: &str| -> i64 { sets.iter().map(|r| int(&r["status"][f])).sum() };
        let new_now = sets
            .iter()
            .find(|r| name_of(r) == new_name)
            .cloned()
            .unwrap_or_default();
        let total_spec: i64 = sets.iter().map(|r| int(&r["spec"]["replicas"])).sum();
        let (replicas, ready, avail) = (
            sum("replicas"),
            sum("readyReplicas"),
            sum("availableReplicas"),
        );
        let updated = int(&new_now["status"]["replicas"]);
        let mut st = d["status"].clone();
        st["observedGeneration"] = d["metadata"]["generation"].clone();
        st["replicas"] = json!(replicas);
        st["updatedReplicas"] = json!(updated);
        st["readyReplicas"] = json!(ready);
        st["availableReplicas"] = json!(avail);
        st["unavailableReplicas"] = json!((total_spec - avail).max(0));
        for f in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ] {
            // Zero counters are omitted, as `omitempty` does.
            if st[f] == 0 {
                st.as_object_mut().expect("status").remove(f);
            }
        }
        let minimum = avail >= want - unavailable;
        let c = if minimum {
            condition(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &d["status"],
            )
        } else {
            condition(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &d["status"],
            )
        };
        set_condition(&mut st, c);
        // DeploymentComplete / DeploymentProgressing / DeploymentTimedOut (progress.go).
        let complete = updated == want && replicas == want && avail == want;
        let deadline = spec["progressDeadlineSeconds"].as_i64().unwrap_or(600);
        let since = self
            .last_progress
            .get(&progress_key)
            .map(Instant::elapsed)
            .unwrap_or_default();
        let timed_out = !complete
            && deadline < i64::from(i32::MAX)
            && since > Duration::from_secs(u64::try_from(deadline).unwrap_or(0));
        let progressing = if complete {
            Some(condition(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                &d["status"],
            ))
        } else if progressed {
            Some(condition(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
                &d["status"],
            ))
        } else if timed_out {
            Some(condition(
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                &d["status"],
            ))
        } else {
            None
        };
        if let Some(c) = progressing {
            set_condition(&mut st, c);
        }
        let annotation =
            new_now["metadata"]["annotations"]["deployment.kubernetes.io/revision"].clone();
        write_status(store, deploy, ns, &d, st, Some(annotation));
        if complete {
            // cleanupDeployment: old ReplicaSets at zero beyond revisionHistoryLimit go,
            // the oldest first.
            let limit = spec["revisionHistoryLimit"].as_i64().unwrap_or(10);
            let mut idle: Vec<&Value> = sets
                .iter()
                .filter(|r| name_of(r) != new_name)
                .filter(|r| int(&r["spec"]["replicas"]) == 0 && int(&r["status"]["replicas"]) == 0)
                .collect();
            idle.sort_by_key(|r| revision(r));
            let extra = idle
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(0));
            for r in idle.into_iter().take(extra) {
                let _ = store.delete(rs_rt, ns, &name_of(r), &DeleteOptions::default());
            }
            self.last_progress.remove(&progress_key);
            self.settled.insert(key, new_name);
        }
        // Still in progress: the deadline needs the clock even when nothing is written.
        !complete
    }
}

fn set_condition(status: &mut Value, c: Value) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let list = status["conditions"].as_array_mut().expect("an array");
    match list.iter_mut().find(|x| x["type"] == c["type"]) {
        Some(x) => *x = c,
        None => list.push(c),
    }
}

/// Writes a Deployment's status (and its revision annotation, through the status
/// subresource as the controller does) when it differs.
fn write_status(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    d: &Value,
    status: Value,
    revision: Option<Value>,
) {
    let mut new = d.clone();
    new["status"] = status;
    if let Some(r) = revision.filter(Value::is_string) {
        new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = r;
    }
    if new != *d {
        let _ = store.update(rt, ns, &name_of(d), new, &manager(true));
    }
}

fn scale(store: &mut Store, rt: &ResourceType, ns: &str, r: &Value, n: i64) -> bool {
    let mut new = r.clone();
    new["spec"]["replicas"] = json!(n);
    new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
        r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"].clone();
    store
        .update(rt, ns, &name_of(r), new, &manager(false))
        .is_ok()
}

/// The replicaset controller and kubelets for one ReplicaSet: its pods follow
/// `spec.replicas`, ready and available at once unless `ready` is false. Returns
/// whether it wrote.
fn sync_replicaset(store: &mut Store, rt: &ResourceType, ns: &str, r: &Value, ready: bool) -> bool {
    let n = int(&r["spec"]["replicas"]);
    let up = if ready { n } else { 0 };
    let mut st = json!({ "replicas": n, "fullyLabeledReplicas": n, "readyReplicas": up,
                         "availableReplicas": up, "observedGeneration": r["metadata"]["generation"] });
    for f in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
        if st[f] == 0 {
            st.as_object_mut().expect("status").remove(f);
        }
    }
    if r["status"] == st {
        return false;
    }
    let mut new = r.clone();
    new["status"] = st;
    store
        .update(rt, ns, &name_of(r), new, &manager(true))
        .is_ok()
}

impl Simulator {
    /// The statefulset and daemonset controllers: a ControllerRevision per distinct
    /// template, pods replaced one at a time, the status counters and revisions, and the
    /// history kept to `revisionHistoryLimit`. Returns whether the rollout is in progress.
    fn revisioned(
        &mut self,
        store: &mut Store,
        rt: &ResourceType,
        cr_rt: &ResourceType,
        ns: &str,
        w: Value,
        b: RolloutBehaviour,
    ) -> bool {
        let daemon = rt.kind == "DaemonSet";
        let name = name_of(&w);
        let key = (ns.to_string(), rt.kind.clone(), name.clone());
        let spec = &w["spec"];
        let want = if daemon {
            NODES
        } else {
            spec["replicas"].as_i64().unwrap_or(1)
        };
        // The revision's data is a strategic merge patch replacing the template.
        let mut template = spec["template"].clone();
        template["$patch"] = json!("replace");
        let data = json!({ "spec": { "template": template } });
        let mut revs = self.revisions.get(store, cr_rt, ns, uid_of(&w));
        revs.sort_by_key(|r| int(&r["revision"]));
        let max = revs.iter().map(|r| int(&r["revision"])).max().unwrap_or(0);
        let Some(update) = revs.iter().find(|r| r["data"] == data).cloned() else {
            // controller_history.go: `<name>-<hash>`, labelled with the template's labels
            // and the hash (`controller-revision-hash` for a DaemonSet,
            // `controller.kubernetes.io/hash` for a StatefulSet).
            let mut collision = int(&w["status"]["collisionCount"]);
            let (rev_name, hash) = loop {
                let hash = safe_hash(&data, collision);
                let n = format!("{name}-{hash}");
                if store.get(cr_rt, ns, &n).is_none() {
                    break (n, hash);
                }
                collision += 1;
            };
            let mut labels = spec["template"]["metadata"]["labels"].clone();
            let label = if daemon {
                "controller-revision-hash"
            } else {
                "controller.kubernetes.io/hash"
            };
            labels[label] = json!(hash);
            let cr = json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": { "name": rev_name, "namespace": ns, "labels": labels,
                              "ownerReferences": controller_ref(rt.kind.as_str(), &w) },
                "data": data, "revision": max + 1,
            });
            let _ = store.create(cr_rt, ns, cr, &manager(false));
            return true;
        };
        let update_name = name_of(&update);
        if int(&update["revision"]) < max {
            // An older revision's template again (rollout undo): it becomes the newest.
            let mut r = update.clone();
            r["revision"] = json!(max + 1);
            let _ = store.update(cr_rt, ns, &update_name, r, &manager(false));
            return true;
        }
        let old = &w["status"];
        let first = old["observedGeneration"].is_null();
        // Pods at the update revision: counted again from zero when it changed.
        let same = self.update_rev.get(&key) == Some(&update_name);
        let updated_key = if daemon {
            "updatedNumberScheduled"
        } else {
            "updatedReplicas"
        };
        let mut updated = if first {
            want
        } else if same {
            int(&old[updated_key])
        } else {
            0
        };
        self.update_rev.insert(key.clone(), update_name.clone());
        let target = if daemon {
            want
        } else {
            want - spec["updateStrategy"]["rollingUpdate"]["partition"]
                .as_i64()
                .unwrap_or(0)
                .min(want)
        };
        let rolling = self.settled.get(&key) != Some(&update_name);
        let never = b == RolloutBehaviour::NeverAvailable && rolling;
        let on_delete = spec["updateStrategy"]["type"] == "OnDelete";
        // One pod replaced per step (RollingUpdate; maxUnavailable 1 for a DaemonSet,
        // OrderedReady for a StatefulSet); a replaced pod that never becomes ready holds
        // the rollout there.
        let held = first || on_delete || updated >= target || (never && updated >= 1);
        if !held {
            updated += 1;
        }
        let updated = updated.min(want);
        let not_ready = i64::from(never && updated > 0).min(want);
        let ready = want - not_ready;
        let mut st = old.clone();
        st["observedGeneration"] = w["metadata"]["generation"].clone();
        let status = st.as_object_mut().expect("status is an object");
        if daemon {
            status.insert("desiredNumberScheduled".into(), json!(want));
            status.insert("currentNumberScheduled".into(), json!(want));
            status.insert("numberMisscheduled".into(), json!(0));
            status.insert("numberReady".into(), json!(ready));
            status.insert("numberAvailable".into(), json!(ready));
            status.insert("updatedNumberScheduled".into(), json!(updated));
            if not_ready > 0 {
                status.insert("numberUnavailable".into(), json!(not_ready));
            } else {
                status.remove("numberUnavailable");
            }
        } else {
            let current = if first || updated == want {
                update_name.clone()
            } else {
                old["currentRevision"]
                    .as_str()
                    .unwrap_or(&update_name)
                    .to_string()
            };
            let at_current = if current == update_name {
                updated
            } else {
                want - updated
            };
            status.insert("currentRevision".into(), json!(current));
            status.insert("updateRevision".into(), json!(update_name));
            status.insert("replicas".into(), json!(want));
            status.insert("readyReplicas".into(), json!(ready));
            status.insert("availableReplicas".into(), json!(ready));
            status.insert("updatedReplicas".into(), json!(updated));
            status.insert("currentReplicas".into(), json!(at_current));
            status.insert("collisionCount".into(), json!(int(&old["collisionCount"])));
        }
        let done = updated >= target && ready == want;
        if done {
            self.settled.insert(key, update_name.clone());
        }
        // truncateHistory: keep the live revisions and `revisionHistoryLimit` others,
        // the oldest going first.
        let mut live = vec![update_name.clone()];
        if let Some(c) = st["currentRevision"].as_str() {
            live.push(c.to_string());
        }
        let limit =
            usize::try_from(spec["revisionHistoryLimit"].as_i64().unwrap_or(10)).unwrap_or(0);
        let history: Vec<&Value> = revs
            .iter()
            .filter(|r| !live.contains(&name_of(r)))
            .collect();
        let extra = history.len().saturating_sub(limit);
        for r in history.into_iter().take(extra) {
            let _ = store.delete(cr_rt, ns, &name_of(r), &DeleteOptions::default());
        }
        if st != *old {
            let mut new = w.clone();
            new["status"] = st;
            let _ = store.update(rt, ns, &name, new, &manager(true));
        }
        !done
    }
}
