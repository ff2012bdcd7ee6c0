//! One dedupe window and layout version per table, as on Redis: an
//! instance with another `uuid_expiry_seconds` would decide windows
//! differently on the same markers, and one of another layout would
//! misread the items, so the first instance to open a table records both
//! (a conditional put) and every later one compares and refuses to start
//! on a difference.

use super::keys::{self, SHARDS};
use super::store::DynamoDbStore;
use super::{action::Action, client};
use crate::StoreError;

/// The version of the item layout in `keys.rs` (shards included).
const LAYOUT_VERSION: u32 = 1;

/// A window as users write it, for messages.
fn describe(window_seconds: u64) -> String {
    if window_seconds == 0 {
        "0 (uuids kept forever)".to_owned()
    } else {
        window_seconds.to_string()
    }
}

impl DynamoDbStore {
    /// Records this instance's window and layout unless another instance
    /// did first, then refuses a difference.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] naming both values and the fix.
    pub(super) async fn check_layout(&self) -> Result<(), StoreError> {
        let window = self.options().uuid_expiry_seconds;
        let stamp = Action::put(
            keys::layout(),
            [
                ("window".to_owned(), keys::n(window)),
                ("layout".to_owned(), keys::n(LAYOUT_VERSION)),
                ("shards".to_owned(), keys::n(SHARDS)),
            ]
            .into(),
        )
        .when("attribute_not_exists(#pk)")
        .name("#pk", keys::PK);
        // Cancelled means another instance stamped the table first.
        self.transact(
            vec![stamp],
            &super::store::token(&self.token_seed("layout"), 0),
        )
        .await?;
        let stored = self.get(keys::layout()).await?.ok_or_else(|| {
            StoreError::corrupt(format!(
                "dynamodb table {}: layout item vanished",
                self.table()
            ))
        })?;
        let number = |name| client::number(&stored, name);
        let (theirs, layout) = (number("window")?, number("layout")?);
        let at = format!("dynamodb table {}", self.table());
        if layout != Some(i128::from(LAYOUT_VERSION)) {
            return Err(StoreError::unavailable(format!(
                "{at}: holds item layout {layout:?}, this lamed writes layout {LAYOUT_VERSION}; \
                 fix: use a lamed of the table's version, or another table"
            )));
        }
        let theirs = theirs
            .and_then(|w| u64::try_from(w).ok())
            .ok_or_else(|| StoreError::corrupt(format!("{at}: the layout item holds no window")))?;
        if theirs != window {
            return Err(StoreError::unavailable(format!(
                "{at}: its dedupe window is uuid_expiry_seconds = {}, this instance has {}; \
                 instances sharing a table must use one window, or re-sent events would be \
                 counted again; fix: set uuid_expiry_seconds to {theirs}, or use another table",
                describe(theirs),
                describe(window)
            )));
        }
        Ok(())
    }
}
