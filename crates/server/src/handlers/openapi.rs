//! `GET /openapi.json`: the API's OpenAPI document, built once by the
//! router (`crate::openapi`, which reads the route table that names this
//! handler) and handed here as an extension.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;

/// The document as served, shared by every request.
#[derive(Debug, Clone)]
pub struct OpenApiDocument(pub Arc<str>);

/// The document.
pub async fn document(Extension(OpenApiDocument(text)): Extension<OpenApiDocument>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
        .into_response()
}
