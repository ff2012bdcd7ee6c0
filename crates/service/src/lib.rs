//! Lamed's services: what a request or a command does, over a
//! [`lamed_store::Store`], testable without HTTP. The HTTP handlers and
//! the Lambda entry call these; they hold no rules of their own.
//!
//! It may import `lamed-core`, `lamed-stats` and `lamed-store`: never the
//! settings, the HTTP layer or the binary.
//!
//! # Layout
//!
//! - [`adaptive`]: adaptive experiments: weights per period from Thompson
//!   sampling, their stored history, and the report stratified by it.
//! - [`alerts`]: which experiments need attention, and their signed
//!   webhooks, with their state in the store.
//! - [`registry`]: registry edits: register, redefine, change status,
//!   describe, delete and list experiment records.
//! - [`report`]: one experiment's statistics, verdicts and daily series.
//! - [`sixpack`]: Sixpack's participate, convert and experiment details.
//! - [`tracking`]: counting events, and the [`tracking::Meter`] that hears it.
//! - [`weights`]: the weights a page splits an experiment's traffic by.

pub mod adaptive;
pub mod alerts;
pub mod registry;
pub mod report;
pub mod sixpack;
pub mod tracking;
pub mod weights;
