//! The HTTP error type: every failure becomes a status and a JSON body
//! `{"error": "..."}` that names the problem.
//!
//! A store failure is answered by its kind: a transient one 503 with
//! `Retry-After` (the client retries), a permanent one 500 with a short
//! public message and no `Retry-After` (a retry fails the same way). A 500
//! carries its cause as an [`InternalError`] extension, which the router
//! logs and counts on `/metrics` (a response cannot reach the metrics).
//!
//! A 412 adds `"current_version"` to the body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

use crate::etag::{etag, MalformedIfMatch};
use lamed_core::model::InvalidField;
use lamed_store::StoreError;

/// The body of every error answer of Lamed's own API.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the parameter or the limit.
    pub error: String,
}

/// The body of a 412: the record's version now and the error (fields in
/// wire order, sorted as clients have seen them).
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreconditionFailedBody {
    /// The record's version now; `null` when it has no record.
    pub current_version: Option<u64>,
    /// What changed.
    pub error: String,
}

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No API key (401).
    #[error("missing API key: send it in the X-Api-Key header")]
    MissingKey,
    /// Wrong API key (403).
    #[error("invalid API key")]
    WrongKey,
    /// Nothing here (404).
    #[error("{0}")]
    NotFound(String),
    /// Known path, wrong method (405).
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The request contradicts the current state, e.g. resuming a stopped
    /// experiment (409).
    #[error("{0}")]
    Conflict(String),
    /// The record changed since the version `If-Match` names (412); the
    /// body names the current version, and the `ETag` header carries it.
    #[error("{message}")]
    PreconditionFailed {
        /// What changed.
        message: String,
        /// The record's version now; `None` when it has no record.
        current: Option<u64>,
    },
    /// Body or batch too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request target is longer than we read (414).
    #[error("{0}")]
    UriTooLong(String),
    /// The request headers are larger than we read (431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The store failed: 503 with `Retry-After` when the failure may pass
    /// (the client should retry), 500 when it will not (see
    /// [`StoreError::is_transient`]).
    #[error("{}", store_message(.0))]
    Store(#[from] StoreError),
    /// The request took longer than the request timeout; like any 503 the
    /// client should retry (503).
    #[error("request timed out, retry later")]
    TimedOut,
    /// More requests are in flight than `max_in_flight_requests`; refused
    /// at once rather than queued, the client should retry (503).
    #[error("server busy, retry later")]
    Overloaded,
}

impl ApiError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingKey => StatusCode::UNAUTHORIZED,
            ApiError::WrongKey => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Store(err) if !err.is_transient() => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(_) | ApiError::TimedOut | ApiError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// What a client is told of a permanent failure: the details (which may
/// name keys, files, hosts) go to the log only.
pub(crate) const INTERNAL_ERROR_MESSAGE: &str = "internal error: see the server log";

/// The public message of a store failure.
fn store_message(err: &StoreError) -> &'static str {
    if err.is_transient() {
        "store unavailable, retry later"
    } else {
        INTERNAL_ERROR_MESSAGE
    }
}

/// A permanent failure answered 500, put in the response's extensions for
/// the router to log with its whole chain and count.
#[derive(Debug, Clone)]
pub(crate) struct InternalError(pub(crate) StoreError);

impl InternalError {
    /// Marks `response` as answering `err`.
    pub(crate) fn attach(response: &mut Response, err: &StoreError) {
        response.extensions_mut().insert(InternalError(err.clone()));
    }
}

impl From<MalformedIfMatch> for ApiError {
    fn from(err: MalformedIfMatch) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl From<InvalidField> for ApiError {
    fn from(err: InvalidField) -> Self {
        ApiError::BadRequest(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            // The details go to the log, not to the public (a 500 is
            // logged by the router, which counts it too).
            ApiError::Store(cause) if cause.is_transient() => {
                tracing::error!(cause = cause.chain(), "answering 503")
            }
            ApiError::TimedOut => tracing::error!("request timed out; answering 503"),
            ApiError::Overloaded => tracing::warn!("too many requests in flight; answering 503"),
            _ => {}
        }
        let status = self.status();
        let error = self.to_string();
        let mut response = match &self {
            ApiError::PreconditionFailed { current, .. } => {
                let body = PreconditionFailedBody {
                    current_version: *current,
                    error,
                };
                (status, Json(body)).into_response()
            }
            _ => (status, Json(ErrorBody { error })).into_response(),
        };
        if let ApiError::Store(cause) = &self {
            if !cause.is_transient() {
                InternalError::attach(&mut response, cause);
            }
        }
        if let ApiError::PreconditionFailed {
            current: Some(version),
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(axum::http::header::ETAG, etag(version));
        }
        // Every 503 tells the client when to retry.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store failure that may pass is 503 with Retry-After; one that
    /// will not is 500 without it, tells the public nothing of its cause,
    /// and carries the cause for the router to log and count.
    #[test]
    fn store_failures_are_answered_by_kind() {
        let transient = ApiError::Store(StoreError::unavailable("redis at x: timed out"));
        let response = transient.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(response.extensions().get::<InternalError>().is_none());

        let permanent = ApiError::Store(StoreError::corrupt("record of e at lmd:{0}:r"));
        assert_eq!(permanent.to_string(), INTERNAL_ERROR_MESSAGE);
        let response = permanent.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get("retry-after").is_none());
        let InternalError(cause) = response.extensions().get().expect("marked");
        assert!(cause.chain().contains("record of e"), "{}", cause.chain());
    }
}
