//! One error type for every HTTP route: the client gets a generic text and a status
//! code; the detail goes to the log (STYLE.md 17). Nothing here ever holds a value.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The route exists but is not configured (the webhook without a secret).
    #[error("not found")]
    NotFound,
    /// Missing or wrong signature/token.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The body is larger than the limit.
    #[error("payload too large (limit {limit} bytes)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many requests in a short time.
    #[error("rate limited")]
    RateLimited,
    /// The body is not what the route expects.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Reading the body failed or took too long.
    #[error("request body: {0}")]
    Body(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) | ApiError::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The metric label of this refusal.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NotFound => "disabled",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::RateLimited => "rate_limited",
            ApiError::BadRequest(_) | ApiError::Body(_) => "bad_request",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Detail to the log, a generic reason to the client.
        tracing::info!(status = status.as_u16(), error = %self, "request refused");
        let text = status.canonical_reason().unwrap_or("error");
        (status, format!("{text}\n")).into_response()
    }
}
