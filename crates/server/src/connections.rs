//! Accepting and serving connections, with bounds a flood cannot pass:
//! a cap on open connections and one on TLS handshakes in progress (at a
//! cap the listener stops accepting, so new connections wait in the
//! kernel's backlog: TCP backpressure, nothing accepted only to be
//! closed), a bounded backoff when accepting fails (out of file
//! descriptors), and a timeout on connections that send no request head,
//! so idle and half-open connections give their slot back.
//!
//! The model is mini-redis's listener: a permit of a semaphore is taken
//! before `accept` and held for the connection's life. Each connection is
//! served by hyper's HTTP/1.1 server with a timer (axum's `serve` sets
//! none, so hyper's header timeout never ran and an idle connection was
//! held forever).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::in_flight::{Gated, Handoff, InFlight};
use crate::state::AppState;
use lamed_config::settings::{DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS};

/// Most TLS handshakes in progress at once. A handshake mostly waits on
/// the client's round trips; 1,024 at once is more than one core can sign
/// for (about 1,000 RSA-2048 handshakes a second) and holds about 20 MB
/// of rustls buffers.
pub const MAX_TLS_HANDSHAKES: usize = 1024;

/// Longest a client may take over its TLS handshake before it is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept for the store, its backups, logs and the
/// listener when the connection cap is fitted to the open-file limit.
pub const RESERVED_FILES: u64 = 256;

/// Connections the kernel holds for lamed before it accepts them: where
/// they wait at a cap, and what absorbs a burst of connects. Linux caps it
/// at `net.core.somaxconn` (4,096 by default since 5.4); tokio's own bind
/// asks for 1,024, which 10,000 connects at once overflowed (dropped SYNs,
/// retried by clients a second later and more).
pub const LISTEN_BACKLOG: u32 = 4096;

/// First wait after an accept that failed for want of resources; doubled
/// on each failure in a row, up to [`MAX_ACCEPT_BACKOFF`].
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// Longest wait between two accepts that fail: long enough not to spin on
/// a full file table, short enough to serve again soon after it drains.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The bounds on connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once (TLS ones from before their
    /// handshake); at the cap the listener stops accepting.
    pub max_connections: usize,
    /// Most TLS handshakes in progress at once; at the cap the listener
    /// stops accepting too.
    pub max_tls_handshakes: usize,
    /// Longest a connection may wait for a request's head, or take to send
    /// it, before it is closed: between requests of a keep-alive
    /// connection, and from the connection's start.
    pub header_timeout: Duration,
    /// Longest a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// The in-flight slots (`max_in_flight_requests`, shared with the
    /// router): past the limit no request is read (`in_flight.rs`).
    pub in_flight: InFlight,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_tls_handshakes: MAX_TLS_HANDSHAKES,
            header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            in_flight: InFlight::default(),
        }
    }
}

impl ConnectionLimits {
    /// The limits `max_connections` and `header_timeout_ms` set, and the
    /// router's `in_flight` slots, with the connection cap fitted to the process's open-file limit (raised to
    /// its hard limit first, as Go's runtime does): a cap the file table
    /// cannot hold would turn into accept errors. A lowered cap is logged.
    pub fn for_this_process(
        max_connections: usize,
        header_timeout_ms: u64,
        in_flight: InFlight,
    ) -> Self {
        let mut limits = ConnectionLimits {
            max_connections,
            header_timeout: Duration::from_millis(header_timeout_ms),
            in_flight,
            ..ConnectionLimits::default()
        };
        if let Some(files) = raise_open_file_limit() {
            let room = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
            if room < max_connections {
                tracing::warn!(
                    max_connections,
                    open_file_limit = files,
                    lowered_to = room.max(1),
                    "the open-file limit cannot hold max_connections: lowering it (raise LimitNOFILE or ulimit -n)"
                );
                limits.max_connections = room.max(1);
            }
        }
        limits
    }
}

/// Binds a listener on `addr` with a backlog of [`LISTEN_BACKLOG`].
///
/// # Errors
///
/// When the address cannot be bound.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std's and tokio's own bind: a restart can bind the port while
    // the last run's connections are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit on open files to the hard limit, and returns the
/// soft limit now in force (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    // Asking for the most there is raises the soft limit to the hard one.
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// Serves `app` on `listener` within `limits` (over TLS with `tls`) until
/// `shutdown` completes; then stops accepting, lets each connection finish
/// its request in flight, and returns once every connection has closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: &ConnectionLimits,
    metrics: Arc<dyn ConnectionMeter>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = permits(limits.max_connections);
    let handshakes = tls.as_ref().map(|_| permits(limits.max_tls_handshakes));
    let mut acceptor = Acceptor {
        listener,
        connections: Arc::clone(&slots.0),
        handshakes: handshakes.as_ref().map(|(slots, _)| Arc::clone(slots)),
        metrics: Arc::clone(&metrics),
    };
    // Closed when shutdown starts: each connection then finishes the
    // request it is serving and closes.
    let (stopping, stop) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer, permits) = tokio::select! {
            () = &mut shutdown => break,
            accepted = acceptor.next() => accepted,
        };
        let connection = Connection {
            app: app.clone(),
            tls: tls.clone(),
            limits: limits.clone(),
            metrics: Arc::clone(&metrics),
            stop: stop.clone(),
        };
        tokio::spawn(connection.run(stream, peer, permits));
    }
    // Stop accepting: new connections are refused by the kernel.
    drop(acceptor);
    drop(stopping);
    // Every permit back means every connection has closed.
    let (slots, count) = slots;
    let _all = slots.acquire_many(count).await;
}

/// A semaphore of `max` permits (at least one), and that count.
fn permits(max: usize) -> (Arc<Semaphore>, u32) {
    let count = u32::try_from(max.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    (Arc::new(Semaphore::new(count as usize)), count)
}

/// What the connection layer tells the metrics.
pub(crate) trait ConnectionMeter: Send + Sync + 'static {
    /// A connection was accepted (`true`) or closed (`false`).
    fn connection(&self, opened: bool);
    /// The listener waited because `limit` was reached.
    fn waited_at(&self, limit: &'static str);
    /// Accepting failed for want of resources; the listener backs off.
    fn accept_failed(&self);
    /// A connection was closed for taking too long in `stage`.
    fn timed_out(&self, stage: &'static str);
    /// A TLS handshake failed.
    fn handshake_failed(&self);
}

/// The server's metrics, reached through its state.
impl ConnectionMeter for AppState {
    fn connection(&self, opened: bool) {
        self.metrics.connection_opened(opened);
    }

    fn waited_at(&self, limit: &'static str) {
        self.metrics.connection_limit_reached(limit);
    }

    fn accept_failed(&self) {
        self.metrics.accept_error();
    }

    fn timed_out(&self, stage: &'static str) {
        self.metrics.connection_timed_out(stage);
    }

    fn handshake_failed(&self) {
        self.metrics.tls_handshake_failed();
    }
}

/// The permits a connection holds: its slot for its life, and a
/// handshake's slot until its TLS handshake ends.
struct Permits {
    connection: OwnedSemaphorePermit,
    handshake: Option<OwnedSemaphorePermit>,
}

/// The listening socket and the caps it accepts within.
struct Acceptor {
    listener: TcpListener,
    connections: Arc<Semaphore>,
    handshakes: Option<Arc<Semaphore>>,
    metrics: Arc<dyn ConnectionMeter>,
}

impl Acceptor {
    /// The next connection, once there is room for it: until then nothing
    /// is accepted, and new connections wait in the kernel's backlog.
    async fn next(&mut self) -> (TcpStream, SocketAddr, Permits) {
        let connection = take(&self.connections, &*self.metrics, "connections").await;
        let handshake = match &self.handshakes {
            Some(slots) => Some(take(slots, &*self.metrics, "tls_handshakes").await),
            None => None,
        };
        let mut backoff = FIRST_ACCEPT_BACKOFF;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let permits = Permits {
                        connection,
                        handshake,
                    };
                    return (stream, peer, permits);
                }
                // The client gave up before the accept: nothing to wait for.
                Err(err) if is_connection_error(&err) => {}
                Err(err) => {
                    // Out of file descriptors or memory: retrying at once
                    // would spin, as the connection stays in the backlog.
                    self.metrics.accept_failed();
                    tracing::warn!(cause = %err, retry_in = ?backoff, "cannot accept a connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }
}

/// A permit of `slots`, counting a wait when none is free.
async fn take(
    slots: &Arc<Semaphore>,
    metrics: &dyn ConnectionMeter,
    limit: &'static str,
) -> OwnedSemaphorePermit {
    if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
        return permit;
    }
    metrics.waited_at(limit);
    Arc::clone(slots)
        .acquire_owned()
        .await
        // The semaphores are never closed.
        .expect("connection slots are never closed")
}

/// Errors of one connection that went away before it was accepted.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// What serving one connection needs.
struct Connection {
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    metrics: Arc<dyn ConnectionMeter>,
    /// Changes (closes) when shutdown starts.
    stop: watch::Receiver<()>,
}

impl Connection {
    /// Serves the connection to its end, its TLS handshake first; the
    /// permits are given back when it closes.
    async fn run(mut self, stream: TcpStream, peer: SocketAddr, permits: Permits) {
        let Permits {
            connection: slot,
            handshake: handshake_slot,
        } = permits;
        self.metrics.connection(true);
        // Where the read gate leaves a request's in-flight slot for it.
        let handoff = Handoff::default();
        let metrics = Arc::clone(&self.metrics);
        let gated = Gated::new(
            stream,
            &self.limits.in_flight,
            handoff.clone(),
            Arc::new(move || metrics.waited_at("requests")),
        );
        match self.tls.take() {
            None => {
                // hyper makes its buffers (16 KiB) as it starts; a client
                // that has sent nothing yet costs about 1 KiB until then
                // (hyper-util's auto builder waits the same way). The
                // head may then take one more header timeout.
                // (Not `readable()`: it answers at once on a new socket.)
                let mut first = [0u8; 1];
                let mut gated = gated;
                let sent = tokio::select! {
                    sent = tokio::time::timeout(self.limits.header_timeout, gated.stream().peek(&mut first)) => Some(sent),
                    _ = self.stop.changed() => None,
                };
                match sent {
                    // Boxed: the idle connection's task stays small.
                    Some(Ok(Ok(_bytes))) => {
                        gated.armed = true;
                        Box::pin(self.serve(gated, handoff, peer)).await;
                    }
                    Some(Ok(Err(err))) => {
                        tracing::debug!(%peer, cause = %err, "connection failed before its first request");
                    }
                    Some(Err(_elapsed)) => self.metrics.timed_out("request_head"),
                    None => {}
                }
            }
            Some(acceptor) => {
                let timeout = self.limits.tls_handshake_timeout;
                // Unarmed during the handshake, which is not a request.
                let handshake = Box::pin(tokio::time::timeout(timeout, acceptor.accept(gated)));
                let handshake_done = tokio::select! {
                    done = handshake => Some(done),
                    _ = self.stop.changed() => None,
                };
                drop(handshake_slot);
                match handshake_done {
                    Some(Ok(Ok(mut tls))) => {
                        tls.get_mut().0.armed = true;
                        Box::pin(self.serve(tls, handoff, peer)).await;
                    }
                    Some(Ok(Err(err))) => {
                        self.metrics.handshake_failed();
                        tracing::debug!(%peer, cause = %err, "TLS handshake failed");
                    }
                    Some(Err(_elapsed)) => {
                        self.metrics.timed_out("tls_handshake");
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                    None => {}
                }
            }
        }
        self.metrics.connection(false);
        // Only once the connection and its service are gone.
        drop(slot);
    }

    /// Serves HTTP/1.1 on `io` until the client closes, a request head
    /// takes too long, or shutdown (after the request in flight).
    async fn serve<I>(&mut self, io: I, handoff: Handoff, peer: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service =
            self.app
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    // Where the bot rules find the client (as axum's
                    // `into_make_service_with_connect_info` records it).
                    request.extensions_mut().insert(ConnectInfo(peer));
                    // The head is complete: the request takes the slot its
                    // bytes were read under (the router holds it).
                    if let Some(slot) = handoff.claim() {
                        request.extensions_mut().insert(slot);
                    }
                    request.map(axum::body::Body::new)
                });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let mut connection = pin!(connection);
        let mut stopping = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(err) = result {
            if err.is_timeout() {
                self.metrics.timed_out("request_head");
            }
            tracing::debug!(%peer, cause = %err, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Counts what the connection layer reports.
    #[derive(Default)]
    struct Counts(Mutex<Vec<String>>);

    impl Counts {
        fn seen(&self, what: &str) -> usize {
            self.0.lock().unwrap().iter().filter(|w| *w == what).count()
        }
    }

    impl ConnectionMeter for Counts {
        fn connection(&self, opened: bool) {
            self.0.lock().unwrap().push(format!("open {opened}"));
        }
        fn waited_at(&self, limit: &'static str) {
            self.0.lock().unwrap().push(format!("wait {limit}"));
        }
        fn accept_failed(&self) {
            self.0.lock().unwrap().push("accept failed".into());
        }
        fn timed_out(&self, stage: &'static str) {
            self.0.lock().unwrap().push(format!("timeout {stage}"));
        }
        fn handshake_failed(&self) {
            self.0.lock().unwrap().push("handshake failed".into());
        }
    }

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    /// Reads one response's head (the test app answers without a body).
    async fn status_of(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer[..12]).into_owned()
    }

    /// A server of `limits` on a free port, answering `GET /` 200.
    async fn start(
        limits: ConnectionLimits,
        tls: Option<TlsAcceptor>,
    ) -> (
        SocketAddr,
        Arc<Counts>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        start_app(limits, tls, Router::new().route("/", get(|| async { "" }))).await
    }

    /// [`start`] serving `app`.
    async fn start_app(
        limits: ConnectionLimits,
        tls: Option<TlsAcceptor>,
        app: Router,
    ) -> (
        SocketAddr,
        Arc<Counts>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let meter: Arc<dyn ConnectionMeter> = counts.clone();
        let server = tokio::spawn(async move {
            serve(listener, app, tls, &limits, meter, async {
                stopped.await.ok();
            })
            .await;
        });
        (addr, counts, stop, server)
    }

    /// At the cap, a new connection is left in the backlog, not accepted
    /// and closed: its request waits, and is answered once an open
    /// connection goes, here by the header timeout of one that never sent
    /// a request. The wait is counted, and so is the timeout.
    #[tokio::test]
    async fn at_the_cap_a_connection_waits_for_a_slot() {
        let limits = ConnectionLimits {
            max_connections: 2,
            header_timeout: Duration::from_millis(600),
            ..ConnectionLimits::default()
        };
        let (addr, counts, stop, server) = start(limits, None).await;
        let mut busy = TcpStream::connect(addr).await.unwrap();
        let _idle = TcpStream::connect(addr).await.unwrap();
        busy.write_all(REQUEST).await.unwrap();
        assert_eq!(status_of(&mut busy).await, "HTTP/1.1 200");
        // The third connects (the kernel completes the handshake) and
        // sends its request, but is not served while two are open.
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        waiting.write_all(REQUEST).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), waiting.peek(&mut buf)).await;
        assert!(early.is_err(), "served or closed at the cap: {early:?}");
        // The open connections time out waiting for a request head, and
        // the waiting request is answered.
        assert_eq!(status_of(&mut waiting).await, "HTTP/1.1 200");
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        // Once it is served, two are open again, so the accept loop may
        // already be waiting for the next slot: at least this one wait.
        assert!(counts.seen("wait connections") >= 1);
        assert!(counts.seen("timeout request_head") >= 1);
        stop.send(()).unwrap();
        drop((busy, waiting));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("shutdown in time")
            .unwrap();
        assert_eq!(counts.seen("open true"), counts.seen("open false"));
    }

    /// An app whose `/slow` answers once `release` is notified, holding
    /// the in-flight slot its request was read with until it answers (as
    /// the router's `shed_load` does).
    fn slow_app(release: Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route("/", get(|| async { "" }))
            .route(
                "/slow",
                get(move || async move {
                    release.notified().await;
                    ""
                }),
            )
            .layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    let slot = request
                        .extensions()
                        .get::<crate::in_flight::HeldSlot>()
                        .cloned();
                    let response = next.run(request).await;
                    drop(slot);
                    response
                },
            ))
    }

    /// Asserts that nothing is answered on `stream` for 300 ms.
    async fn assert_unanswered(stream: &TcpStream, what: &str) {
        let mut buf = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), stream.peek(&mut buf)).await;
        assert!(early.is_err(), "{what}: answered {early:?}");
    }

    /// At `max_in_flight_requests`, the next request is not read (it waits
    /// in the kernel; the wait is counted) until a slot frees; a connection
    /// that sends nothing, or sits idle after its answer, holds no slot.
    #[tokio::test]
    async fn past_the_in_flight_limit_requests_wait_unread() {
        let release = Arc::new(tokio::sync::Notify::new());
        let limits = ConnectionLimits {
            in_flight: InFlight::new(1),
            ..ConnectionLimits::default()
        };
        let (addr, counts, stop, server) =
            start_app(limits, None, slow_app(Arc::clone(&release))).await;
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(REQUEST).await.unwrap();
        assert_eq!(status_of(&mut idle).await, "HTTP/1.1 200");
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        waiting.write_all(REQUEST).await.unwrap();
        assert_unanswered(&waiting, "past the limit").await;
        assert_eq!(counts.seen("wait requests"), 1, "{:?}", counts.0);
        release.notify_one();
        assert_eq!(status_of(&mut slow).await, "HTTP/1.1 200");
        assert_eq!(status_of(&mut waiting).await, "HTTP/1.1 200");
        // The idle connection's next request finds the slot free.
        idle.write_all(REQUEST).await.unwrap();
        assert_eq!(status_of(&mut idle).await, "HTTP/1.1 200");
        stop.send(()).unwrap();
        drop((slow, waiting, idle));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("shutdown in time")
            .unwrap();
    }

    /// A client that sends half a request head and stops holds its slot
    /// for [`HEAD_SLOT_TIME`] only: at a limit of one, another client is
    /// served meanwhile, and the half-sent request is still served once
    /// its head is complete.
    #[tokio::test]
    async fn a_half_sent_head_gives_its_slot_back() {
        let limits = ConnectionLimits {
            in_flight: InFlight::new(1),
            ..ConnectionLimits::default()
        };
        let release = Arc::new(tokio::sync::Notify::new());
        let (addr, _counts, stop, server) = start_app(limits, None, slow_app(release)).await;
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nho").await.unwrap();
        tokio::time::sleep(crate::in_flight::HEAD_SLOT_TIME * 2).await;
        let mut visitor = TcpStream::connect(addr).await.unwrap();
        visitor.write_all(REQUEST).await.unwrap();
        let served = tokio::time::timeout(Duration::from_secs(1), status_of(&mut visitor)).await;
        assert_eq!(
            served.expect("served while a head is half-sent"),
            "HTTP/1.1 200"
        );
        half.write_all(b"st: x\r\n\r\n").await.unwrap();
        assert_eq!(status_of(&mut half).await, "HTTP/1.1 200");
        stop.send(()).unwrap();
        drop((half, visitor));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("shutdown in time")
            .unwrap();
    }

    /// Shutdown lets a request in flight finish and closes idle
    /// connections at once.
    #[tokio::test]
    async fn shutdown_waits_for_connections_to_close() {
        let (addr, _counts, stop, server) = start(ConnectionLimits::default(), None).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(REQUEST).await.unwrap();
        assert_eq!(status_of(&mut idle).await, "HTTP/1.1 200");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("an idle keep-alive connection does not hold shutdown")
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            idle.read(&mut buf).await.unwrap(),
            0,
            "closed by the server"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    /// A TLS handshake that never starts holds a handshake slot only until
    /// its timeout; at the handshake cap the listener waits (counted).
    #[tokio::test]
    async fn silent_tls_clients_time_out_of_the_handshake_cap() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Never reached: the clients send no ClientHello.
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCert));
        let limits = ConnectionLimits {
            max_tls_handshakes: 1,
            tls_handshake_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        };
        let tls = Some(TlsAcceptor::from(Arc::new(config)));
        let (addr, counts, stop, server) = start(limits, tls).await;
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // Each waited for the one before it to time out.
        assert_eq!(counts.seen("timeout tls_handshake"), 3, "{:?}", counts.0);
        assert!(counts.seen("wait tls_handshakes") >= 1, "{:?}", counts.0);
        for stream in &mut silent {
            let mut buf = [0u8; 16];
            assert_eq!(stream.read(&mut buf).await.unwrap(), 0, "closed");
        }
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    /// A resolver with no certificate (the handshakes never get that far).
    #[derive(Debug)]
    struct NoCert;

    impl rustls::server::ResolvesServerCert for NoCert {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }
}
