//! Lamed: a self-hosted A/B-testing backend for the AlephBet client that
//! counts every unique event exactly once, durably, and fast.
//!
//! This crate is the `lamed` command: its command line and what each
//! command prints. Everything else lives in the workspace's layered crates
//! (README "Layout"), re-exported here under their module names so that
//! tests and tools can write `lamed::model` or `lamed::store`.
//!
//! # Layout
//!
//! - [`cli`]: the command line (one clap enum of subcommands).
//! - [`commands`]: one module per command; [`serve`]: `lamed serve`.
//! - `import`: `lamed import`, migration from Lamed's and Gimel's Redis;
//!   `import_sixpack`: from Sixpack's (feature `redis`).
//! - [`snippet`]: the start banner and the AlephBet snippet.

pub mod cli;
pub mod commands;
#[cfg(feature = "redis")]
pub mod import;
#[cfg(feature = "redis")]
pub mod import_sixpack;
pub mod serve;
pub mod snippet;

#[cfg(feature = "aws")]
pub use lamed_aws::deploy;
pub use lamed_aws::lambda;
pub use lamed_client as client;
pub use lamed_config::{config, settings};
pub use lamed_core::{bots, clock, model, registry, results, segments, sixpack, value};
pub use lamed_progress as progress;
pub use lamed_server as server;
pub use lamed_service::{adaptive, alerts, report};
pub use lamed_stats as stats;
pub use lamed_store as store;

pub use config::Config;
pub use model::{Event, TrackOutcome};
pub use store::{DynStore, Store, StoreError};
