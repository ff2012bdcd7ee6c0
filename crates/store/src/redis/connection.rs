//! The connection: opening it (TLS provider, cluster detection), the
//! deadlines every operation runs under, and how Redis errors become
//! [`StoreError`]s.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::settings::RedisSettings;
use super::store::RedisStore;
use crate::StoreError;

/// One attempt to open a TCP (or TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// One command's answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// A whole store operation, reconnecting included: a request whose Redis is
/// down is answered 503 well within a second, so clients retry elsewhere
/// or later instead of hanging.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(800);
/// Opening the store at start: long enough for a slow TLS handshake.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a standalone Redis (reconnecting by itself) or to a
/// cluster (routing each command to the node owning its slot).
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// Connects to the nodes of `settings` (`target` names them without
/// password, for messages), within [`OPEN_TIMEOUT`]. A single node is
/// asked whether it is a cluster member. Returns the connection and
/// whether it is a cluster's.
pub(super) async fn connect(
    settings: &RedisSettings,
    target: &str,
) -> Result<(Conn, bool), StoreError> {
    install_tls_provider();
    let fail = |what: &str, err: RedisError| {
        StoreError::caused_by(format!("redis at {target}: {what}"), err)
    };
    let open = async {
        let seeds: Vec<String> = settings.nodes.iter().map(|n| n.url()).collect();
        let cluster = settings.cluster || {
            let client =
                redis::Client::open(seeds[0].as_str()).map_err(|e| fail("invalid url", e))?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| fail("cannot connect", e))?;
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut probe)
                .await
                .map_err(|e| fail("INFO failed", e))?;
            info.lines().any(|l| l.trim() == "cluster_enabled:1")
        };
        let conn = if cluster {
            let client = ClusterClient::builder(seeds)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(200)
                .build()
                .map_err(|e| fail("invalid cluster settings", e))?;
            Conn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(|e| fail("cannot connect to the cluster", e))?,
            )
        } else {
            let client =
                redis::Client::open(seeds[0].as_str()).map_err(|e| fail("invalid url", e))?;
            // Few, quick reconnection attempts: requests wait on them,
            // and the next request starts a new round anyway.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(200));
            Conn::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| fail("cannot connect", e))?,
            )
        };
        Ok::<_, StoreError>((conn, cluster))
    };
    tokio::time::timeout(OPEN_TIMEOUT, open)
        .await
        .map_err(|_| {
            StoreError::unavailable(format!(
                "redis at {target}: no answer within {} s (wrong host or port, or TLS on one side only?)",
                OPEN_TIMEOUT.as_secs()
            ))
        })?
}

/// rustls needs one process-wide crypto provider for `rediss://`.
fn install_tls_provider() {
    // An error means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RedisStore {
    /// A handle on the shared connection, for one operation.
    pub(super) fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    /// Runs one store operation under the overall deadline.
    pub(super) async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.within_deadline(operation).await
    }

    /// Runs a write of several steps (register, count, then take the
    /// registration back; delete, then take the listing back) under the
    /// overall deadline, in a task of its own: when the caller stops
    /// waiting (this deadline, a server's time-out, a closed connection),
    /// the steps still finish, so the lists never keep half a write (a
    /// registration without its experiment, holding a place under the
    /// cap; an experiment unlisted, its counts unread). Each step has the
    /// connection's response timeout, so the task ends.
    pub(super) async fn run_whole<T, F>(
        &self,
        operation: impl FnOnce(RedisStore) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let task = tokio::spawn(operation(self.clone()));
        self.within_deadline(async move {
            match task.await {
                Ok(answer) => answer,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => Err(StoreError::caused_by("a redis write was stopped", err)),
            }
        })
        .await
    }

    /// Runs a future under the overall deadline, so that no request waits
    /// on an unresponsive Redis for longer than [`OPERATION_TIMEOUT`].
    pub(super) async fn within_deadline<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(OPERATION_TIMEOUT, operation)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "redis at {} did not answer within {} ms",
                    self.inner.target,
                    OPERATION_TIMEOUT.as_millis()
                ))
            })?
    }

    /// A Redis error as a store error naming the nodes, the Redis error
    /// kept as its source, of the kind [`is_transient`] says.
    pub(super) fn error(&self, err: RedisError) -> StoreError {
        let context = format!("redis at {}", self.inner.target);
        if is_transient(&err) {
            StoreError::caused_by(context, err)
        } else {
            StoreError::corrupt_because(context, err)
        }
    }
}

/// Whether a retry may succeed. Permanent: an answer of the wrong type, or
/// a server error that says lamed's data or commands are wrong
/// ([`is_permanent_reply`]), alone or inside a pipeline or transaction.
/// Anything else may pass: I/O, timeouts, a dropped connection, `BUSY`,
/// `LOADING`, `OOM` (under `noeviction`), `MISCONF`, `READONLY`, a
/// cluster failing over.
fn is_transient(err: &RedisError) -> bool {
    if err.kind() == redis::ErrorKind::UnexpectedReturnType {
        return false;
    }
    match err.clone().into_server_errors() {
        Some(replies) => !replies.iter().any(|(_, reply)| is_permanent_reply(reply)),
        None => true,
    }
}

/// `WRONGTYPE` (a key of lamed's holds something else), `CROSSSLOT` (a bug
/// in the key layout) and `ERR` (a command or script error: a bug, or a
/// value the script cannot read), but for "max number of clients", the
/// one load refusal Redis sends as a plain `ERR`.
fn is_permanent_reply(reply: &redis::ServerError) -> bool {
    match reply.code() {
        "WRONGTYPE" | "CROSSSLOT" => true,
        "ERR" => !reply
            .details()
            .is_some_and(|detail| detail.contains("max number of clients")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::{Duration, Instant};

    use crate::redis::testing::RedisServer;
    use crate::redis::tests::open;
    use crate::redis::{RedisOptions, RedisSettings, RedisStore};
    use crate::{Store, StoreCause, StoreError};
    use lamed_core::clock::Clock;
    use lamed_core::model::Caps;

    /// The Redis error a store error was caused by, if any.
    fn redis_cause(err: &StoreError) -> Option<&redis::RedisError> {
        err.source()?.downcast_ref::<StoreCause>()?.downcast_ref()
    }

    /// With Redis down, an operation fails fast (well under a second) with
    /// a message naming Redis and the Redis error as its source; once
    /// Redis is back, the store reconnects by itself.
    #[tokio::test]
    async fn outage_fails_fast_and_recovers() {
        let mut server = RedisServer::start_durable();
        let store = open(&server.url(), "o", 86_400, Caps::default(), Clock::System).await;
        store.check_writable().await.unwrap();
        server.kill();
        for _ in 0..3 {
            let started = Instant::now();
            let err = store.check_writable().await.unwrap_err();
            assert!(started.elapsed() < Duration::from_millis(950), "{err}");
            assert!(
                err.to_string().contains("redis at redis://127.0.0.1:"),
                "{err}"
            );
            // Past the deadline there is no Redis error to keep.
            if err.source().is_some() {
                assert!(redis_cause(&err).is_some(), "{err:?}");
            }
        }
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.check_writable().await.is_err() {
            assert!(Instant::now() < deadline, "no reconnect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A refused login fails the open with the Redis error as the source
    /// (the message says why) and no password in the context.
    #[tokio::test]
    async fn a_refused_login_keeps_the_redis_error() {
        let server =
            RedisServer::start_with(&["--appendonly", "no", "--requirepass", "right-pass"]);
        let url = format!("redis://:wrong-pass@127.0.0.1:{}", server.port);
        let settings = RedisSettings::from_urls(&url).unwrap();
        let options = RedisOptions::new(settings, 86_400, Caps::default());
        let err = RedisStore::open(options).await.unwrap_err();
        let cause = redis_cause(&err).expect("the redis error is the source");
        assert_eq!(cause.kind(), redis::ErrorKind::AuthenticationFailed);
        assert!(!err.to_string().contains("wrong-pass"), "{err}");
        assert!(err.to_string().contains("redis at redis://"), "{err}");
    }
}
