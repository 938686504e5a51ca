//! `sopsync controller`: run the in-cluster controller (see [`crate::controller`]).
//! Stops on SIGTERM/SIGINT: the Controllers finish their in-flight reconciles, the
//! leader lease is released, then the HTTP server stops.

use crate::controller::context::ControllerConfig;
use crate::controller::{LeaseConfig, RunConfig};
use crate::error::CliError;
use crate::server::WebhookConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `controller` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kubeconfig file (default: in-cluster config, then $KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Reconcile only SecretSources/SopsSecrets matching this label selector (sharding).
    #[arg(long)]
    shard_selector: Option<String>,
    /// Address of the HTTP server (/healthz, /readyz, /metrics, /hooks/git).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Directory for Git checkouts (an emptyDir in the chart).
    #[arg(long, default_value = "/tmp/sopsync-cache")]
    cache_dir: PathBuf,
    /// Seconds each git command may take.
    #[arg(long, default_value_t = 120)]
    git_timeout: u64,
    /// Seconds the API server may stay silent on a request before it fails (and is retried).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..))]
    api_timeout: u64,
    /// Let SecretSources name `file://` URLs and local paths: the pod's own filesystem,
    /// other tenants' Git caches included. Off by default (and in the chart).
    #[arg(long)]
    allow_local_git_sources: bool,
    /// Git hosts SecretSources may fetch from, comma-separated: `github.com`, or
    /// `*.corp.example` for its subdomains. Empty: any host. Checked before any fetch.
    #[arg(long, value_delimiter = ',')]
    git_allowed_hosts: Vec<String>,
    /// The controller's own age key file (opt-in per namespace).
    #[arg(long)]
    controller_key_file: Option<PathBuf>,
    /// Namespaces allowed to use the controller's key, comma-separated (`*`: all).
    #[arg(long, value_delimiter = ',')]
    controller_key_namespaces: Vec<String>,
    /// Let the namespaces of --controller-key-namespaces that set useControllerKey use
    /// the controller's own AWS identity (the pod's: IRSA, instance profile,
    /// environment) for AWS KMS. Off: only a namespace's `sops.aws-kms` credentials.
    #[arg(long)]
    controller_kms_identity: bool,
    /// Key Secret used when an object names none.
    #[arg(long, default_value = crate::controller::crd::DEFAULT_KEY_SECRET)]
    default_key_secret: String,
    /// Concurrent reconciles.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Shortest accepted spec.interval, in seconds.
    #[arg(long, default_value_t = 10)]
    min_interval: u64,
    /// First retry delay after an error, in seconds (doubles up to --max-backoff).
    #[arg(long, default_value_t = 5)]
    base_backoff: u64,
    /// Longest retry delay after consecutive errors, in seconds: how long a recovered
    /// API server or Git host may wait, at worst, for the next attempt.
    #[arg(long, default_value_t = 300)]
    max_backoff: u64,
    /// Elect a leader through a Lease: only the leader writes.
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "sopsync-controller")]
    lease_name: String,
    /// The Lease's namespace (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This instance's identity (default: $POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Margin, in seconds, between the renew deadline and the lease's expiry: a leader that
    /// has not renewed for (duration − grace) seconds stops writing (client-go's renew deadline).
    #[arg(long, default_value_t = 5)]
    lease_grace: u64,
    /// File holding the webhook secret (HMAC key or GitLab token); the webhook is off without it.
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    webhook_max_body: usize,
    /// Webhook requests allowed in a burst (refilled at one per second).
    #[arg(long, default_value_t = 20)]
    webhook_burst: u32,
    /// Let the controller read and restart Deployments, StatefulSets, DaemonSets and
    /// CronJobs when a Secret they use changes (spec.rotation; needs get/list/patch on
    /// them: the chart's rotation.workloadRestarts.enabled). Off: nothing is restarted.
    #[arg(long)]
    workload_restarts: bool,
    /// Default spec.rotation.debounce: changes within this window restart once (`0s`: at once).
    #[arg(long, default_value = "10s", value_parser = parse_debounce)]
    rotation_debounce: Duration,
    /// The Secret holding the key of sopsync's keyed digests, in the controller's own
    /// namespace (created once; back it up).
    #[arg(long, default_value = crate::controller::rotation::digest_key::DEFAULT_SECRET)]
    digest_key_secret: String,
    /// The controller's own namespace, where the digest key lives (default:
    /// $POD_NAMESPACE, else the lease namespace, else `default`).
    #[arg(long)]
    own_namespace: Option<String>,
    /// Log format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Test only (hidden; refused unless SOPSYNC_ENABLE_TEST_CLOCK=1): a file whose whole
    /// number of seconds shifts the clock of rotation's debounce window, so sopsync's
    /// integration tests close a long window without waiting (docs/rotation.md).
    #[arg(long, hide = true)]
    test_clock_offset_file: Option<PathBuf>,
}

fn parse_debounce(text: &str) -> Result<Duration, String> {
    crate::controller::rotation::parse_duration(text)
        .ok_or_else(|| format!("{text:?}: expected a duration such as 0s, 10s or 1m"))
}

fn other(message: String) -> CliError {
    CliError::Other {
        message,
        code: 1,
        hint: None,
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests running twice in one process) is harmless.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

async fn client(kubeconfig: Option<&PathBuf>, api_timeout: u64) -> Result<kube::Client, CliError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| other(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| other(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| other(format!("no Kubernetes configuration found: {e}")))?,
    };
    crate::controller::configure_api_client(&mut config, Duration::from_secs(api_timeout));
    kube::Client::try_from(config).map_err(|e| other(format!("Kubernetes client: {e}")))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    init_logs(&a.log_format);
    let webhook = match &a.webhook_secret_file {
        None => None,
        Some(p) => {
            // An operator's path, but still only a regular file of sane size is read
            // (a FIFO here would hang the controller's start).
            let bytes =
                crate::small_file::read_small_file(p, 64 * 1024).map_err(|e| CliError::Read {
                    path: p.clone(),
                    source: e.into(),
                })?;
            let trimmed = bytes
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(0, |i| i + 1);
            if trimmed == 0 {
                return Err(other(format!(
                    "--webhook-secret-file {}: the file is empty",
                    p.display()
                )));
            }
            Some(WebhookConfig {
                secret: Arc::new(zeroize::Zeroizing::new(bytes[..trimmed].to_vec())),
                max_body: a.webhook_max_body,
                body_timeout: Duration::from_secs(10),
            })
        }
    };
    let identity = a
        .identity
        .clone()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("sopsync-{}", std::process::id()));
    let rotation_clock = match &a.test_clock_offset_file {
        None => crate::controller::rotation::clock::Clock::system(),
        Some(file) => {
            let enabled = std::env::var(crate::controller::rotation::clock::ENABLE_ENV)
                .is_ok_and(|v| v == "1");
            let clock =
                crate::controller::rotation::clock::Clock::with_offset_file(file.clone(), enabled)
                    .map_err(other)?;
            tracing::warn!(path = %file.display(), "test clock on: the debounce window reads a shifted clock");
            clock
        }
    };
    let controller = ControllerConfig {
        namespace: a.namespace.clone(),
        shard_selector: a.shard_selector.clone(),
        cache_dir: a.cache_dir.clone(),
        git_timeout: Duration::from_secs(a.git_timeout),
        api_timeout: Duration::from_secs(a.api_timeout),
        allow_local_git_sources: a.allow_local_git_sources,
        git_allowed_hosts: a
            .git_allowed_hosts
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect(),
        controller_key_file: a.controller_key_file.clone(),
        controller_key_namespaces: a.controller_key_namespaces.clone(),
        controller_kms_identity: a.controller_kms_identity,
        default_key_secret: a.default_key_secret.clone(),
        concurrency: a.concurrency,
        min_interval: Duration::from_secs(a.min_interval),
        base_backoff: Duration::from_secs(a.base_backoff.max(1)),
        max_backoff: Duration::from_secs(a.max_backoff.max(a.base_backoff).max(1)),
        instance: identity.clone(),
        workload_restarts: a.workload_restarts,
        rotation_debounce: a.rotation_debounce,
        own_namespace: a
            .own_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| a.lease_namespace.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
        digest_key_secret: a.digest_key_secret.clone(),
        rotation_clock,
        ..ControllerConfig::default()
    };
    let cfg = RunConfig {
        controller,
        listen: a.listen,
        webhook,
        webhook_burst: a.webhook_burst,
        webhook_per_second: 1.0,
        lease: a.leader_elect.then(|| LeaseConfig {
            name: a.lease_name.clone(),
            namespace: a
                .lease_namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            identity,
            duration_seconds: a.lease_duration,
            grace_seconds: a.lease_grace,
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| other(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let client = client(a.kubeconfig.as_ref(), a.api_timeout).await?;
        crate::controller::run(client, cfg, shutdown_signal(), |h| {
            tracing::info!(addr = %h.addr, "controller started");
        })
        .await
        .map_err(|e| other(e.to_string()))
    })
}
