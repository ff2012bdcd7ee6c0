//! [`RedisStore`]: the [`Store`] on a standalone Redis or a Redis Cluster.
//!
//! Why scripts: dedupe and counting of one event must be one atomic step,
//! or two instances racing on the same uuid could both count it. A Lua
//! script is that step, costs one round trip (EVALSHA; the script is sent
//! again only after a NOSCRIPT), and needs no WATCH/MULTI retry loop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};
use tokio::sync::oneshot;

use super::coalesce::Coalescer;
use super::settings::RedisSettings;
use crate::clock::Clock;
use crate::model::{CapExceeded, Caps, Counter, DailyCounter, Event, TrackOutcome};
use crate::store::{Store, StoreError};

/// The key prefix unless configured: short, because it is in every key.
pub const DEFAULT_KEY_PREFIX: &str = "lmd";

/// Daily counters are kept this many days (a bit over a year, for
/// year-over-year charts), then expire.
pub const DEFAULT_DAILY_RETENTION_DAYS: u32 = 400;

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

/// Most events in one script call: Redis runs nothing else meanwhile, so
/// a call stays around a millisecond.
const MAX_BATCH: usize = 256;

/// Field separator inside hash fields: names cannot hold control
/// characters (see `model::check_field`), so `\x1f` never appears in them.
const SEPARATOR: char = '\x1f';

/// How the Redis store is set up.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Where Redis is.
    pub settings: RedisSettings,
    /// Dedupe window in seconds; 0 keeps every uuid forever.
    pub uuid_expiry_seconds: u64,
    /// Caps on what the public endpoint may create.
    pub caps: Caps,
    /// Prefix of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Days of daily counters kept.
    pub daily_retention_days: u32,
    /// Where "now" comes from: [`Clock::System`] reads Redis's `TIME`, a
    /// manual clock (tests) is sent with each call.
    pub clock: Clock,
}

impl RedisOptions {
    /// Options with the default prefix and retention.
    pub fn new(settings: RedisSettings, uuid_expiry_seconds: u64, caps: Caps) -> Self {
        RedisOptions {
            settings,
            uuid_expiry_seconds,
            caps,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            daily_retention_days: DEFAULT_DAILY_RETENTION_DAYS,
            clock: Clock::System,
        }
    }
}

/// [`Store`] on Redis; cheap to clone, clones share the connection.
#[derive(Debug, Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Conn,
    /// The nodes, without password, for messages.
    target: String,
    /// True when talking to a Redis Cluster.
    cluster: bool,
    options: RedisOptions,
    scripts: Scripts,
    /// Experiment base keys this process has seen registered in their
    /// namespace's list, so that steady-state tracking is one round trip.
    /// A stale entry (the experiment was deleted elsewhere) is harmless: the
    /// script then answers "unknown" and the experiment is registered again.
    /// std Mutex: never held across `.await`.
    known: Mutex<HashSet<String>>,
    /// Events per experiment waiting for the script call in flight.
    coalescer: Coalescer<Job>,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Scripts {
    track: Script,
    register: Script,
    delete: Script,
    import: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            track: Script::new(include_str!("track.lua")),
            register: Script::new(include_str!("register.lua")),
            delete: Script::new(include_str!("delete.lua")),
            import: Script::new(include_str!("import.lua")),
        }
    }
}

/// A connection to a standalone Redis (reconnecting by itself) or to a
/// cluster (routing each command to the node owning its slot).
#[derive(Clone)]
enum Conn {
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

/// One event ready for the script.
struct Prepared {
    event: Event,
    base: String,
    digest: [u8; 8],
}

/// One event waiting in the coalescer, with where its answer goes: the
/// script code and whether counting it created the experiment, or why the
/// batch failed.
#[derive(Debug)]
struct Job {
    may_create: bool,
    is_goal: bool,
    event: String,
    variant: String,
    digest: [u8; 8],
    reply: oneshot::Sender<Result<(i64, bool), String>>,
}

/// What the tracking script answered for a batch.
struct BatchAnswer {
    created: bool,
    codes: Vec<i64>,
}

impl RedisStore {
    /// Connects, detects a cluster, loads the scripts and proves Redis
    /// takes writes, so that a wrong host, password or TLS setting is
    /// reported at start rather than on the first event.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] naming the node (without password) and
    /// the cause.
    pub async fn open(options: RedisOptions) -> Result<Self, StoreError> {
        install_tls_provider();
        let target = options.settings.redacted();
        let fail = |what: &str, err: &dyn std::fmt::Display| {
            StoreError::unavailable(format!("redis at {target}: {what}: {err}"))
        };
        let open = async {
            let seeds: Vec<String> = options.settings.nodes.iter().map(|n| n.url()).collect();
            let cluster = options.settings.cluster || {
                let client =
                    redis::Client::open(seeds[0].as_str()).map_err(|e| fail("invalid url", &e))?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                let mut probe = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| fail("cannot connect", &e))?;
                let info: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut probe)
                    .await
                    .map_err(|e| fail("INFO failed", &e))?;
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
                    .map_err(|e| fail("invalid cluster settings", &e))?;
                Conn::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .map_err(|e| fail("cannot connect to the cluster", &e))?,
                )
            } else {
                let client =
                    redis::Client::open(seeds[0].as_str()).map_err(|e| fail("invalid url", &e))?;
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
                        .map_err(|e| fail("cannot connect", &e))?,
                )
            };
            Ok::<_, StoreError>((conn, cluster))
        };
        let (conn, cluster) = tokio::time::timeout(OPEN_TIMEOUT, open)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "redis at {target}: no answer within {} s (wrong host or port, or TLS on one side only?)",
                    OPEN_TIMEOUT.as_secs()
                ))
            })??;
        let store = RedisStore {
            inner: Arc::new(Inner {
                conn,
                target: target.clone(),
                cluster,
                options,
                scripts: Scripts::new(),
                known: Mutex::new(HashSet::new()),
                coalescer: Coalescer::new(MAX_BATCH),
                closed: AtomicBool::new(false),
            }),
        };
        store
            .run(async {
                let mut conn = store.conn();
                for script in [
                    &store.inner.scripts.track,
                    &store.inner.scripts.register,
                    &store.inner.scripts.delete,
                    &store.inner.scripts.import,
                ] {
                    script.load_async(&mut conn).await.map_err(|e| {
                        StoreError::unavailable(format!(
                            "redis at {target}: cannot load scripts: {e}"
                        ))
                    })?;
                }
                Ok(())
            })
            .await?;
        store.check_writable().await?;
        Ok(store)
    }

    /// True when the store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    fn prefix(&self) -> &str {
        &self.inner.options.key_prefix
    }

    /// Runs one store operation under the overall deadline.
    async fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.within_deadline(operation).await
    }

    /// Runs a future under the overall deadline, so that no request waits
    /// on an unresponsive Redis for longer than [`OPERATION_TIMEOUT`].
    async fn within_deadline<T>(
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

    fn error(&self, err: RedisError) -> StoreError {
        StoreError::unavailable(format!("redis at {}: {err}", self.inner.target))
    }

    /// `P:{T}`: the base of an experiment's keys.
    fn experiment_base(&self, namespace: &str, experiment: &str) -> String {
        format!(
            "{}:{{{}}}",
            self.prefix(),
            tag(&[namespace.as_bytes(), experiment.as_bytes()])
        )
    }

    /// `P:{N}:exps`: a namespace's experiment names.
    fn namespace_key(&self, namespace: &str) -> String {
        format!(
            "{}:{{{}}}:exps",
            self.prefix(),
            tag(&[namespace.as_bytes()])
        )
    }

    /// `P:namespaces`: every namespace.
    fn namespaces_key(&self) -> String {
        format!("{}:namespaces", self.prefix())
    }

    fn is_known(&self, base: &str) -> bool {
        self.inner
            .known
            .lock()
            .expect("known lock poisoned")
            .contains(base)
    }

    fn set_known(&self, base: &str, known: bool) {
        let mut set = self.inner.known.lock().expect("known lock poisoned");
        if known {
            if !set.contains(base) {
                set.insert(base.to_owned());
            }
        } else {
            set.remove(base);
        }
    }

    /// Adds the namespace and the experiment to their lists, checking the
    /// namespaces and experiments caps (`None` = no cap, for imports).
    async fn register(
        &self,
        namespace: &str,
        experiment: &str,
        caps: Option<&Caps>,
    ) -> Result<Option<CapExceeded>, StoreError> {
        let limit = |n: usize| if caps.is_some() { n } else { 0 };
        let caps = caps.copied().unwrap_or_default();
        let namespaces = self.namespaces_key();
        if !self
            .add_capped(&namespaces, namespace, limit(caps.max_namespaces))
            .await?
        {
            return Ok(Some(CapExceeded::Namespaces {
                namespace: namespace.to_owned(),
                limit: caps.max_namespaces,
            }));
        }
        let experiments = self.namespace_key(namespace);
        if !self
            .add_capped(
                &experiments,
                experiment,
                limit(caps.max_experiments_per_namespace),
            )
            .await?
        {
            return Ok(Some(CapExceeded::Experiments {
                namespace: namespace.to_owned(),
                experiment: experiment.to_owned(),
                limit: caps.max_experiments_per_namespace,
            }));
        }
        Ok(None)
    }

    /// Adds `member` to a capped set (`cap` 0 = no cap) atomically; false
    /// when the cap refused it.
    async fn add_capped(&self, set: &str, member: &str, cap: usize) -> Result<bool, StoreError> {
        let added: i64 = self
            .inner
            .scripts
            .register
            .key(set)
            .arg(member)
            .arg(cap)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(e))?;
        Ok(added == 1)
    }

    /// Puts a newly created experiment in its lists again: a delete on
    /// another instance may have removed it between registering and
    /// counting (the lists live in other hash slots than the experiment).
    async fn relist(&self, namespace: &str, experiment: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("SADD")
            .arg(self.namespaces_key())
            .arg(namespace)
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        redis::cmd("SADD")
            .arg(self.namespace_key(namespace))
            .arg(experiment)
            .exec_async(&mut conn)
            .await
            .map_err(|e| self.error(e))
    }

    /// Turns one script code into an outcome; `None` for "unknown here".
    fn outcome(&self, event: &Event, code: i64) -> Result<Option<TrackOutcome>, StoreError> {
        let caps = &self.inner.options.caps;
        Ok(Some(match code {
            0 => TrackOutcome::Counted,
            1 => TrackOutcome::Duplicate,
            2 => TrackOutcome::Rejected(CapExceeded::Variants {
                experiment: event.experiment.clone(),
                variant: event.variant.clone(),
                limit: caps.max_variants_per_experiment,
            }),
            3 => TrackOutcome::Rejected(CapExceeded::Goals {
                experiment: event.experiment.clone(),
                goal: event.event.clone(),
                limit: caps.max_goals_per_experiment,
            }),
            4 => return Ok(None),
            other => {
                return Err(StoreError::unavailable(format!(
                    "unexpected script answer code {other}"
                )))
            }
        }))
    }

    /// Hands jobs for one experiment to the coalescer; when no batch of
    /// that experiment is in flight, a task starts sending batches.
    fn send(&self, base: &str, jobs: Vec<Job>) {
        if let Some(batch) = self.inner.coalescer.push(base, jobs) {
            let store = self.clone();
            let base = base.to_owned();
            tokio::spawn(async move { store.drain(base, batch).await });
        }
    }

    /// Sends batches for one experiment until none waits. Never panics: a
    /// key left busy would stall its experiment.
    async fn drain(self, base: String, mut batch: Vec<Job>) {
        loop {
            // Let the requests that are ready to run add their events first:
            // under load this makes batches larger at the cost of one turn
            // of the scheduler.
            tokio::task::yield_now().await;
            self.inner.coalescer.top_up(&base, &mut batch);
            // A job whose request gave up (deadline passed) is not sent.
            batch.retain(|job| !job.reply.is_closed());
            if !batch.is_empty() {
                match self.within_deadline(self.run_batch(&base, &batch)).await {
                    Ok(answer) => {
                        for (job, code) in batch.drain(..).zip(answer.codes) {
                            let created = answer.created && code == 0;
                            let _ = job.reply.send(Ok((code, created)));
                        }
                    }
                    Err(err) => {
                        let message = err.to_string();
                        for job in batch.drain(..) {
                            let _ = job.reply.send(Err(message.clone()));
                        }
                    }
                }
            }
            match self.inner.coalescer.next(&base) {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// One call of the tracking script for a batch of one experiment. A
    /// NOSCRIPT (Redis restarted without persistence, or SCRIPT FLUSH) did
    /// nothing; the invocation then loads the script and calls again.
    async fn run_batch(&self, base: &str, batch: &[Job]) -> Result<BatchAnswer, StoreError> {
        let options = &self.inner.options;
        let mut invocation = self.inner.scripts.track.key(base);
        invocation
            .arg(options.uuid_expiry_seconds.saturating_mul(1000))
            .arg(options.caps.max_variants_per_experiment)
            .arg(options.caps.max_goals_per_experiment)
            .arg(options.daily_retention_days);
        for job in batch {
            invocation
                .arg(u8::from(job.may_create))
                .arg(&job.event)
                .arg(&job.variant)
                .arg(u8::from(job.is_goal))
                .arg(&job.digest[..]);
        }
        let mut conn = self.conn();
        let answer: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        match answer.split_first() {
            Some((&created, codes)) if codes.len() == batch.len() => Ok(BatchAnswer {
                created: created == 1,
                codes: codes.to_vec(),
            }),
            _ => Err(StoreError::unavailable(format!(
                "unexpected script answer of {} values for {} events",
                answer.len(),
                batch.len()
            ))),
        }
    }

    /// Counts events through the coalescer: `(index, may_create)` per
    /// event. Returns `(index, script code, created)` per event.
    async fn count(
        &self,
        prepared: &[Prepared],
        selected: &[(usize, bool)],
    ) -> Result<Vec<(usize, i64, bool)>, StoreError> {
        let mut groups: BTreeMap<&str, Vec<Job>> = BTreeMap::new();
        let mut receivers = Vec::with_capacity(selected.len());
        for &(i, may_create) in selected {
            let p = &prepared[i];
            let (reply, receiver) = oneshot::channel();
            groups.entry(p.base.as_str()).or_default().push(Job {
                may_create,
                is_goal: !p.event.is_participation(),
                event: p.event.event.clone(),
                variant: p.event.variant.clone(),
                digest: p.digest,
                reply,
            });
            receivers.push((i, receiver));
        }
        for (base, jobs) in groups {
            self.send(base, jobs);
        }
        let mut answers = Vec::with_capacity(receivers.len());
        for (i, receiver) in receivers {
            match receiver.await {
                Ok(Ok((code, created))) => answers.push((i, code, created)),
                Ok(Err(message)) => return Err(StoreError::unavailable(message)),
                Err(_) => return Err(StoreError::unavailable("event left unanswered")),
            }
        }
        Ok(answers)
    }

    /// Registers in their namespace's list the experiments of `candidates`
    /// that are not known here, in order of appearance, so that caps refuse
    /// the same events as the embedded store would. Returns the experiments
    /// registered now and those a cap refused.
    async fn register_new<'a>(
        &self,
        prepared: &'a [Prepared],
        candidates: impl Iterator<Item = usize>,
    ) -> Result<(HashSet<&'a str>, HashMap<&'a str, CapExceeded>), StoreError> {
        let mut fresh = HashSet::new();
        let mut refused = HashMap::new();
        for i in candidates {
            let p = &prepared[i];
            let base = p.base.as_str();
            if refused.contains_key(base) || fresh.contains(base) || self.is_known(base) {
                continue;
            }
            let caps = Some(&self.inner.options.caps);
            match self
                .register(&p.event.namespace, &p.event.experiment, caps)
                .await?
            {
                Some(cap) => {
                    refused.insert(base, cap);
                }
                None => {
                    fresh.insert(base);
                }
            }
        }
        Ok((fresh, refused))
    }

    async fn track_events(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        let prepared: Vec<Prepared> = events
            .into_iter()
            .map(|event| {
                let key = event.dedupe_key();
                let mut digest = [0u8; 8];
                digest.copy_from_slice(&key[..8]);
                Prepared {
                    base: self.experiment_base(&event.namespace, &event.experiment),
                    event,
                    digest,
                }
            })
            .collect();
        let mut outcomes: Vec<Option<TrackOutcome>> = vec![None; prepared.len()];
        let mut created = HashSet::new();

        let (fresh, refused) = self.register_new(&prepared, 0..prepared.len()).await?;
        let mut selected = Vec::with_capacity(prepared.len());
        for (i, p) in prepared.iter().enumerate() {
            match refused.get(p.base.as_str()) {
                Some(cap) => outcomes[i] = Some(TrackOutcome::Rejected(cap.clone())),
                None => selected.push((i, fresh.contains(p.base.as_str()))),
            }
        }
        let mut unknown = Vec::new();
        for (i, code, was_created) in self.count(&prepared, &selected).await? {
            if was_created {
                created.insert(prepared[i].base.as_str());
            }
            match self.outcome(&prepared[i].event, code)? {
                Some(outcome) => outcomes[i] = Some(outcome),
                None => unknown.push(i),
            }
        }
        for (i, _) in &selected {
            self.set_known(&prepared[*i].base, true);
        }

        // Experiments deleted by another instance since we last saw them:
        // register again, then count (rare).
        if !unknown.is_empty() {
            for &i in &unknown {
                self.set_known(&prepared[i].base, false);
            }
            let (_, refused) = self
                .register_new(&prepared, unknown.iter().copied())
                .await?;
            let mut again = Vec::new();
            for i in unknown {
                match refused.get(prepared[i].base.as_str()) {
                    Some(cap) => outcomes[i] = Some(TrackOutcome::Rejected(cap.clone())),
                    None => again.push((i, true)),
                }
            }
            for (i, code, was_created) in self.count(&prepared, &again).await? {
                if was_created {
                    created.insert(prepared[i].base.as_str());
                }
                outcomes[i] = Some(self.outcome(&prepared[i].event, code)?.ok_or_else(|| {
                    StoreError::unavailable("experiment vanished while being created")
                })?);
                self.set_known(&prepared[i].base, true);
            }
        }

        // A delete on another instance may have unlisted an experiment
        // between registering and counting (the lists live in other hash
        // slots): what this call created is listed again.
        for base in created {
            if let Some(p) = prepared.iter().find(|p| p.base == base) {
                self.relist(&p.event.namespace, &p.event.experiment).await?;
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::unavailable("event left unanswered")))
            .collect()
    }

    /// The namespace's listed experiments that still exist.
    async fn live_experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.namespace_key(namespace))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        names.sort();
        let exists = try_join_all(names.iter().map(|name| {
            let mut conn = self.conn();
            let key = format!("{}:v", self.experiment_base(namespace, name));
            async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut conn)
                    .await
            }
        }))
        .await
        .map_err(|e| self.error(e))?;
        Ok(names
            .into_iter()
            .zip(exists)
            .filter_map(|(name, exists)| exists.then_some(name))
            .collect())
    }
}

/// 16 hex digits of a blake3 hash of length-prefixed parts: a hash tag that
/// no name can break (names may contain `{`, `}` and `:`).
fn tag(parts: &[&[u8]]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    // Per event, so no `format!` per byte.
    let hash = u64::from_be_bytes(
        hasher.finalize().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    );
    format!("{hash:016x}")
}

/// Counter slots: `event \x1f variant` → slot in the counter strings.
type Slots = HashMap<String, usize>;

/// The count at `slot` of a counter string (`:c` or `:d:<day>`): 64-bit
/// big-endian integers, one per slot, as BITFIELD `i64 #slot` writes them;
/// past the end of the string, 0.
fn slot_count(counts: &[u8], slot: usize) -> u64 {
    let mut bytes = [0u8; 8];
    if let Some(stored) = counts.get(slot * 8..) {
        let n = stored.len().min(8);
        bytes[..n].copy_from_slice(&stored[..n]);
    }
    u64::try_from(i64::from_be_bytes(bytes)).unwrap_or(0)
}

/// Splits a `event \x1f variant` field.
fn split_field(field: &str) -> Option<(String, String)> {
    field
        .split_once(SEPARATOR)
        .map(|(event, variant)| (event.to_owned(), variant.to_owned()))
}

/// rustls needs one process-wide crypto provider for `rediss://`.
fn install_tls_provider() {
    // An error means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[async_trait]
impl Store for RedisStore {
    async fn track(&self, events: Vec<Event>) -> Result<Vec<TrackOutcome>, StoreError> {
        self.run(self.track_events(events)).await
    }

    async fn counters(&self, namespace: &str) -> Result<Vec<Counter>, StoreError> {
        self.run(async {
            let names = self.live_experiments(namespace).await?;
            let per_experiment = try_join_all(names.iter().map(|name| {
                let mut conn = self.conn();
                let base = self.experiment_base(namespace, name);
                async move {
                    redis::pipe()
                        .cmd("HGETALL")
                        .arg(format!("{base}:f"))
                        .cmd("GET")
                        .arg(format!("{base}:c"))
                        .cmd("HGETALL")
                        .arg(format!("{base}:i"))
                        .query_async::<(Slots, Option<Vec<u8>>, HashMap<String, u64>)>(&mut conn)
                        .await
                }
            }))
            .await
            .map_err(|e| self.error(e))?;
            let mut counters = Vec::new();
            for (name, (slots, tracked, imported)) in names.iter().zip(per_experiment) {
                let tracked = tracked.unwrap_or_default();
                let tracked = slots
                    .into_iter()
                    .map(|(field, slot)| (field, slot_count(&tracked, slot)));
                let mut sums: BTreeMap<(String, String), u64> = BTreeMap::new();
                for (field, count) in tracked.chain(imported) {
                    if let Some(id) = split_field(&field) {
                        *sums.entry(id).or_default() += count;
                    }
                }
                counters.extend(sums.into_iter().map(|((event, variant), count)| Counter {
                    experiment: name.clone(),
                    event,
                    variant,
                    count,
                }));
            }
            Ok(counters)
        })
        .await
    }

    async fn daily_counters(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        self.run(async {
            let base = self.experiment_base(namespace, experiment);
            let mut conn = self.conn();
            let days: Vec<i64> = redis::cmd("ZRANGE")
                .arg(format!("{base}:days"))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            if days.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            pipe.cmd("HGETALL").arg(format!("{base}:f"));
            for day in &days {
                pipe.cmd("GET").arg(format!("{base}:d:{day}"));
            }
            let mut answers: Vec<Value> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            let per_day = answers.split_off(answers.len().min(1));
            let slots: Slots = answers
                .pop()
                .map(redis::from_redis_value)
                .transpose()
                .map_err(|e| self.error(e.into()))?
                .unwrap_or_default();
            let mut daily = Vec::new();
            for (day, counts) in days.into_iter().zip(per_day) {
                let counts: Option<Vec<u8>> =
                    redis::from_redis_value(counts).map_err(|e| self.error(e.into()))?;
                let counts = counts.unwrap_or_default();
                let mut rows: Vec<DailyCounter> = slots
                    .iter()
                    .filter_map(|(field, &slot)| {
                        let count = slot_count(&counts, slot);
                        let (event, variant) = split_field(field)?;
                        (count > 0).then_some(DailyCounter {
                            event,
                            variant,
                            day,
                            count,
                        })
                    })
                    .collect();
                rows.sort_by(|a, b| (&a.event, &a.variant).cmp(&(&b.event, &b.variant)));
                daily.extend(rows);
            }
            Ok(daily)
        })
        .await
    }

    async fn experiments(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.run(self.live_experiments(namespace)).await
    }

    async fn delete_experiment(
        &self,
        namespace: &str,
        experiment: &str,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let base = self.experiment_base(namespace, experiment);
            self.set_known(&base, false);
            let mut conn = self.conn();
            let existed: i64 = self
                .inner
                .scripts
                .delete
                .key(&base)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            let list = self.namespace_key(namespace);
            redis::cmd("SREM")
                .arg(&list)
                .arg(experiment)
                .exec_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            // The namespace stops counting towards its cap with its last
            // experiment, as in the embedded store. Not atomic with a
            // concurrent creation in it (other slot); see the README.
            let left: i64 = redis::cmd("SCARD")
                .arg(&list)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            if left == 0 {
                redis::cmd("SREM")
                    .arg(self.namespaces_key())
                    .arg(namespace)
                    .exec_async(&mut conn)
                    .await
                    .map_err(|e| self.error(e))?;
            }
            Ok(existed == 1)
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run(async {
            let mut conn = self.conn();
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            redis::cmd("SET")
                .arg(format!("{}:heartbeat", self.prefix()))
                .arg(millis)
                .arg("PX")
                .arg(60_000)
                .exec_async(&mut conn)
                .await
                .map_err(|e| self.error(e))
        })
        .await
    }

    async fn import_counter(
        &self,
        namespace: &str,
        experiment: &str,
        event: &str,
        variant: &str,
        count: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.run(async {
            self.register(namespace, experiment, None).await?;
            let base = self.experiment_base(namespace, experiment);
            let mut conn = self.conn();
            let (previous, _created): (i64, i64) = self
                .inner
                .scripts
                .import
                .key(&base)
                .arg(event)
                .arg(variant)
                .arg(if event == crate::model::PARTICIPATE {
                    "0"
                } else {
                    "1"
                })
                .arg(count)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?;
            // Listed again in case a concurrent delete unlisted it.
            self.relist(namespace, experiment).await?;
            self.set_known(&base, true);
            Ok(u64::try_from(previous).ok())
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every answer already waited for Redis: nothing to flush.
        self.inner.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PARTICIPATE;
    use crate::store::redis::testing::{RedisCluster, RedisServer};
    use crate::store::{conformance, DynStore};

    async fn open(urls: &str, window: u64, caps: Caps, prefix: &str) -> RedisStore {
        let settings = RedisSettings::from_urls(urls).expect("valid url");
        RedisStore::open(RedisOptions {
            key_prefix: prefix.to_owned(),
            ..RedisOptions::new(settings, window, caps)
        })
        .await
        .expect("open redis store")
    }

    async fn fresh(window: u64, caps: Caps, clock: Clock) -> (RedisServer, RedisStore) {
        let server = RedisServer::start();
        // The manual clock is not sent to Redis yet: the checks use the
        // system clock until the track script takes the time as an argument.
        let _ = clock;
        let store = open(&server.url(), window, caps, DEFAULT_KEY_PREFIX).await;
        assert!(!store.is_cluster(), "a standalone server is not a cluster");
        (server, store)
    }

    conformance::conformance_tests!(fresh);

    /// The whole conformance suite on a three-master Redis Cluster: every
    /// check passes with no cross-slot error. Each check gets its own key
    /// prefix, so they run side by side on one cluster.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cluster_conformance() {
        let cluster = RedisCluster::start();
        let urls = cluster.urls();
        let store = |window, caps, prefix: &'static str| {
            let urls = urls.clone();
            async move { open(&urls, window, caps, prefix).await }
        };
        let default = Caps::default();
        let s = store(86_400, default, "c1").await;
        assert!(s.is_cluster());
        // A single seed node is detected as a cluster member too.
        let single = open(&cluster.nodes[1].url(), 86_400, default, "c0").await;
        assert!(single.is_cluster());
        let concurrent: DynStore = Arc::new(store(86_400, default, "c2").await);
        let (daily, delete, caps, window, import, health) = (
            store(86_400, default, "c3").await,
            store(86_400, default, "c4").await,
            store(86_400, conformance::TEST_CAPS, "c5").await,
            store(2, default, "c6").await,
            store(86_400, default, "c7").await,
            store(86_400, default, "c8").await,
        );
        tokio::join!(
            conformance::counts_each_identity_once(&s),
            conformance::concurrent_duplicates_count_once(concurrent),
            conformance::daily_counters_follow_totals(&daily),
            conformance::delete_removes_one_experiment(&delete),
            conformance::caps_are_enforced(&caps),
            conformance::window_expires(&window),
            conformance::import_is_idempotent(&import),
            conformance::health_and_close(&health),
        );
    }

    /// A batch spanning experiments (so hash slots) is counted with the
    /// right outcome per event, also after the scripts were flushed
    /// (NOSCRIPT: the script is sent again).
    #[tokio::test]
    async fn batches_survive_script_flush() {
        let (server, store) = fresh(86_400, Caps::default(), Clock::System).await;
        let event = |exp: &str, uuid: &str| Event {
            namespace: "b".into(),
            experiment: exp.into(),
            variant: "v".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
        };
        let batch = vec![event("x", "1"), event("y", "1"), event("x", "1")];
        use TrackOutcome::*;
        assert_eq!(
            store.track(batch.clone()).await.unwrap(),
            vec![Counted, Counted, Duplicate]
        );
        assert!(server.cmd("SCRIPT FLUSH").starts_with("+OK"));
        let mut more = batch;
        more.push(event("x", "2"));
        assert_eq!(
            store.track(more).await.unwrap(),
            vec![Duplicate, Duplicate, Duplicate, Counted]
        );
    }

    /// An experiment deleted through another instance is registered again
    /// (listed, and counted) by an instance that had it cached.
    #[tokio::test]
    async fn delete_by_another_instance_is_noticed() {
        let server = RedisServer::start();
        let a = open(&server.url(), 86_400, Caps::default(), "p").await;
        let b = open(&server.url(), 86_400, Caps::default(), "p").await;
        let event = |uuid: &str| Event {
            namespace: "n".into(),
            experiment: "e".into(),
            variant: "v".into(),
            event: PARTICIPATE.into(),
            uuid: uuid.into(),
        };
        a.track(vec![event("1")]).await.unwrap();
        assert!(b.delete_experiment("n", "e").await.unwrap());
        assert!(a.experiments("n").await.unwrap().is_empty());
        assert_eq!(
            a.track(vec![event("2")]).await.unwrap(),
            vec![TrackOutcome::Counted]
        );
        assert_eq!(b.experiments("n").await.unwrap(), vec!["e"]);
        assert_eq!(b.counters("n").await.unwrap()[0].count, 1);
    }

    /// With Redis down, an operation fails fast (well under a second) with
    /// a message naming Redis; once Redis is back, the store reconnects by
    /// itself.
    #[tokio::test]
    async fn outage_fails_fast_and_recovers() {
        let mut server = RedisServer::start_durable();
        let store = open(&server.url(), 86_400, Caps::default(), "o").await;
        store.check_writable().await.unwrap();
        server.kill();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let err = store.check_writable().await.unwrap_err();
            assert!(started.elapsed() < Duration::from_millis(950), "{err}");
            assert!(
                err.to_string().contains("redis at redis://127.0.0.1:"),
                "{err}"
            );
        }
        server.restart();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.check_writable().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "no reconnect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The dedupe window stays exact across bucket boundaries and shard
    /// splits: over three seconds with a one-second window, every 100 ms a
    /// round sends 200 new uuids (counted), re-sends those of 5 rounds ago
    /// (0.5 s old: duplicates) and those of 15 rounds ago (1.5 s old:
    /// counted again). Afterwards every dedupe hash is still in the compact
    /// listpack encoding and expires.
    #[tokio::test]
    async fn window_is_exact_across_buckets_and_splits() {
        let (_server, store) = fresh(1, Caps::default(), Clock::System).await;
        let round_uuids = |round: usize| {
            (0..200)
                .map(move |i| format!("{round}-{i}"))
                .collect::<Vec<_>>()
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        for round in 0..30 {
            ticker.tick().await;
            let mut events = Vec::new();
            let mut expected = Vec::new();
            let mut add = |uuids: Vec<String>, outcome: TrackOutcome| {
                for uuid in uuids {
                    events.push(Event {
                        namespace: "w".into(),
                        experiment: "e".into(),
                        variant: "v".into(),
                        event: PARTICIPATE.into(),
                        uuid,
                    });
                    expected.push(outcome.clone());
                }
            };
            add(round_uuids(round), TrackOutcome::Counted);
            if round >= 5 {
                add(round_uuids(round - 5), TrackOutcome::Duplicate);
            }
            if round >= 15 {
                add(round_uuids(round - 15), TrackOutcome::Counted);
            }
            assert_eq!(
                store.track(events).await.unwrap(),
                expected,
                "round {round}"
            );
        }
        let mut conn = store.conn();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("lmd:*:s:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.len() > 50, "splits made many shards: {}", keys.len());
        for key in keys {
            let encoding: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(encoding, "listpack", "{key}");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(ttl > 0 && ttl <= 3_000, "{key} expires in {ttl} ms");
        }
    }

    /// The dedupe memory costs at most half of Lamed's one key per event:
    /// INFO used_memory grows by less than half as much for the same
    /// 20,000 unique events (Lamed: a 40-hex key with a TTL each).
    #[tokio::test]
    async fn dedupe_memory_is_under_half_of_lamed() {
        let (server, store) = fresh(86_400, Caps::default(), Clock::System).await;
        let used = || -> i64 {
            let info = server.cmd("INFO memory");
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("used_memory in INFO")
        };
        let n = 20_000;
        let before = used();
        let mut conn = store.conn();
        for chunk in (0..n).collect::<Vec<u32>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for i in chunk {
                let key: String = blake3::hash(&i.to_le_bytes()).as_bytes()[..20]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                pipe.cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("EX")
                    .arg(86_400)
                    .ignore();
            }
            pipe.exec_async(&mut conn).await.unwrap();
        }
        let lamed = used() - before;
        let before = used();
        for chunk in (0..n).collect::<Vec<u32>>().chunks(500) {
            let events = chunk
                .iter()
                .map(|i| Event {
                    namespace: "m".into(),
                    experiment: "e".into(),
                    variant: format!("v{}", i % 3),
                    event: PARTICIPATE.into(),
                    uuid: format!("{i:08x}-uuid"),
                })
                .collect();
            store.track(events).await.unwrap();
        }
        let ours = used() - before;
        let ratio = ours as f64 / lamed as f64;
        eprintln!(
            "bytes per event: lamed {:.1}, ours {:.1}, ratio {ratio:.3}",
            lamed as f64 / n as f64,
            ours as f64 / n as f64
        );
        assert!(ratio <= 0.5, "ratio {ratio}");
    }
}
