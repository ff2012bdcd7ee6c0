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
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let moto = Moto::shared();
    let table = unique_table("foreign");
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create a foreign table");
    let err = DynamoDbStore::open(options(&moto, &table, 60, Caps::DEFAULT, Clock::System))
        .await
        .expect_err("a foreign table");
    let message = err.chain();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{message}");
    assert!(message.contains("id (N, HASH)"), "{message}");
    assert!(message.contains("not lamed's"), "{message}");
}
