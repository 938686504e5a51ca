//! Routes: `/healthz` (the process runs), `/readyz` (see [`super::readiness`]: a
//! leader's caches have synced, or a standby waits for the lease), `/metrics` (Prometheus text) and `/hooks/git` (push webhooks).
//!
//! Security of `/hooks/git`:
//! - disabled (404) unless a secret is configured: there is no unauthenticated mode;
//! - rate-limited before anything else is done (a token bucket), so it cannot be used to
//!   guess signatures quickly or to make the controller fetch in a loop;
//! - the body is capped (Content-Length checked first, then the stream is limited) and
//!   must arrive within a timeout;
//! - GitHub `X-Hub-Signature-256` and Gitea/Gogs `X-Gitea-Signature`/`X-Gogs-Signature`
//!   are HMAC-SHA256 of the body, verified in constant time; GitLab's `X-Gitlab-Token`
//!   is compared in constant time (through SHA-256 digests, so its length does not
//!   leak either);
//! - the response says only how many sources were triggered, never which.

use super::error::ApiError;
use super::readiness::Readiness;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Called with the repository URLs of a verified push; resolves to how many sources it
/// triggered.
pub type Trigger =
    Arc<dyn Fn(Vec<String>) -> futures::future::BoxFuture<'static, usize> + Send + Sync>;

/// Webhook settings.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The shared secret: HMAC key (GitHub, Gitea) or token (GitLab).
    pub secret: Arc<zeroize::Zeroizing<Vec<u8>>>,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// How long reading the body may take.
    pub body_timeout: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &"[REDACTED]")
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(burst: u32, per_second: f64) -> RateLimiter {
        RateLimiter {
            burst: f64::from(burst),
            per_second,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&self) -> bool {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.per_second;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the routes count and expose, implemented by the controller's metrics: the
/// server is a shell over whatever registry it is given, and knows nothing of the
/// controller.
pub trait ServerMetrics: Send + Sync {
    /// Records a webhook request's result (`accepted`, or the rejection's kind).
    fn webhook(&self, result: &str);
    /// The Prometheus text exposition of every metric, for `/metrics`.
    fn encode(&self) -> String;
}

/// Everything the routes need.
#[derive(Clone)]
pub struct ServerState {
    /// The metrics registry.
    pub metrics: Arc<dyn ServerMetrics>,
    /// This replica's role and progress, as `/readyz` reports it.
    pub ready: Readiness,
    /// The webhook, when enabled.
    pub webhook: Option<WebhookConfig>,
    /// Webhook rate limit.
    pub limiter: Arc<RateLimiter>,
    /// What a verified push triggers.
    pub trigger: Trigger,
}

/// The routes over `state`.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/hooks/git", post(git_hook))
        .with_state(state)
}

async fn readyz(State(s): State<ServerState>) -> Response {
    let role = s.ready.role();
    let code = if role.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, role.describe()).into_response()
}

async fn metrics(State(s): State<ServerState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn git_hook(State(s): State<ServerState>, headers: HeaderMap, body: Body) -> Response {
    match handle_hook(&s, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => {
            s.metrics.webhook(e.kind());
            e.into_response()
        }
    }
}

async fn handle_hook(
    s: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cfg = s.webhook.as_ref().ok_or(ApiError::NotFound)?;
    if !s.limiter.try_acquire() {
        return Err(ApiError::RateLimited);
    }
    let bytes = read_body(headers, body, cfg).await?;
    let provider = verify(headers, &bytes, &cfg.secret)?;
    let event = headers
        .get("x-github-event")
        .or_else(|| headers.get("x-gitea-event"))
        .or_else(|| headers.get("x-gitlab-event"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if event == "ping" {
        s.metrics.webhook("accepted");
        return Ok((StatusCode::OK, "pong\n").into_response());
    }
    let payload: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("{provider} payload is not JSON: {e}")))?;
    let urls = repository_urls(&payload);
    if urls.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{provider} payload names no repository URL"
        )));
    }
    let triggered = (s.trigger)(urls).await;
    tracing::info!(provider, triggered, "git webhook accepted");
    s.metrics.webhook("accepted");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "triggered": triggered })),
    )
        .into_response())
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    cfg: &WebhookConfig,
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let too_large = ApiError::TooLarge {
        limit: cfg.max_body,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.max_body as u64) {
        return Err(too_large);
    }
    let limited = http_body_util::Limited::new(body, cfg.max_body);
    match tokio::time::timeout(cfg.body_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::Body("timed out".into())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Ok(Err(e)) => Err(ApiError::Body(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks the request's signature or token; returns the provider's name.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<&'static str, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let hmac_ok = |hex: &str| -> bool {
        let Some(sig) = unhex(hex.trim()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&sig).is_ok()
    };
    if let Some(v) = header("x-hub-signature-256") {
        let hex = v
            .strip_prefix("sha256=")
            .ok_or(ApiError::Unauthorized("malformed X-Hub-Signature-256"))?;
        return if hmac_ok(hex) {
            Ok("github")
        } else {
            Err(ApiError::Unauthorized("bad X-Hub-Signature-256"))
        };
    }
    if let Some(v) = header("x-gitea-signature").or_else(|| header("x-gogs-signature")) {
        return if hmac_ok(v) {
            Ok("gitea")
        } else {
            Err(ApiError::Unauthorized("bad X-Gitea-Signature"))
        };
    }
    if let Some(token) = headers.get("x-gitlab-token") {
        let given = Sha256::digest(token.as_bytes());
        let expected = Sha256::digest(secret);
        return if bool::from(given.ct_eq(&expected)) {
            Ok("gitlab")
        } else {
            Err(ApiError::Unauthorized("bad X-Gitlab-Token"))
        };
    }
    Err(ApiError::Unauthorized("no signature or token"))
}

/// Repository URLs named by a GitHub, GitLab or Gitea push payload.
pub fn repository_urls(payload: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for obj in ["repository", "project"] {
        let Some(repo) = payload.get(obj) else {
            continue;
        };
        for key in [
            "clone_url",
            "ssh_url",
            "git_url",
            "html_url",
            "url",
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "homepage",
        ] {
            if let Some(u) = repo.get(key).and_then(|v| v.as_str()) {
                if !u.is_empty() && !out.iter().any(|o| o == u) {
                    out.push(u.to_string());
                }
            }
        }
    }
    out
}

/// A repository URL reduced to `host/path` (lower-case host; no scheme, user, port,
/// trailing `.git` or `/`), so that the https, ssh and scp-like forms of one repository
/// compare equal.
pub fn normalize_repo_url(url: &str) -> String {
    let url = url.trim();
    let (rest, scp_like) = match url.split_once("://") {
        Some((_, rest)) => (rest, false),
        None => (url, true),
    };
    let rest = match rest.split_once('@') {
        Some((user, host)) if !user.contains('/') => host,
        _ => rest,
    };
    let (host, path) = if scp_like {
        rest.split_once(':').unwrap_or((rest, ""))
    } else {
        rest.split_once('/').unwrap_or((rest, ""))
    };
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_compare_across_forms() {
        let want = "github.com/org/repo";
        for u in [
            "https://github.com/org/repo.git",
            "https://GitHub.com/org/repo/",
            "git@github.com:org/repo.git",
            "ssh://git@github.com:22/org/repo.git",
            "https://user:token@github.com/org/repo",
        ] {
            assert_eq!(normalize_repo_url(u), want, "{u}");
        }
        assert_ne!(normalize_repo_url("https://github.com/org/repo2"), want);
        assert_eq!(normalize_repo_url("git://127.0.0.1:9418/r"), "127.0.0.1/r");
    }

    #[test]
    fn urls_are_taken_from_github_and_gitlab_payloads() {
        let gh = serde_json::json!({"repository": {"clone_url": "https://h/o/r.git", "ssh_url": "git@h:o/r.git"}});
        assert_eq!(repository_urls(&gh), ["https://h/o/r.git", "git@h:o/r.git"]);
        let gl = serde_json::json!({"project": {"git_http_url": "https://h/o/r.git"}});
        assert_eq!(repository_urls(&gl), ["https://h/o/r.git"]);
        assert!(repository_urls(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_refuses() {
        let l = RateLimiter::new(2, 0.0);
        assert!(l.try_acquire());
        assert!(l.try_acquire());
        assert!(!l.try_acquire());
    }

    #[test]
    fn unhex_refuses_odd_and_non_hex() {
        assert_eq!(unhex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("0af"), None);
        assert_eq!(unhex("zz"), None);
    }
}
