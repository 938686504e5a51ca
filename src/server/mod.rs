//! The controller's HTTP server: one port for `/healthz`, `/readyz`, `/metrics` and the
//! Git push webhook `/hooks/git`. [`router`] builds the routes from a [`ServerState`]
//! (tested with `tower::ServiceExt::oneshot`, no socket); [`serve`] runs them with
//! graceful shutdown.

pub mod error;
pub mod readiness;
pub mod routes;

pub use readiness::{Readiness, Role};
pub use routes::{
    normalize_repo_url, router, RateLimiter, ServerMetrics, ServerState, Trigger, WebhookConfig,
};

use std::future::Future;

/// Serves `router` on `listener` until `shutdown` completes, then finishes the requests
/// in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
