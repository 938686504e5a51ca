//! The Helm chart, rendered by the real Helm engine (the `helm` shim over the Helm
//! SDK), and the CRDs in it checked against `sopsync crd` (STYLE.md 20, 23).

use crate::support::{run, run_ok, sopsync, tempdir, tool};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn chart_dir() -> std::path::PathBuf {
    crate::support::project_root().join("charts/sopsync")
}

fn crd_dir() -> std::path::PathBuf {
    crate::support::project_root().join("charts/sopsync/crds")
}

fn files_in(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("dir entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect()
}

#[test]
fn checked_in_crds_equal_the_output_of_sopsync_crd() {
    let tmp = tempdir();
    run_ok(sopsync().arg("crd").arg("--output-dir").arg(tmp.path()));
    let generated = files_in(tmp.path());
    let checked_in = files_in(&crd_dir());
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        checked_in.keys().collect::<Vec<_>>(),
        "charts/sopsync/crds/ holds other files than `sopsync crd` makes"
    );
    for (name, text) in &generated {
        assert!(
            &checked_in[name] == text,
            "charts/sopsync/crds/{name} drifted from the Rust types; regenerate it with \
             `cargo run -- crd --output-dir charts/sopsync/crds`"
        );
    }
    assert_eq!(generated.len(), 2);
}

#[test]
fn sopsync_crd_prints_both_definitions() {
    let out = run(sopsync().arg("crd"));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 2);
    assert!(text.contains("name: secretsources.sopsync.io"));
    assert!(text.contains("name: sopssecrets.sopsync.io"));
}

/// `helm template rel charts/sopsync -n sopsync-system ARGS`, each document as JSON
/// (read with our own YAML codec, written with our JSON codec).
fn template(args: &[&str]) -> Vec<Value> {
    crate::support::cluster::helm_template_release("rel", "sopsync-system", args)
}

/// A rendered `helm template` that must fail, with its error text.
fn template_error(args: &[&str]) -> String {
    let out = run(Command::new(tool("helm"))
        .args(["template", "rel"])
        .arg(chart_dir())
        .args(args));
    assert!(!out.status.success(), "rendering {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().expect("kind").to_string())
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {:?}", kinds(docs));
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

#[test]
fn the_chart_passes_helm_lint() {
    let out = run(Command::new(tool("helm")).arg("lint").arg(chart_dir()));
    assert!(
        out.status.success(),
        "helm lint: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_default_render_runs_two_hardened_replicas_with_leader_election() {
    let docs = template(&[]);
    assert_eq!(
        kinds(&docs),
        BTreeSet::from(
            [
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment",
                "PodDisruptionBudget",
                "Role",
                "RoleBinding",
                "Service",
                "ServiceAccount"
            ]
            .map(String::from)
        )
    );
    for d in &docs {
        if d["kind"] != "ClusterRole" && d["kind"] != "ClusterRoleBinding" {
            assert_eq!(
                d["metadata"]["namespace"], "sopsync-system",
                "{}",
                d["kind"]
            );
        }
    }
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rel-sopsync");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(&docs);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let a = args(&docs);
    assert_eq!(a[0], "controller");
    for want in [
        "--leader-elect",
        "--lease-name=rel-sopsync",
        "--log-format=json",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} in {a:?}");
    }
    assert!(
        !a.iter().any(|x| x.starts_with("--namespace")),
        "all namespaces"
    );
    let env: BTreeMap<String, Value> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_string(), e.clone()))
        .collect();
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    // Scratch files (staged SSH keys) are in memory; the Git cache is an emptyDir.
    let volumes = pod["volumes"].as_array().expect("volumes");
    let tmp = volumes.iter().find(|v| v["name"] == "tmp").expect("tmp");
    assert_eq!(tmp["emptyDir"]["medium"], "Memory");
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

#[test]
fn every_flag_the_chart_passes_is_one_the_binary_accepts() {
    let help = String::from_utf8(run_ok(sopsync().args(["controller", "--help"]))).expect("utf-8");
    let everything_on = [
        "--set",
        "watchNamespace=team-a",
        "--set",
        "shardSelector=shard=a",
        "--set",
        "controllerKey.existingSecret=ctl-key",
        "--set",
        "controllerKey.namespaces={team-a,team-b}",
        "--set",
        "webhook.existingSecret=hook",
        "--set",
        "controller.gitAllowedHosts={github.com,*.corp.example}",
        "--set",
        "controller.allowLocalGitSources=true",
        "--set",
        "rotation.workloadRestarts.enabled=true",
    ];
    let a = args(&template(&everything_on));
    let flags: Vec<&str> = a
        .iter()
        .filter_map(|x| x.strip_prefix("--"))
        .map(|x| x.split('=').next().expect("name"))
        .collect();
    assert!(flags.len() >= 15, "{flags:?}");
    for flag in &flags {
        assert!(
            help.contains(&format!("--{flag}")),
            "the chart passes --{flag}, which `sopsync controller` does not have"
        );
    }
    // And the binary parses the whole argument list (it stops at the missing cluster).
    let out = run(sopsync()
        .args(&a)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !stderr.contains("unexpected argument") && !stderr.contains("invalid value"),
        "{stderr}"
    );
    // Parsing succeeded: it got as far as reading the mounted webhook secret.
    assert!(stderr.contains("/etc/sopsync/webhook/secret"), "{stderr}");
}

/// The rules of the (Cluster)Role as (apiGroup, resource, sorted verbs).
fn rules(role: &Value) -> BTreeSet<(String, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for r in role["rules"].as_array().expect("rules") {
        let mut verbs: Vec<String> = r["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .map(|v| v.as_str().expect("verb").to_string())
            .collect();
        verbs.sort();
        for g in r["apiGroups"].as_array().expect("groups") {
            for res in r["resources"].as_array().expect("resources") {
                out.insert((
                    g.as_str().expect("group").to_string(),
                    res.as_str().expect("resource").to_string(),
                    verbs.clone(),
                ));
            }
        }
    }
    out
}

fn rule(group: &str, resource: &str, verbs: &[&str]) -> (String, String, Vec<String>) {
    let mut v: Vec<String> = verbs.iter().map(|s| s.to_string()).collect();
    v.sort();
    (group.into(), resource.into(), v)
}

#[test]
fn rbac_is_exactly_what_the_controller_calls() {
    let docs = template(&[]);
    let cluster_role = one(&docs, "ClusterRole");
    assert_eq!(
        rules(cluster_role),
        BTreeSet::from([
            // Each verb used by the controller, measured in tests/rbac.rs (issue 16).
            rule("sopsync.io", "secretsources", &["list", "watch", "patch"]),
            rule("sopsync.io", "sopssecrets", &["list", "watch"]),
            rule("sopsync.io", "secretsources/status", &["patch"]),
            rule("sopsync.io", "sopssecrets/status", &["patch"]),
            rule(
                "",
                "secrets",
                &["get", "list", "watch", "create", "patch", "delete"]
            ),
            rule("events.k8s.io", "events", &["create", "patch"]),
        ])
    );
    // Leases only in the release namespace.
    let lease_role = one(&docs, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], "sopsync-system");
    assert_eq!(
        rules(lease_role),
        BTreeSet::from([rule(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "patch"]
        )])
    );
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], "rel-sopsync");
    assert_eq!(binding["subjects"][0]["name"], "rel-sopsync");
    assert_eq!(binding["subjects"][0]["namespace"], "sopsync-system");
}

#[test]
fn watching_one_namespace_needs_only_roles_there() {
    let docs = template(&["--set", "watchNamespace=team-a"]);
    assert!(!kinds(&docs).contains("ClusterRole"));
    assert!(!kinds(&docs).contains("ClusterRoleBinding"));
    let roles: Vec<_> = docs.iter().filter(|d| d["kind"] == "Role").collect();
    assert_eq!(roles.len(), 2, "the watch Role and the lease Role");
    let watch = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "team-a")
        .expect("a Role in team-a");
    assert!(rules(watch).contains(&rule(
        "",
        "secrets",
        &["get", "list", "watch", "create", "patch", "delete"]
    )));
    assert!(args(&docs).iter().any(|a| a == "--namespace=team-a"));
}

#[test]
fn optional_parts_appear_only_when_asked_for() {
    let default = kinds(&template(&[]));
    for k in ["ServiceMonitor", "NetworkPolicy"] {
        assert!(!default.contains(k), "{k} is off by default");
    }
    let docs = template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "replicaCount=1",
    ]);
    assert_eq!(
        one(&docs, "ServiceMonitor")["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
    assert_eq!(
        one(&docs, "NetworkPolicy")["spec"]["policyTypes"],
        json!(["Ingress"])
    );
    assert!(
        !kinds(&docs).contains("PodDisruptionBudget"),
        "no PDB for one replica"
    );
    let no_election = template(&[
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(!args(&no_election).iter().any(|a| a == "--leader-elect"));
    assert!(
        !kinds(&no_election).contains("Role"),
        "no lease Role without election"
    );
}

#[test]
fn keys_and_the_webhook_secret_are_mounted_from_existing_secrets_never_held_by_the_chart() {
    let docs = template(&[
        "--set",
        "controllerKey.existingSecret=ctl-key",
        "--set",
        "controllerKey.namespaces={team-a,team-b}",
        "--set",
        "webhook.existingSecret=hook",
    ]);
    let a = args(&docs);
    assert!(a
        .iter()
        .any(|x| x == "--controller-key-file=/etc/sopsync/controller-key/age.agekey"));
    assert!(a
        .iter()
        .any(|x| x == "--controller-key-namespaces=team-a,team-b"));
    assert!(a
        .iter()
        .any(|x| x == "--webhook-secret-file=/etc/sopsync/webhook/secret"));
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().expect("volumes");
    let secret_of = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| v["secret"]["secretName"].clone())
    };
    assert_eq!(secret_of("controller-key"), Some(json!("ctl-key")));
    assert_eq!(secret_of("webhook"), Some(json!("hook")));
    // The chart renders no Secret and no ConfigMap: it never carries key material.
    assert!(!kinds(&docs).contains("Secret"));
    assert!(!kinds(&docs).contains("ConfigMap"));
    // Misconfigurations fail at render time with a message saying what to do.
    let err = template_error(&["--set", "controllerKey.existingSecret=ctl-key"]);
    assert!(err.contains("controllerKey.namespaces"), "{err}");
    let err = template_error(&["--set", "leaderElection.enabled=false"]);
    assert!(err.contains("leaderElection.enabled"), "{err}");
}

/// Issue 11 point 1: tenants' Git sources. Local sources stay off unless asked for,
/// the host allowlist reaches the controller, and the optional NetworkPolicy restricts
/// egress to DNS, the API server and Git (public addresses only by default).
#[test]
fn git_sources_are_restricted_by_values_and_the_network_policy_can_limit_egress_to_git() {
    let default = args(&template(&[]));
    assert!(
        !default
            .iter()
            .any(|a| a.starts_with("--allow-local-git-sources")
                || a.starts_with("--git-allowed-hosts")),
        "{default:?}"
    );
    let allowlist = args(&template(&[
        "--set",
        "controller.gitAllowedHosts={github.com,*.corp.example}",
    ]));
    assert!(
        allowlist
            .iter()
            .any(|a| a == "--git-allowed-hosts=github.com,*.corp.example"),
        "{allowlist:?}"
    );
    let docs = template(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.egress.enabled=true",
        "--set",
        "networkPolicy.egress.apiServer.cidrs={10.0.0.1/32}",
    ]);
    let spec = &one(&docs, "NetworkPolicy")["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    let egress = spec["egress"].as_array().expect("egress rules");
    let ports = |rule: &Value| -> Vec<(i64, String)> {
        rule["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["port"].as_i64().expect("port"),
                    p["protocol"].as_str().expect("protocol").into(),
                )
            })
            .collect()
    };
    assert_eq!(ports(&egress[0]), [(53, "UDP".into()), (53, "TCP".into())]);
    assert_eq!(
        egress[1]["to"],
        json!([{"ipBlock": {"cidr": "10.0.0.1/32"}}])
    );
    let git = &egress[2];
    assert_eq!(
        ports(git),
        [
            (22, "TCP".into()),
            (443, "TCP".into()),
            (9418, "TCP".into())
        ]
    );
    let block = &git["to"][0]["ipBlock"];
    assert_eq!(block["cidr"], "0.0.0.0/0");
    for internal in ["10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"] {
        assert!(
            block["except"]
                .as_array()
                .expect("except")
                .iter()
                .any(|c| c == internal),
            "{internal} must be excluded: {block}"
        );
    }
    let error = template_error(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.egress.enabled=true",
    ]);
    assert!(
        error.contains("networkPolicy.egress.apiServer.cidrs is required"),
        "{error}"
    );
}

/// Issue 17: `values.schema.json` refuses an unknown key at the top level and in the
/// chart's own sections, and a mistyped value, with Helm's own message.
#[test]
fn the_values_schema_refuses_unknown_keys_and_mistyped_values_with_helms_error() {
    for (set, helm_says) in [
        (
            "replicaCont=2",
            "additional properties 'replicaCont' not allowed",
        ),
        (
            "controller.gitTimout=5",
            "at '/controller': additional properties 'gitTimout' not allowed",
        ),
        (
            "networkPolicy.egress.git.port=22",
            "at '/networkPolicy/egress/git': additional properties 'port' not allowed",
        ),
        (
            "replicaCount=two",
            "at '/replicaCount': got string, want integer",
        ),
        (
            "controller.allowLocalGitSources=yes",
            "at '/controller/allowLocalGitSources'",
        ),
        ("logging.format=xml", "at '/logging/format'"),
        ("service.port=70000", "at '/service/port'"),
    ] {
        let err = template_error(&["--set", set]);
        assert!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains(helm_says),
            "--set {set}: {err}"
        );
    }
}

/// Issue 17: the defaults, every opt-in at once, `global` (subchart use) and free-form
/// Kubernetes objects all pass the schema.
#[test]
fn the_values_schema_accepts_the_defaults_every_opt_in_global_and_free_form_objects() {
    assert!(kinds(&template(&[])).contains("Deployment"));
    let dir = tempdir();
    let everything = dir.path().join("everything.yaml");
    std::fs::write(
        &everything,
        r#"
global: {imageRegistry: registry.example, anything: [1, 2]}
image: {repository: registry.example/sopsync, tag: "1.2.3", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
nameOverride: sops
fullnameOverride: sopsync-prod
replicaCount: 3
leaderElection: {enabled: true, leaseDuration: 20, leaseGrace: 8}
watchNamespace: team-a
shardSelector: shard=a
controller:
  concurrency: 8
  minInterval: 30
  baseBackoff: 2
  gitTimeout: 60
  defaultKeySecret: team-key
  gitAllowedHosts: [github.com, "*.corp.example"]
  allowLocalGitSources: true
  extraArgs: ["--webhook-burst", "50"]
controllerKey: {existingSecret: ctl-key, key: ctl.agekey, namespaces: [team-a, team-b]}
webhook: {existingSecret: hook, key: token}
logging: {format: text, level: "debug,kube=warn"}
service: {type: ClusterIP, port: 9090, annotations: {a.example/x: "1"}}
cache: {sizeLimit: 2Gi}
serviceAccount: {create: true, name: sopsync-sa, annotations: {eks.amazonaws.com/role-arn: arn}}
rbac: {create: true}
resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: "1", memory: 512Mi}}
podAnnotations: {a.example/p: "1"}
podLabels: {team: platform}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/arch: arm64}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]
terminationGracePeriodSeconds: 60
podSecurityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}, supplementalGroups: [1000]}
securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
podDisruptionBudget: {enabled: true, minAvailable: 2}
serviceMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
networkPolicy:
  enabled: true
  from: [{namespaceSelector: {matchLabels: {name: monitoring}}}]
  egress:
    enabled: true
    git:
      ipBlocks: [{cidr: 203.0.113.0/24}, {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]
      ports: [22, 443]
    apiServer: {cidrs: [192.0.2.10/32], ports: [6443]}
argocd:
  namespace: argo
  cmp:
    enabled: true
    pluginName: sopsync-safe
    discover: {find: {glob: "**/*.enc.yaml"}}
    image: {repository: registry.example/sopsync-cmp, tag: "1.2.3"}
    ageKey: {existingSecret: cmp-key, key: cmp.agekey}
    tmpSizeLimit: 1Gi
    resources: {limits: {memory: 128Mi}}
"#,
    )
    .expect("write values");
    let docs = template(&["-f", everything.to_str().expect("utf-8 path")]);
    let all = kinds(&docs);
    for kind in [
        "Deployment",
        "ServiceMonitor",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "ConfigMap",
    ] {
        assert!(all.contains(kind), "{kind} in {all:?}");
    }
}

/// Issue 17: the values table of the chart's README is generated from the `# --`
/// comments of values.yaml, every key is documented, and the committed table is current.
#[test]
fn the_chart_readme_values_table_is_generated_from_values_yaml_and_current() {
    let out = run(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/chart-docs")).arg("--check"),
    );
    assert!(
        out.status.success(),
        "scripts/chart-docs --check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).expect("README");
    for row in [
        "| `controller.gitAllowedHosts` | list | `[]` |",
        "| `networkPolicy.egress.apiServer.cidrs` | list | `[]` |",
        "| `resources` | object |",
    ] {
        assert!(readme.contains(row), "{row}");
    }
}

/// The chart's Argo CD ConfigMap (`argocd.cmp.enabled`), rendered as release `sopsync`
/// with `set`, and its two entries parsed: (ConfigMap, plugin.yaml, argo-cd values).
fn argocd_cmp(set: &[&str]) -> (Value, Value, Value, String) {
    let mut args = vec!["--set", "argocd.cmp.enabled=true"];
    for s in set {
        args.extend(["--set", s]);
    }
    let docs = crate::support::cluster::helm_template("sopsync-system", &args);
    let cm = one(&docs, "ConfigMap").clone();
    let entry = |key: &str| -> (Value, String) {
        let text = cm["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("the ConfigMap has {key}: {cm}"))
            .to_string();
        let parsed = crate::argocd::documents(&text);
        assert_eq!(parsed.len(), 1, "{key} is one YAML document");
        (parsed[0].clone(), text)
    };
    let (plugin, _) = entry("plugin.yaml");
    let (values, values_text) = entry("argo-cd-values.yaml");
    (cm, plugin, values, values_text)
}

/// Issue 13: the Argo CD plugin is opt-in; its plugin.yaml is a ConfigManagementPlugin
/// (Argo CD docs, operator-manual/config-management-plugins) whose `init` and
/// `generate` commands, run as argocd-cmp-server runs them, are `sopsync argocd` and
/// print the app's manifests, and it announces the `mode` and `valueFiles` parameters.
#[test]
fn the_argocd_plugin_is_opt_in_and_its_plugin_yaml_runs_sopsync_argocd_generate() {
    let default = template(&[]);
    assert!(!kinds(&default).contains("ConfigMap"), "off by default");

    let (cm, plugin, _, _) = argocd_cmp(&[]);
    assert_eq!(
        cm["metadata"]["namespace"], "argocd",
        "beside the repo-server"
    );
    assert_eq!(cm["metadata"]["name"], "sopsync-argocd-cmp");
    assert_eq!(plugin["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    assert_eq!(plugin["metadata"]["name"], "sopsync");
    assert_eq!(
        plugin["spec"].get("version"),
        None,
        "the name alone selects it"
    );
    assert_eq!(
        plugin["spec"]["discover"],
        json!({"fileName": "./.sops.yaml"})
    );
    let params = plugin["spec"]["parameters"]["static"]
        .as_array()
        .expect("static parameter announcements");
    assert_eq!(params[0]["name"], "mode");
    assert_eq!(
        params[0]["string"], "safe",
        "the default the plugin applies"
    );
    assert_eq!(params[1]["name"], "valueFiles");
    assert_eq!(params[1]["collectionType"], "array");
    let command = |step: &str| -> Vec<String> {
        plugin["spec"][step]["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{step}.command"))
            .iter()
            .map(|a| a.as_str().expect("string").to_string())
            .collect()
    };
    assert_eq!(command("generate"), ["sopsync", "argocd", "generate"]);

    // Run both commands exactly as written, found on PATH as in the sidecar.
    let app = crate::argocd::app();
    let run_step = |step: &str| {
        let argv = command(step);
        let mut c = Command::new(&argv[0]);
        crate::argocd::as_cmp_server_runs(&mut c, &app, "safe").args(&argv[1..]);
        crate::support::run_with_deadline(&mut c, std::time::Duration::from_secs(60))
    };
    let init = run_step("init");
    assert!(init.status.success() && init.stdout.is_empty(), "{init:?}");
    let generated = run_step("generate");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let out = String::from_utf8(generated.stdout).expect("utf-8");
    assert!(
        out.contains("kind: ConfigMap") && out.contains("kind: SopsSecret"),
        "{out}"
    );

    // `discover: null` claims no app: only Applications naming the plugin use it.
    let (_, explicit, _, _) = argocd_cmp(&["argocd.cmp.discover=null"]);
    assert_eq!(explicit["spec"].get("discover"), None);
}

/// Issue 13: the repo-server sidecar, as values for the argo-cd chart: Argo CD's uid
/// 999, a read-only root, argocd-cmp-server as its entrypoint, plugin.yaml from the
/// chart's ConfigMap, its own /tmp (HELM_CACHE_HOME) and the age key from a Secret; the
/// health check is the shipped Lua file; examples/argocd-values.yaml is this output.
#[test]
fn the_sidecar_snippet_runs_as_argo_cds_uid_read_only_with_the_key_from_a_secret() {
    let (cm, _, values, text) = argocd_cmp(&["argocd.cmp.ageKey.existingSecret=sopsync-age-key"]);
    let sidecars = values["repoServer"]["extraContainers"]
        .as_array()
        .expect("repoServer.extraContainers");
    assert_eq!(sidecars.len(), 1);
    let c = &sidecars[0];
    assert_eq!(c["command"], json!(["/var/run/argocd/argocd-cmp-server"]));
    assert_eq!(c["image"], "ghcr.io/sopsync/sopsync:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsUser"], 999);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    let env: BTreeMap<String, String> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name").into(),
                e["value"].as_str().expect("value").into(),
            )
        })
        .collect();
    assert_eq!(env["SOPS_AGE_KEY_FILE"], "/etc/sopsync/age/age.agekey");
    assert!(env["HELM_CACHE_HOME"].starts_with("/tmp/"));
    let mounts: BTreeMap<String, Value> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| (m["mountPath"].as_str().expect("path").into(), m.clone()))
        .collect();
    assert_eq!(mounts["/var/run/argocd"]["name"], "var-files");
    assert_eq!(mounts["/home/argocd/cmp-server/plugins"]["name"], "plugins");
    let config = &mounts["/home/argocd/cmp-server/config/plugin.yaml"];
    assert_eq!(config["subPath"], "plugin.yaml");
    assert_eq!(mounts["/etc/sopsync/age"]["readOnly"], true);
    let volumes: BTreeMap<String, Value> = values["repoServer"]["volumes"]
        .as_array()
        .expect("repoServer.volumes")
        .iter()
        .map(|v| (v["name"].as_str().expect("name").into(), v.clone()))
        .collect();
    assert_eq!(
        volumes[config["name"].as_str().expect("name")]["configMap"]["name"],
        cm["metadata"]["name"],
        "plugin.yaml comes from the chart's ConfigMap"
    );
    let tmp = &volumes[mounts["/tmp"]["name"].as_str().expect("name")];
    assert!(tmp["emptyDir"].is_object(), "{tmp}");
    let key = &volumes[mounts["/etc/sopsync/age"]["name"].as_str().expect("name")];
    assert_eq!(key["secret"]["secretName"], "sopsync-age-key");
    // Every mount but the repo-server's own two volumes is declared.
    for (path, m) in &mounts {
        let name = m["name"].as_str().expect("name");
        assert!(
            volumes.contains_key(name) || ["var-files", "plugins"].contains(&name),
            "{path}: volume {name} is not declared"
        );
    }
    let lua = std::fs::read_to_string(chart_dir().join("files/sopssecret-health.lua"))
        .expect("the health check");
    assert_eq!(
        values["configs"]["cm"]["resource.customizations.health.sopsync.io_SopsSecret"]
            .as_str()
            .expect("the health check in argocd-cm"),
        lua
    );
    // Without a key the sidecar mounts none (mode safe needs none).
    let (_, _, keyless, _) = argocd_cmp(&[]);
    let keyless = keyless.to_string();
    assert!(!keyless.contains("SOPS_AGE_KEY_FILE") && !keyless.contains("/etc/sopsync/age"));

    let example = crate::support::project_root().join("examples/argocd-values.yaml");
    assert!(
        std::fs::read_to_string(&example).ok().as_deref() == Some(text.as_str()),
        "examples/argocd-values.yaml is not what the chart renders; regenerate it with \
         `helm template sopsync charts/sopsync --set argocd.cmp.enabled=true --set \
         argocd.cmp.ageKey.existingSecret=sopsync-age-key` (the ConfigMap's \
         argo-cd-values.yaml entry):\n{text}"
    );
}

/// Issue 13: the new `argocd` section refuses unknown keys like the chart's others.
#[test]
fn the_values_schema_refuses_a_typo_in_the_argocd_section() {
    for (set, helm_says) in [
        (
            "argocd.cmp.enabeld=true",
            "at '/argocd/cmp': additional properties 'enabeld' not allowed",
        ),
        (
            "argocd.cmp.ageKey.existingSecert=k",
            "at '/argocd/cmp/ageKey': additional properties 'existingSecert' not allowed",
        ),
        ("argocd.cmp.enabled=yes", "at '/argocd/cmp/enabled'"),
    ] {
        let err = template_error(&["--set", set]);
        assert!(
            err.contains("values don't meet the specifications of the schema")
                && err.contains(helm_says),
            "--set {set}: {err}"
        );
    }
}

/// Runs the shipped health check under Debian's `lua5.1` as Argo CD runs it in
/// gopher-lua: the object in the global `obj`, only the base and table libraries, and
/// no string methods. Returns (status, message).
fn health_of(object: &Value) -> (String, String) {
    fn lua_literal(v: &Value) -> String {
        match v {
            Value::Null => "nil".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => {
                let items: Vec<String> = a.iter().map(lua_literal).collect();
                format!("{{{}}}", items.join(", "))
            }
            Value::Object(o) => {
                let items: Vec<String> = o
                    .iter()
                    .map(|(k, v)| format!("[{k:?}] = {}", lua_literal(v)))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
    let dir = tempdir();
    let driver = dir.path().join("driver.lua");
    let script = chart_dir().join("files/sopssecret-health.lua");
    std::fs::write(
        &driver,
        format!(
            r#"local chunk = assert(loadfile({script:?}))
local env = {{ obj = {obj}, table = table }}
for _, name in ipairs({{"assert", "error", "ipairs", "next", "pairs", "pcall", "select",
    "tonumber", "tostring", "type", "unpack"}}) do
  env[name] = _G[name]
end
setfenv(chunk, env)
local strings = getmetatable("")
strings.__index = nil
local hs = chunk()
strings.__index = string
io.write(hs.status, "\n", hs.message, "\n")
"#,
            script = script.display().to_string(),
            obj = lua_literal(object),
        ),
    )
    .expect("write the driver");
    let out = run_ok(Command::new(tool("lua5.1")).arg(&driver));
    let text = String::from_utf8(out).expect("utf-8");
    let (status, message) = text.split_once('\n').expect("two lines");
    (status.into(), message.trim_end_matches('\n').into())
}

fn sops_secret(generation: i64, status: Value) -> Value {
    json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
           "metadata": {"name": "db", "namespace": "prod", "generation": generation},
           "spec": {"encrypted": "..."}, "status": status})
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": generation})
}

/// Issue 13: the SopsSecret health check (charts/sopsync/files/sopssecret-health.lua)
/// turns the controller's status into Argo CD's health: Healthy when Ready is True for
/// the current generation, Degraded with the message when Ready is False, Progressing
/// while there is no status, while the status is for an older generation, and while
/// the controller retries.
#[test]
fn the_sopssecret_health_check_maps_the_controllers_status_to_argo_cd_health() {
    let ready = |g| condition("Ready", "True", "Synced", "1 Secret in sync", g);
    let cases = [
        (
            sops_secret(
                2,
                json!({"observedGeneration": 2, "conditions": [ready(2)]}),
            ),
            ("Healthy", "1 Secret in sync"),
        ),
        (
            sops_secret(
                2,
                json!({"observedGeneration": 2, "conditions": [
                    condition("Ready", "False", "DecryptFailed", "db.yaml: MAC mismatch", 2),
                    condition("Stalled", "True", "DecryptFailed", "db.yaml: MAC mismatch", 2)]}),
            ),
            ("Degraded", "db.yaml: MAC mismatch"),
        ),
        (
            json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
                   "metadata": {"name": "db", "generation": 1}}),
            (
                "Progressing",
                "Waiting for the sopsync controller to reconcile",
            ),
        ),
        (
            sops_secret(
                3,
                json!({"observedGeneration": 2, "conditions": [ready(2)]}),
            ),
            (
                "Progressing",
                "Waiting for the sopsync controller to observe generation 3",
            ),
        ),
        (
            sops_secret(
                2,
                json!({"observedGeneration": 2, "conditions": [
                    condition("Ready", "False", "ApiError", "apply db: 503", 2),
                    condition("Reconciling", "True", "ApiError", "apply db: 503", 2)]}),
            ),
            ("Progressing", "apply db: 503"),
        ),
        (
            sops_secret(
                2,
                json!({"observedGeneration": 2, "conditions": [condition(
                    "Ready",
                    "False",
                    "Suspended",
                    "spec.suspend is true: nothing is synced",
                    2
                )]}),
            ),
            ("Suspended", "spec.suspend is true: nothing is synced"),
        ),
    ];
    for (object, (status, message)) in cases {
        assert_eq!(
            health_of(&object),
            (status.to_string(), message.to_string()),
            "{}",
            object["status"]
        );
    }
}
