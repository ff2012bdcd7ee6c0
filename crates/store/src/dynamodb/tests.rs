//! The conformance suite on moto_server, and the refusals at open.

use std::sync::Arc;

use super::testing::{unique_table, Moto};
use super::{DynamoDbOptions, DynamoDbStore};
use crate::{conformance, StoreError};
use lamed_core::clock::Clock;
use lamed_core::model::Caps;

/// Options for `table` on `moto`.
pub(super) fn options(
    moto: &Moto,
    table: &str,
    window: u64,
    caps: Caps,
    clock: Clock,
) -> DynamoDbOptions {
    DynamoDbOptions {
        clock,
        sdk: Some(moto.sdk()),
        deadline: super::testing::DEADLINE,
        ..DynamoDbOptions::new(table, window, caps)
    }
}

/// A store on a table of its own, on the shared moto.
async fn fresh(window: u64, caps: Caps, clock: Clock) -> (Arc<Moto>, DynamoDbStore) {
    let moto = Moto::shared();
    let table = unique_table("conformance");
    let store = DynamoDbStore::open(options(&moto, &table, window, caps, clock))
        .await
        .expect("open dynamodb store");
    (moto, store)
}

conformance::conformance_tests!(fresh);

/// A second instance with another dedupe window refuses the table, naming
/// both windows and the fix; the same window opens it.
#[tokio::test]
async fn another_window_is_refused() {
    let moto = Moto::shared();
    let table = unique_table("window");
    let open =
        |window| DynamoDbStore::open(options(&moto, &table, window, Caps::DEFAULT, Clock::System));
    open(60).await.expect("first instance");
    open(60).await.expect("same window");
    let err = open(0).await.expect_err("another window");
    let message = err.chain();
    assert!(err.is_transient(), "{message}");
    for part in ["uuid_expiry_seconds = 60", "0 (uuids kept forever)", "fix:"] {
        assert!(message.contains(part), "{message}");
    }
}

/// A table whose key schema is not lamed's is refused with a clear
/// message, and left as it was.
#[tokio::test]
async fn a_foreign_table_is_refused() {
    let moto = Moto::shared();
    let table = unique_table("foreign");
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk());
    crate::dynamodb::testing::create_foreign_table(&client, &table).await;
    let err = DynamoDbStore::open(options(&moto, &table, 60, Caps::DEFAULT, Clock::System))
        .await
        .expect_err("a foreign table");
    let message = err.chain();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{message}");
    assert!(message.contains("id (N, HASH)"), "{message}");
    assert!(message.contains("not lamed's"), "{message}");
}

/// What the store sends: per request, its operation and, for a
/// transaction, its actions' kinds.
#[derive(Debug, Default)]
struct Sent(std::sync::Mutex<Vec<String>>);

#[derive(Debug)]
struct Recorder(Arc<Sent>);

impl aws_sdk_dynamodb::config::Intercept for Recorder {
    fn name(&self) -> &'static str {
        "units-recorder"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
        let input = context.input();
        let line = match input.downcast_ref::<TransactWriteItemsInput>() {
            Some(tx) => {
                let kinds: Vec<&str> = tx
                    .transact_items()
                    .iter()
                    .map(|item| {
                        if item.condition_check.is_some() {
                            "check"
                        } else if item.put.is_some() {
                            "put"
                        } else if item.update.is_some() {
                            "update"
                        } else {
                            "delete"
                        }
                    })
                    .collect();
                format!("transact {}", kinds.join(" "))
            }
            // "Input(TypeErasedBox[!Clone]:GetItemInput { .. })": GetItem.
            None => {
                let debug = format!("{input:?}");
                let name = debug.split(':').nth(1).unwrap_or("?");
                let name = name.split([' ', '{']).next().unwrap_or("?");
                name.trim_end_matches("Input").to_owned()
            }
        };
        self.0 .0.lock().unwrap().push(line);
        Ok(())
    }
}

/// The write and read units the README's table gives per request, counted
/// from what the store actually sends (a transaction's item costs 2 write
/// units up to 1 KB; a consistent read 1 read unit up to 4 KB): a new
/// event of a running experiment that knows its names is one transaction
/// of 3 items (6 units) and no read; a duplicate is the same transaction,
/// cancelled, and nothing else; a batch of 10 such events is 10 of them;
/// the event creating an experiment is that transaction, cancelled, then
/// 3 reads (gate, namespaces, experiments) and a transaction of 9 items.
/// With segments (3 values): an event whose values the experiment holds
/// is one transaction of 6 items (12 units: 3 segment counters more); one
/// bringing new values is that transaction, cancelled, a read of the gate
/// and a transaction of 4 gate updates, marker, counter and 3 segment
/// counters; once the store has read a dimension's set full, a value past
/// the cap is one transaction of 6 items again (counted as `other`).
#[tokio::test]
async fn units_per_event_are_what_the_readme_says() {
    use lamed_core::model::{Event, TrackOutcome, PARTICIPATE};
    use lamed_core::segments::{Dimension, Segment};
    let moto = Moto::shared();
    let sent = Arc::new(Sent::default());
    let mut opened = options(
        &moto,
        &unique_table("units"),
        60,
        Caps::DEFAULT,
        Clock::System,
    );
    opened.interceptors = vec![aws_sdk_dynamodb::config::SharedInterceptor::new(Recorder(
        Arc::clone(&sent),
    ))];
    let store = DynamoDbStore::open(opened).await.expect("open");
    let event = |uuid: &str| Event {
        segment: Default::default(),
        namespace: "u".into(),
        experiment: "e".into(),
        variant: "a".into(),
        event: PARTICIPATE.into(),
        uuid: uuid.into(),
        value: None,
    };
    let take = || std::mem::take(&mut *sent.0.lock().unwrap());
    use crate::Store;
    store.track(vec![event("first")]).await.expect("track");
    let creation = take();
    let creation: Vec<&str> = creation
        .iter()
        .map(String::as_str)
        .skip_while(|r| *r != "transact check put update")
        .collect();
    assert_eq!(
        creation,
        [
            "transact check put update",
            "GetItem",
            "GetItem",
            "GetItem",
            "transact update update update update update update put put update"
        ]
    );
    let segmented = |uuid: &str| Event {
        segment: Segment::NONE
            .with(Dimension::Device, "mobile")
            .with(Dimension::Browser, "Chrome")
            .with(Dimension::Country, "DE"),
        ..event(uuid)
    };
    store.track(vec![segmented("s1")]).await.expect("track");
    assert_eq!(
        take(),
        [
            "transact check put update update update update",
            "GetItem",
            "transact update update update update put update update update update"
        ]
    );
    store.track(vec![segmented("s2")]).await.expect("track");
    assert_eq!(take(), ["transact check put update update update update"]);
    let device = |uuid: &str, device: &str| Event {
        segment: Segment::NONE
            .with(Dimension::Device, device)
            .with(Dimension::Browser, "Chrome")
            .with(Dimension::Country, "DE"),
        ..event(uuid)
    };
    // "mobile" and 18 more fill the named places.
    let filling = (1..19).map(|i| device(&format!("f{i}"), &format!("d{i}")));
    store.track(filling.collect()).await.expect("track");
    take();
    let past_cap = [
        "transact check put update update update update",
        "GetItem",
        "transact check put update update update update",
    ];
    for (uuid, requests) in [("p1", &past_cap[..]), ("p2", &past_cap[2..])] {
        let outcomes = store.track(vec![device(uuid, uuid)]).await.expect("track");
        assert_eq!(outcomes, [TrackOutcome::Counted]);
        assert_eq!(take(), requests, "{uuid}");
    }
    let steps: [(Vec<Event>, TrackOutcome, usize); 3] = [
        (vec![event("new")], TrackOutcome::Counted, 1),
        (vec![event("new")], TrackOutcome::Duplicate, 1),
        (
            (0..10).map(|i| event(&format!("b{i}"))).collect(),
            TrackOutcome::Counted,
            10,
        ),
    ];
    for (events, outcome, transactions) in steps {
        let outcomes = store.track(events).await.expect("track");
        assert!(outcomes.iter().all(|o| *o == outcome), "{outcomes:?}");
        let requests = take();
        assert_eq!(requests.len(), transactions, "{requests:?}");
        for request in &requests {
            assert_eq!(request, "transact check put update", "{requests:?}");
        }
    }
}

/// The IAM action that authorises one request the [`Recorder`] saw: a
/// transaction's items are authorised one by one, as their own actions.
fn iam_actions(request: &str) -> Vec<String> {
    match request.strip_prefix("transact ") {
        Some(kinds) => kinds
            .split(' ')
            .map(|kind| {
                let action = match kind {
                    "check" => "ConditionCheckItem",
                    "put" => "PutItem",
                    "update" => "UpdateItem",
                    _ => "DeleteItem",
                };
                format!("dynamodb:{action}")
            })
            .collect(),
        None => vec![format!("dynamodb:{request}")],
    }
}

/// The policy `lamed deploy` gives its functions is what the store needs
/// on a table that exists, no more and no less: the conformance checks
/// that between them call every method of the store, each on a store
/// reopened over a table created before (as deploy creates it), send
/// exactly the actions of [`super::IAM_ACTIONS`].
#[tokio::test]
async fn iam_actions_are_what_the_store_sends() {
    use crate::DynStore;
    let moto = Moto::shared();
    let sent = Arc::new(Sent::default());
    let reopened = || async {
        let table = unique_table("iam");
        let options = || options(&moto, &table, 86_400, Caps::DEFAULT, Clock::System);
        DynamoDbStore::open(options()).await.expect("create");
        let mut recorded = options();
        recorded.interceptors = vec![aws_sdk_dynamodb::config::SharedInterceptor::new(Recorder(
            Arc::clone(&sent),
        ))];
        let store: DynStore = Arc::new(DynamoDbStore::open(recorded).await.expect("reopen"));
        store
    };
    let clock = Clock::System;
    conformance::counts_each_identity_once(reopened().await, clock.clone()).await;
    conformance::daily_counters_follow_totals(reopened().await, clock.clone()).await;
    conformance::delete_removes_one_experiment(reopened().await, clock.clone()).await;
    conformance::memberships_keep_the_first_value(reopened().await, clock.clone()).await;
    conformance::joins_are_whole_or_nothing(reopened().await, clock.clone()).await;
    conformance::values_add_once(reopened().await, clock.clone()).await;
    conformance::weight_history_keeps_the_first(reopened().await, clock.clone()).await;
    conformance::weights_of_reads_one_period(reopened().await, clock.clone()).await;
    conformance::health_and_close(reopened().await, clock.clone()).await;
    conformance::import_is_idempotent(reopened().await, clock.clone()).await;
    conformance::registry_lifecycle(reopened().await, clock.clone()).await;
    conformance::experiment_counters_are_the_namespace_filtered(reopened().await, clock.clone())
        .await;
    conformance::alert_states_are_claimed_once(reopened().await, clock.clone()).await;
    conformance::alert_states_list_by_prefix(reopened().await, clock).await;
    let used: std::collections::BTreeSet<String> = sent
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|request| iam_actions(request))
        .collect();
    let granted = super::IAM_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(used, granted);
}

/// A transaction cancelled by a failed condition leaves every item it
/// named as it was, through the SDK against the patched moto
/// (`scripts/moto_server.py` snapshots only those items): the item it
/// updated keeps its value, the item it would have created stays absent,
/// in a bucket that existed (same `pk`) and in one that did not, and the
/// item of the failed check is unchanged; the same transaction with a
/// condition that holds then writes all of them.
#[tokio::test]
async fn a_cancelled_transaction_leaves_its_items_as_they_were() {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
    use std::collections::HashMap;
    let moto = Moto::shared();
    let table = unique_table("rollback");
    // The store's table: pk and sk, a range-key table.
    DynamoDbStore::open(options(&moto, &table, 60, Caps::DEFAULT, Clock::System))
        .await
        .expect("open dynamodb store");
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk());
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let key =
        |pk: &str, sk: &str| HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]);
    let get = |pk: &'static str, sk: &'static str| {
        let client = client.clone();
        let table = table.clone();
        async move {
            client
                .get_item()
                .table_name(table)
                .set_key(Some(key(pk, sk)))
                .consistent_read(true)
                .send()
                .await
                .expect("get item")
                .item
        }
    };
    for (pk, sk, n) in [("t", "counted", "5"), ("t", "guard", "1")] {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(key(pk, sk)))
            .item("n", AttributeValue::N(n.to_owned()))
            .send()
            .await
            .expect("put item");
    }
    let before = [
        get("t", "counted").await,
        get("t", "guard").await,
        get("t", "new").await,
        get("elsewhere", "new").await,
    ];
    assert!(
        before[0].is_some() && before[1].is_some() && before[2].is_none() && before[3].is_none()
    );

    let transaction = |guard: &str| {
        let update = |pk: &str, sk: &str| {
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&table)
                        .set_key(Some(key(pk, sk)))
                        .update_expression("ADD n :one")
                        .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let put_new = TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&table)
                    .set_item(Some(key("t", "new")))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build();
        let check = TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name(&table)
                    .set_key(Some(key("t", "guard")))
                    .condition_expression("n = :n")
                    .expression_attribute_values(":n", AttributeValue::N(guard.to_owned()))
                    .build()
                    .unwrap(),
            )
            .build();
        // The check last: the other actions have run when it fails.
        client
            .transact_write_items()
            .transact_items(update("t", "counted"))
            .transact_items(put_new)
            .transact_items(update("elsewhere", "new"))
            .transact_items(check)
            .send()
    };
    let err = transaction("2").await.expect_err("a failed condition");
    let err = err.into_service_error();
    assert!(err.is_transaction_canceled_exception(), "{err:?}");
    let after = [
        get("t", "counted").await,
        get("t", "guard").await,
        get("t", "new").await,
        get("elsewhere", "new").await,
    ];
    assert_eq!(after, before);

    transaction("1").await.expect("the condition holds");
    let n = |item: Option<HashMap<String, AttributeValue>>| item.and_then(|i| i.get("n").cloned());
    assert_eq!(
        n(get("t", "counted").await),
        Some(AttributeValue::N("6".to_owned()))
    );
    assert!(get("t", "new").await.is_some());
    assert_eq!(
        n(get("elsewhere", "new").await),
        Some(AttributeValue::N("1".to_owned()))
    );
}

/// `scripts/moto_server.py`'s transaction patch gives moto's own answers:
/// `scripts/moto_server_check.py` runs the same random transactions on
/// moto's `TransactWriteItems` and on the patched one and compares every
/// answer and the tables after each.
#[test]
fn the_moto_patch_keeps_motos_answers() {
    let output = std::process::Command::new(super::testing::venv_python())
        .arg(super::testing::script("moto_server_check.py"))
        .output()
        .expect("run scripts/moto_server_check.py");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
