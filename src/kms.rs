//! AWS KMS through the official AWS SDK (spec §5.6, issue 15): the calls sops makes
//! (kms/keysource.go), `Encrypt` and `Decrypt` with the key's ARN and encryption
//! context, in the region named by the ARN, after an STS `AssumeRole` when the entry
//! has a `role`. The pure half (the `sops.kms` entry, the ARN's region) is
//! `core::keys::kms`.
//!
//! Guarantees:
//! - credentials come from the SDK's default chain (environment, `aws_profile` or
//!   `AWS_PROFILE` in the shared files, web identity, container and instance metadata),
//!   as sops' Go SDK finds them, or, for the controller, only from the static
//!   credentials it was given (a namespace's key Secret): they never reach an argument,
//!   a file of ours or a message;
//! - every call is bounded: the SDK's connect and operation timeouts and an outer
//!   deadline over the whole call, credentials resolution included
//!   (`SOPSYNC_KMS_TIMEOUT` seconds, default 30);
//! - a failure names the ARN, says what AWS answered (its error code and message, which
//!   hold no key material) or why no answer came, and what to do;
//! - HTTPS goes through rustls on ring, the TLS stack the controller's kube client
//!   already uses (no aws-lc-rs).
//!
//! Assumptions: `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL` point the SDK at another
//! KMS endpoint (the tests' moto server), as they do for sops.

use crate::core::keys::{KeyBackend, KeyError, KmsEngine, KmsKey};
use crate::core::metadata::MasterKey;
use std::time::Duration;
use zeroize::Zeroizing;

/// Default of `SOPSYNC_KMS_TIMEOUT`: a KMS call answers in milliseconds; the SDK retries
/// a throttled or failed call a few times inside this bound.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// The deadline of one KMS operation: `SOPSYNC_KMS_TIMEOUT` seconds when set (a
/// positive whole number), else the default.
///
/// Errors: the variable is malformed.
pub fn timeout_from_env() -> Result<Duration, String> {
    let secs = match std::env::var("SOPSYNC_KMS_TIMEOUT") {
        Err(_) => DEFAULT_TIMEOUT_SECS,
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                format!("SOPSYNC_KMS_TIMEOUT={v:?} is not a positive number of seconds")
            })?,
    };
    Ok(Duration::from_secs(secs))
}

/// AWS credentials given to the controller by a namespace's key Secret (the `sops.aws-kms`
/// entry, Flux's format). Redacted in `Debug`; wiped on drop.
pub struct StaticCredentials {
    /// `aws_access_key_id`.
    pub access_key_id: Zeroizing<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Zeroizing<String>,
    /// `aws_session_token`, if any.
    pub session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticCredentials([REDACTED])")
    }
}

impl StaticCredentials {
    /// Reads Flux's `sops.aws-kms` entry: YAML lines `aws_access_key_id: …`,
    /// `aws_secret_access_key: …` and optionally `aws_session_token: …` (a flat
    /// mapping of plain scalars, read line by line so no YAML reader sees the secret).
    ///
    /// Errors: a sentence naming the missing or unknown field (never a value).
    pub fn parse(text: &str) -> Result<StaticCredentials, String> {
        let (mut id, mut secret, mut token) = (None, None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line == "---" {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(format!("line {} is not `name: value`", n + 1));
            };
            // A plain scalar ends at ` #` (Flux's docs mark the optional token so).
            let v = v.trim();
            let v = match v.as_bytes().first() {
                Some(b'"' | b'\'') => v.trim_matches(['"', '\'']),
                _ => v.split(" #").next().unwrap_or("").trim(),
            };
            let v = Zeroizing::new(v.to_string());
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                other => {
                    return Err(format!(
                        "unknown field `{other}` (expected aws_access_key_id, aws_secret_access_key, aws_session_token)"
                    ))
                }
            }
        }
        let need = |v: Option<Zeroizing<String>>, name: &str| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| format!("`{name}` is missing"))
        };
        Ok(StaticCredentials {
            access_key_id: need(id, "aws_access_key_id")?,
            secret_access_key: need(secret, "aws_secret_access_key")?,
            session_token: token.filter(|t| !t.is_empty()),
        })
    }
}

#[cfg(feature = "aws-kms")]
pub use self::sdk::AwsKms;

#[cfg(not(feature = "aws-kms"))]
pub use self::without_sdk::AwsKms;

#[cfg(feature = "aws-kms")]
mod sdk {
    use super::{KeyBackend, KeyError, KmsEngine, KmsKey, MasterKey, StaticCredentials};
    use aws_config::sts::AssumeRoleProvider;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::BehaviorVersion;
    use aws_sdk_kms::config::http::HttpResponse;
    use aws_sdk_kms::config::{Credentials, Region, SharedCredentialsProvider};
    use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_kms::primitives::Blob;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;
    use zeroize::Zeroizing;

    /// Where credentials come from.
    enum Source {
        /// The SDK's default chain, with the entry's `aws_profile` (the CLI; the
        /// controller's own identity when an operator allows it).
        DefaultChain,
        /// Only these (a namespace's key Secret); profiles are never read.
        Static(Credentials, String),
        /// The controller's own identity serving a tenant's files: the default chain,
        /// but the file's `aws_profile` is ignored (the pod's shared config is not the
        /// tenant's) and a file's `role` is refused (a namespace could otherwise assume
        /// any role the controller's identity may, including other namespaces' roles).
        ControllerIdentity,
    }

    /// What the error says when AWS answered with `code`: the likely cause and what to do.
    fn hint(code: &str) -> &'static str {
        match code {
            "InvalidCiphertextException" => {
                "the ciphertext or its encryption context does not match: the entry's `context` must be the one the data key was encrypted with"
            }
            "AccessDeniedException" | "AccessDenied" => {
                "the credentials in use may not use this key: check the key policy and IAM permissions (kms:Encrypt, kms:Decrypt)"
            }
            "NotFoundException" => "no such key in this account and region: check the ARN",
            "DisabledException" | "KMSInvalidStateException" => {
                "the key is disabled or pending deletion: enable it in AWS KMS"
            }
            "IncorrectKeyException" => "the data key was encrypted with another KMS key",
            "UnrecognizedClientException" | "InvalidClientTokenId" | "ExpiredTokenException" => {
                "the AWS credentials are not valid (or have expired): refresh them"
            }
            _ => "see AWS's message",
        }
    }

    /// A client's identity: region, profile, role.
    type ClientKey = (String, Option<String>, Option<String>);

    /// AWS KMS: unwraps `sops.kms` entries and wraps data keys for KMS keys.
    pub struct AwsKms {
        source: Source,
        timeout: Duration,
        /// Drives the SDK's futures; shut down in the background on drop, since the
        /// controller may drop a keyring on an async thread.
        runtime: Option<tokio::runtime::Runtime>,
        /// One client per (region, profile, role): its connections are reused for
        /// every entry of a render.
        clients: Mutex<HashMap<ClientKey, aws_sdk_kms::Client>>,
    }

    impl AwsKms {
        /// KMS with the SDK's default credentials chain (the CLI, and the controller's
        /// own identity).
        ///
        /// Errors: `SOPSYNC_KMS_TIMEOUT` is malformed, or no runtime could be made.
        pub fn from_default_chain() -> Result<AwsKms, String> {
            AwsKms::with_source(Source::DefaultChain)
        }

        /// KMS with only `creds` (`from` says where they came from, for messages).
        ///
        /// Errors: as [`AwsKms::from_default_chain`].
        pub fn from_static(creds: &StaticCredentials, from: &str) -> Result<AwsKms, String> {
            let c = Credentials::new(
                creds.access_key_id.as_str(),
                creds.secret_access_key.as_str(),
                creds.session_token.as_ref().map(|t| t.to_string()),
                None,
                "sopsync-key-secret",
            );
            AwsKms::with_source(Source::Static(c, from.to_string()))
        }

        /// KMS with the controller's own identity for a tenant's files (see
        /// [`Source::ControllerIdentity`]).
        ///
        /// Errors: as [`AwsKms::from_default_chain`].
        pub fn for_controller_identity() -> Result<AwsKms, String> {
            AwsKms::with_source(Source::ControllerIdentity)
        }

        fn with_source(source: Source) -> Result<AwsKms, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the AWS SDK's runtime: {e}"))?;
            Ok(AwsKms {
                source,
                timeout: super::timeout_from_env()?,
                runtime: Some(runtime),
                clients: Mutex::new(HashMap::new()),
            })
        }

        /// Runs `fut` to completion on our runtime, on a thread of its own (the caller
        /// may be a thread of another runtime, where blocking on one is refused), under
        /// the outer deadline.
        fn run<T: Send>(
            &self,
            arn: &str,
            fut: impl std::future::Future<Output = Result<T, String>> + Send,
        ) -> Result<T, KeyError> {
            let fail = |reason: String| KeyError::Kms {
                arn: arn.to_string(),
                reason,
            };
            let rt = self
                .runtime
                .as_ref()
                .ok_or_else(|| fail("the AWS SDK's runtime is shut down".into()))?;
            let timeout = self.timeout;
            let bounded = async move {
                match tokio::time::timeout(timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "no answer from AWS KMS within {}s (credentials or the request); check the network and AWS_ENDPOINT_URL_KMS, or raise SOPSYNC_KMS_TIMEOUT",
                        timeout.as_secs()
                    )),
                }
            };
            let joined = std::thread::scope(|s| s.spawn(|| rt.block_on(bounded)).join());
            match joined {
                Ok(r) => r.map_err(fail),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }

        /// The client for `key`'s region, profile and role.
        async fn client(&self, key: &KmsKey) -> Result<aws_sdk_kms::Client, String> {
            let region = key.region().map_err(|e| e.to_string())?.to_string();
            let profile = match self.source {
                Source::DefaultChain => key.aws_profile.clone(),
                // A tenant's credentials, or the controller's identity serving a
                // tenant: the pod's shared config is not theirs.
                Source::Static(..) | Source::ControllerIdentity => None,
            };
            if let (Source::ControllerIdentity, Some(role)) = (&self.source, &key.role) {
                return Err(format!(
                    "the entry asks for role {role}, and the controller's own AWS identity does not assume a role a file names (a namespace could assume any role the controller may); give this namespace its own credentials (a `sops.aws-kms` entry in its key Secret)"
                ));
            }
            let id = (region.clone(), profile.clone(), key.role.clone());
            if let Some(c) = self.lock().get(&id) {
                return Ok(c.clone());
            }
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region))
                .http_client(http)
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10).min(self.timeout))
                        .operation_timeout(self.timeout)
                        .build(),
                );
            match &self.source {
                Source::DefaultChain | Source::ControllerIdentity => {
                    if let Some(p) = &profile {
                        loader = loader.profile_name(p);
                    }
                }
                Source::Static(c, _) => loader = loader.credentials_provider(c.clone()),
            }
            let mut conf = loader.load().await;
            if let Some(role) = &key.role {
                // sops: STS AssumeRole with the credentials found above, session
                // `sops@<hostname>`; ours says who called.
                let provider = AssumeRoleProvider::builder(role)
                    .session_name(session_name())
                    .configure(&conf)
                    .build()
                    .await;
                conf = conf
                    .into_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .build();
            }
            let client = aws_sdk_kms::Client::new(&conf);
            self.lock().insert(id, client.clone());
            Ok(client)
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, aws_sdk_kms::Client>> {
            self.clients.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    /// `sopsync@<hostname>`, keeping the characters STS accepts, at most 64 (sops:
    /// `stsSessionName`).
    fn session_name() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let clean: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "=,.@_-".contains(*c))
            .collect();
        let mut name = format!("sopsync@{clean}");
        name.truncate(64);
        name
    }

    /// What AWS answered, or why no answer came, with the hint for it.
    fn describe_error<E>(what: &str, e: &SdkError<E, HttpResponse>) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let text = match e.as_service_error() {
            Some(se) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                match (se.code(), status) {
                    (Some(code), _) => format!(
                        "{what}: AWS KMS answered {code}: {} ({})",
                        se.message().unwrap_or("no message"),
                        hint(code)
                    ),
                    // An answer without an error code the SDK could read (an endpoint
                    // that is not KMS, a proxy): its HTTP status says the most.
                    (None, Some(status)) => format!(
                        "{what}: AWS KMS answered HTTP {status} without an error code it could read ({})",
                        match status {
                            401 | 403 => hint("AccessDenied"),
                            _ => "check AWS_ENDPOINT_URL_KMS if set, and the network",
                        }
                    ),
                    (None, None) => format!(
                        "{what}: AWS KMS answered an error without a code: {}",
                        se.message().unwrap_or("no message")
                    ),
                }
            }
            None => {
                // The causes' own words, without the SDK's Debug dumps of responses.
                let mut causes: Vec<String> = Vec::new();
                let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
                while let Some(err) = next {
                    let text = err.to_string();
                    if !causes.iter().any(|c| c.contains(&text)) {
                        causes.push(text);
                    }
                    next = err.source();
                }
                let joined = causes.join(": ");
                let todo = if joined.contains("credentials") {
                    "no usable AWS credentials: set AWS_PROFILE (or --aws-profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                } else {
                    "check the network, and AWS_ENDPOINT_URL_KMS if set"
                };
                format!("{what}: {joined} ({todo})")
            }
        };
        text.chars().take(600).collect()
    }

    fn context_map(key: &KmsKey) -> Option<HashMap<String, String>> {
        (!key.context.is_empty()).then(|| key.context.iter().cloned().collect())
    }

    impl KeyBackend for AwsKms {
        fn unwrap(&self, entry: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
            let Some(parsed) = KmsKey::of_master_key(entry) else {
                return Ok(None);
            };
            let (key, fields) = parsed?;
            let blob = key.blob_of(fields)?;
            let out = self.run(&key.arn, async {
                let client = self.client(&key).await?;
                let out = client
                    .decrypt()
                    .key_id(&key.arn)
                    .ciphertext_blob(Blob::new(blob))
                    .set_encryption_context(context_map(&key))
                    .send()
                    .await
                    .map_err(|e| describe_error("cannot decrypt the data key", &e))?;
                let plain = out
                    .plaintext
                    .ok_or("AWS KMS returned no plaintext")?
                    .into_inner();
                Ok(Zeroizing::new(plain))
            })?;
            Ok(Some(out))
        }

        fn handles(&self, key: &MasterKey) -> bool {
            key.type_name() == "kms"
        }

        fn describe(&self) -> String {
            match &self.source {
                Source::DefaultChain => {
                    "AWS KMS (credentials from the AWS SDK's default chain)".into()
                }
                Source::Static(_, from) => format!("AWS KMS (credentials from {from})"),
                Source::ControllerIdentity => {
                    "AWS KMS (the controller's own AWS identity; no file-named role or profile)"
                        .into()
                }
            }
        }
    }

    impl KmsEngine for AwsKms {
        fn encrypt(&self, key: &KmsKey, secret: &[u8]) -> Result<Vec<u8>, KeyError> {
            let plain = Blob::new(secret.to_vec());
            self.run(&key.arn, async {
                let client = self.client(key).await?;
                let out = client
                    .encrypt()
                    .key_id(&key.arn)
                    .plaintext(plain)
                    .set_encryption_context(context_map(key))
                    .send()
                    .await
                    .map_err(|e| describe_error("cannot encrypt the data key", &e))?;
                Ok(out
                    .ciphertext_blob
                    .ok_or("AWS KMS returned no ciphertext")?
                    .into_inner())
            })
        }
    }

    impl Drop for AwsKms {
        fn drop(&mut self) {
            self.lock().clear();
            if let Some(rt) = self.runtime.take() {
                // Allowed on any thread, async ones included (a plain drop is not).
                rt.shutdown_background();
            }
        }
    }
}

#[cfg(not(feature = "aws-kms"))]
mod without_sdk {
    use super::{KeyBackend, KeyError, KmsEngine, KmsKey, MasterKey, StaticCredentials};
    use zeroize::Zeroizing;

    const WHY: &str =
        "this sopsync was built without the `aws-kms` feature; use a build with it (the default)";

    /// A stand-in that says this build has no AWS KMS.
    pub struct AwsKms;

    impl AwsKms {
        /// See the `aws-kms` build.
        pub fn from_default_chain() -> Result<AwsKms, String> {
            Ok(AwsKms)
        }

        /// See the `aws-kms` build.
        pub fn from_static(_: &StaticCredentials, _: &str) -> Result<AwsKms, String> {
            Ok(AwsKms)
        }

        /// See the `aws-kms` build.
        pub fn for_controller_identity() -> Result<AwsKms, String> {
            Ok(AwsKms)
        }
    }

    impl KeyBackend for AwsKms {
        fn unwrap(&self, entry: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
            match KmsKey::of_master_key(entry) {
                None => Ok(None),
                Some(parsed) => Err(KeyError::Kms {
                    arn: parsed.map(|(k, _)| k.arn).unwrap_or_default(),
                    reason: WHY.into(),
                }),
            }
        }

        fn handles(&self, key: &MasterKey) -> bool {
            key.type_name() == "kms"
        }

        fn describe(&self) -> String {
            "AWS KMS (not in this build)".into()
        }
    }

    impl KmsEngine for AwsKms {
        fn encrypt(&self, key: &KmsKey, _: &[u8]) -> Result<Vec<u8>, KeyError> {
            Err(KeyError::Kms {
                arn: key.arn.clone(),
                reason: WHY.into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_credentials_parse_and_never_print() {
        let c = StaticCredentials::parse(
            "aws_access_key_id: AKIAEXAMPLE\naws_secret_access_key: \"s3cr3t\"\naws_session_token: tok # this field is optional\n",
        )
        .unwrap();
        assert_eq!(c.access_key_id.as_str(), "AKIAEXAMPLE");
        assert_eq!(c.secret_access_key.as_str(), "s3cr3t");
        assert_eq!(c.session_token.as_deref().map(String::as_str), Some("tok"));
        assert_eq!(format!("{c:?}"), "StaticCredentials([REDACTED])");
        let e = StaticCredentials::parse("aws_access_key_id: AKIA\n").unwrap_err();
        assert_eq!(e, "`aws_secret_access_key` is missing");
        let e = StaticCredentials::parse("password: hunter2\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[cfg(feature = "aws-kms")]
    #[test]
    fn the_controllers_own_identity_refuses_a_role_a_file_names_before_any_request() {
        let key = KmsKey::from_arn(
            "arn:aws:kms:eu-west-1:123456789012:key/k +arn:aws:iam::123456789012:role/other-team",
            vec![],
            None,
            String::new(),
        )
        .unwrap();
        let entry = key.to_master_key(b"blob");
        let kms = AwsKms::for_controller_identity().unwrap();
        let err = kms.unwrap(&entry).unwrap_err().to_string();
        assert!(
            err.contains("role arn:aws:iam::123456789012:role/other-team")
                && err.contains("does not assume a role a file names"),
            "{err}"
        );
    }
}
