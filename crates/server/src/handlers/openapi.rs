//! `GET /openapi.json`: the API's OpenAPI document. `crate::openapi`
//! builds it from the route table, which names this handler, so the
//! router hands the builder here as an extension (this module may not
//! import it); it runs once, on the first request.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;

/// What builds the document.
#[derive(Debug, Clone, Copy)]
pub struct OpenApiDocument(pub fn() -> String);

/// The document, built on the first request.
static DOCUMENT: OnceLock<String> = OnceLock::new();

/// The document.
pub async fn document(Extension(OpenApiDocument(build)): Extension<OpenApiDocument>) -> Response {
    let text: &'static str = DOCUMENT.get_or_init(build);
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}
