//! The dashboard's files, embedded in the binary at compile time so it
//! works offline and needs no CDN.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::server::error::ApiError;

/// (name, content type, contents) of every dashboard file.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../assets/dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../assets/dashboard/style.css"),
    ),
];

/// The dashboard page.
pub async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../../assets/dashboard/index.html"),
    )
        .into_response()
}

/// One of the dashboard's scripts or stylesheets.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard file '{name}'")))?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
}
