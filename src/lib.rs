//! Lamed: a self-hosted A/B-testing backend for the AlephBet client that
//! counts every unique event exactly once, durably, and fast.
//!
//! # Layout
//!
//! - [`clock`]: the time stores read (system, or manual in tests).
//! - [`bots`]: bot filtering: the rules, npm isbot's crawler list, the
//!   visitor (user agent, client address) of a request.
//! - [`model`]: events, names and their limits, caps, outcomes.
//! - [`value`]: numeric goal values: exact micro-units, limits, limbs.
//! - [`registry`]: experiments as objects: records, lifecycle, registration
//!   mode.
//! - [`adaptive`]: adaptive experiments: weights per period from Thompson
//!   sampling, their stored history, and the report stratified by it.
//! - [`store`]: the [`Store`] trait, its embedded SQLite backend and its
//!   Redis / Redis Cluster backend (feature `redis`, on by default), the
//!   conformance suite and, in tests, an in-memory reference store.
//! - [`sixpack`]: Sixpack's API rules: names, deterministic assignment and
//!   traffic fraction, counting ids, JSON answers.
//! - `import`: `lamed import`, migration from Lamed's and Gimel's Redis;
//!   `import_sixpack`: from Sixpack's.
//! - [`report`]: one experiment's statistics, verdicts and daily series.
//! - [`results`]: Lamed's `/experiments` JSON shape, built from counters.
//! - [`server`]: the route table (every path once, with its access and its
//!   Lambda function), the axum router, handlers, errors, metrics, shutdown.
//! - [`settings`]: every setting, declared once (flag, variable, key, default).
//! - [`config`]: `config.json` plus flags and `LAMED_*` variables.
//! - [`cli`], [`serve`] and [`commands`]: the `lamed` command line.
//! - [`lambda`]: the AWS Lambda entry (the binary as an API Gateway function).
//! - `deploy` (feature `aws`, off by default): `lamed deploy`, `preflight`
//!   and `destroy`.
//! - [`snippet`]: the start banner and the AlephBet snippet.
//! - [`progress`]: progress of long commands (`import`, `deploy`): bars on
//!   a terminal, plain lines otherwise.
//! - [`stats`]: pure statistics for deciding which variant wins.
//! - [`client`]: a minimal HTTP client for the CLI, the load generator and
//!   the tests. The load generator itself is the `lamed-load` workspace
//!   member, outside what `lamed` users build.

pub mod adaptive;
pub mod bots;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
#[cfg(feature = "aws")]
pub mod deploy;
#[cfg(feature = "redis")]
pub mod import;
#[cfg(feature = "redis")]
pub mod import_sixpack;
pub mod lambda;
pub mod model;
pub mod progress;
pub mod registry;
pub mod report;
pub mod results;
pub mod serve;
pub mod server;
pub mod settings;
pub mod sixpack;
pub mod snippet;
pub mod stats;
pub mod store;
pub mod value;

pub use config::Config;
pub use model::{Event, TrackOutcome};
pub use store::{DynStore, Store, StoreError};
