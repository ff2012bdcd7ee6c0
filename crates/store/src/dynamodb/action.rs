//! One item action of a transaction, written plainly before it becomes
//! the SDK's builders: the transaction planner (`track.rs`) reads better
//! as a list of these than as nested builders.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use super::keys::Item;
use crate::StoreError;

/// What an action does to its item.
#[derive(Debug, Clone)]
enum Op {
    /// Writes the whole item (its key included).
    Put(Item),
    /// Applies an update expression.
    Update(String),
    /// Only checks the condition.
    Check,
    /// Removes the item.
    Delete,
}

/// One item of a `TransactWriteItems`.
#[derive(Debug, Clone)]
pub(super) struct Action {
    op: Op,
    key: Item,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: Item,
}

impl Action {
    fn new(op: Op, key: Item) -> Self {
        Action {
            op,
            key,
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// Writes `item` whole, at `key` (added to it).
    pub(super) fn put(key: Item, mut item: Item) -> Self {
        item.extend(key.clone());
        Action::new(Op::Put(item), key)
    }

    /// Updates the item at `key` with `expression`.
    pub(super) fn update(key: Item, expression: impl Into<String>) -> Self {
        Action::new(Op::Update(expression.into()), key)
    }

    /// Removes the item at `key`.
    pub(super) fn delete(key: Item) -> Self {
        Action::new(Op::Delete, key)
    }

    /// Checks a condition on the item at `key`.
    pub(super) fn check(key: Item, condition: impl Into<String>) -> Self {
        Action::new(Op::Check, key).when(condition)
    }

    /// Replaces an update's expression (built after its placeholders).
    pub(super) fn with_expression(mut self, expression: impl Into<String>) -> Self {
        if let Op::Update(current) = &mut self.op {
            *current = expression.into();
        }
        self
    }

    /// Only when `condition` holds (the transaction is cancelled otherwise).
    pub(super) fn when(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    /// `#placeholder` names the attribute `name`.
    pub(super) fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }

    /// `:placeholder` is `value`.
    pub(super) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// The SDK's form, on `table`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] when the SDK refuses it (a bug here).
    pub(super) fn into_sdk(self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        let built = match self.op {
            Op::Put(item) => Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(self.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build()),
            Op::Update(expression) => Update::builder()
                .table_name(table)
                .set_key(Some(self.key))
                .update_expression(expression)
                .set_condition_expression(self.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map(|update| TransactWriteItem::builder().update(update).build()),
            Op::Check => ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(self.key))
                .set_condition_expression(self.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map(|check| TransactWriteItem::builder().condition_check(check).build()),
            Op::Delete => Delete::builder()
                .table_name(table)
                .set_key(Some(self.key))
                .set_condition_expression(self.condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map(|delete| TransactWriteItem::builder().delete(delete).build()),
        };
        built.map_err(|e| {
            StoreError::corrupt_because("dynamodb: cannot build a transaction item", e)
        })
    }
}
