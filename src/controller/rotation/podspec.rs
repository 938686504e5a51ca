//! The Secrets a pod spec consumes (pure): by `env[].valueFrom.secretKeyRef`,
//! `envFrom[].secretRef`, a `secret` volume or a projected volume's `secret` source, in
//! every container, init container and ephemeral container. `imagePullSecrets` are not
//! consumption by the application and are left out (a pull Secret changing restarts
//! nothing).
//!
//! [`rename_secret`] switches every such reference from one Secret to another (the
//! Versioned strategy's switch to a new version).

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, PodSpec};
use std::collections::BTreeSet;

/// A container's `env` and `envFrom`.
type EnvLists<'a> = (Option<&'a Vec<EnvVar>>, Option<&'a Vec<EnvFromSource>>);

/// Every env and envFrom list of the pod's containers, of all three kinds.
fn env_lists(spec: &PodSpec) -> Vec<EnvLists<'_>> {
    let mut out: Vec<_> = spec
        .containers
        .iter()
        .map(|c| (c.env.as_ref(), c.env_from.as_ref()))
        .collect();
    out.extend(
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| (c.env.as_ref(), c.env_from.as_ref())),
    );
    out.extend(
        spec.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| (c.env.as_ref(), c.env_from.as_ref())),
    );
    out
}

/// The names of the Secrets `spec` references (see the module docs for where).
pub fn secret_names(spec: &PodSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (env, env_from) in env_lists(spec) {
        for e in env.into_iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                names.insert(r.name.clone());
            }
        }
        for e in env_from.into_iter().flatten() {
            if let Some(r) = &e.secret_ref {
                names.insert(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_ref()) {
            names.insert(name.clone());
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &source.secret {
                names.insert(s.name.clone());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Points every reference to Secret `from` at Secret `to` instead; returns how many
/// references changed (0: `spec` does not use `from`).
pub fn rename_secret(spec: &mut PodSpec, from: &str, to: &str) -> usize {
    let mut n = 0;
    let mut swap = |name: &mut String| {
        if name == from {
            *name = to.to_string();
            n += 1;
        }
    };
    let containers = spec
        .containers
        .iter_mut()
        .map(|c| (&mut c.env, &mut c.env_from))
        .chain(
            spec.init_containers
                .iter_mut()
                .flatten()
                .map(|c| (&mut c.env, &mut c.env_from)),
        )
        .chain(
            spec.ephemeral_containers
                .iter_mut()
                .flatten()
                .map(|c| (&mut c.env, &mut c.env_from)),
        );
    for (env, env_from) in containers {
        for e in env.iter_mut().flatten() {
            if let Some(r) = e
                .value_from
                .as_mut()
                .and_then(|v| v.secret_key_ref.as_mut())
            {
                swap(&mut r.name);
            }
        }
        for e in env_from.iter_mut().flatten() {
            if let Some(r) = e.secret_ref.as_mut() {
                swap(&mut r.name);
            }
        }
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(name) = v.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            swap(name);
        }
        for source in v
            .projected
            .iter_mut()
            .flat_map(|p| p.sources.iter_mut().flatten())
        {
            if let Some(s) = source.secret.as_mut() {
                swap(&mut s.name);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod spec using Secrets in every supported way, plus a pull Secret and a
    /// ConfigMap (neither of which counts).
    fn every_kind_of_reference() -> PodSpec {
        serde_json::from_value(serde_json::json!({
            "containers": [{
                "name": "app",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-key", "key": "k"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "a-configmap", "key": "k"}}},
                    {"name": "C", "value": "literal"}
                ],
                "envFrom": [{"secretRef": {"name": "env-from"}}, {"configMapRef": {"name": "cm"}}]
            }],
            "initContainers": [{
                "name": "init",
                "env": [{"name": "D", "valueFrom": {"secretKeyRef": {"name": "init-env", "key": "k"}}}]
            }],
            "ephemeralContainers": [{
                "name": "debug",
                "envFrom": [{"secretRef": {"name": "ephemeral-env-from"}}]
            }],
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "volume"}},
                {"name": "v2", "projected": {"sources": [
                    {"secret": {"name": "projected"}},
                    {"configMap": {"name": "cm2"}}
                ]}},
                {"name": "v3", "emptyDir": {}}
            ]
        }))
        .expect("a valid pod spec")
    }

    #[test]
    fn every_way_of_consuming_a_secret_is_found_and_nothing_else() {
        let names: Vec<String> = secret_names(&every_kind_of_reference())
            .into_iter()
            .collect();
        assert_eq!(
            names,
            [
                "env-from",
                "env-key",
                "ephemeral-env-from",
                "init-env",
                "projected",
                "volume"
            ]
        );
    }

    #[test]
    fn renaming_switches_every_reference_and_only_that_one() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{
                "name": "app",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}
                ],
                "envFrom": [{"secretRef": {"name": "db"}}]
            }],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "db"}},
                {"name": "v2", "projected": {"sources": [{"secret": {"name": "db"}}]}}
            ]
        }))
        .expect("valid");
        assert_eq!(rename_secret(&mut spec, "db", "db-0123456789"), 4);
        let names: Vec<String> = secret_names(&spec).into_iter().collect();
        assert_eq!(names, ["db-0123456789", "other"]);
        assert_eq!(rename_secret(&mut spec, "db", "db-x"), 0);
    }
}
