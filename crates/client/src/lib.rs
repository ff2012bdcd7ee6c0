//! A minimal HTTP/1.1 client over hyper, for the CLI (`lamed report`,
//! `lamed experiments` through [`Api`]), the load generator and the tests.
//! [`request`] and [`connect`] speak plain HTTP (the load generator's and
//! the tests' path, kept as lean as it is); [`Api`] speaks HTTP or HTTPS,
//! verifying certificates as [`tls`] says.
//!
//! A leaf: it may import no other lamed crate, so the load generator and
//! the tests use it without the server.

pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::net::TcpStream;

/// The User-Agent of every request this client (and the load generator)
/// sends: browser-style, because what they send stands for visitors'
/// browsers, and the bot filter ignores bare `name/version` agents. It
/// still names lamed, for logs.
pub const USER_AGENT: &str = concat!(
    "Mozilla/5.0 (X11; Linux x86_64) lamed/",
    env!("CARGO_PKG_VERSION")
);

/// A connection ready to send requests.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection.
///
/// # Errors
///
/// When the server cannot be reached within two seconds.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A complete HTTP answer, for checks.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Answer {
    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// When the body is not JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request on a fresh connection.
///
/// # Errors
///
/// When the server cannot be reached or the exchange breaks.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Answer> {
    let mut sender = connect(addr).await?;
    let request = build_request(method, path, &addr.to_string(), headers, body)?;
    answer_of(&mut sender, request).await
}

/// A request with `Host: host`, `headers`, and this client's User-Agent
/// unless `headers` name one.
fn build_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
    {
        builder = builder.header(hyper::header::USER_AGENT, USER_AGENT);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    Ok(builder.body(Full::new(Bytes::copy_from_slice(body)))?)
}

/// Sends `request` on a connection and reads the whole answer.
async fn answer_of(sender: &mut Sender, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Opens an HTTP/1.1 connection on `io` (plain or TLS) and sends
/// `request` on it.
async fn send_on<IO>(io: IO, request: Request<Full<Bytes>>) -> anyhow::Result<Answer>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    answer_of(&mut sender, request).await
}

/// A running lamed's private API, as the CLI's `--server URL`,
/// `--api-key` and `--ca-cert` name it.
#[derive(Clone)]
pub struct Api {
    /// The server's address, resolved once.
    addr: SocketAddr,
    /// The URL's scheme, host and port, for messages.
    origin: String,
    /// The URL's host and port, sent as `Host` (API Gateway and reverse
    /// proxies route by it).
    authority: String,
    /// The URL's path, without its trailing `/` (lamed behind a prefix,
    /// such as API Gateway's stage `/prod`).
    base: String,
    /// For an `https://` URL: the TLS client and the name the server's
    /// certificate must carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// Sent as `X-Api-Key`.
    key: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("url", &self.url(""))
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How long reaching the server may take (TCP and TLS), before the
/// command gives up with a message.
const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Api {
    /// Resolves `server` (an `http://` or `https://` URL, possibly with a
    /// path prefix) and checks a key is given; an `https://` server's
    /// certificate must chain to the system's roots or to `ca_cert`.
    ///
    /// # Errors
    ///
    /// When the URL is neither `http://` nor `https://`, its host does not
    /// resolve, `ca_cert` is unreadable, or no key is given.
    pub async fn new(
        server: &str,
        api_key: Option<&str>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Api> {
        let uri: Uri = server
            .parse()
            .with_context(|| format!("--server '{server}' is not a URL"))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            _ => bail!("--server must be an http:// or https:// URL, not '{server}'"),
        };
        if uri.query().is_some() {
            bail!("--server '{server}' has a query; give the server's base URL");
        }
        let authority = uri.authority().context("--server has no host")?;
        if authority.as_str().contains('@') {
            bail!("--server carries a user name or password; give the key with --api-key");
        }
        let port = authority.port_u16().unwrap_or(default_port);
        let host_port = format!("{}:{port}", authority.host());
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .with_context(|| format!("cannot resolve {host_port}"))?
            .next()
            .with_context(|| format!("no address for {host_port}"))?;
        let tls = if scheme == "https" {
            Some((
                tls::connector(ca_cert)?,
                tls::server_name(authority.host())?,
            ))
        } else {
            None
        };
        let key = api_key
            .context("--server needs the API key (--api-key or LAMED_API_KEY)")?
            .to_owned();
        Ok(Api {
            addr,
            origin: format!("{scheme}://{authority}"),
            authority: authority.as_str().to_owned(),
            base: uri.path().trim_end_matches('/').to_owned(),
            tls,
            key,
        })
    }

    /// The URL `path` (with its query) is sent to: the server's URL, its
    /// path prefix kept, then `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.origin, self.base)
    }

    /// Sends one request on a fresh connection (TLS for `https://`).
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        let connected = tokio::time::timeout(API_CONNECT_TIMEOUT, async {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            anyhow::Ok(stream)
        });
        let stream = connected
            .await
            .with_context(|| format!("no connection within {API_CONNECT_TIMEOUT:?}"))??;
        let request = build_request(method, path, &self.authority, headers, body)?;
        match &self.tls {
            None => send_on(TokioIo::new(stream), request).await,
            Some((connector, name)) => {
                let stream = tokio::time::timeout(
                    API_CONNECT_TIMEOUT,
                    connector.connect(name.clone(), stream),
                )
                .await
                .with_context(|| format!("no TLS handshake within {API_CONNECT_TIMEOUT:?}"))?
                .map_err(|e| anyhow::anyhow!(tls::handshake_error(&e)))?;
                send_on(TokioIo::new(stream), request).await
            }
        }
    }

    /// `GET path` (with its query), answering the JSON body.
    ///
    /// # Errors
    ///
    /// As [`Api::send`].
    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.send("GET", path, None).await?.1)
    }

    /// Sends `method path` with an optional JSON body; answers the status
    /// and the JSON body (`null` when empty).
    ///
    /// # Errors
    ///
    /// As [`Api::call`].
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let reply = self.call(method, path, &[], body).await?;
        Ok((reply.status, reply.json))
    }

    /// Sends `method path` with `headers` beside the key and an optional
    /// JSON body; answers the status, the `ETag` and the JSON body.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached; when it answers an error, a
    /// [`Refused`] with its status and its own message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Reply> {
        let payload = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let mut all = vec![("x-api-key", self.key.as_str())];
        if body.is_some() {
            all.push(("content-type", "application/json"));
        }
        all.extend_from_slice(headers);
        let target = format!("{}{path}", self.base);
        let answer = self
            .exchange(method, &target, &all, &payload)
            .await
            .with_context(|| format!("cannot reach lamed at {}", self.url("")))?;
        let json = if answer.body.is_empty() {
            serde_json::Value::Null
        } else {
            answer.json()?
        };
        if !(200..300).contains(&answer.status) {
            return Err(Refused {
                status: answer.status,
                message: json["error"].as_str().map_or_else(
                    || format!("request failed with status {}", answer.status),
                    str::to_owned,
                ),
                body: json,
            }
            .into());
        }
        let etag = answer
            .headers
            .get(http::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(Reply {
            status: answer.status,
            etag,
            json,
        })
    }
}

/// A successful answer of [`Api::call`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Its status code.
    pub status: u16,
    /// Its `ETag` header, as sent (quotes included), when it has one.
    pub etag: Option<String>,
    /// Its JSON body (`null` when empty).
    pub json: serde_json::Value,
}

/// An error answer of the server, the error of [`Api::call`]: it shows
/// as the server's own message; callers that treat a status apart find
/// it with `downcast_ref`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Its status code.
    pub status: u16,
    /// The server's message (its `"error"`).
    pub message: String,
    /// Its whole JSON body (`null` when empty).
    pub body: serde_json::Value,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// What `encodeURIComponent` leaves alone; everything else is escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Encodes a value as AlephBet does: `encodeURIComponent`, then `%20` → `+`.
pub fn alephbet_encode(value: &str) -> String {
    utf8_percent_encode(value, URI_COMPONENT)
        .to_string()
        .replace("%20", "+")
}

/// Encodes a value as one segment of a URL path (a space is `%20`, not `+`).
pub fn path_segment(value: &str) -> String {
    utf8_percent_encode(value, URI_COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server URL's path prefix (API Gateway's stage) stays in front of
    /// every API path, with or without a trailing `/`, over HTTPS as over
    /// HTTP; `Host` is the URL's host, not the resolved address.
    #[tokio::test]
    async fn a_path_prefix_is_kept() {
        for server in ["https://localhost/prod", "https://localhost/prod/"] {
            let api = Api::new(server, Some("key"), None).await.unwrap();
            assert_eq!(
                api.url("/api/experiments?namespace=a"),
                "https://localhost/prod/api/experiments?namespace=a"
            );
            assert_eq!(api.authority, "localhost");
            assert_eq!(api.addr.port(), 443);
            assert!(api.tls.is_some());
        }
        let api = Api::new("http://localhost:8080", Some("key"), None)
            .await
            .unwrap();
        assert_eq!(api.url("/experiments"), "http://localhost:8080/experiments");
        assert!(api.tls.is_none());
        for refused in [
            "ftp://localhost/",
            "https://localhost/prod?stage=1",
            "https://user:secret@localhost/",
        ] {
            let err = Api::new(refused, Some("key"), None).await.unwrap_err();
            assert!(err.to_string().contains("--server"), "{err}");
        }
    }
}
