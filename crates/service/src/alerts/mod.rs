//! Alerts: which experiments need attention ([`evaluate`]), and their
//! signed webhooks ([`signing`], [`format`], [`delivery`]), with every
//! state in the store so that a restart resumes pending deliveries and
//! several instances on one store send each alert once.
//!
//! The store keeps three kinds of documents (see
//! [`Store::alert_state`](lamed_store::Store::alert_state)):
//! - `watch/<experiment>`: what the last check saw and the open alerts
//!   ([`evaluate::Watch`]); a check writes it under the version it read,
//!   so of two instances checking at once one wins and raises;
//! - `delivery/<webhook-id>`: one message to one endpoint
//!   ([`delivery::Delivery`]), created once (the id is derived from the
//!   experiment, the alert, the watch's version and the endpoint) and
//!   leased by the instance sending an attempt;
//! - `disabled/<url>`: an endpoint that answered 410.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use lamed_core::clock::Clock;
use lamed_core::model::PARTICIPATE;
use lamed_core::registry::ExperimentRecord;
use lamed_store::{DynStore, Precondition, PutOutcome, Store, StoreError};

use crate::report::{self, ReportRequest};

pub mod delivery;
pub mod evaluate;
pub mod format;
pub mod signing;

use delivery::{Backoff, Delivery, Outcome, State};
use evaluate::{Observation, OpenAlert, Rules, Watch};
use format::{Format, Origin};
use signing::Secret;

/// One webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Where to POST.
    pub url: String,
    /// The signing secret (`standard` format); `None` sends unsigned.
    pub secret: Option<Secret>,
    /// The event types it takes (`experiment.srm`...); all when empty.
    pub events: Vec<String>,
    /// Its body format.
    pub format: Format,
}

impl Endpoint {
    fn takes(&self, event: &str) -> bool {
        self.events.is_empty()
            || self
                .events
                .iter()
                .any(|e| e == event || e == "*" || e == "experiment.*")
    }
}

/// What the checks and deliveries need, from the settings.
#[derive(Debug, Clone)]
pub struct AlertOptions {
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// The evaluation's rules.
    pub rules: Rules,
    /// The retry schedule.
    pub backoff: Backoff,
    /// The server's public base URL, for the dashboard link.
    pub public_url: String,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// What a check or a delivery pass did, for the log and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Experiments checked.
    pub checked: u64,
    /// Reports made for them (those with new events).
    pub reports: u64,
    /// Alerts raised (each to every endpoint that takes it).
    pub raised: u64,
    /// Attempts answered 2xx.
    pub delivered: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Deliveries given up.
    pub failed: u64,
    /// Endpoints disabled by a 410 in this pass, by URL.
    pub disabled: Vec<String>,
    /// Endpoints disabled now, in all (a delivery pass counts them).
    pub disabled_endpoints: u64,
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt_because(format!("alert state {key}"), e))
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_string(value).expect("alert state serializes")
}

/// The key of an experiment's watch.
fn watch_key(namespace: &str, experiment: &str) -> String {
    format!("watch/{}", to_json(&[namespace, experiment]))
}

/// The `webhook-id` of one alert to one endpoint: stable across
/// instances and retries, distinct for a recurrence.
fn message_id(namespace: &str, experiment: &str, key: &str, version: u64, url: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [namespace, experiment, key, &version.to_string(), url] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hex = hasher.finalize().to_hex();
    format!("msg_{}", &hex[..32])
}

/// A number in [0, 1) from an id and an attempt: the jitter of its wait,
/// different for each message so that retries spread out.
fn jitter(id: &str, attempt: usize) -> f64 {
    let hash = blake3::hash(format!("{id}/{attempt}").as_bytes());
    let bytes: [u8; 8] = hash.as_bytes()[..8].try_into().unwrap_or_default();
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The dashboard's address showing one namespace (the view its fragment
/// names: `#namespace=...`).
fn dashboard(public_url: &str, namespace: &str) -> String {
    let encoded: String = namespace
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "{}/dashboard#namespace={encoded}",
        public_url.trim_end_matches('/')
    )
}

/// An endpoint's URL for logs: scheme and host only, since the path of
/// some (Slack's) is their secret.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "<invalid url>".to_owned(),
    }
}

/// Most attempts one delivery pass sends at once; the rest wait for the
/// next pass (a second later at most).
const MAX_SENT_AT_ONCE: usize = 32;

/// Delivered, failed and disabled deliveries are kept this long for
/// `GET /api/webhooks/deliveries`, then removed.
const KEEP_FINISHED_MS: i64 = 7 * 86_400_000;

/// One check of every experiment at `now_ms`: evaluates each, keeps what
/// it saw, and creates the deliveries of what it raised (sent by
/// [`deliver_due`]). A report is made only for an experiment with new
/// events since the last check.
///
/// # Errors
///
/// A store failure (the next check tries again).
pub async fn check(
    store: &dyn Store,
    options: &AlertOptions,
    now_ms: i64,
) -> Result<Summary, StoreError> {
    let mut summary = Summary::default();
    let mut watched: std::collections::BTreeMap<String, (u64, Watch)> = store
        .alert_states("watch/")
        .await?
        .into_iter()
        .map(|(key, doc)| Ok((key.clone(), (doc.version, parse(&key, &doc.value)?))))
        .collect::<Result<_, StoreError>>()?;
    for namespace in store.namespaces().await? {
        for record in store.records(&namespace).await? {
            let key = watch_key(&namespace, &record.name);
            let previous = watched.remove(&key);
            check_one(
                store,
                options,
                now_ms,
                &namespace,
                Some(&record),
                &key,
                previous,
                &mut summary,
            )
            .await?;
        }
    }
    // Watched experiments without a record now: deleted.
    for (key, previous) in watched {
        let Some(names) = key
            .strip_prefix("watch/")
            .and_then(|n| serde_json::from_str::<[String; 2]>(n).ok())
        else {
            continue;
        };
        if previous.1.status.as_deref() == Some("deleted") {
            continue;
        }
        check_one(
            store,
            options,
            now_ms,
            &names[0],
            None,
            &key,
            Some(previous),
            &mut summary,
        )
        .await?;
    }
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn check_one(
    store: &dyn Store,
    options: &AlertOptions,
    now_ms: i64,
    namespace: &str,
    record: Option<&ExperimentRecord>,
    key: &str,
    previous: Option<(u64, Watch)>,
    summary: &mut Summary,
) -> Result<(), StoreError> {
    let (version, watch) = previous.unwrap_or_default();
    let experiment = match (record, key.strip_prefix("watch/")) {
        (Some(record), _) => record.name.clone(),
        (None, Some(names)) => serde_json::from_str::<[String; 2]>(names)
            .map(|[_, e]| e)
            .unwrap_or_default(),
        (None, None) => return Ok(()),
    };
    let counters = match record {
        Some(_) => store.experiment_counters(namespace, &experiment).await?,
        None => Vec::new(),
    };
    let events: u64 = counters.iter().map(|c| c.count).sum();
    let participants: u64 = counters
        .iter()
        .filter(|c| c.event == PARTICIPATE)
        .map(|c| c.count)
        .sum();
    summary.checked += 1;
    let report = if record.is_some() && (events != watch.events || version == 0) && events > 0 {
        summary.reports += 1;
        match report::load(store, namespace, &experiment, &ReportRequest::default()).await {
            Ok(report) => Some(report),
            Err(report::LoadError::Store(err)) => return Err(err),
            Err(report::LoadError::Report(_)) => None,
        }
    } else {
        None
    };
    let seen = Observation {
        status: record.map(|r| r.status),
        winner: record
            .and_then(|r| r.decision.as_ref())
            .and_then(|d| d.winner.clone()),
        participants,
        events,
        report: report.as_ref(),
    };
    let step = evaluate::evaluate(&watch, &seen, now_ms, &options.rules);
    if step.watch == watch {
        return Ok(());
    }
    // The deliveries first, each created once: a crash before the watch
    // is written makes the next check raise the same ids again, which
    // the store refuses as existing.
    let origin = Origin {
        namespace: namespace.to_owned(),
        experiment: experiment.clone(),
        dashboard: dashboard(&options.public_url, namespace),
    };
    for (alert, raised_ms) in &step.raised {
        summary.raised += 1;
        for endpoint in options.endpoints.iter().filter(|e| e.takes(&alert.event)) {
            if store
                .alert_state(&disabled_key(&endpoint.url))
                .await?
                .is_some()
            {
                continue;
            }
            let id = message_id(namespace, &experiment, &alert.key, version, &endpoint.url);
            let delivery = Delivery {
                id: id.clone(),
                url: endpoint.url.clone(),
                format: endpoint.format,
                event: alert.event.clone(),
                namespace: namespace.to_owned(),
                experiment: experiment.clone(),
                body: format::body(endpoint.format, alert, &origin, *raised_ms),
                created_ms: now_ms,
                state: State::Pending,
                next_ms: now_ms,
                lease_until_ms: 0,
                attempts: Vec::new(),
            };
            // A conflict: another instance (or this one before a crash)
            // created it from the same watch version: it is sent once.
            let _created = store
                .put_alert_state(
                    &format!("delivery/{id}"),
                    Some(&to_json(&delivery)),
                    Precondition::Absent,
                )
                .await?;
        }
    }
    let raised: Vec<(String, OpenAlert)> = step
        .raised
        .iter()
        .filter_map(|(alert, _)| {
            Some((alert.key.clone(), step.watch.open.get(&alert.key)?.clone()))
        })
        .collect();
    keep_watch(store, key, version, &step.watch, &raised).await
}

/// Writes a check's watch over the version it read. When another
/// instance wrote meanwhile, its watch stands, with the alerts raised here
/// added to its open ones: their deliveries exist, so a later check must
/// not raise them again (it clears them if they do not hold).
async fn keep_watch(
    store: &dyn Store,
    key: &str,
    version: u64,
    watch: &Watch,
    raised: &[(String, OpenAlert)],
) -> Result<(), StoreError> {
    let mut precondition = if version == 0 {
        Precondition::Absent
    } else {
        Precondition::Version(version)
    };
    let mut next = watch.clone();
    // Each round loses only to another write: a few rounds suffice.
    for _ in 0..5 {
        if let PutOutcome::Written { .. } = store
            .put_alert_state(key, Some(&to_json(&next)), precondition)
            .await?
        {
            return Ok(());
        }
        let Some(doc) = store.alert_state(key).await? else {
            precondition = Precondition::Absent;
            continue;
        };
        let mut theirs: Watch = parse(key, &doc.value)?;
        if raised.iter().all(|(k, _)| theirs.open.contains_key(k)) {
            return Ok(());
        }
        for (k, open) in raised {
            theirs.open.entry(k.clone()).or_insert_with(|| open.clone());
        }
        next = theirs;
        precondition = Precondition::Version(doc.version);
    }
    Ok(())
}

fn disabled_key(url: &str) -> String {
    format!("disabled/{url}")
}

/// The open alerts of a namespace's experiments, by experiment and key
/// (`GET /api/alerts`, the dashboard's badges); experiments without one
/// are left out.
///
/// # Errors
///
/// A store failure.
pub async fn open_alerts(
    store: &dyn Store,
    namespace: &str,
) -> Result<
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, OpenAlert>>,
    StoreError,
> {
    // `watch/["<namespace>",` starts exactly this namespace's keys.
    let prefix = format!("watch/[{},", to_json(&namespace));
    let mut open = std::collections::BTreeMap::new();
    for (key, doc) in store.alert_states(&prefix).await? {
        let watch: Watch = parse(&key, &doc.value)?;
        let Ok([_, experiment]) = serde_json::from_str::<[String; 2]>(&key["watch/".len()..])
        else {
            continue;
        };
        if !watch.open.is_empty() {
            open.insert(experiment, watch.open);
        }
    }
    Ok(open)
}

/// Every delivery, newest first, as `GET /api/webhooks/deliveries` lists
/// them.
///
/// # Errors
///
/// A store failure.
pub async fn deliveries(store: &dyn Store) -> Result<Vec<Delivery>, StoreError> {
    let mut all: Vec<Delivery> = store
        .alert_states("delivery/")
        .await?
        .into_iter()
        .map(|(key, doc)| parse(&key, &doc.value))
        .collect::<Result<_, _>>()?;
    all.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
    Ok(all)
}

/// Sends every pending delivery that is due at `now_ms`, one attempt
/// each: leased first (so one instance sends it), then sent, then its
/// result kept.
///
/// # Errors
///
/// A store failure (the next pass tries again; a lease that was taken
/// lapses after the attempt's timeout).
pub async fn deliver_due(
    store: &dyn Store,
    options: &AlertOptions,
    now_ms: i64,
) -> Result<Summary, StoreError> {
    let mut summary = Summary::default();
    let mut leased = Vec::new();
    for (key, doc) in store.alert_states("delivery/").await? {
        let mut delivery: Delivery = parse(&key, &doc.value)?;
        if delivery.state != State::Pending && delivery.created_ms < now_ms - KEEP_FINISHED_MS {
            // A conflict: another instance removed or changed it first.
            let _removed = store
                .put_alert_state(&key, None, Precondition::Version(doc.version))
                .await?;
            continue;
        }
        if delivery.state != State::Pending
            || delivery.next_ms > now_ms
            || delivery.lease_until_ms > now_ms
        {
            continue;
        }
        let disabled = store.alert_state(&disabled_key(&delivery.url)).await?;
        if disabled.is_some() {
            delivery.state = State::Disabled;
            // A conflict: another instance changed it meanwhile; the next
            // pass sees it again.
            let _marked = store
                .put_alert_state(
                    &key,
                    Some(&to_json(&delivery)),
                    Precondition::Version(doc.version),
                )
                .await?;
            continue;
        }
        // The attempt's timeout and time to record it: an instance killed
        // mid-attempt holds the delivery this long.
        delivery.lease_until_ms = now_ms + options.timeout.as_millis() as i64 + 5_000;
        match store
            .put_alert_state(
                &key,
                Some(&to_json(&delivery)),
                Precondition::Version(doc.version),
            )
            .await?
        {
            PutOutcome::Written { version } => leased.push((key, version, delivery)),
            // Another instance leased it first.
            PutOutcome::Conflict { .. } => continue,
        }
        if leased.len() == MAX_SENT_AT_ONCE {
            break;
        }
    }
    // Sent at once: a slow endpoint (up to the timeout) delays no other.
    let outcomes =
        futures_util::future::join_all(leased.iter().map(|(_, _, d)| send(d, options))).await;
    for ((key, version, mut delivery), outcome) in leased.into_iter().zip(outcomes) {
        let attempt = delivery.attempts.len();
        delivery.record(
            now_ms,
            outcome,
            &options.backoff,
            jitter(&delivery.id, attempt),
        );
        match delivery.state {
            State::Delivered => summary.delivered += 1,
            State::Pending => summary.retried += 1,
            State::Failed => summary.failed += 1,
            State::Disabled => {
                let _disabled = store
                    .put_alert_state(
                        &disabled_key(&delivery.url),
                        Some(&to_json(&serde_json::json!({ "since_ms": now_ms }))),
                        Precondition::Any,
                    )
                    .await?;
                summary.disabled.push(delivery.url.clone());
            }
        }
        // Held under the lease: a conflict means the attempt outlived its
        // lease and another instance took it over, whose result stands.
        let _recorded = store
            .put_alert_state(
                &key,
                Some(&to_json(&delivery)),
                Precondition::Version(version),
            )
            .await?;
    }
    summary.disabled_endpoints = store.alert_states("disabled/").await?.len() as u64;
    Ok(summary)
}

/// One attempt: signed now (`webhook-timestamp` is the time of sending,
/// which receivers check against their own clock), the same id always.
async fn send(delivery: &Delivery, options: &AlertOptions) -> Outcome {
    let endpoint = options.endpoints.iter().find(|e| e.url == delivery.url);
    let mut headers: Vec<(&str, String)> = Vec::new();
    if let Some(secret) = endpoint.and_then(|e| e.secret.as_ref()) {
        let timestamp = lamed_core::clock::Clock::System.now_ms() / 1000;
        headers.extend(signing::headers(
            secret,
            &delivery.id,
            timestamp,
            delivery.body.as_bytes(),
        ));
    } else {
        headers.push(("webhook-id", delivery.id.clone()));
    }
    delivery::post(&delivery.url, &headers, &delivery.body, options.timeout).await
}

/// Sends one signed test event to every endpoint now, outside the store
/// (`lamed webhooks test`); answers each endpoint's outcome.
pub async fn send_test(options: &AlertOptions, now_ms: i64) -> Vec<(String, Outcome)> {
    let alert = evaluate::Alert {
        key: "test".into(),
        event: "webhook.test".into(),
        summary: "a test event from lamed webhooks test".into(),
        figures: serde_json::json!({}),
    };
    let origin = Origin {
        namespace: String::new(),
        experiment: String::new(),
        dashboard: format!("{}/dashboard", options.public_url.trim_end_matches('/')),
    };
    let mut outcomes = Vec::new();
    for endpoint in &options.endpoints {
        let id = message_id("", "", "test", now_ms as u64, &endpoint.url);
        let delivery = Delivery {
            id,
            url: endpoint.url.clone(),
            format: endpoint.format,
            event: alert.event.clone(),
            namespace: String::new(),
            experiment: String::new(),
            body: format::body(endpoint.format, &alert, &origin, now_ms),
            created_ms: now_ms,
            state: State::Pending,
            next_ms: now_ms,
            lease_until_ms: 0,
            attempts: Vec::new(),
        };
        outcomes.push((endpoint.url.clone(), send(&delivery, options).await));
    }
    outcomes
}

/// One check at `now_ms` followed by one delivery pass, so that what the
/// check raised is sent at once: what an AWS Lambda invocation on a
/// schedule runs (`lamed serve` runs both in [`run`]'s loop). The summary
/// holds both halves' figures.
///
/// # Errors
///
/// A store failure (the next pass tries again: every state is in the
/// store, so a pass cut short is resumed).
pub async fn check_and_deliver(
    store: &dyn Store,
    options: &AlertOptions,
    now_ms: i64,
) -> Result<Summary, StoreError> {
    let checked = check(store, options, now_ms).await?;
    let delivered = deliver_due(store, options, now_ms).await?;
    Ok(Summary {
        checked: checked.checked,
        reports: checked.reports,
        raised: checked.raised,
        ..delivered
    })
}

/// Checks every `check_every` and sends what is due as it falls due
/// (polling the store every second at most, so that a delivery another
/// instance created, or one left by a restart, is sent too), until the
/// task is dropped. `heard` is told each delivery pass's summary (the
/// server's metrics).
pub async fn run(
    store: DynStore,
    options: AlertOptions,
    check_every: Duration,
    clock: Clock,
    heard: impl Fn(&Summary) + Send + 'static,
) {
    let poll = Duration::from_millis(options.backoff.first_ms.clamp(50, 1000) as u64);
    let mut next_check = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_check {
            next_check += check_every;
            let started = std::time::Instant::now();
            match check(store.as_ref(), &options, clock.now_ms()).await {
                Ok(summary) => {
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    if summary.raised > 0 {
                        tracing::info!(raised = summary.raised, "alerts raised");
                    }
                    tracing::debug!(
                        checked = summary.checked,
                        reports = summary.reports,
                        elapsed_ms,
                        "alert check"
                    );
                }
                Err(err) => tracing::warn!(error = %err.chain(), "alert check failed"),
            }
        }
        match deliver_due(store.as_ref(), &options, clock.now_ms()).await {
            Ok(summary) => {
                for url in &summary.disabled {
                    let url = redacted(url);
                    tracing::warn!(%url, "webhook endpoint answered 410 gone: disabled");
                }
                if summary.failed > 0 {
                    tracing::warn!(failed = summary.failed, "webhook deliveries given up");
                }
                heard(&summary);
            }
            Err(err) => tracing::warn!(error = %err.chain(), "webhook delivery pass failed"),
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two instances check one experiment at once: this one raised
    /// `stalled` (and created its delivery), the other wrote its watch
    /// first without it. The stored watch is the other's, with `stalled`
    /// open, so the next check does not raise it a second time.
    #[tokio::test]
    async fn a_lost_watch_race_keeps_the_raised_alert_open() {
        use lamed_core::model::Caps;
        use lamed_store::reference::ReferenceStore;
        let store = ReferenceStore::new(60, Caps::default(), Clock::manual(0));
        let key = watch_key("ns", "e");
        let read = Watch {
            participants: 10,
            changed_ms: 0,
            status: Some("running".into()),
            ..Watch::default()
        };
        let written = store
            .put_alert_state(&key, Some(&to_json(&read)), Precondition::Absent)
            .await
            .unwrap();
        assert_eq!(written, PutOutcome::Written { version: 1 });
        let theirs = Watch {
            participants: 10,
            events: 12,
            ..read.clone()
        };
        let _ = store
            .put_alert_state(&key, Some(&to_json(&theirs)), Precondition::Version(1))
            .await
            .unwrap();
        let stalled = OpenAlert {
            raised_ms: 5,
            event: "experiment.stalled".into(),
            summary: "stalled".into(),
        };
        let mut mine = read.clone();
        mine.open.insert("stalled".into(), stalled.clone());
        keep_watch(&store, &key, 1, &mine, &[("stalled".into(), stalled)])
            .await
            .unwrap();
        let kept = store.alert_state(&key).await.unwrap().unwrap();
        let kept: Watch = parse(&key, &kept.value).unwrap();
        assert_eq!(kept.events, 12, "the other instance's watch stands");
        assert_eq!(kept.open.keys().collect::<Vec<_>>(), ["stalled"]);
    }

    #[test]
    fn logged_urls_keep_only_scheme_and_host() {
        assert_eq!(
            redacted("https://hooks.slack.com/services/T0/B0/SECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redacted("http://user:pw@10.0.0.1:8080/x?k=1"),
            "http://10.0.0.1:8080/…"
        );
        assert_eq!(redacted("nothing"), "<invalid url>");
    }

    #[test]
    fn the_dashboard_link_names_the_namespace_view() {
        assert_eq!(
            dashboard("https://ab.example.com/", "my shop/ü"),
            "https://ab.example.com/dashboard#namespace=my%20shop%2F%C3%BC"
        );
    }

    /// Ids differ by alert, recurrence (watch version) and endpoint, and
    /// are stable otherwise.
    #[test]
    fn message_ids_are_stable_and_distinct() {
        let id = message_id("ns", "e", "srm", 3, "http://a/");
        assert_eq!(id, message_id("ns", "e", "srm", 3, "http://a/"));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        for other in [
            message_id("ns", "e", "srm", 4, "http://a/"),
            message_id("ns", "e", "stalled", 3, "http://a/"),
            message_id("ns", "e", "srm", 3, "http://b/"),
            message_id("nse", "", "srm", 3, "http://a/"),
        ] {
            assert_ne!(id, other);
        }
    }
}
