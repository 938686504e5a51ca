//! The controller's HTTP routes, driven through `router(state)` with
//! `tower::ServiceExt::oneshot` (no socket): health, readiness, metrics, and the Git
//! webhook's signature/token checks, body cap and rate limit.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sopsync::controller::metrics::Metrics;
use sopsync::server::{router, RateLimiter, Readiness, Role, ServerState, Trigger, WebhookConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

const SECRET: &[u8] = b"webhook-secret-for-tests";

struct Harness {
    state: ServerState,
    /// The registry behind `state.metrics`, as the controller holds it.
    metrics: Arc<Metrics>,
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

fn harness(webhook: bool, burst: u32) -> Harness {
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let seen = calls.clone();
    let trigger: Trigger = Arc::new(move |urls: Vec<String>| {
        seen.lock().expect("lock").push(urls);
        Box::pin(async { 1 })
    });
    let metrics = Arc::new(Metrics::new());
    Harness {
        state: ServerState {
            metrics: metrics.clone(),
            ready: Readiness::new(),
            webhook: webhook.then(|| WebhookConfig {
                secret: Arc::new(zeroize::Zeroizing::new(SECRET.to_vec())),
                max_body: 4096,
                body_timeout: Duration::from_secs(10),
            }),
            limiter: Arc::new(RateLimiter::new(burst, 0.0)),
            trigger,
        },
        metrics,
        calls,
    }
}

async fn send(state: &ServerState, req: Request<Body>) -> (StatusCode, String) {
    let resp = router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn github_sig(body: &[u8], key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn push_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main",
        "repository": {"clone_url": "https://git.example/team/secrets.git", "ssh_url": "git@git.example:team/secrets.git"}
    }))
    .expect("json")
}

fn hook(headers: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
    let mut b = Request::post("/hooks/git").header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_follows_the_role() {
    let h = harness(false, 10);
    assert_eq!(send(&h.state, get("/healthz")).await.0, StatusCode::OK);
    for (role, want) in [
        (
            None,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n"),
        ),
        (
            Some(Role::Syncing),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: caches syncing\n",
            ),
        ),
        (
            Some(Role::Standby),
            (
                StatusCode::OK,
                "ready: standby, waiting for the leader lease\n",
            ),
        ),
        (
            Some(Role::Synced),
            (StatusCode::OK, "ready: caches synced\n"),
        ),
    ] {
        if let Some(r) = role {
            h.state.ready.set(r);
        }
        assert_eq!(
            send(&h.state, get("/readyz")).await,
            (want.0, want.1.to_string()),
            "{role:?}"
        );
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_reconcile_counts() {
    let h = harness(false, 10);
    h.metrics.reconciled("SecretSource", Some("git"), 0.5);
    h.metrics
        .git_fetch_duration
        .get_or_create(&sopsync::controller::metrics::FetchLabels {
            result: "success".into(),
        })
        .observe(0.1);
    h.metrics
        .last_success
        .get_or_create(&sopsync::controller::metrics::ObjectLabels {
            kind: "SecretSource".into(),
            namespace: "team-a".into(),
            name: "app".into(),
        })
        .set(1.7e9);
    let (status, text) = send(&h.state, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(
            r#"sopsync_reconcile_total{kind="SecretSource",result="error",error="git"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sopsync_git_fetch_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains(
        r#"sopsync_last_success_timestamp_seconds{kind="SecretSource",namespace="team-a",name="app"} 1700000000.0"#
    ), "{text}");
}

#[tokio::test]
async fn a_github_push_with_a_valid_signature_triggers_the_matching_sources() {
    let h = harness(true, 10);
    let body = push_body();
    let sig = format!("sha256={}", github_sig(&body, SECRET));
    let (status, text) = send(
        &h.state,
        hook(
            &[("x-github-event", "push"), ("x-hub-signature-256", &sig)],
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(text, r#"{"triggered":1}"#);
    assert_eq!(
        *h.calls.lock().expect("lock"),
        [vec![
            "https://git.example/team/secrets.git".to_string(),
            "git@git.example:team/secrets.git".to_string()
        ]]
    );
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_rejected_and_triggers_nothing() {
    let h = harness(true, 10);
    let body = push_body();
    let wrong_key = format!("sha256={}", github_sig(&body, b"another secret"));
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let right_sig_other_body = format!("sha256={}", github_sig(&body, SECRET));
    for (headers, b) in [
        (
            vec![("x-hub-signature-256", wrong_key.as_str())],
            body.clone(),
        ),
        (
            vec![("x-hub-signature-256", right_sig_other_body.as_str())],
            tampered,
        ),
        (vec![("x-hub-signature-256", "sha1=abcd")], body.clone()),
        (vec![("x-gitea-signature", "00")], body.clone()),
        (
            vec![("x-gitlab-token", "webhook-secret-for-test")],
            body.clone(),
        ),
        (vec![], body.clone()),
    ] {
        let (status, text) = send(&h.state, hook(&headers, b)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(text, "Unauthorized\n", "the client learns nothing more");
    }
    assert!(h.calls.lock().expect("lock").is_empty());
    let (_, metrics) = send(&h.state, get("/metrics")).await;
    assert!(
        metrics.contains(r#"sopsync_webhook_requests_total{result="unauthorized"} 6"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn gitea_signatures_and_gitlab_tokens_are_accepted() {
    let h = harness(true, 10);
    let body = push_body();
    let sig = github_sig(&body, SECRET);
    let (status, _) = send(&h.state, hook(&[("x-gitea-signature", &sig)], body.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = std::str::from_utf8(SECRET).expect("utf-8");
    let gl = serde_json::to_vec(
        &serde_json::json!({"project": {"git_http_url": "https://gl.example/g/r.git"}}),
    )
    .expect("json");
    let (status, _) = send(&h.state, hook(&[("x-gitlab-token", token)], gl)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(h.calls.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_ping_is_answered_after_verification() {
    let h = harness(true, 10);
    let body = br#"{"zen":"hi"}"#.to_vec();
    let sig = format!("sha256={}", github_sig(&body, SECRET));
    let (status, text) = send(
        &h.state,
        hook(
            &[("x-github-event", "ping"), ("x-hub-signature-256", &sig)],
            body,
        ),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "pong\n"));
    assert!(h.calls.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_refused_declared_or_streamed() {
    let h = harness(true, 10);
    let big = vec![b'x'; 5000];
    let sig = format!("sha256={}", github_sig(&big, SECRET));
    let (status, _) = send(
        &h.state,
        hook(&[("x-hub-signature-256", &sig)], big.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // No Content-Length: the body arrives as a stream and is cut at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b'x'; 1000])).collect();
    let req = Request::post("/hooks/git")
        .header("x-hub-signature-256", &sig)
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .expect("request");
    let (status, _) = send(&h.state, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.calls.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn the_webhook_is_rate_limited_before_verification() {
    let h = harness(true, 2);
    for expected in [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (status, _) = send(
            &h.state,
            hook(&[("x-hub-signature-256", "sha256=00")], push_body()),
        )
        .await;
        assert_eq!(status, expected);
    }
    // Even a correctly signed push waits for the bucket to refill.
    let body = push_body();
    let sig = format!("sha256={}", github_sig(&body, SECRET));
    let (status, _) = send(&h.state, hook(&[("x-hub-signature-256", &sig)], body)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_webhook_is_disabled_without_a_secret() {
    let h = harness(false, 10);
    let body = push_body();
    let sig = format!("sha256={}", github_sig(&body, SECRET));
    let (status, _) = send(&h.state, hook(&[("x-hub-signature-256", &sig)], body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(h.calls.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_verified_payload_without_a_repository_is_a_bad_request() {
    let h = harness(true, 10);
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let sig = format!("sha256={}", github_sig(&body, SECRET));
    let (status, _) = send(&h.state, hook(&[("x-hub-signature-256", &sig)], body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
