//! What every reconcile shares: the client, the configuration, metrics, the Event
//! recorder and per-object backoff; and the per-reconcile loading of keys and Git
//! credentials from Secrets in the object's own namespace (STYLE.md 25: loaded per
//! reconcile, dropped afterwards, never cached).

use super::crd::{Decryption, LocalSecretRef, DEFAULT_KEY_SECRET};
use super::metrics::Metrics;
use crate::core::keys::{AgeIdentities, Keyring};
use crate::ephemeral::EphemeralFile;
use crate::repo::git::{GitAuth, GitPolicy};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// The controller's settings (from the command line).
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// Reconcile only objects matching this label selector (sharding).
    pub shard_selector: Option<String>,
    /// Where Git checkouts are cached (one directory per SecretSource UID).
    pub cache_dir: PathBuf,
    /// Limit for each git command.
    pub git_timeout: Duration,
    /// How long the API server may stay silent on a request before the client gives up
    /// (issue 16: without it a hung call hung its reconcile for good).
    pub api_timeout: Duration,
    /// Whether SecretSources may name `file://` URLs and local paths.
    pub allow_local_git_sources: bool,
    /// Hosts SecretSources may fetch from (`*.domain` for subdomains); empty: any.
    pub git_allowed_hosts: Vec<String>,
    /// The controller's own age key file (read per reconcile, only for allowed namespaces).
    pub controller_key_file: Option<PathBuf>,
    /// Namespaces allowed to use the controller's key (`*`: all).
    pub controller_key_namespaces: Vec<String>,
    /// Whether the controller's own AWS identity (the pod's: IRSA, instance profile,
    /// environment) may be used for AWS KMS, by the same namespaces and on the same
    /// opt-in (`useControllerKey`) as the controller's age key (issue 15).
    pub controller_kms_identity: bool,
    /// Key Secret name used when an object names none.
    pub default_key_secret: String,
    /// Concurrent Secret writes within one reconcile.
    pub write_concurrency: usize,
    /// Concurrent reconciles.
    pub concurrency: u16,
    /// Shortest accepted `spec.interval`.
    pub min_interval: Duration,
    /// First retry delay after an error (doubles up to `max_backoff`).
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// The name Events are reported under.
    pub reporter: String,
    /// This instance's name (pod name), for Events and the lease.
    pub instance: String,
    /// Whether workloads may be read and restarted (`--workload-restarts`; the chart
    /// grants the RBAC only with `rotation.workloadRestarts.enabled`).
    pub workload_restarts: bool,
    /// The default `spec.rotation.debounce`.
    pub rotation_debounce: Duration,
    /// The controller's own namespace, where the digest key Secret lives.
    pub own_namespace: String,
    /// The digest key Secret's name.
    pub digest_key_secret: String,
    /// The clock of the debounce window (the system clock but in sopsync's own tests).
    pub rotation_clock: super::rotation::clock::Clock,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespace: None,
            shard_selector: None,
            cache_dir: std::env::temp_dir().join("sopsync-cache"),
            git_timeout: Duration::from_secs(120),
            api_timeout: Duration::from_secs(30),
            allow_local_git_sources: false,
            git_allowed_hosts: Vec::new(),
            controller_key_file: None,
            controller_key_namespaces: Vec::new(),
            controller_kms_identity: false,
            default_key_secret: DEFAULT_KEY_SECRET.into(),
            write_concurrency: 16,
            concurrency: 4,
            min_interval: Duration::from_secs(10),
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            reporter: "sopsync-controller".into(),
            instance: "sopsync-controller".into(),
            workload_restarts: false,
            rotation_debounce: super::rotation::DEFAULT_DEBOUNCE,
            own_namespace: "default".into(),
            digest_key_secret: super::rotation::digest_key::DEFAULT_SECRET.into(),
            rotation_clock: super::rotation::clock::Clock::system(),
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub config: ControllerConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Consecutive failures per object (`kind/namespace/name`), for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Changes whose restarts wait for their debounce window, by owner uid.
    pub pending_restarts: super::rotation::debounce::Pending,
}

/// Why keys or credentials could not be loaded: a denial or a missing/invalid
/// reference (stalls the object until it or the Secret changes), or an API error.
#[derive(Debug)]
pub enum LoadError {
    /// Not allowed or not usable as configured: (reason, message).
    Stall(&'static str, String),
    /// The API server failed.
    Api(kube::Error),
}

/// The key Secret entry holding a namespace's AWS credentials (Flux's name and format:
/// `aws_access_key_id`, `aws_secret_access_key`, optional `aws_session_token`).
pub const AWS_KMS_ENTRY: &str = "sops.aws-kms";

/// A private GnuPG home holding `keys` (armored PGP keys, with where they came from),
/// made off the async threads (gpg runs under a deadline, but it is a blocking wait).
///
/// Errors: a stall naming the entry gpg refused, with gpg's reason (never the key).
async fn import_pgp_keys(
    keys: Vec<(String, Zeroizing<Vec<u8>>)>,
) -> Result<crate::pgp::PrivateGnupg, LoadError> {
    let made = tokio::task::spawn_blocking(move || {
        let mut gnupg = crate::pgp::PrivateGnupg::new()?;
        for (source, armored) in &keys {
            gnupg.import(armored, source)?;
        }
        Ok::<_, String>(gnupg)
    })
    .await
    .map_err(|e| LoadError::Stall("PgpKeyUnusable", format!("importing PGP keys failed: {e}")))?;
    made.map_err(|e| LoadError::Stall("PgpKeyUnusable", e))
}

impl Context {
    /// A context over `client`.
    pub fn new(client: Client, config: ControllerConfig, metrics: Arc<Metrics>) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: config.reporter.clone(),
                instance: Some(config.instance.clone()),
            },
        );
        Context {
            client,
            config,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
            pending_restarts: Default::default(),
        }
    }

    /// Records a failure and returns the delay before the next attempt
    /// (`base * 2^(n-1)`, capped).
    pub fn backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(self.config.base_backoff, self.config.max_backoff, *n)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// What git may be pointed at and run with: the operator's flags, and an
    /// environment built from scratch with a private HOME under the cache directory.
    pub fn git_policy(&self) -> GitPolicy {
        GitPolicy {
            allow_local: self.config.allow_local_git_sources,
            allowed_hosts: self.config.git_allowed_hosts.clone(),
            isolated_home: Some(self.config.cache_dir.join(".home")),
        }
    }

    fn controller_key_allowed(&self, namespace: &str) -> bool {
        self.config
            .controller_key_namespaces
            .iter()
            .any(|n| n == "*" || n == namespace)
    }

    /// Loads the keys an object in `namespace` may use: the age identities of
    /// `*.agekey` entries (and the controller's key when allowed), the PGP keys of
    /// `*.asc` entries in a private GnuPG home that is removed when the keyring drops,
    /// and AWS KMS with the `sops.aws-kms` entry's credentials (or the controller's own
    /// AWS identity, when allowed like its key). Without either, KMS entries are never
    /// tried with the pod's identity: they fail with a message saying what to add.
    pub async fn load_keys(&self, namespace: &str, d: &Decryption) -> Result<Keyring, LoadError> {
        if let Some(other) = d
            .secret_ref
            .as_ref()
            .and_then(|r| r.namespace.as_deref())
            .filter(|n| *n != namespace)
        {
            return Err(LoadError::Stall(
                "KeyDenied",
                format!(
                    "spec.decryption.secretRef.namespace {other:?}: keys are read only from the object's own namespace {namespace:?}"
                ),
            ));
        }
        let mut ids = AgeIdentities::new();
        let mut pgp_keys: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
        let mut kms_static: Option<crate::kms::AwsKms> = None;
        let mut kms_controller = false;
        let mut found = 0usize;
        if d.use_controller_key && self.config.controller_kms_identity {
            if !self.controller_key_allowed(namespace) {
                return Err(LoadError::Stall(
                    "ControllerKeyDenied",
                    format!(
                        "spec.decryption.useControllerKey: namespace {namespace:?} is not allowed to use the controller's key (--controller-key-namespaces)"
                    ),
                ));
            }
            kms_controller = true;
            found += 1;
        }
        if d.use_controller_key
            && (self.config.controller_key_file.is_some() || !self.config.controller_kms_identity)
        {
            if !self.controller_key_allowed(namespace) {
                return Err(LoadError::Stall(
                    "ControllerKeyDenied",
                    format!(
                        "spec.decryption.useControllerKey: namespace {namespace:?} is not allowed to use the controller's key (--controller-key-namespaces)"
                    ),
                ));
            }
            let Some(path) = &self.config.controller_key_file else {
                return Err(LoadError::Stall(
                    "ControllerKeyUnavailable",
                    "spec.decryption.useControllerKey: the controller was started without --controller-key-file".into(),
                ));
            };
            let text = crate::keysource::read_key_file(path).map_err(|e| {
                LoadError::Stall(
                    "ControllerKeyUnavailable",
                    format!("the controller's key file cannot be read: {e}"),
                )
            })?;
            ids.add_source(&text, "the controller's key");
            found += 1;
        }
        let explicit = d.secret_ref.is_some();
        let name = d
            .secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| self.config.default_key_secret.clone());
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(&name).await.map_err(LoadError::Api)? {
            None if explicit || found == 0 => {
                return Err(LoadError::Stall(
                    "KeySecretNotFound",
                    format!(
                        "key Secret {namespace}/{name} does not exist; create it with an `<name>.agekey` entry holding an age identity"
                    ),
                ))
            }
            None => {}
            Some(mut secret) => {
                for (key, value) in secret.data.iter_mut().flatten() {
                    let source = format!("Secret {namespace}/{name} key {key}");
                    if key.ends_with(".agekey") {
                        let text = Zeroizing::new(String::from_utf8_lossy(&value.0).into_owned());
                        ids.add_source(&text, &source);
                        found += 1;
                    } else if key == AWS_KMS_ENTRY {
                        // AWS credentials (issue 15), same tenancy: this Secret only.
                        let text = Zeroizing::new(String::from_utf8_lossy(&value.0).into_owned());
                        let creds = crate::kms::StaticCredentials::parse(&text).map_err(|e| {
                            LoadError::Stall("KmsCredentialsInvalid", format!("{source}: {e}"))
                        })?;
                        kms_static = Some(crate::kms::AwsKms::from_static(&creds, &source).map_err(
                            |e| LoadError::Stall("KmsCredentialsInvalid", format!("{source}: {e}")),
                        )?);
                        found += 1;
                    } else if key.ends_with(".asc") {
                        // PGP keys (issue 15), under the same tenancy rules as age keys:
                        // this Secret, in the object's own namespace.
                        pgp_keys.push((source, Zeroizing::new(std::mem::take(&mut value.0))));
                        found += 1;
                    }
                    value.0.zeroize();
                }
                if found == 0 {
                    return Err(LoadError::Stall(
                        "NoKeys",
                        format!("key Secret {namespace}/{name} has no `*.agekey`, `*.asc` or `{AWS_KMS_ENTRY}` entry"),
                    ));
                }
            }
        }
        let mut ring = Keyring::new();
        ring.push(ids);
        if !pgp_keys.is_empty() {
            ring.push(import_pgp_keys(pgp_keys).await?);
        }
        let has_static = kms_static.is_some();
        if let Some(kms) = kms_static {
            ring.push(kms);
        }
        if kms_controller {
            let kms = crate::kms::AwsKms::for_controller_identity()
                .map_err(|e| LoadError::Stall("KmsCredentialsInvalid", e))?;
            ring.push(kms);
        } else if !has_static {
            ring.push(crate::keysource::Unusable {
                what: "AWS KMS",
                kind: "kms",
                reason: format!(
                    "no AWS credentials for namespace {namespace:?}: add a `{AWS_KMS_ENTRY}` entry (aws_access_key_id, aws_secret_access_key) to key Secret {namespace}/{name}, or have the operator allow the controller's AWS identity here (--controller-kms-identity, --controller-key-namespaces) and set spec.decryption.useControllerKey"
                ),
            });
        }
        Ok(ring)
    }

    /// Loads Git credentials from `auth` (same namespace). SSH keys and known_hosts go to
    /// private 0600 files that are wiped when the returned guard drops.
    pub async fn load_git_auth(
        &self,
        namespace: &str,
        auth: Option<&LocalSecretRef>,
    ) -> Result<(GitAuth, Vec<EphemeralFile>), LoadError> {
        let Some(r) = auth else {
            return Ok((GitAuth::default(), Vec::new()));
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut secret = api
            .get_opt(&r.name)
            .await
            .map_err(LoadError::Api)?
            .ok_or_else(|| {
                LoadError::Stall(
                    "AuthSecretNotFound",
                    format!(
                        "Git credentials Secret {namespace}/{} does not exist",
                        r.name
                    ),
                )
            })?;
        let mut data = secret.data.take().unwrap_or_default();
        let text = |k: &str| -> Option<Zeroizing<String>> {
            data.get(k).map(|v| {
                Zeroizing::new(
                    String::from_utf8_lossy(&v.0)
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                )
            })
        };
        let mut files = Vec::new();
        let mut git = GitAuth {
            username: text("username").map(|u| u.to_string()),
            password: text("password").map(|p| Zeroizing::new(p.to_string())),
            ..GitAuth::default()
        };
        if let Some(identity) = data.get("identity") {
            let known = data.get("known_hosts").ok_or_else(|| {
                LoadError::Stall(
                    "AuthSecretInvalid",
                    format!("Git credentials Secret {namespace}/{}: `identity` needs `known_hosts` (host keys are always checked)", r.name),
                )
            })?;
            let stall = |e: std::io::Error| {
                LoadError::Stall(
                    "AuthSecretInvalid",
                    format!("cannot stage the SSH key: {e}"),
                )
            };
            let key = EphemeralFile::create("identity", &identity.0).map_err(stall)?;
            let hosts = EphemeralFile::create("known_hosts", &known.0).map_err(stall)?;
            git.ssh_key = Some(key.path().to_path_buf());
            git.known_hosts = Some(hosts.path().to_path_buf());
            files.push(key);
            files.push(hosts);
        }
        for v in data.values_mut() {
            v.0.zeroize();
        }
        Ok((git, files))
    }
}

/// The delay after `failures` consecutive failures: `base * 2^(failures-1)`, capped.
pub fn backoff_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (b, m) = (Duration::from_secs(5), Duration::from_secs(300));
        let d: Vec<u64> = (1..=9).map(|n| backoff_delay(b, m, n).as_secs()).collect();
        assert_eq!(d, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff_delay(b, m, u32::MAX).as_secs(), 300);
    }

    #[test]
    fn defaults_are_safe() {
        let c = ControllerConfig::default();
        assert!(
            c.controller_key_namespaces.is_empty(),
            "the controller's key is opt-in"
        );
        assert_eq!(c.default_key_secret, "sopsync-age-key");
        assert!(
            !c.allow_local_git_sources,
            "tenants may not read the pod's filesystem"
        );
    }
}
