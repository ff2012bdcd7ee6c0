//! The [`Visitor`] of a request, as an axum extractor: its User-Agent and
//! its client address (the TCP peer, which the Lambda entry sets from API
//! Gateway's `sourceIp`, behind `trusted_proxies`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use lamed_core::bots::{BotFilter, Visitor};

/// Who sent a request, as far as the bot rules ask. Never rejects; it
/// needs `Arc<BotFilter>` in the state (for `trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestVisitor(pub Visitor);

impl<S> FromRequestParts<S> for RequestVisitor
where
    S: Send + Sync,
    Arc<BotFilter>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let trusted_proxies = Arc::<BotFilter>::from_ref(state).trusted_proxies();
        Ok(RequestVisitor(Visitor::from_headers(
            &parts.headers,
            peer(parts),
            trusted_proxies,
        )))
    }
}

/// The address the request came from (absent when a test calls the router
/// directly).
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}
